/* fuzz_decode.c: fuzz harness of the codec's decoder (csrc/codec.c).
 *
 * The codec is compiled into this program (it includes codec.c), so a
 * fuzzer's coverage instrumentation and the sanitizers see its code; the
 * Python it runs on is the embedded, uninstrumented libpython. One input is
 * one call of sa_codec_decode() with pickle off (unpickling random bytes
 * could run anything), then one call of the typed decoder
 * (sa_codec_decode_typed(), codec_typed.h) per type spec of FUZZ_SPECS
 * below: Struct plans (nested, recursive, tagged unions) over every kind of
 * field. The checks, each an abort():
 *   - decoding raises nothing but DecodeError (ValidationError is one);
 *   - whatever decodes encodes again, and that encoding is a fixed point
 *     (decode + encode gives the same bytes), for the typed decoder with
 *     the typed encoder and the same spec.
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
static PyObject *fuzz_specs; /* tuple of type specs for the typed decoder */
static unsigned long fuzz_typed_ok; /* typed decodes that gave a value */

/* Slot classes standing in for subactor.msg.Struct (the harness has no
 * subactor package), their plans made with plan_make(), and type specs in
 * the tuple format of subactor/msg/_spec.py. */
static const char FUZZ_SPECS[] =
    "import enum\n"
    "class Color(enum.Enum):\n    R = 'r'\n    G = 2\n"
    "class P:\n    __slots__ = ('x', 'y')\n"
    "class N:\n    __slots__ = ('v', 'kids')\n"
    "class A:\n    __slots__ = ('n',)\n"
    "class B:\n    __slots__ = ('s',)\n"
    "class E:\n    __slots__ = ('b', 'f', 'by', 'vt', 'ft', 'd', 'se', 'fs', 'o', 'u', 'lit', 'c', 'p', 'any')\n"
    "ANY, NONE, BOOL, INT, FLOAT, STR, BYTES = (0, 'Any'), (1, 'None'), (2, 'bool'), (3, 'int'), (4, 'float'), (5, 'str'), (6, 'bytes')\n"
    "pp = mkplan(P, ('x', 'y'), (None, 0), bytes([0, 1]), None, None)\n"
    "np_ = mkplan(N, ('v', 'kids'), (None, list), bytes([0, 2]), None, None)\n"
    "ap = mkplan(A, ('n',), (None,), bytes([0]), 'type', 'A')\n"
    "bp = mkplan(B, ('s',), ('',), bytes([1]), 'type', 'B')\n"
    "ep = mkplan(E, E.__slots__, (None,) * 14, bytes(14), None, None)\n"
    "PS = (17, 'P', pp)\n"
    "NS = (17, 'N', np_)\n"
    "AB = (18, 'A | B', 'type', {'A': ap, 'B': bp})\n"
    "resolve(pp, (INT, INT))\n"
    "resolve(np_, (INT, (7, 'list[N]', NS)))\n"
    "resolve(ap, (INT,))\n"
    "resolve(bp, (STR,))\n"
    "resolve(ep, (BOOL, FLOAT, BYTES, (8, 'tuple[str, ...]', STR), (9, 'tuple[int, P]', (INT, PS)),\n"
    "    (10, 'dict[str, P]', STR, PS), (11, 'set[int]', INT), (12, 'frozenset[str]', STR),\n"
    "    (13, 'int | None', INT), (14, 'None | int | str | list[int]', (NONE, INT, STR, (7, 'list[int]', INT))),\n"
    "    (15, \"Literal['a', 1]\", ('a', 1)), (16, 'Color', {m.value: m for m in Color}),\n"
    "    (13, 'P | None', PS), ANY))\n"
    "ES = (17, 'E', ep)\n"
    "specs = (PS, NS, AB, ES, (7, 'list[A | B]', AB), (10, 'dict[str, E]', STR, ES), (9, 'tuple[()]', ()))\n";

static PyObject *fuzz_mkplan(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    return plan_make(&fuzz_st, args, nargs);
}

static PyObject *fuzz_resolve(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    return plan_resolve(&fuzz_st, args, nargs);
}

static PyMethodDef fuzz_methods[] = {
    {"mkplan", (PyCFunction)(void (*)(void))fuzz_mkplan, METH_FASTCALL, NULL},
    {"resolve", (PyCFunction)(void (*)(void))fuzz_resolve, METH_FASTCALL, NULL},
};

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
    PyObject *g = PyDict_New();
    PyObject *f1 = PyCFunction_New(&fuzz_methods[0], NULL), *f2 = PyCFunction_New(&fuzz_methods[1], NULL);
    if (g == NULL || f1 == NULL || f2 == NULL || PyDict_SetItemString(g, "__builtins__", PyEval_GetBuiltins()) < 0 ||
        PyDict_SetItemString(g, "mkplan", f1) < 0 || PyDict_SetItemString(g, "resolve", f2) < 0) {
        PyErr_Print();
        abort();
    }
    PyObject *r = PyRun_String(FUZZ_SPECS, Py_file_input, g, g);
    if (r == NULL || (fuzz_specs = PyDict_GetItemString(g, "specs")) == NULL) {
        PyErr_Print();
        abort();
    }
    Py_INCREF(fuzz_specs);
    Py_DECREF(r);
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(fuzz_specs); i++)
        if (spec_check(&fuzz_st, PyTuple_GET_ITEM(fuzz_specs, i), 0) < 0) {
            PyErr_Print();
            abort();
        }
    return 0;
}

static void fuzz_fail(const char *what)
{
    fprintf(stderr, "fuzz_decode: %s\n", what);
    if (PyErr_Occurred())
        PyErr_Print();
    abort();
}

/* The typed decoder against one spec: only DecodeError, and a fixed point
 * of typed decode + typed encode. */
static void fuzz_typed(const uint8_t *data, size_t size, PyObject *spec)
{
    PyObject *obj = sa_codec_decode_typed(&fuzz_st, (const char *)data, size, spec, NULL);
    if (obj == NULL) {
        if (!PyErr_ExceptionMatches(fuzz_st.DecodeError))
            fuzz_fail("typed decode raised something other than DecodeError");
        PyErr_Clear();
        return;
    }
    fuzz_typed_ok++;
    char *b1, *b2;
    size_t n1, n2;
    if (codec_encode_raw_ex(&fuzz_st, obj, 0, 1, NULL, &b1, &n1) < 0)
        fuzz_fail("a typed-decoded value did not encode");
    Py_DECREF(obj);
    obj = sa_codec_decode_typed(&fuzz_st, b1, n1, spec, NULL);
    if (obj == NULL)
        fuzz_fail("our own typed encoding did not decode with the same spec");
    if (codec_encode_raw_ex(&fuzz_st, obj, 0, 1, NULL, &b2, &n2) < 0)
        fuzz_fail("a typed-decoded value did not encode (second round)");
    if (n1 != n2 || memcmp(b1, b2, n1) != 0)
        fuzz_fail("typed encode(decode(x)) is not a fixed point");
    PyMem_RawFree(b1);
    PyMem_RawFree(b2);
    Py_DECREF(obj);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(fuzz_specs); i++)
        fuzz_typed(data, size, PyTuple_GET_ITEM(fuzz_specs, i));
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
           "%lu typed decodes (of %zd specs each) gave a value; "
           "no crash, no sanitizer report, every check held\n", runs, now_s() - start, decoded, fuzz_typed_ok,
           PyTuple_GET_SIZE(fuzz_specs));
    return 0;
}
#endif
