/* common.h: what every C file of subactor._ext shares.
 *
 * - Error codes of the GIL-free core (SA_ERR_*): core functions return 0 or
 *   a negative code and never touch Python objects; the binding layer turns
 *   a code into an exception of the calling interpreter (sa_raise()).
 * - Process-wide live counters, read by tests to prove nothing leaks.
 * - The module state: one struct per interpreter that imported _ext, made of
 *   one sub-struct per concern (actor host, channels, codec).
 */
#ifndef SA_COMMON_H
#define SA_COMMON_H

/* Linux only: actors signal their end and their wake-ups through eventfd(2),
 * and interrupt helpers use Linux's thread ids. A build elsewhere stops
 * here, with this message, before any header (Python.h's own configuration
 * can fail first on a foreign platform, as Debian's multiarch pyconfig.h does). */
#if !defined(__linux__)
#error "subactor supports Linux only: it needs eventfd(2) (see setup.py)"
#endif

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdatomic.h>
#include <stdint.h>

#if PY_VERSION_HEX < 0x030C0000
#  error "subactor needs Python 3.12 or newer (per-interpreter GIL)"
#endif

/* Public API added in 3.13, with equivalents built from 3.12's public API. */
#if PY_VERSION_HEX < 0x030D0000
static inline int PyDict_GetItemStringRef(PyObject *d, const char *key, PyObject **out)
{
    PyObject *v = PyDict_GetItemString(d, key); /* borrowed */
    *out = Py_XNewRef(v);
    return v != NULL;
}
static inline PyObject *PyImport_AddModuleRef(const char *name)
{
    return Py_XNewRef(PyImport_AddModule(name));
}
static inline int PyUnicode_EqualToUTF8(PyObject *u, const char *s)
{
    return PyUnicode_CompareWithASCIIString(u, s) == 0;
}
/* Critical sections matter only on free-threaded builds (3.13+); with a
 * GIL they are plain blocks. */
#  define Py_BEGIN_CRITICAL_SECTION(op) {
#  define Py_END_CRITICAL_SECTION() }
#endif

/* Error codes of the GIL-free core. 0 is success. */
enum {
    SA_OK = 0,
    SA_ERR_NOMEM = -1,       /* PyMem_Raw* failed */
    SA_ERR_OS = -2,          /* a system call failed; errno says why */
    SA_ERR_TIMEOUT = -3,     /* a deadline passed */
    SA_ERR_CLOSED = -4,      /* the object was closed by its owner */
    SA_ERR_BROKEN = -5,      /* the peer died, was interrupted or abandoned */
    SA_ERR_EMPTY = -6,       /* nothing to receive right now */
    SA_ERR_FULL = -7,        /* no room to send right now */
    SA_ERR_NOT_FOUND = -8,   /* no object with that id */
    SA_ERR_STATE = -9,       /* not allowed in the object's current state */
    SA_ERR_TOOBIG = -10,     /* a message larger than the channel's byte bound */
};

/* Live counters: how many of each thing exists right now in the process.
 * Incremented when the thing is made, decremented when it is gone; tests
 * assert they return to their starting values. */
typedef struct {
    atomic_long actors;       /* actor records not yet freed */
    atomic_long threads;      /* actor OS threads not yet exited */
    atomic_long interpreters; /* actor interpreters not yet ended */
    atomic_long abandoned;    /* actors marked abandoned (never freed) */
    atomic_long interrupters; /* helper threads delivering an interrupt */
    atomic_long channels;     /* channel records not yet freed */
    atomic_long buffers;      /* shared message buffers not yet freed */
    atomic_long warm;         /* warm-interpreter threads (warm.c) not yet done with Python */
} sa_counters_t;

extern sa_counters_t sa_counters;

/* --- per-concern module state (each defined by its own header) --- */
#include "actor.h"
#include "chan.h"
#include "codec.h"

typedef struct {
    PyObject *ClosedError;    /* used after close (a ValueError subclass) */
    PyObject *BrokenError;    /* the peer is gone (a ConnectionError subclass) */
    sa_actor_state_t actor;
    sa_chan_state_t chan;
    sa_codec_state_t codec;
} sa_state_t;

/* Module state of the module that defines `type` (heap types only). */
sa_state_t *sa_state_from_type(PyTypeObject *type);
/* Module state of a module object. */
static inline sa_state_t *sa_state(PyObject *module)
{
    return (sa_state_t *)PyModule_GetState(module);
}

/* Raise the exception that matches a core error code in the calling
 * interpreter; `what` names the object or operation. Always returns NULL. */
PyObject *sa_raise(sa_state_t *st, int code, const char *what);

/* Monotonic clock in nanoseconds. Can't fail. */
int64_t sa_now_ns(void);

/* The longest wait a timeout argument can ask for; longer ones are clamped
 * to it (about 31 years: "forever" in practice, and far from overflowing an
 * int64 of nanoseconds or a deadline computed from one). */
#define SA_TIMEOUT_MAX_NS ((int64_t)1000000000 * 1000000000)

/* The one parser of timeout arguments (every C function that takes one):
 * None (or a missing argument, obj == NULL) means no deadline (*ns = -1);
 * a number of seconds is converted to nanoseconds, negative ones to 0 and
 * huge ones (inf included) clamped to SA_TIMEOUT_MAX_NS. NaN, or anything
 * that is not a real number, is an error. 0, or -1 with ValueError or
 * TypeError set naming `what`. */
int sa_timeout_arg(PyObject *obj, const char *what, int64_t *ns);

/* Milliseconds for poll() until `deadline_ns` (an sa_now_ns() time), at
 * least 0 and at most INT_MAX (a longer wait is cut into several polls by
 * the caller's loop); -1 (forever) if deadline_ns < 0. Can't fail. */
int sa_poll_ms(int64_t deadline_ns);

#endif
