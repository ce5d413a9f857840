/* module.c: the glue of subactor._ext.
 *
 * Owns: the module definition (multi-phase init, per-interpreter GIL
 * supported), the module state (common.h), the process-wide live counters,
 * sa_raise(), the single place where core error codes become Python
 * exceptions, and sa_timeout_arg() / sa_poll_ms(), the single parser of
 * timeout arguments and the one conversion of a deadline to a poll()
 * timeout. Each concern adds its own types and functions from its
 * sa_<concern>_module_init(); nothing here is shared between interpreters
 * except the counters, which are atomics.
 */
#include "common.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <time.h>

sa_counters_t sa_counters;

static struct PyModuleDef sa_module_def;

sa_state_t *sa_state_from_type(PyTypeObject *type)
{
    PyObject *mod = PyType_GetModuleByDef(type, &sa_module_def);
    return mod ? sa_state(mod) : NULL;
}

int64_t sa_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int sa_timeout_arg(PyObject *obj, const char *what, int64_t *ns)
{
    if (obj == NULL || obj == Py_None) {
        *ns = -1;
        return 0;
    }
    double s = PyFloat_AsDouble(obj);
    if (s == -1.0 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Format(PyExc_TypeError, "%s must be None or a number of seconds, not %.100s", what,
                         Py_TYPE(obj)->tp_name);
        }
        return -1;
    }
    if (isnan(s)) {
        PyErr_Format(PyExc_ValueError, "%s must be a number of seconds, not NaN", what);
        return -1;
    }
    if (s <= 0)
        *ns = 0;
    else if (s >= (double)SA_TIMEOUT_MAX_NS / 1e9)
        *ns = SA_TIMEOUT_MAX_NS;
    else
        *ns = (int64_t)(s * 1e9);
    return 0;
}

int sa_poll_ms(int64_t deadline_ns)
{
    if (deadline_ns < 0)
        return -1;
    int64_t left = deadline_ns - sa_now_ns();
    if (left <= 0)
        return 0;
    int64_t ms = (left + 999999) / 1000000;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

PyObject *sa_raise(sa_state_t *st, int code, const char *what)
{
    switch (code) {
    case SA_ERR_NOMEM:
        return PyErr_NoMemory();
    case SA_ERR_OS:
        return PyErr_SetFromErrnoWithFilename(PyExc_OSError, what);
    case SA_ERR_TIMEOUT:
        PyErr_Format(PyExc_TimeoutError, "%s: deadline passed", what);
        return NULL;
    case SA_ERR_CLOSED:
        PyErr_Format(st->ClosedError, "%s: closed", what);
        return NULL;
    case SA_ERR_BROKEN:
        PyErr_Format(st->BrokenError, "%s: the peer is gone (it died, was interrupted or abandoned)", what);
        return NULL;
    case SA_ERR_EMPTY:
        PyErr_Format(PyExc_BlockingIOError, "%s: nothing to receive", what);
        return NULL;
    case SA_ERR_FULL:
        PyErr_Format(PyExc_BlockingIOError, "%s: full", what);
        return NULL;
    case SA_ERR_NOT_FOUND:
        PyErr_Format(st->ClosedError, "%s: no such object (closed or never existed)", what);
        return NULL;
    case SA_ERR_STATE:
        PyErr_Format(PyExc_RuntimeError, "%s: not allowed in the current state", what);
        return NULL;
    case SA_ERR_TOOBIG:
        PyErr_Format(PyExc_ValueError, "%s: message larger than the channel's byte bound", what);
        return NULL;
    default:
        PyErr_Format(PyExc_SystemError, "%s: unknown error code %d", what, code);
        return NULL;
    }
}

static PyObject *live_counts(PyObject *Py_UNUSED(mod), PyObject *Py_UNUSED(args))
{
    return Py_BuildValue(
        "{s:l,s:l,s:l,s:l,s:l,s:l,s:l,s:l}",
        "actors", atomic_load(&sa_counters.actors),
        "threads", atomic_load(&sa_counters.threads),
        "interpreters", atomic_load(&sa_counters.interpreters),
        "abandoned", atomic_load(&sa_counters.abandoned),
        "interrupters", atomic_load(&sa_counters.interrupters),
        "channels", atomic_load(&sa_counters.channels),
        "buffers", atomic_load(&sa_counters.buffers),
        "warm", atomic_load(&sa_counters.warm));
}

static PyMethodDef sa_module_methods[] = {
    {"live_counts", live_counts, METH_NOARGS,
     "live_counts() -> dict\n\nHow many actor records, actor threads, actor interpreters,\n"
     "abandoned actors, interrupt helper threads, channels, shared buffers\n"
     "and warm interpreters of the reserve exist now in the process."},
    {NULL, NULL, 0, NULL},
};

static int sa_module_exec(PyObject *mod)
{
    sa_state_t *st = sa_state(mod);
    st->ClosedError = PyErr_NewExceptionWithDoc(
        "subactor._ext.ClosedError", "Used after it was closed.", PyExc_ValueError, NULL);
    if (st->ClosedError == NULL || PyModule_AddObjectRef(mod, "ClosedError", st->ClosedError) < 0)
        return -1;
    st->BrokenError = PyErr_NewExceptionWithDoc(
        "subactor._ext.BrokenError", "The other side is gone: it died, was interrupted or abandoned.",
        PyExc_ConnectionError, NULL);
    if (st->BrokenError == NULL || PyModule_AddObjectRef(mod, "BrokenError", st->BrokenError) < 0)
        return -1;
    if (sa_actor_module_init(mod, &st->actor) < 0)
        return -1;
    if (sa_chan_module_init(mod, &st->chan) < 0)
        return -1;
    if (sa_codec_module_init(mod, &st->codec) < 0)
        return -1;
    return 0;
}

static int sa_module_traverse(PyObject *mod, visitproc visit, void *arg)
{
    sa_state_t *st = sa_state(mod);
    Py_VISIT(st->ClosedError);
    Py_VISIT(st->BrokenError);
    if (sa_actor_state_traverse(&st->actor, visit, arg) ||
        sa_chan_state_traverse(&st->chan, visit, arg) ||
        sa_codec_state_traverse(&st->codec, visit, arg))
        return -1;
    return 0;
}

static int sa_module_clear(PyObject *mod)
{
    sa_state_t *st = sa_state(mod);
    Py_CLEAR(st->ClosedError);
    Py_CLEAR(st->BrokenError);
    sa_actor_state_clear(&st->actor);
    sa_chan_state_clear(&st->chan);
    sa_codec_state_clear(&st->codec);
    return 0;
}

static void sa_module_free(void *mod)
{
    sa_module_clear((PyObject *)mod);
}

static PyModuleDef_Slot sa_module_slots[] = {
    {Py_mod_exec, sa_module_exec},
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
    {0, NULL},
};

static struct PyModuleDef sa_module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "subactor._ext",
    .m_doc = "The C core of subactor: actor host, channels, codec.",
    .m_size = sizeof(sa_state_t),
    .m_methods = sa_module_methods,
    .m_slots = sa_module_slots,
    .m_traverse = sa_module_traverse,
    .m_clear = sa_module_clear,
    .m_free = sa_module_free,
};

PyMODINIT_FUNC PyInit__ext(void)
{
    return PyModuleDef_Init(&sa_module_def);
}
