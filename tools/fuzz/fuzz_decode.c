/* fuzz_decode.c: fuzz harness of the codec's decoder (csrc/codec.c).
 *
 * The codec is compiled into this program (it includes codec.c), so a
 * fuzzer's coverage instrumentation and the sanitizers see its code; the
 * Python it runs on is the embedded, uninstrumented libpython. One input is
 * one call of sa_codec_decode() with pickle off (unpickling random bytes
 * could run anything). The checks, each an abort():
 *   - decoding raises nothing but DecodeError;
 *   - whatever decodes encodes again, and that encoding is a fixed point
 *     (decode + encode gives the same bytes).
 *
 * Built two ways by tools/fuzz/run.sh (`make fuzz`):
 *   - clang: a libFuzzer target (-fsanitize=fuzzer,address,undefined);
 *   - otherwise, with -DSA_FUZZ_STANDALONE: main() below mutates the seed
 *     inputs at random for a bounded time (gcc, address+undefined).
 */
#include "../../csrc/codec.c"

#include <stdio.h>
#include <stdlib.h>

static sa_codec_state_t fuzz_st;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    Py_InitializeEx(0);
    PyObject *mod = PyModule_New("fuzz_codec");
    if (mod == NULL || sa_codec_module_init(mod, &fuzz_st) < 0) {
        PyErr_Print();
        abort();
    }
    /* mod stays alive for the whole run: the state's objects are also in it. */
    return 0;
}

static void fuzz_fail(const char *what)
{
    fprintf(stderr, "fuzz_decode: %s\n", what);
    if (PyErr_Occurred())
        PyErr_Print();
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    PyObject *obj = sa_codec_decode(&fuzz_st, (const char *)data, size, 0);
    if (obj == NULL) {
        if (!PyErr_ExceptionMatches(fuzz_st.DecodeError))
            fuzz_fail("decode raised something other than DecodeError");
        PyErr_Clear();
        return 0;
    }
    char *b1, *b2;
    size_t n1, n2;
    if (sa_codec_encode_raw(&fuzz_st, obj, 0, &b1, &n1) < 0)
        fuzz_fail("a decoded value did not encode");
    Py_DECREF(obj);
    obj = sa_codec_decode(&fuzz_st, b1, n1, 0);
    if (obj == NULL)
        fuzz_fail("our own encoding did not decode");
    if (sa_codec_encode_raw(&fuzz_st, obj, 0, &b2, &n2) < 0)
        fuzz_fail("a decoded value did not encode (second round)");
    if (n1 != n2 || memcmp(b1, b2, n1) != 0)
        fuzz_fail("encode(decode(x)) is not a fixed point");
    PyMem_RawFree(b1);
    PyMem_RawFree(b2);
    Py_DECREF(obj);
    return 0;
}

#ifdef SA_FUZZ_STANDALONE
/* A small mutation fuzzer for machines without libFuzzer:
 *   fuzz_decode SECONDS SEED_FILE...
 * Each run takes a seed (or, one time in eight, random bytes), applies 1 to
 * 8 random edits (set/flip/insert/delete a byte, write an "interesting"
 * byte, truncate, splice another seed) and decodes the result. */
#include <time.h>

#define FUZZ_MAX_LEN 4096

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s SECONDS SEED_FILE...\n", argv[0]);
        return 2;
    }
    double seconds = atof(argv[1]);
    int nseeds = argc - 2;
    unsigned char **seeds = calloc((size_t)nseeds, sizeof *seeds);
    size_t *lens = calloc((size_t)nseeds, sizeof *lens);
    for (int i = 0; i < nseeds; i++) {
        FILE *f = fopen(argv[i + 2], "rb");
        if (f == NULL) {
            perror(argv[i + 2]);
            return 2;
        }
        seeds[i] = malloc(FUZZ_MAX_LEN);
        lens[i] = fread(seeds[i], 1, FUZZ_MAX_LEN, f);
        fclose(f);
    }
    rng_state ^= (uint64_t)time(NULL);
    LLVMFuzzerInitialize(&argc, &argv);
    static const unsigned char interesting[] = {
        0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc4, 0xc5, 0xc6, 0xc7,
        0xc8, 0xc9, 0xca, 0xcb, 0xcf, 0xd3, 0xd4, 0xd8, 0xd9, 0xdb, 0xdc, 0xdd, 0xde, 0xdf,
        0xe0, 0xff, 0x01, 0x02, 0x03,
    };
    unsigned char buf[FUZZ_MAX_LEN];
    double start = now_s(), end = start + seconds;
    unsigned long runs = 0, decoded = 0;
    while ((runs & 255) || now_s() < end) {
        size_t n;
        if (rng() % 8 == 0) {
            n = rng() % 64;
            for (size_t i = 0; i < n; i++)
                buf[i] = (unsigned char)rng();
        } else {
            int s = (int)(rng() % (uint64_t)nseeds);
            n = lens[s];
            memcpy(buf, seeds[s], n);
            int edits = 1 + (int)(rng() % 8);
            for (int k = 0; k < edits; k++) {
                size_t at = n ? rng() % n : 0;
                switch (rng() % 7) {
                case 0: if (n) buf[at] = (unsigned char)rng(); break;
                case 1: if (n) buf[at] ^= (unsigned char)(1u << (rng() % 8)); break;
                case 2: if (n) buf[at] = interesting[rng() % sizeof interesting]; break;
                case 3: /* insert a byte */
                    if (n < FUZZ_MAX_LEN) {
                        memmove(buf + at + 1, buf + at, n - at);
                        buf[at] = (unsigned char)rng();
                        n++;
                    }
                    break;
                case 4: /* delete a byte */
                    if (n) {
                        memmove(buf + at, buf + at + 1, n - at - 1);
                        n--;
                    }
                    break;
                case 5: n = at; break; /* truncate */
                default: { /* splice: overwrite the tail with another seed's tail */
                    int o = (int)(rng() % (uint64_t)nseeds);
                    size_t from = lens[o] ? rng() % lens[o] : 0;
                    size_t take = lens[o] - from;
                    if (at + take > FUZZ_MAX_LEN)
                        take = FUZZ_MAX_LEN - at;
                    memcpy(buf + at, seeds[o] + from, take);
                    n = at + take;
                }
                }
            }
        }
        /* An exact-size heap copy, so that ASan catches reads past the end. */
        unsigned char *in = malloc(n ? n : 1);
        memcpy(in, buf, n);
        PyObject *probe = sa_codec_decode(&fuzz_st, (const char *)in, n, 0);
        if (probe != NULL) {
            decoded++;
            Py_DECREF(probe);
        } else {
            PyErr_Clear();
        }
        LLVMFuzzerTestOneInput(in, n);
        free(in);
        runs++;
    }
    printf("fuzz_decode: %lu inputs in %.0f s (%lu decoded to a value, the rest raised DecodeError); "
           "no crash, no sanitizer report, every check held\n", runs, now_s() - start, decoded);
    return 0;
}
#endif
