/* codec.h: the MessagePack codec (see codec.c for the wire format).
 *
 * The channel layer does not call the codec, and no buffer of the codec
 * ever enters a channel. Messages are encoded in Python: dumps() gives a
 * bytes object, ChannelEnd.send() copies it into a message buffer of its
 * own (sa_chan_buf_alloc() of chan.h, freed only with sa_chan_buf_free()),
 * and the receiver passes the Message to loads(), which decodes it with
 * sa_codec_decode() in the receiving interpreter.
 *
 * sa_codec_encode_raw() is the C API for C callers that want the encoded
 * bytes outside any Python object: today dumps() itself on Pythons where it
 * can't build in place (see SA_CODEC_BYTES_IN_PLACE in codec.c) and the
 * fuzz harness (tools/fuzz). Its buffer is plain PyMem_RawMalloc() memory,
 * freed with PyMem_RawFree(), not a channel buffer.
 *
 * Every function here needs the GIL of the calling interpreter and that
 * interpreter's codec state.
 */
#ifndef SA_CODEC_H
#define SA_CODEC_H

/* Flags of sa_codec_encode_raw() and sa_codec_decode(). */
#define SA_CODEC_PICKLE 1 /* pickle unsupported objects (ext 3) / unpickle ext 3 */
#define SA_CODEC_VIEW 2   /* loads(zero_copy=True) only: large bins as memoryviews of the input */
#define SA_CODEC_VIEW_MIN ((size_t)64 << 10) /* bins at least this long become views */

/* Deepest nesting of containers (list, tuple, dict) either side accepts;
 * the outermost container is level 1. */
#define SA_CODEC_MAX_DEPTH 256

/* Slots of the decoder's cache of short ASCII map keys (a power of two). */
#define SA_CODEC_KEYCACHE_SIZE 512

/* Per-interpreter state of the codec (a member of sa_state_t). */
typedef struct {
    PyObject *EncodeError;  /* TypeError subclass: an object the codec cannot encode */
    PyObject *DecodeError;  /* ValueError subclass: bytes that are not one valid message */
    PyObject *pickle_dumps; /* pickle.dumps, imported on first use; NULL before that */
    PyObject *pickle_loads; /* pickle.loads, imported on first use; NULL before that */
    /* Typed messages (codec_typed.h): */
    PyObject *ValidationError; /* DecodeError subclass: a value not of the expected type */
    PyObject *PlanType;     /* the StructPlan type */
    PyObject *plans;        /* dict: Struct class -> its StructPlan (every class made here) */
    PyObject *enum_type;    /* enum.Enum once the enum module is loaded; else NULL */
    PyObject *datetime_type;    /* datetime.datetime, likewise */
    PyObject *decimal_type;     /* decimal.Decimal, likewise */
    PyObject *datetime_fromiso; /* datetime.fromisoformat (decoding ext 16), imported on first use */
    PyObject *decimal_ctor;     /* decimal.Decimal (decoding ext 17), imported on first use */
    /* Recently decoded map keys (exact ASCII str of at most 32 bytes), indexed
     * by a hash of their bytes, so that the same key decoded again is one
     * memcmp and a new reference, with its str hash already computed. */
    PyObject *keycache[SA_CODEC_KEYCACHE_SIZE];
} sa_codec_state_t;

/* Add dumps(), loads(), EncodeError and DecodeError to `mod` and fill `st`.
 * 0, or -1 with an exception set. */
int sa_codec_module_init(PyObject *mod, sa_codec_state_t *st);
int sa_codec_state_traverse(sa_codec_state_t *st, visitproc visit, void *arg);
void sa_codec_state_clear(sa_codec_state_t *st);

/* Encode `obj` into a new buffer from PyMem_RawMalloc() that the caller owns
 * and frees with PyMem_RawFree(); its size goes to *len. Returns 0, or -1 with
 * an exception set (EncodeError, ValueError for the depth limit, MemoryError)
 * and *out left untouched. `flags`: SA_CODEC_PICKLE or 0. The buffer is not
 * a channel buffer (it has no header of sa_chan_buf_alloc()): never hand it
 * to sa_chan_send_batch() or sa_chan_buf_free(); copy it into one instead. */
int sa_codec_encode_raw(sa_codec_state_t *st, PyObject *obj, int flags, char **out, size_t *len);

/* Decode exactly one message from buf[0:len]. Returns a new reference, or
 * NULL with an exception set (DecodeError for anything wrong with the bytes).
 * `flags`: SA_CODEC_PICKLE or 0. The buffer is only read. */
PyObject *sa_codec_decode(sa_codec_state_t *st, const char *buf, size_t len, int flags);

/* Decode exactly one value of type spec `spec` (a tuple made by
 * subactor/msg/_spec.py), validating it: ValidationError (a DecodeError)
 * names the path. dec_hook: dec_hook(type, obj) for custom types, or NULL. */
PyObject *sa_codec_decode_typed(sa_codec_state_t *st, const char *buf, size_t len, PyObject *spec,
                                PyObject *dec_hook);

#endif
