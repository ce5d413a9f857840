/* codec.c: the MessagePack codec.
 *
 * Owns: encoding Python objects to MessagePack bytes and decoding them back;
 * the Python functions dumps() and loads(); the exceptions EncodeError (a
 * TypeError) and DecodeError (a ValueError); the C API of codec.h (used by
 * dumps() itself on Python 3.15+ and by the fuzz harness; the channel layer
 * copies dumps()'s bytes and never calls it). dumps()/loads() and the C API
 * share all their code.
 *
 * Rules: everything here runs with the GIL of the calling interpreter held
 * and touches only that interpreter's codec state (sa_codec_state_t): no
 * static PyObject*, no process-global state. Python code runs during a call
 * only through pickle (ext 3), so containers are re-checked for changes
 * after each item. Encode and decode recurse at most SA_CODEC_MAX_DEPTH
 * containers deep, which bounds the C stack.
 *
 * Wire format: the MessagePack spec, so any conformant implementation reads
 * our bytes. None -> nil; bool -> true/false; int -> the smallest int format
 * (positive values as uint); float -> float64; str -> str (UTF-8); bytes,
 * bytearray, memoryview -> bin; list -> array; dict -> map (keys of any
 * supported type). Subclasses of these types encode as the base type. A str
 * holding a lone surrogate cannot be UTF-8 and raises EncodeError. On
 * decode, arrays become lists, except inside a map key, where they become
 * tuples so that the key is hashable; float32 is accepted; ext types other
 * than ours raise DecodeError.
 *
 * Ext types of ours:
 *   1  int outside -2**63 .. 2**64-1. Payload: the value as big-endian
 *      two's complement in the fewest bytes
 *      (int.from_bytes(payload, "big", signed=True)).
 *   2  tuple. Payload: exactly one MessagePack array of the items.
 *   3  pickle, only with SA_CODEC_PICKLE (pickle_fallback=True): an object
 *      of a type not listed above. Payload: pickle.dumps(obj, protocol=5).
 *      Decoding it without the flag raises DecodeError.
 *  16  datetime.datetime. Payload: its isoformat() (UTF-8), decoded with
 *      datetime.fromisoformat (naive or aware, microseconds kept).
 *  17  decimal.Decimal. Payload: its str(), decoded with Decimal(str).
 *
 * Structs of subactor.msg (a class with a StructPlan, codec_typed.h)
 * encode as a map of field name -> value, the tag first when the class has
 * one: the plain decoder reads them back as dicts; the typed decoder
 * (typed_loads) rebuilds and validates them.
 */
#include "common.h"

#include <stdarg.h>
#include <string.h>

/* The output of dumps() is built inside the bytes object it returns, grown
 * with _PyBytes_Resize(), which saves a copy of the whole message. That
 * function is not public API: newer Pythons build in a raw buffer and copy. */
#if PY_VERSION_HEX < 0x030F0000
#  define SA_CODEC_BYTES_IN_PLACE 1
#else
#  define SA_CODEC_BYTES_IN_PLACE 0
#endif

/* How error messages name the type of an object: "%T" (3.13) gives the
 * fully qualified name. */
#if PY_VERSION_HEX >= 0x030D0000
#  define SA_TYPE_FMT "%T"
#  define SA_TYPE_ARG(o) (o)
#else
#  define SA_TYPE_FMT "%s"
#  define SA_TYPE_ARG(o) Py_TYPE(o)->tp_name
#endif

/* Bytes a fresh output buffer starts with (most messages fit). */
#define SA_ENC_INITIAL 128
/* Longest map key (in bytes) the decoder's key cache holds. */
#define SA_KEYCACHE_MAX_LEN 32

/* ---------------------------------------------------------------------- */
/* Big-endian helpers                                                      */

static inline void put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static inline void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static inline void put64(unsigned char *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

static inline uint16_t get16(const unsigned char *p)
{
    return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static inline uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t get64(const unsigned char *p)
{
    return (uint64_t)get32(p) << 32 | get32(p + 4);
}

/* Write the smallest ext header for `code` and a payload of n <= 2**32-1
 * bytes to h (6 bytes of room). Returns its length. Can't fail. */
static size_t ext_header(unsigned char *h, int8_t code, size_t n)
{
    static const unsigned char fixext[17] = {
        [1] = 0xd4, [2] = 0xd5, [4] = 0xd6, [8] = 0xd7, [16] = 0xd8,
    };
    if (n <= 16 && fixext[n]) {
        h[0] = fixext[n];
        h[1] = (unsigned char)code;
        return 2;
    }
    if (n < 0x100) {
        h[0] = 0xc7;
        h[1] = (unsigned char)n;
        h[2] = (unsigned char)code;
        return 3;
    }
    if (n < 0x10000) {
        h[0] = 0xc8;
        put16(h + 1, (uint16_t)n);
        h[3] = (unsigned char)code;
        return 4;
    }
    h[0] = 0xc9;
    put32(h + 1, (uint32_t)n);
    h[5] = (unsigned char)code;
    return 6;
}

/* Import pickle.dumps/pickle.loads into the state once. 0 or -1. */
static int codec_import_pickle(sa_codec_state_t *st)
{
    if (st->pickle_dumps != NULL)
        return 0;
    PyObject *mod = PyImport_ImportModule("pickle");
    if (mod == NULL)
        return -1;
    PyObject *dumps = PyObject_GetAttrString(mod, "dumps");
    PyObject *loads = dumps ? PyObject_GetAttrString(mod, "loads") : NULL;
    Py_DECREF(mod);
    if (loads == NULL) {
        Py_XDECREF(dumps);
        return -1;
    }
    st->pickle_dumps = dumps;
    st->pickle_loads = loads;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Encoder                                                                 */
/* Every enc_* function that returns int returns 0, or -1 with either an
 * exception set or an error pending (see enc_t); the entry points turn a
 * pending error into an exception. */

typedef struct {
    unsigned char *buf;     /* the output so far; inside `bytes` in bytes mode */
    size_t len;             /* bytes written at buf */
    size_t cap;             /* bytes allocated at buf */
    PyObject *bytes;        /* bytes mode: the bytes object being filled; else NULL */
    sa_codec_state_t *st;   /* the calling interpreter's codec state */
    int flags;              /* SA_CODEC_* */
    /* An error that wants the path of the failing object. While it is
     * pending no Python exception is set; each container the failure
     * unwinds through adds its segment; enc_raise_pending() raises it. */
    PyObject *path;         /* list of segments, innermost first; non-NULL iff pending */
    PyObject *err_type;     /* borrowed: the exception type to raise */
    PyObject *err_msg;      /* str: what went wrong, without the path */
    PyObject *err_cause;    /* the exception that caused it, or NULL */
    const char *err_hint;   /* static text after the path, or "" */
    int typed;              /* typed mode (codec_typed.h): sets, Enums, tuples as arrays */
    PyObject *enc_hook;     /* borrowed: called on objects of no known type, or NULL */
    int chanbuf;            /* buf is a channel buffer (sa_chan_buf_alloc): dumps_msg() */
} enc_t;

static int enc_obj(enc_t *e, PyObject *obj, int depth);
static int enc_typed_other(enc_t *e, PyObject *obj, int depth, int *r);

/* Make room for `need` more bytes: double or grow to fit, whichever is
 * more, so appends cost amortised O(1) (the result is trimmed at the end).
 * 0, or -1 with MemoryError (in bytes mode e->bytes is then gone). */
static int enc_grow(enc_t *e, size_t need)
{
    size_t want = e->len + need;
    size_t cap = e->cap * 2;
    if (want < need || want > (size_t)PY_SSIZE_T_MAX - 64) {
        PyErr_NoMemory();
        return -1;
    }
    if (cap < want)
        cap = want;
    if (cap > (size_t)PY_SSIZE_T_MAX - 64)
        cap = want;
#if SA_CODEC_BYTES_IN_PLACE
    if (e->bytes != NULL) {
        if (_PyBytes_Resize(&e->bytes, (Py_ssize_t)cap) < 0)
            return -1;
        e->buf = (unsigned char *)PyBytes_AS_STRING(e->bytes);
        e->cap = cap;
        return 0;
    }
#endif
    if (e->chanbuf) {
        /* A channel buffer, from the pool when large: a steady stream of
         * large items reuses the same pages (no page faults). */
        char *nb = sa_chan_buf_alloc(cap);
        if (nb == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(nb, e->buf, e->len);
        sa_chan_buf_free((char *)e->buf);
        e->buf = (unsigned char *)nb;
        e->cap = sa_chan_buf_cap(nb);
        return 0;
    }
    unsigned char *p = PyMem_RawRealloc(e->buf, cap);
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    e->buf = p;
    e->cap = cap;
    return 0;
}

static inline int enc_reserve(enc_t *e, size_t n)
{
    if (e->cap - e->len < n)
        return enc_grow(e, n);
    return 0;
}

/* Start a pending error (see enc_t) of type `type`, with `cause` (stolen,
 * may be NULL), a message made from fmt and `hint` (static) to follow the
 * path. Always returns -1. */
static int enc_fail(enc_t *e, PyObject *type, PyObject *cause, const char *hint, const char *fmt, ...)
{
    va_list va;
    va_start(va, fmt);
    PyObject *msg = PyUnicode_FromFormatV(fmt, va);
    va_end(va);
    PyObject *path = msg ? PyList_New(0) : NULL;
    if (path == NULL) {
        Py_XDECREF(msg);
        Py_XDECREF(cause);
        return -1;
    }
    e->path = path;
    e->err_type = type;
    e->err_msg = msg;
    e->err_cause = cause;
    e->err_hint = hint;
    return -1;
}

static void enc_drop_pending(enc_t *e)
{
    Py_CLEAR(e->path);
    Py_CLEAR(e->err_msg);
    Py_CLEAR(e->err_cause);
}

/* Add a path segment (stolen; NULL means making it failed with an
 * exception set) to the pending error, if there is one. On failure the
 * pending error is dropped and the new exception stands. */
static void enc_path_push(enc_t *e, PyObject *seg)
{
    if (e->path == NULL) {
        Py_XDECREF(seg);
        return;
    }
    if (seg == NULL || PyList_Append(e->path, seg) < 0)
        enc_drop_pending(e);
    Py_XDECREF(seg);
}

static void enc_path_index(enc_t *e, Py_ssize_t i)
{
    if (e->path != NULL)
        enc_path_push(e, PyUnicode_FromFormat("[%zd]", i));
}

/* Turn a pending error into an exception: "<msg> at $<path><hint>". The
 * path reads like Python subscripts: $[2]['key'][0]; <key> stands for a
 * dict key itself ($[2]<key> is a key of the dict at $[2]). */
static void enc_raise_pending(enc_t *e)
{
    if (e->path == NULL)
        return; /* the exception is already set */
    PyObject *joined = NULL, *sep = NULL;
    if (PyList_Reverse(e->path) == 0 && (sep = PyUnicode_FromString("")) != NULL)
        joined = PyUnicode_Join(sep, e->path);
    Py_XDECREF(sep);
    if (joined != NULL) {
        PyErr_Format(e->err_type, "%U at $%U%s", e->err_msg, joined, e->err_hint);
        Py_DECREF(joined);
        if (e->err_cause != NULL) {
            PyObject *exc = PyErr_GetRaisedException();
            PyException_SetCause(exc, Py_NewRef(e->err_cause));
            PyException_SetContext(exc, Py_NewRef(e->err_cause));
            PyErr_SetRaisedException(exc);
        }
    }
    enc_drop_pending(e);
}

/* ValueError for a container nested deeper than SA_CODEC_MAX_DEPTH. -1. */
static int enc_depth_error(void)
{
    PyErr_Format(PyExc_ValueError,
                 "cannot encode: nesting deeper than %d levels (the codec's depth limit; "
                 "is there a reference cycle?)", SA_CODEC_MAX_DEPTH);
    return -1;
}

/* Pending ValueError for a length no MessagePack header can hold. -1. */
static int enc_too_long(enc_t *e, const char *what, size_t n)
{
    return enc_fail(e, PyExc_ValueError, NULL, "",
                    "%s of %zu bytes or items is longer than MessagePack allows (2**32-1)", what, n);
}

static inline int enc_byte(enc_t *e, unsigned char c)
{
    if (enc_reserve(e, 1) < 0)
        return -1;
    e->buf[e->len++] = c;
    return 0;
}

static Py_ALWAYS_INLINE inline int enc_int64(enc_t *e, int64_t v)
{
    if (enc_reserve(e, 9) < 0)
        return -1;
    unsigned char *p = e->buf + e->len;
    if (v >= 0) {
        if (v < 0x80) {
            p[0] = (unsigned char)v;
            e->len += 1;
        } else if (v <= 0xff) {
            p[0] = 0xcc;
            p[1] = (unsigned char)v;
            e->len += 2;
        } else if (v <= 0xffff) {
            p[0] = 0xcd;
            put16(p + 1, (uint16_t)v);
            e->len += 3;
        } else if (v <= 0xffffffffLL) {
            p[0] = 0xce;
            put32(p + 1, (uint32_t)v);
            e->len += 5;
        } else {
            p[0] = 0xcf;
            put64(p + 1, (uint64_t)v);
            e->len += 9;
        }
    } else if (v >= -32) {
        p[0] = (unsigned char)(int8_t)v;
        e->len += 1;
    } else if (v >= -0x80) {
        p[0] = 0xd0;
        p[1] = (unsigned char)(int8_t)v;
        e->len += 2;
    } else if (v >= -0x8000) {
        p[0] = 0xd1;
        put16(p + 1, (uint16_t)(int16_t)v);
        e->len += 3;
    } else if (v >= -0x80000000LL) {
        p[0] = 0xd2;
        put32(p + 1, (uint32_t)(int32_t)v);
        e->len += 5;
    } else {
        p[0] = 0xd3;
        put64(p + 1, (uint64_t)v);
        e->len += 9;
    }
    return 0;
}

static int enc_uint64(enc_t *e, uint64_t v)
{
    if (v <= (uint64_t)INT64_MAX)
        return enc_int64(e, (int64_t)v);
    if (enc_reserve(e, 9) < 0)
        return -1;
    e->buf[e->len] = 0xcf;
    put64(e->buf + e->len + 1, v);
    e->len += 9;
    return 0;
}

/* Write ext `code` with payload p[0:n]. */
static int enc_ext(enc_t *e, int8_t code, const void *p, size_t n)
{
    if (n > 0xffffffffu)
        return enc_too_long(e, "ext payload", n);
    if (enc_reserve(e, n + 6) < 0)
        return -1;
    e->len += ext_header(e->buf + e->len, code, n);
    memcpy(e->buf + e->len, p, n);
    e->len += n;
    return 0;
}

/* An int outside -2**63 .. 2**64-1: ext 1 (see the top of the file). */
static Py_NO_INLINE int enc_bigint(enc_t *e, PyObject *obj)
{
    int status = -1;
    unsigned char small[64];
    unsigned char *p = small;
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *tmp = NULL;
    Py_ssize_t n = PyLong_AsNativeBytes(obj, NULL, 0, Py_ASNATIVEBYTES_BIG_ENDIAN);
    if (n < 0)
        return -1;
    if ((size_t)n > sizeof small && (p = PyMem_Malloc((size_t)n)) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t got = PyLong_AsNativeBytes(obj, p, n, Py_ASNATIVEBYTES_BIG_ENDIAN);
    if (got < 0)
        goto cleanup;
    assert(got <= n);
#else
    /* 3.12: int.to_bytes(obj.bit_length() // 8 + 1, "big", signed=True) */
    PyObject *tmp = NULL, *kw = NULL, *args = NULL, *meth = NULL;
    PyObject *bits = PyObject_CallMethod(obj, "bit_length", NULL);
    if (bits == NULL)
        return -1;
    Py_ssize_t n = PyLong_AsSsize_t(bits);
    Py_DECREF(bits);
    if (n < 0)
        return -1;
    n = n / 8 + 1;
    if ((kw = Py_BuildValue("{s:O}", "signed", Py_True)) != NULL &&
        (args = Py_BuildValue("(ns)", n, "big")) != NULL &&
        (meth = PyObject_GetAttrString(obj, "to_bytes")) != NULL)
        tmp = PyObject_Call(meth, args, kw);
    Py_XDECREF(kw);
    Py_XDECREF(args);
    Py_XDECREF(meth);
    if (tmp == NULL)
        return -1;
    p = (unsigned char *)PyBytes_AS_STRING(tmp);
#endif
    /* Drop sign-extension bytes: a leading 0x00 before a byte with the top
     * bit clear, or 0xff before one with it set, says nothing. */
    Py_ssize_t skip = 0;
    while (skip + 1 < n && ((p[skip] == 0x00 && !(p[skip + 1] & 0x80)) ||
                            (p[skip] == 0xff && (p[skip + 1] & 0x80))))
        skip++;
    status = enc_ext(e, 1, p + skip, (size_t)(n - skip));
#if PY_VERSION_HEX >= 0x030D0000
cleanup:
    if (p != small)
        PyMem_Free(p);
#endif
    Py_XDECREF(tmp);
    return status;
}

static Py_ALWAYS_INLINE inline int enc_long(enc_t *e, PyObject *obj)
{
    if (PyUnstable_Long_IsCompact((PyLongObject *)obj))
        return enc_int64(e, PyUnstable_Long_CompactValue((PyLongObject *)obj));
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (overflow == 0) {
        if (v == -1 && PyErr_Occurred())
            return -1;
        return enc_int64(e, v);
    }
    if (overflow > 0) {
        unsigned long long u = PyLong_AsUnsignedLongLong(obj);
        if (u != (unsigned long long)-1 || !PyErr_Occurred())
            return enc_uint64(e, u);
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            return -1;
        PyErr_Clear();
    }
    return enc_bigint(e, obj);
}

static Py_ALWAYS_INLINE inline int enc_float(enc_t *e, double d)
{
    if (enc_reserve(e, 9) < 0)
        return -1;
    uint64_t bits;
    memcpy(&bits, &d, 8);
    e->buf[e->len] = 0xcb;
    put64(e->buf + e->len + 1, bits);
    e->len += 9;
    return 0;
}

/* Write the header of a str, bin, array or map of n bytes or items, and
 * make room for `extra` bytes after it. `fix` is the marker of the fix form
 * (0: none), which holds up to `fixmax`; m8, m16, m32 are the markers with
 * an 8-, 16- and 32-bit length (m8 == 0: none). 0 or -1. */
static inline int enc_header(enc_t *e, size_t n, size_t fixmax, unsigned char fix,
                             unsigned char m8, unsigned char m16, unsigned char m32,
                             const char *what, size_t extra)
{
    if (n > 0xffffffffu)
        return enc_too_long(e, what, n);
    if (enc_reserve(e, 5 + extra) < 0)
        return -1;
    unsigned char *p = e->buf + e->len;
    if (fix && n <= fixmax) {
        p[0] = (unsigned char)(fix | n);
        e->len += 1;
    } else if (m8 && n < 0x100) {
        p[0] = m8;
        p[1] = (unsigned char)n;
        e->len += 2;
    } else if (n < 0x10000) {
        p[0] = m16;
        put16(p + 1, (uint16_t)n);
        e->len += 3;
    } else {
        p[0] = m32;
        put32(p + 1, (uint32_t)n);
        e->len += 5;
    }
    return 0;
}

static int enc_str(enc_t *e, PyObject *obj)
{
    const char *s;
    Py_ssize_t n;
    if (PyUnicode_IS_COMPACT_ASCII(obj)) {
        s = (const char *)PyUnicode_DATA(obj);
        n = PyUnicode_GET_LENGTH(obj);
    } else if ((s = PyUnicode_AsUTF8AndSize(obj, &n)) == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
            return -1;
        return enc_fail(e, e->st->EncodeError, PyErr_GetRaisedException(), "",
                        "cannot encode a str holding a lone surrogate (UTF-8 has none)");
    }
    if (enc_header(e, (size_t)n, 31, 0xa0, 0xd9, 0xda, 0xdb, "str", (size_t)n) < 0)
        return -1;
    memcpy(e->buf + e->len, s, (size_t)n);
    e->len += (size_t)n;
    return 0;
}

static int enc_bin(enc_t *e, const void *p, size_t n)
{
    if (enc_header(e, n, 0, 0, 0xc4, 0xc5, 0xc6, "bytes", n) < 0)
        return -1;
    memcpy(e->buf + e->len, p, n);
    e->len += n;
    return 0;
}

/* A bytes-like object other than bytes/bytearray (memoryview): bin. */
static int enc_buffer(enc_t *e, PyObject *obj)
{
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_FULL_RO) < 0)
        return -1;
    int status = -1;
    size_t n = (size_t)view.len;
    if (enc_header(e, n, 0, 0, 0xc4, 0xc5, 0xc6, "bytes", n) < 0)
        goto cleanup;
    if (PyBuffer_IsContiguous(&view, 'C'))
        memcpy(e->buf + e->len, view.buf, n);
    else if (PyBuffer_ToContiguous(e->buf + e->len, &view, view.len, 'C') < 0)
        goto cleanup;
    e->len += n;
    status = 0;
cleanup:
    PyBuffer_Release(&view);
    return status;
}

static int enc_list(enc_t *e, PyObject *obj, int depth)
{
    if (depth >= SA_CODEC_MAX_DEPTH)
        return enc_depth_error();
    Py_ssize_t n = PyList_GET_SIZE(obj);
    /* Every item takes at least a byte: one reserve spares some regrowths. */
    if (enc_header(e, (size_t)n, 15, 0x90, 0, 0xdc, 0xdd, "list", (size_t)n) < 0)
        return -1;
    /* Only pickle (ext 3) runs Python code, which may change the list
     * (and 3.12's big-int path allocates, so the GC may run finalizers):
     * then each item is owned while it is encoded. The size is re-checked
     * either way. */
    int guard = (e->flags & SA_CODEC_PICKLE) || PY_VERSION_HEX < 0x030D0000;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i >= PyList_GET_SIZE(obj))
            break;
        PyObject *item = PyList_GET_ITEM(obj, i);
        int r;
        if (Py_IS_TYPE(item, &PyLong_Type)) {
            r = enc_long(e, item); /* lists of ints are common: skip a call */
        } else if (guard) {
            Py_INCREF(item);
            r = enc_obj(e, item, depth + 1);
            Py_DECREF(item);
        } else {
            r = enc_obj(e, item, depth + 1);
        }
        if (r < 0) {
            enc_path_index(e, i);
            return -1;
        }
    }
    if (PyList_GET_SIZE(obj) != n) {
        PyErr_SetString(PyExc_RuntimeError, "list changed size during encoding");
        return -1;
    }
    return 0;
}

/* The array of a tuple's items, at the current position. */
static int enc_tuple_items(enc_t *e, PyObject *obj, int depth)
{
    Py_ssize_t n = PyTuple_GET_SIZE(obj);
    if (enc_header(e, (size_t)n, 15, 0x90, 0, 0xdc, 0xdd, "tuple", 0) < 0)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (enc_obj(e, PyTuple_GET_ITEM(obj, i), depth + 1) < 0) {
            enc_path_index(e, i);
            return -1;
        }
    }
    return 0;
}

/* A tuple: ext 2 around the array of its items. The header's size depends
 * on the payload's, so room for the largest header is left, the array is
 * written after it, and then the payload is slid back behind the smallest
 * header that fits. */
static int enc_tuple(enc_t *e, PyObject *obj, int depth)
{
    if (depth >= SA_CODEC_MAX_DEPTH)
        return enc_depth_error();
    if (e->typed)
        return enc_tuple_items(e, obj, depth); /* a plain array: the spec says it is a tuple */
    if (enc_reserve(e, 6) < 0)
        return -1;
    size_t start = e->len;
    e->len += 6;
    if (enc_tuple_items(e, obj, depth) < 0)
        return -1;
    size_t n = e->len - start - 6;
    if (n > 0xffffffffu)
        return enc_too_long(e, "tuple", n);
    unsigned char h[6];
    size_t hl = ext_header(h, 2, n);
    if (hl != 6)
        memmove(e->buf + start + hl, e->buf + start + 6, n);
    memcpy(e->buf + start, h, hl);
    e->len = start + hl + n;
    return 0;
}

static int enc_dict(enc_t *e, PyObject *obj, int depth)
{
    if (depth >= SA_CODEC_MAX_DEPTH)
        return enc_depth_error();
    Py_ssize_t n = PyDict_GET_SIZE(obj), pos = 0, i = 0;
    if (enc_header(e, (size_t)n, 15, 0x80, 0, 0xde, 0xdf, "dict", 0) < 0)
        return -1;
    PyObject *k, *v;
    while (PyDict_Next(obj, &pos, &k, &v)) {
        if (i++ >= n)
            break;
        Py_INCREF(k);
        Py_INCREF(v);
        int r = enc_obj(e, k, depth + 1);
        if (r < 0) {
            if (e->path != NULL)
                enc_path_push(e, PyUnicode_FromString("<key>"));
        } else if ((r = enc_obj(e, v, depth + 1)) < 0) {
            if (e->path != NULL)
                enc_path_push(e, PyUnicode_FromFormat("[%.200R]", k));
        }
        Py_DECREF(k);
        Py_DECREF(v);
        if (r < 0)
            return -1;
    }
    if (i != n || PyDict_GET_SIZE(obj) != n) {
        PyErr_SetString(PyExc_RuntimeError, "dict changed size during encoding");
        return -1;
    }
    return 0;
}

/* An object of a type with no fast path: subclasses, bytes-likes, pickle. */
static Py_NO_INLINE int enc_other(enc_t *e, PyObject *obj, int depth)
{
    if (PyLong_Check(obj))
        return enc_long(e, obj);
    if (PyFloat_Check(obj))
        return enc_float(e, PyFloat_AS_DOUBLE(obj));
    if (PyUnicode_Check(obj))
        return enc_str(e, obj);
    if (PyBytes_Check(obj))
        return enc_bin(e, PyBytes_AS_STRING(obj), (size_t)PyBytes_GET_SIZE(obj));
    if (PyByteArray_Check(obj))
        return enc_bin(e, PyByteArray_AS_STRING(obj), (size_t)PyByteArray_GET_SIZE(obj));
    if (PyMemoryView_Check(obj))
        return enc_buffer(e, obj);
    if (PyList_Check(obj))
        return enc_list(e, obj, depth);
    if (PyTuple_Check(obj))
        return enc_tuple(e, obj, depth);
    if (PyDict_Check(obj))
        return enc_dict(e, obj, depth);
    int tr;
    if (enc_typed_other(e, obj, depth, &tr))
        return tr;
    if (!(e->flags & SA_CODEC_PICKLE))
        return enc_fail(e, e->st->EncodeError, NULL, " (send plain data: None, bool, int, float, str, bytes, list, tuple or dict)",
                        "unsupported type '" SA_TYPE_FMT "'", SA_TYPE_ARG(obj));
    if (codec_import_pickle(e->st) < 0)
        return -1;
    PyObject *data = PyObject_CallFunction(e->st->pickle_dumps, "Oi", obj, 5);
    if (data == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_Exception))
            return -1; /* KeyboardInterrupt and the like pass through */
        return enc_fail(e, e->st->EncodeError, PyErr_GetRaisedException(), "",
                        "cannot pickle an object of type '" SA_TYPE_FMT "'", SA_TYPE_ARG(obj));
    }
    int r = -1;
    if (PyBytes_Check(data))
        r = enc_ext(e, 3, PyBytes_AS_STRING(data), (size_t)PyBytes_GET_SIZE(data));
    else
        PyErr_SetString(PyExc_TypeError, "pickle.dumps() did not return bytes");
    Py_DECREF(data);
    return r;
}

/* Encode obj, which `depth` containers enclose. 0 or -1 (an exception set
 * or an error pending). Exact builtin types are checked first, most common
 * first. */
static int enc_obj(enc_t *e, PyObject *obj, int depth)
{
    PyTypeObject *t = Py_TYPE(obj);
    if (t == &PyUnicode_Type)
        return enc_str(e, obj);
    if (t == &PyLong_Type)
        return enc_long(e, obj);
    if (t == &PyFloat_Type)
        return enc_float(e, PyFloat_AS_DOUBLE(obj));
    if (t == &PyDict_Type)
        return enc_dict(e, obj, depth);
    if (t == &PyList_Type)
        return enc_list(e, obj, depth);
    if (obj == Py_None)
        return enc_byte(e, 0xc0);
    if (obj == Py_True)
        return enc_byte(e, 0xc3);
    if (obj == Py_False)
        return enc_byte(e, 0xc2);
    if (t == &PyTuple_Type)
        return enc_tuple(e, obj, depth);
    if (t == &PyBytes_Type)
        return enc_bin(e, PyBytes_AS_STRING(obj), (size_t)PyBytes_GET_SIZE(obj));
    return enc_other(e, obj, depth);
}

static void enc_init(enc_t *e, sa_codec_state_t *st, int flags)
{
    memset(e, 0, sizeof *e);
    e->st = st;
    e->flags = flags;
}

static int codec_encode_raw_ex(sa_codec_state_t *st, PyObject *obj, int flags, int typed, PyObject *enc_hook,
                               char **out, size_t *len)
{
    enc_t e;
    enc_init(&e, st, flags);
    e.typed = typed;
    e.enc_hook = enc_hook;
    if ((e.buf = PyMem_RawMalloc(SA_ENC_INITIAL)) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    e.cap = SA_ENC_INITIAL;
    if (enc_obj(&e, obj, 0) < 0) {
        enc_raise_pending(&e);
        PyMem_RawFree(e.buf);
        return -1;
    }
    /* The buffer may be kept by the caller: give back a large unused tail. */
    if (e.cap - e.len > 4096 && e.cap - e.len > e.len / 4) {
        unsigned char *p = PyMem_RawRealloc(e.buf, e.len);
        if (p != NULL)
            e.buf = p;
    }
    *out = (char *)e.buf;
    *len = e.len;
    return 0;
}

int sa_codec_encode_raw(sa_codec_state_t *st, PyObject *obj, int flags, char **out, size_t *len)
{
    return codec_encode_raw_ex(st, obj, flags, 0, NULL, out, len);
}

/* dumps(): encode into a new bytes object; typed mode and enc_hook for
 * typed_dumps() (codec_typed.h). */
static PyObject *codec_encode_bytes_ex(sa_codec_state_t *st, PyObject *obj, int flags, int typed,
                                       PyObject *enc_hook)
{
#if SA_CODEC_BYTES_IN_PLACE
    enc_t e;
    enc_init(&e, st, flags);
    e.typed = typed;
    e.enc_hook = enc_hook;
    if ((e.bytes = PyBytes_FromStringAndSize(NULL, SA_ENC_INITIAL)) == NULL)
        return NULL;
    e.buf = (unsigned char *)PyBytes_AS_STRING(e.bytes);
    e.cap = SA_ENC_INITIAL;
    if (enc_obj(&e, obj, 0) < 0) {
        enc_raise_pending(&e);
        Py_XDECREF(e.bytes);
        return NULL;
    }
    if (e.cap - e.len <= 256) {
        /* A small unused tail is cheaper to keep than to realloc away: a
         * bytes object does not record its allocation, so it is enough to
         * shorten it (and move the NUL that every bytes object ends with).
         * Nothing has seen the object yet, so its hash is still unset. */
        Py_SET_SIZE(e.bytes, (Py_ssize_t)e.len);
        e.buf[e.len] = '\0';
    } else if (_PyBytes_Resize(&e.bytes, (Py_ssize_t)e.len) < 0) {
        return NULL;
    }
    return e.bytes;
#else
    char *buf;
    size_t len;
    if (codec_encode_raw_ex(st, obj, flags, typed, enc_hook, &buf, &len) < 0)
        return NULL;
    PyObject *res = PyBytes_FromStringAndSize(buf, (Py_ssize_t)len);
    PyMem_RawFree(buf);
    return res;
#endif
}

static PyObject *codec_encode_bytes(sa_codec_state_t *st, PyObject *obj, int flags)
{
    return codec_encode_bytes_ex(st, obj, flags, 0, NULL);
}

/* dumps_msg(): encode straight into a channel buffer and wrap it in a
 * Message, which ChannelEnd.send() queues without another copy. */
static PyObject *codec_encode_message(sa_state_t *mst, PyObject *obj, int flags)
{
    enc_t e;
    enc_init(&e, &mst->codec, flags);
    e.chanbuf = 1;
    if ((e.buf = (unsigned char *)sa_chan_buf_alloc(SA_ENC_INITIAL)) == NULL)
        return PyErr_NoMemory();
    e.cap = sa_chan_buf_cap((char *)e.buf);
    if (enc_obj(&e, obj, 0) < 0) {
        enc_raise_pending(&e);
        sa_chan_buf_free((char *)e.buf);
        return NULL;
    }
    return sa_chan_message_out(&mst->chan, (char *)e.buf, e.len);
}

/* ---------------------------------------------------------------------- */
/* Decoder                                                                 */
/* Every dec_* function that returns PyObject* returns a new reference, or
 * NULL with an exception set: DecodeError for anything wrong with the
 * bytes, naming what and the byte offset where it starts. */

typedef struct {
    const unsigned char *start; /* first byte of the input, for offsets */
    const unsigned char *p;     /* next byte to read */
    const unsigned char *end;   /* one past the last byte readable now */
    sa_codec_state_t *st;       /* the calling interpreter's codec state */
    int flags;                  /* SA_CODEC_* */
    PyObject *vpath;            /* a pending validation error's path (codec_typed.h), or NULL */
    PyObject *vmsg;             /* its message */
    PyObject *dec_hook;         /* borrowed: dec_hook(type, obj) of typed decoding, or NULL */
    PyObject *owner;            /* borrowed: with SA_CODEC_VIEW, the object whose buffer is being
                                 * read; bins of >= SA_CODEC_VIEW_MIN bytes become read-only
                                 * memoryviews of it (each keeps it alive) */
    PyObject *owner_view;       /* a memoryview of `owner`, made on the first large bin, or NULL */
} dec_t;

static PyObject *dec_obj(dec_t *d, int depth, int is_key);
static PyObject *dec_text_ext(dec_t *d, const unsigned char *at, const unsigned char *p, size_t n, int code);

/* Raise DecodeError "<fmt...> at byte offset N" for position `at`; when
 * `chain`, the exception now set becomes its cause. Returns NULL. */
static PyObject *dec_error(dec_t *d, const unsigned char *at, int chain, const char *fmt, ...)
{
    PyObject *cause = chain ? PyErr_GetRaisedException() : NULL;
    va_list va;
    va_start(va, fmt);
    PyObject *msg = PyUnicode_FromFormatV(fmt, va);
    va_end(va);
    if (msg != NULL) {
        PyErr_Format(d->st->DecodeError, "%U at byte offset %zd", msg, (Py_ssize_t)(at - d->start));
        Py_DECREF(msg);
        if (cause != NULL) {
            PyObject *exc = PyErr_GetRaisedException();
            PyException_SetCause(exc, Py_NewRef(cause));
            PyException_SetContext(exc, Py_NewRef(cause));
            PyErr_SetRaisedException(exc);
        }
    }
    Py_XDECREF(cause);
    return NULL;
}

static inline size_t dec_left(dec_t *d)
{
    return (size_t)(d->end - d->p);
}

/* Raise DecodeError for `what` at `at` needing n bytes from d->p. NULL. */
static PyObject *dec_truncated(dec_t *d, const unsigned char *at, const char *what, size_t n)
{
    return dec_error(d, at, 0, "truncated input: %s needs %zu more bytes but %zu are left",
                     what, n, dec_left(d));
}

/* Read an n-byte (1, 2 or 4) big-endian length after the type byte at
 * `at`. 0, or -1 with DecodeError set. */
static inline int dec_len(dec_t *d, const unsigned char *at, int n, const char *what, size_t *out)
{
    if (dec_left(d) < (size_t)n) {
        dec_truncated(d, at, what, (size_t)n);
        return -1;
    }
    *out = n == 1 ? d->p[0] : n == 2 ? get16(d->p) : get32(d->p);
    d->p += n;
    return 0;
}

static PyObject *dec_depth_error(dec_t *d, const unsigned char *at)
{
    return dec_error(d, at, 0, "nesting deeper than %d levels (the codec's depth limit)",
                     SA_CODEC_MAX_DEPTH);
}

/* An array of n items whose header starts at `at`: a tuple when `as_tuple`
 * or inside a map key (`is_key`, so the key is hashable), else a list. */
static PyObject *dec_array(dec_t *d, const unsigned char *at, size_t n, int depth, int as_tuple,
                           int is_key)
{
    if (depth >= SA_CODEC_MAX_DEPTH)
        return dec_depth_error(d, at);
    /* Every item takes at least one byte: refuse counts the input cannot
     * hold before allocating for them. */
    if (n > dec_left(d))
        return dec_error(d, at, 0, "truncated input: array of %zu items but only %zu bytes are left",
                         n, dec_left(d));
    if (as_tuple || is_key) {
        PyObject *t = PyTuple_New((Py_ssize_t)n);
        if (t == NULL)
            return NULL;
        for (size_t i = 0; i < n; i++) {
            PyObject *item = dec_obj(d, depth + 1, is_key);
            if (item == NULL) {
                Py_DECREF(t);
                return NULL;
            }
            PyTuple_SET_ITEM(t, (Py_ssize_t)i, item);
        }
        return t;
    }
    PyObject *list = PyList_New((Py_ssize_t)n);
    if (list == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        PyObject *item = dec_obj(d, depth + 1, 0);
        if (item == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    return list;
}

static PyObject *dec_map(dec_t *d, const unsigned char *at, size_t n, int depth)
{
    if (depth >= SA_CODEC_MAX_DEPTH)
        return dec_depth_error(d, at);
    if (n > dec_left(d) / 2)
        return dec_error(d, at, 0, "truncated input: map of %zu entries but only %zu bytes are left",
                         n, dec_left(d));
    PyObject *dict = PyDict_New();
    if (dict == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *kat = d->p;
        PyObject *k = dec_obj(d, depth + 1, 1);
        if (k == NULL)
            goto error;
        PyObject *v = dec_obj(d, depth + 1, 0);
        if (v == NULL) {
            Py_DECREF(k);
            goto error;
        }
        int r = PyDict_SetItem(dict, k, v);
        Py_DECREF(v);
        if (r < 0) {
            if (PyErr_ExceptionMatches(PyExc_TypeError))
                dec_error(d, kat, 1, "unhashable map key of type '%s'", Py_TYPE(k)->tp_name);
            Py_DECREF(k);
            goto error;
        }
        Py_DECREF(k);
    }
    return dict;
error:
    Py_DECREF(dict);
    return NULL;
}

static PyObject *dec_utf8(dec_t *d, const unsigned char *at, const unsigned char *s, size_t n)
{
    PyObject *str = PyUnicode_DecodeUTF8((const char *)s, (Py_ssize_t)n, NULL);
    if (str == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
        return dec_error(d, at, 1, "str of %zu bytes is not valid UTF-8", n);
    return str;
}

/* A str of n bytes whose header starts at `at`. Map keys go through the
 * state's key cache (see sa_codec_state_t). */
static PyObject *dec_str(dec_t *d, const unsigned char *at, size_t n, int is_key)
{
    if (dec_left(d) < n)
        return dec_truncated(d, at, "str", n);
    const unsigned char *s = d->p;
    d->p += n;
#ifndef Py_GIL_DISABLED /* the cache relies on the GIL */
    if (is_key && n <= SA_KEYCACHE_MAX_LEN) {
        uint32_t h = 2166136261u; /* FNV-1a */
        for (size_t i = 0; i < n; i++)
            h = (h ^ s[i]) * 16777619u;
        PyObject **slot = &d->st->keycache[h & (SA_CODEC_KEYCACHE_SIZE - 1)];
        PyObject *k = *slot;
        /* Only ASCII str are cached, so length in characters == in bytes. */
        if (k != NULL && (size_t)PyUnicode_GET_LENGTH(k) == n && memcmp(PyUnicode_DATA(k), s, n) == 0)
            return Py_NewRef(k);
        k = dec_utf8(d, at, s, n);
        if (k != NULL && PyUnicode_IS_COMPACT_ASCII(k)) {
            (void)PyObject_Hash(k); /* computed once, kept in the str; can't fail */
            Py_XSETREF(*slot, Py_NewRef(k));
        }
        return k;
    }
#else
    (void)is_key;
#endif
    return dec_utf8(d, at, s, n);
}

static PyObject *dec_bin(dec_t *d, const unsigned char *at, size_t n)
{
    if (dec_left(d) < n)
        return dec_truncated(d, at, "bin", n);
    if (d->owner != NULL && n >= SA_CODEC_VIEW_MIN) {
        /* A view of the input: no copy. The slice holds the input's buffer
         * export (and so the input) until the last view of it is released. */
        if (d->owner_view == NULL && (d->owner_view = PyMemoryView_FromObject(d->owner)) == NULL)
            return NULL;
        Py_ssize_t off = (Py_ssize_t)(d->p - d->start);
        PyObject *lo = PyLong_FromSsize_t(off), *hi = PyLong_FromSsize_t(off + (Py_ssize_t)n);
        PyObject *sl = (lo && hi) ? PySlice_New(lo, hi, NULL) : NULL;
        Py_XDECREF(lo);
        Py_XDECREF(hi);
        if (sl == NULL)
            return NULL;
        PyObject *v = PyObject_GetItem(d->owner_view, sl);
        Py_DECREF(sl);
        if (v != NULL)
            d->p += n;
        return v;
    }
    PyObject *b = PyBytes_FromStringAndSize((const char *)d->p, (Py_ssize_t)n);
    d->p += n;
    return b;
}

static PyObject *dec_bigint(dec_t *d, const unsigned char *at, const unsigned char *p, size_t n)
{
    if (n == 0)
        return dec_error(d, at, 0, "ext 1 (big int) with an empty payload");
#if PY_VERSION_HEX >= 0x030D0000
    return PyLong_FromNativeBytes(p, n, Py_ASNATIVEBYTES_BIG_ENDIAN);
#else
    PyObject *from = NULL, *args = NULL, *kw = NULL, *res = NULL;
    if ((from = PyObject_GetAttrString((PyObject *)&PyLong_Type, "from_bytes")) != NULL &&
        (args = Py_BuildValue("(y#s)", (const char *)p, (Py_ssize_t)n, "big")) != NULL &&
        (kw = Py_BuildValue("{s:O}", "signed", Py_True)) != NULL)
        res = PyObject_Call(from, args, kw);
    Py_XDECREF(from);
    Py_XDECREF(args);
    Py_XDECREF(kw);
    return res;
#endif
}

/* ext 2: the payload p[0:n] must be exactly one array. */
static PyObject *dec_tuple(dec_t *d, const unsigned char *at, const unsigned char *p, size_t n,
                           int depth, int is_key)
{
    const unsigned char *saved_end = d->end;
    d->p = p;
    d->end = p + n;
    size_t count;
    unsigned char c = n ? *d->p++ : 0;
    if (c >= 0x90 && c <= 0x9f)
        count = c & 0x0f;
    else if (c == 0xdc || c == 0xdd) {
        if (dec_len(d, p, c == 0xdc ? 2 : 4, "tuple length", &count) < 0)
            return NULL;
    } else
        return dec_error(d, at, 0, "ext 2 (tuple) whose payload is not an array");
    PyObject *t = dec_array(d, p, count, depth, 1, is_key);
    if (t == NULL)
        return NULL;
    if (d->p != d->end) {
        Py_DECREF(t);
        return dec_error(d, d->p, 0, "ext 2 (tuple) payload has %zu bytes after its array",
                         dec_left(d));
    }
    d->end = saved_end;
    return t;
}

static PyObject *dec_pickle(dec_t *d, const unsigned char *at, const unsigned char *p, size_t n)
{
    if (!(d->flags & SA_CODEC_PICKLE))
        return dec_error(d, at, 0, "ext 3 (a pickled object), but pickle is disabled "
                                   "(pass pickle_fallback=True to unpickle)");
    if (codec_import_pickle(d->st) < 0)
        return NULL;
    PyObject *data = PyBytes_FromStringAndSize((const char *)p, (Py_ssize_t)n);
    if (data == NULL)
        return NULL;
    PyObject *obj = PyObject_CallOneArg(d->st->pickle_loads, data);
    Py_DECREF(data);
    if (obj == NULL && PyErr_ExceptionMatches(PyExc_Exception))
        return dec_error(d, at, 1, "ext 3 (a pickled object) that could not be unpickled");
    return obj;
}

/* An ext with payload of n bytes at d->p, whose header starts at `at`. */
static PyObject *dec_ext(dec_t *d, const unsigned char *at, size_t n, int depth, int is_key)
{
    if (dec_left(d) < 1 + n)
        return dec_truncated(d, at, "ext", 1 + n);
    int8_t code = (int8_t)*d->p++;
    const unsigned char *p = d->p;
    d->p += n;
    switch (code) {
    case 1:
        return dec_bigint(d, at, p, n);
    case 2:
        return dec_tuple(d, at, p, n, depth, is_key);
    case 3:
        return dec_pickle(d, at, p, n);
    case 16: case 17:
        return dec_text_ext(d, at, p, n, code);
    default:
        return dec_error(d, at, 0, "unsupported ext type %d", (int)code);
    }
}

/* Decode one value at d->p, which `depth` containers enclose; `is_key`
 * when it is (inside) a map key. New reference, or NULL with an exception. */
static PyObject *dec_obj(dec_t *d, int depth, int is_key)
{
    const unsigned char *at = d->p;
    size_t n;
    if (at >= d->end)
        return dec_truncated(d, at, "a value", 1);
    unsigned char c = *d->p++;
    switch (c) {
    case 0x00 ... 0x7f:
        return PyLong_FromLong(c);
    case 0xe0 ... 0xff:
        return PyLong_FromLong((int8_t)c);
    case 0x80 ... 0x8f:
        return dec_map(d, at, c & 0x0f, depth);
    case 0x90 ... 0x9f:
        return dec_array(d, at, c & 0x0f, depth, 0, is_key);
    case 0xa0 ... 0xbf:
        return dec_str(d, at, c & 0x1f, is_key);
    case 0xc0:
        Py_RETURN_NONE;
    case 0xc1:
        return dec_error(d, at, 0, "invalid type byte 0xc1 (never used in MessagePack)");
    case 0xc2:
        Py_RETURN_FALSE;
    case 0xc3:
        Py_RETURN_TRUE;
    case 0xc4: case 0xc5: case 0xc6:
        if (dec_len(d, at, 1 << (c - 0xc4), "bin length", &n) < 0)
            return NULL;
        return dec_bin(d, at, n);
    case 0xc7: case 0xc8: case 0xc9:
        if (dec_len(d, at, 1 << (c - 0xc7), "ext length", &n) < 0)
            return NULL;
        return dec_ext(d, at, n, depth, is_key);
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
        return dec_ext(d, at, (size_t)1 << (c - 0xd4), depth, is_key);
    case 0xca: case 0xcb: {
        size_t w = c == 0xca ? 4 : 8;
        if (dec_left(d) < w)
            return dec_truncated(d, at, "float", w);
        double v;
        if (c == 0xca) {
            uint32_t bits = get32(d->p);
            float f;
            memcpy(&f, &bits, 4);
            v = f;
        } else {
            uint64_t bits = get64(d->p);
            memcpy(&v, &bits, 8);
        }
        d->p += w;
        return PyFloat_FromDouble(v);
    }
    case 0xcc: case 0xcd: case 0xce: case 0xcf:
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
        int sgn = c >= 0xd0;
        size_t w = (size_t)1 << ((c - 0xcc) & 3);
        if (dec_left(d) < w)
            return dec_truncated(d, at, "int", w);
        const unsigned char *p = d->p;
        d->p += w;
        switch (w) {
        case 1:
            return PyLong_FromLong(sgn ? (long)(int8_t)p[0] : (long)p[0]);
        case 2:
            return PyLong_FromLong(sgn ? (long)(int16_t)get16(p) : (long)get16(p));
        case 4:
            return PyLong_FromLongLong(sgn ? (long long)(int32_t)get32(p) : (long long)get32(p));
        default:
            if (sgn)
                return PyLong_FromLongLong((long long)(int64_t)get64(p));
            return PyLong_FromUnsignedLongLong(get64(p));
        }
    }
    case 0xd9: case 0xda: case 0xdb:
        if (dec_len(d, at, 1 << (c - 0xd9), "str length", &n) < 0)
            return NULL;
        return dec_str(d, at, n, is_key);
    case 0xdc: case 0xdd:
        if (dec_len(d, at, c == 0xdc ? 2 : 4, "array length", &n) < 0)
            return NULL;
        return dec_array(d, at, n, depth, 0, is_key);
    default: /* 0xde, 0xdf */
        if (dec_len(d, at, c == 0xde ? 2 : 4, "map length", &n) < 0)
            return NULL;
        return dec_map(d, at, n, depth);
    }
}

static PyObject *codec_decode_ex(sa_codec_state_t *st, const char *buf, size_t len, int flags,
                                 PyObject *owner)
{
    dec_t d = {
        .owner = owner,
        .start = (const unsigned char *)buf,
        .p = (const unsigned char *)buf,
        .end = (const unsigned char *)buf + len,
        .st = st,
        .flags = flags,
    };
    if (len == 0) {
        PyErr_SetString(st->DecodeError, "empty input: expected one MessagePack value");
        return NULL;
    }
    PyObject *obj = dec_obj(&d, 0, 0);
    if (obj != NULL && d.p != d.end) {
        Py_DECREF(obj);
        obj = dec_error(&d, d.p, 0, "trailing data: %zu bytes after the value", dec_left(&d));
    }
    Py_XDECREF(d.owner_view); /* the slices keep their own reference to the export */
    return obj;
}

PyObject *sa_codec_decode(sa_codec_state_t *st, const char *buf, size_t len, int flags)
{
    return codec_decode_ex(st, buf, len, flags, NULL);
}

#include "codec_typed.h"

/* ---------------------------------------------------------------------- */
/* Python functions                                                        */

/* Parse (obj, *, pickle_fallback=False) of a METH_FASTCALL|METH_KEYWORDS
 * call into *flags. 0, or -1 with TypeError set. */
static int codec_parse_args_ex(const char *fname, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames, int *flags, int allow_view);

static int codec_parse_args(const char *fname, PyObject *const *args, Py_ssize_t nargs,
                            PyObject *kwnames, int *flags)
{
    return codec_parse_args_ex(fname, args, nargs, kwnames, flags, 0);
}

static int codec_parse_args_ex(const char *fname, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames, int *flags, int allow_view)
{
    *flags = 0;
    if (nargs != 1) {
        PyErr_Format(PyExc_TypeError, "%s() takes exactly 1 positional argument (%zd given)",
                     fname, nargs);
        return -1;
    }
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        int bit = PyUnicode_EqualToUTF8(name, "pickle_fallback") ? SA_CODEC_PICKLE
                  : allow_view && PyUnicode_EqualToUTF8(name, "zero_copy") ? SA_CODEC_VIEW : 0;
        if (bit == 0) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", fname, name);
            return -1;
        }
        int on = PyObject_IsTrue(args[nargs + i]);
        if (on < 0)
            return -1;
        *flags = on ? (*flags | bit) : (*flags & ~bit);
    }
    return 0;
}

static PyObject *codec_dumps(PyObject *mod, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    int flags;
    if (codec_parse_args("dumps", args, nargs, kwnames, &flags) < 0)
        return NULL;
    return codec_encode_bytes(&sa_state(mod)->codec, args[0], flags);
}

static PyObject *codec_dumps_msg(PyObject *mod, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    int flags;
    if (codec_parse_args("dumps_msg", args, nargs, kwnames, &flags) < 0)
        return NULL;
    return codec_encode_message(sa_state(mod), args[0], flags);
}

static PyObject *codec_loads(PyObject *mod, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    int flags;
    if (codec_parse_args_ex("loads", args, nargs, kwnames, &flags, 1) < 0)
        return NULL;
    sa_codec_state_t *st = &sa_state(mod)->codec;
    PyObject *data = args[0];
    if (flags & SA_CODEC_VIEW) {
        /* Large bins as views of data: it must be a contiguous buffer. */
        flags &= ~SA_CODEC_VIEW;
        Py_buffer view;
        if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
            return NULL;
        PyObject *res = codec_decode_ex(st, view.buf, (size_t)view.len, flags, data);
        PyBuffer_Release(&view);
        return res;
    }
    if (PyBytes_CheckExact(data))
        return sa_codec_decode(st, PyBytes_AS_STRING(data), (size_t)PyBytes_GET_SIZE(data), flags);
    /* Any buffer; held (so a bytearray cannot be resized) while decoding. */
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) == 0) {
        PyObject *res = sa_codec_decode(st, view.buf, (size_t)view.len, flags);
        PyBuffer_Release(&view);
        return res;
    }
    if (!PyErr_ExceptionMatches(PyExc_BufferError))
        return NULL;
    /* A non-contiguous buffer (e.g. a strided memoryview): decode a copy. */
    PyErr_Clear();
    PyObject *copy = PyBytes_FromObject(data);
    if (copy == NULL)
        return NULL;
    PyObject *res = sa_codec_decode(st, PyBytes_AS_STRING(copy), (size_t)PyBytes_GET_SIZE(copy), flags);
    Py_DECREF(copy);
    return res;
}

static PyMethodDef codec_methods[] = {
    {"dumps", (PyCFunction)(void (*)(void))codec_dumps, METH_FASTCALL | METH_KEYWORDS,
     "dumps(obj, *, pickle_fallback=False) -> bytes\n\n"
     "Encode obj as MessagePack: None, bool, int, float, str, bytes-likes, list,\n"
     "tuple and dict, nested up to 256 levels. Other types raise EncodeError\n"
     "naming the type and its path in obj, or with pickle_fallback=True are\n"
     "pickled into ext type 3."},
    {"dumps_msg", (PyCFunction)(void (*)(void))codec_dumps_msg, METH_FASTCALL | METH_KEYWORDS,
     "dumps_msg(obj, *, pickle_fallback=False) -> Message\n\n"
     "dumps() straight into a channel buffer (pooled when large): ChannelEnd.send()\n"
     "queues that buffer itself (no copy) and the Message reads as released after."},
    {"loads", (PyCFunction)(void (*)(void))codec_loads, METH_FASTCALL | METH_KEYWORDS,
     "loads(data, *, pickle_fallback=False, zero_copy=False) -> object\n\n"
     "With zero_copy=True, bins of 64 KiB or more decode as read-only memoryviews\n"
     "of data (data stays alive while any of them is).\n"
     "Decode exactly one MessagePack value from a bytes-like object. Anything\n"
     "wrong with the bytes raises DecodeError with its byte offset. Pickled\n"
     "objects (ext 3) are unpickled only with pickle_fallback=True: unpickling\n"
     "runs code chosen by whoever made the bytes."},
    {"typed_dumps", (PyCFunction)(void (*)(void))codec_typed_dumps, METH_FASTCALL,
     "typed_dumps(obj, enc_hook=None) -> bytes\n\n"
     "dumps() in typed mode (subactor.msg): Structs, sets and Enum members by value,\n"
     "tuples as plain arrays, enc_hook(obj) for any other type."},
    {"typed_loads", (PyCFunction)(void (*)(void))codec_typed_loads, METH_FASTCALL,
     "typed_loads(data, spec, dec_hook=None) -> object\n\n"
     "Decode one value of the type spec (made by subactor.msg), validating it:\n"
     "ValidationError names the path, the expected and the received type."},
    {"struct_plan", (PyCFunction)(void (*)(void))codec_struct_plan, METH_FASTCALL,
     "struct_plan(cls, names, defaults, dkinds, tag_field, tag_value) -> StructPlan"},
    {"struct_plan_resolve", (PyCFunction)(void (*)(void))codec_struct_plan_resolve, METH_FASTCALL,
     "struct_plan_resolve(plan, specs): set the field types of a plan."},
    {NULL, NULL, 0, NULL},
};

int sa_codec_module_init(PyObject *mod, sa_codec_state_t *st)
{
    memset(st, 0, sizeof *st);
    st->EncodeError = PyErr_NewExceptionWithDoc(
        "subactor._ext.EncodeError", "An object the codec cannot encode (a TypeError).",
        PyExc_TypeError, NULL);
    if (st->EncodeError == NULL || PyModule_AddObjectRef(mod, "EncodeError", st->EncodeError) < 0)
        return -1;
    st->DecodeError = PyErr_NewExceptionWithDoc(
        "subactor._ext.DecodeError", "Bytes that are not exactly one valid message (a ValueError).",
        PyExc_ValueError, NULL);
    if (st->DecodeError == NULL || PyModule_AddObjectRef(mod, "DecodeError", st->DecodeError) < 0)
        return -1;
    st->ValidationError = PyErr_NewExceptionWithDoc(
        "subactor._ext.ValidationError",
        "Well-formed bytes whose value is not of the expected type (a DecodeError).",
        st->DecodeError, NULL);
    if (st->ValidationError == NULL || PyModule_AddObjectRef(mod, "ValidationError", st->ValidationError) < 0)
        return -1;
    if ((st->plans = PyDict_New()) == NULL)
        return -1;
    st->PlanType = PyType_FromModuleAndSpec(mod, &plan_spec, NULL);
    if (st->PlanType == NULL || PyModule_AddObjectRef(mod, "StructPlan", st->PlanType) < 0)
        return -1;
    return PyModule_AddFunctions(mod, codec_methods);
}

int sa_codec_state_traverse(sa_codec_state_t *st, visitproc visit, void *arg)
{
    Py_VISIT(st->EncodeError);
    Py_VISIT(st->DecodeError);
    Py_VISIT(st->pickle_dumps);
    Py_VISIT(st->pickle_loads);
    Py_VISIT(st->ValidationError);
    Py_VISIT(st->PlanType);
    Py_VISIT(st->plans);
    Py_VISIT(st->enum_type);
    Py_VISIT(st->datetime_type);
    Py_VISIT(st->decimal_type);
    Py_VISIT(st->datetime_fromiso);
    Py_VISIT(st->decimal_ctor);
    /* keycache holds only str, which cannot be part of a cycle. */
    return 0;
}

void sa_codec_state_clear(sa_codec_state_t *st)
{
    Py_CLEAR(st->EncodeError);
    Py_CLEAR(st->DecodeError);
    Py_CLEAR(st->pickle_dumps);
    Py_CLEAR(st->pickle_loads);
    Py_CLEAR(st->plans);
    Py_CLEAR(st->ValidationError);
    Py_CLEAR(st->PlanType);
    Py_CLEAR(st->enum_type);
    Py_CLEAR(st->datetime_type);
    Py_CLEAR(st->decimal_type);
    Py_CLEAR(st->datetime_fromiso);
    Py_CLEAR(st->decimal_ctor);
    for (size_t i = 0; i < SA_CODEC_KEYCACHE_SIZE; i++)
        Py_CLEAR(st->keycache[i]);
}
