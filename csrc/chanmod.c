/* chanmod.c: the channel concern's part of the module _ext.
 *
 * Owns: the module functions `channel` and `channel_destroy`, the test
 * hooks `_chan_info`, `_chan_close_owned_by`, `_chan_break_owned_by`,
 * `_chan_close_unattached` (also the hub's, for the channels it handed to an
 * actor that ended without attaching them), `_chan_spin` and `_chan_pool`, the exception
 * `EndOfChannel`, the tick function that lets an interrupt raise between
 * the wait slices of endobj.c, and the per-interpreter state of the concern
 * (sa_chan_state_t): its init (sa_chan_module_init, which also adds the
 * types of msgobj.c and endobj.c), traverse and clear. Everything here is
 * per interpreter; the only shared state it reaches is chan.c's registry,
 * through core functions.
 *
 * Locks: none of its own; chan.c's locks are taken only inside its
 * functions, none of which waits when called from here.
 *
 * GIL rules: every function here runs with the calling interpreter's GIL
 * and keeps it: the core calls made here never block (creating, destroying,
 * closing and inspecting records, all short critical sections).
 */
#include "common.h"

/* ---------------------------------------------------------------------- */
/* Module functions                                                         */

static PyObject *sa_py_channel(PyObject *mod, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"maxmsgs", "maxbytes", NULL};
    Py_ssize_t maxmsgs = SA_CHAN_DEFAULT_MAXMSGS, maxbytes = SA_CHAN_DEFAULT_MAXBYTES;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|nn:channel", kwlist, &maxmsgs, &maxbytes))
        return NULL;
    if (maxmsgs < 1 || maxbytes < 1 || maxmsgs > (Py_ssize_t)1 << 40 || maxbytes > PY_SSIZE_T_MAX / 4) {
        PyErr_SetString(PyExc_ValueError, "channel(): maxmsgs and maxbytes must be positive (and sane)");
        return NULL;
    }
    uint64_t id;
    int rc = sa_chan_create((size_t)maxmsgs, (size_t)maxbytes, &id);
    if (rc < 0)
        return sa_raise(sa_state(mod), rc, "channel()");
    return PyLong_FromUnsignedLongLong(id);
}

static PyObject *sa_py_channel_destroy(PyObject *Py_UNUSED(mod), PyObject *arg)
{
    unsigned long long id = PyLong_AsUnsignedLongLong(arg);
    if (id == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    return PyBool_FromLong(sa_chan_destroy(id) == SA_OK);
}

static PyObject *sa_py_owned_by(PyObject *arg, int broken)
{
    unsigned long long id = PyLong_AsUnsignedLongLong(arg);
    if (id == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    (broken ? sa_chan_break_owned_by : sa_chan_close_owned_by)(id);
    Py_RETURN_NONE;
}

static PyObject *sa_py_close_owned_by(PyObject *Py_UNUSED(mod), PyObject *arg)
{
    return sa_py_owned_by(arg, 0);
}

static PyObject *sa_py_break_owned_by(PyObject *Py_UNUSED(mod), PyObject *arg)
{
    return sa_py_owned_by(arg, 1);
}

static PyObject *sa_py_chan_close_unattached(PyObject *Py_UNUSED(mod), PyObject *args)
{
    unsigned long long id;
    int side, closed;
    if (!PyArg_ParseTuple(args, "Ki:_chan_close_unattached", &id, &side))
        return NULL;
    if (side != 0 && side != 1) {
        PyErr_Format(PyExc_ValueError, "channel %llu: side must be 0 or 1, not %d", id, side);
        return NULL;
    }
    /* A channel that is gone has nothing left to close: False, as for a
     * side that is attached. */
    if (sa_chan__close_unattached(id, side, &closed) < 0)
        Py_RETURN_FALSE;
    return PyBool_FromLong(closed);
}

static PyObject *sa_py_chan_info(PyObject *Py_UNUSED(mod), PyObject *arg)
{
    static const char *names[] = {"unattached", "open", "closed"};
    unsigned long long id = PyLong_AsUnsignedLongLong(arg);
    if (id == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    sa_chan_info_t i;
    if (sa_chan__info(id, &i) < 0)
        Py_RETURN_NONE;
    return Py_BuildValue("{s:(ss),s:(OO),s:(nn),s:(nn),s:n,s:n}", "state", names[i.state[0]], names[i.state[1]],
                         "broken", i.broken[0] ? Py_True : Py_False, i.broken[1] ? Py_True : Py_False, "queued",
                         (Py_ssize_t)i.queued[0], (Py_ssize_t)i.queued[1], "bytes", (Py_ssize_t)i.bytes[0],
                         (Py_ssize_t)i.bytes[1], "maxmsgs", (Py_ssize_t)i.maxmsgs, "maxbytes", (Py_ssize_t)i.maxbytes);
}

static PyObject *sa_py_chan_spin(PyObject *Py_UNUSED(mod), PyObject *args)
{
    long long ns = -1;
    if (!PyArg_ParseTuple(args, "|L:_chan_spin", &ns))
        return NULL;
    return PyLong_FromLongLong(sa_chan__spin(ns));
}

static PyObject *sa_py_chan_pool(PyObject *Py_UNUSED(mod), PyObject *args)
{
    int clear = 0;
    long long max = -1;
    size_t count, bytes, misses, drops;
    if (!PyArg_ParseTuple(args, "|pL:_chan_pool", &clear, &max))
        return NULL;
    if (max > ((long long)1 << 40)) {
        PyErr_SetString(PyExc_ValueError, "_chan_pool(): max must be at most 1 TiB (or negative: unchanged)");
        return NULL;
    }
    sa_chan__pool(clear, max, &count, &bytes, &misses, &drops);
    return Py_BuildValue("{s:n,s:n,s:n,s:n}", "buffers", (Py_ssize_t)count, "bytes", (Py_ssize_t)bytes, "misses",
                         (Py_ssize_t)misses, "drops", (Py_ssize_t)drops);
}

static PyMethodDef sa_chan_functions[] = {
    {"channel", (PyCFunction)(void (*)(void))sa_py_channel, METH_VARARGS | METH_KEYWORDS,
     "channel(maxmsgs=1024, maxbytes=64 MiB) -> int\n\nMake a channel and return its id. Each direction holds at most `maxmsgs`\n"
     "messages and `maxbytes` bytes. Attach its ends with ChannelEnd(id, 0) and\n"
     "ChannelEnd(id, 1), in any interpreters. It is freed once both ends were\n"
     "attached and closed, or by channel_destroy(id)."},
    {"channel_destroy", sa_py_channel_destroy, METH_O,
     "channel_destroy(id) -> bool\n\nClose both ends of a channel at once, dropping what is queued. False if no\n"
     "such channel is registered (any more)."},
    {"_chan_close_owned_by", sa_py_close_owned_by, METH_O,
     "_chan_close_owned_by(actor_id)\n\nClose every end attached by that actor, as when it ends normally."},
    {"_chan_break_owned_by", sa_py_break_owned_by, METH_O,
     "_chan_break_owned_by(actor_id)\n\nBreak every end attached by that actor, as when it fails or is abandoned."},
    {"_chan_close_unattached", sa_py_chan_close_unattached, METH_VARARGS,
     "_chan_close_unattached(id, side) -> bool\n\nClose that side if it was never attached, freeing what was queued toward\n"
     "it (what the actor host asks for when an actor's thread ends). True if it\n"
     "closed it; False if that side is attached or closed already, or the channel is gone."},
    {"_chan_spin", sa_py_chan_spin, METH_VARARGS,
     "_chan_spin(ns=-1) -> int\n\nHow long blocking calls spin before they sleep (process-wide); set it if\n"
     "ns >= 0. Returns the previous value."},
    {"_chan_pool", sa_py_chan_pool, METH_VARARGS,
     "_chan_pool(clear=False, max=-1) -> dict\n\nFree large buffers kept for reuse (count, bytes), as they were before\n"
     "`clear` gave them back to the allocator; misses: large allocations the pool had\n"
     "nothing for, drops: large frees it had no room for (since the start). With max >= 0,\n"
     "the pool keeps at most max bytes from now on (for benchmarks and tests)."},
    {"_chan_info", sa_py_chan_info, METH_O,
     "_chan_info(id) -> dict | None\n\nState of a registered channel, for tests: per side its state and\n"
     "whether it broke; per direction (queued[d]: sent by side d) messages and bytes queued."},
    {NULL, NULL, 0, NULL},
};

int sa_chan_module_init(PyObject *mod, sa_chan_state_t *st)
{
    sa_actor_t *a = sa_actor_current();
    st->owner = a != NULL ? a->id : 0;
    if (sa_chan_message_type_add(mod, st) < 0 || sa_chan_end_type_add(mod, st) < 0)
        return -1;
    st->EndOfChannel = PyErr_NewExceptionWithDoc(
        "subactor._ext.EndOfChannel",
        "The peer closed its end of the channel and everything it sent was received.", PyExc_EOFError, NULL);
    if (st->EndOfChannel == NULL || PyModule_AddObjectRef(mod, "EndOfChannel", st->EndOfChannel) < 0)
        return -1;
    PyObject *code = Py_CompileString("lambda: None", "<subactor._ext channel tick>", Py_eval_input);
    PyObject *globals = code ? PyDict_New() : NULL;
    st->tick = globals ? PyEval_EvalCode(code, globals, globals) : NULL;
    Py_XDECREF(globals);
    Py_XDECREF(code);
    if (st->tick == NULL)
        return -1;
    return PyModule_AddFunctions(mod, sa_chan_functions);
}

int sa_chan_state_traverse(sa_chan_state_t *st, visitproc visit, void *arg)
{
    Py_VISIT(st->EndType);
    Py_VISIT(st->MessageType);
    Py_VISIT(st->EndOfChannel);
    Py_VISIT(st->tick);
    return 0;
}

void sa_chan_state_clear(sa_chan_state_t *st)
{
    Py_CLEAR(st->EndType);
    Py_CLEAR(st->MessageType);
    Py_CLEAR(st->EndOfChannel);
    Py_CLEAR(st->tick);
}
