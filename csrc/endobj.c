/* endobj.c: the Python type `ChannelEnd`, one attached end of a channel.
 *
 * Owns: the type `ChannelEnd` (holding one reference to its record in
 * chan.c, from sa_chan_attach(), until close() or deallocation), the
 * parsing of its arguments, the turning of the core error codes its
 * methods meet into exceptions of the calling interpreter (End_raise();
 * the constructor words the codes of sa_chan_attach() itself), and the
 * blocking loop that waits for the core in GIL-free slices (End_block()).
 * The type is a heap type of the module state of each interpreter; nothing
 * here is shared between interpreters except through the records of
 * chan.c.
 *
 * Locks: none of its own. An end object's pointer to its record is read
 * and cleared inside a critical section on the object (a no-op with a GIL;
 * it matters only on a free-threaded build); the record's own locks are
 * chan.c's and are taken only inside its functions.
 *
 * GIL rules: every function here runs with the calling interpreter's GIL.
 * Non-blocking core calls are made with it held (their critical sections
 * are short); every wait releases it, in slices of SA_CHAN_TICK_NS, taking
 * it back between slices to run signal handlers and deliver a pending
 * interrupt: Actor.interrupt() sets an asynchronous exception, which only
 * the eval loop raises, so a tiny Python function (state->tick) is called
 * to let it. A blocked recv()/send() thus ends within about one tick of an
 * interrupt or Ctrl-C. Each blocking call holds an extra reference to the
 * record, so another thread closing the end can't free it under the wait.
 * Python code may run inside a send (an item's __buffer__, the tick, a
 * signal handler) and other threads run while the GIL is released, so a
 * send works on a snapshot of its messages, never on the caller's list.
 */
#include "common.h"

#include <string.h>

#define SA_CHAN_TICK_NS (10 * 1000 * 1000)   /* longest GIL-free wait slice */
#define SA_CHAN_NOGIL_COPY (256 * 1024)      /* copies this large release the GIL */
#define SA_CHAN_PRECHECK (64 * 1024)         /* nowait sends this large check room before copying */
#define SA_CHAN_PYERR (-1000)                /* a Python exception is set (not a core code) */

/* ---------------------------------------------------------------------- */
/* ChannelEnd                                                               */

typedef struct {
    PyObject_HEAD
    sa_chan_t *ch;  /* one reference (from sa_chan_attach); NULL once this end is closed */
    uint64_t id;    /* channel id, kept for messages after close */
    int side;       /* 0 or 1 */
} EndObject;

#define SA_WHAT_FMT "channel %llu side %d"
#define SA_WHAT_ARGS(self) (unsigned long long)(self)->id, (self)->side

/* The record of an open end with one extra reference for the caller (who
 * drops it with sa_chan_decref), or NULL with ClosedError set. The extra
 * reference keeps the record alive if another thread closes the end while
 * this one waits with the GIL released. */
static sa_chan_t *End_acquire(EndObject *self)
{
    sa_chan_t *ch;
    Py_BEGIN_CRITICAL_SECTION(self);
    ch = self->ch;
    if (ch != NULL)
        sa_chan_incref(ch);
    Py_END_CRITICAL_SECTION();
    if (ch == NULL) {
        sa_state_t *st = sa_state_from_type(Py_TYPE(self));
        if (st != NULL)
            PyErr_Format(st->ClosedError, SA_WHAT_FMT ": this end is closed", SA_WHAT_ARGS(self));
    }
    return ch;
}

/* Raise the exception for a core error code met by an operation on `self`.
 * `ch` is the record (for whether a gone peer broke or closed). NULL. */
static PyObject *End_raise(EndObject *self, sa_chan_t *ch, int rc)
{
    if (rc == SA_CHAN_PYERR)
        return NULL;
    sa_state_t *st = sa_state_from_type(Py_TYPE(self));
    if (st == NULL)
        return NULL;
    char what[64];
    snprintf(what, sizeof what, SA_WHAT_FMT, SA_WHAT_ARGS(self));
    switch (rc) {
    case SA_CHAN_EOF:
        PyErr_Format(st->chan.EndOfChannel,
                     "%s: end of channel (the peer closed its end and everything it sent was received)", what);
        return NULL;
    case SA_ERR_CLOSED:
        PyErr_Format(st->ClosedError, "%s: this end was closed (by its owner's end or channel_destroy)", what);
        return NULL;
    case SA_ERR_BROKEN: {
        /* Only here does the wording need the record's state (read under
         * its lock): the empty queue of a spinning receiver must not take
         * the lock a second time to say so. */
        int closed = 0, peer_broken = 0;
        sa_chan__peek(ch, self->side, &closed, &peer_broken);
        if (!peer_broken) {
            PyErr_Format(st->BrokenError, "%s: the peer closed its end", what);
            return NULL;
        }
        return sa_raise(st, rc, what);
    }
    case SA_ERR_TOOBIG:
        PyErr_Format(PyExc_ValueError, "%s: message larger than the channel's byte bound (%zu bytes)",
                     what, sa_chan_maxbytes(ch));
        return NULL;
    default:
        return sa_raise(st, rc, what);
    }
}

/* Let pending signals and interrupts raise; called with the GIL between
 * slices of a blocking wait. 0, or -1 with an exception set. */
static int End_tick(EndObject *self)
{
    if (PyErr_CheckSignals() < 0)
        return -1;
    sa_state_t *st = sa_state_from_type(Py_TYPE(self));
    if (st == NULL)
        return -1;
    if (st->chan.tick != NULL) {
        /* Entering a Python function checks the eval breaker, which raises
         * an asynchronous exception set by Actor.interrupt(). */
        PyObject *r = PyObject_CallNoArgs(st->chan.tick);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
    }
    return 0;
}

/* One try of a blocking operation with a deadline; `ctx` keeps progress. */
typedef int (*sa_chan_op_t)(sa_chan_t *ch, int side, void *ctx, int64_t deadline);

/* Run `op` until it stops returning EMPTY/FULL/TIMEOUT or `timeout_ns`
 * (< 0: none) passes: first once with the GIL held and no wait, then in
 * GIL-free slices with a tick between them. Returns the last code, or
 * SA_CHAN_PYERR with a Python exception set. */
static int End_block(EndObject *self, sa_chan_t *ch, sa_chan_op_t op, void *ctx, int64_t timeout_ns)
{
    int rc = op(ch, self->side, ctx, SA_CHAN_NOWAIT);
    if (rc != SA_ERR_EMPTY && rc != SA_ERR_FULL)
        return rc;
    int64_t deadline = timeout_ns < 0 ? SA_CHAN_FOREVER : sa_now_ns() + timeout_ns;
    for (;;) {
        int64_t now = sa_now_ns();
        if (deadline >= 0 && now >= deadline)
            return SA_ERR_TIMEOUT;
        int64_t slice = now + SA_CHAN_TICK_NS;
        if (deadline >= 0 && deadline < slice)
            slice = deadline;
        Py_BEGIN_ALLOW_THREADS
        rc = op(ch, self->side, ctx, slice);
        Py_END_ALLOW_THREADS
        if (rc != SA_ERR_TIMEOUT)
            return rc;
        if (End_tick(self) < 0)
            return SA_CHAN_PYERR;
    }
}

/* Parse (first[, timeout]) of a METH_FASTCALL|METH_KEYWORDS method whose
 * first argument is optional when `first` starts non-NULL. */
static int sa_chan_parse(const char *fname, const char *firstname, PyObject *const *args, Py_ssize_t nargs,
                         PyObject *kwnames, PyObject **first, int64_t *timeout_ns)
{
    PyObject *tobj = NULL;
    if (nargs > 2) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most 2 arguments (%zd given)", fname, nargs);
        return -1;
    }
    if (nargs >= 1)
        *first = args[0];
    if (nargs == 2)
        tobj = args[1];
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *k = PyTuple_GET_ITEM(kwnames, i);
        PyObject **slot = PyUnicode_EqualToUTF8(k, "timeout") ? &tobj
                          : PyUnicode_EqualToUTF8(k, firstname) ? first : NULL;
        if (slot == NULL || *slot != NULL) {
            PyErr_Format(PyExc_TypeError, "%s() got %s keyword argument '%U'", fname,
                         slot ? "a repeated" : "an unexpected", k);
            return -1;
        }
        *slot = args[nargs + i];
    }
    if (*first == NULL) {
        PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'", fname, firstname);
        return -1;
    }
    return sa_timeout_arg(tobj, "timeout", timeout_ns);
}

/* Copy a bytes-like object into a new message buffer. 0; 1 (nothing
 * copied) if it is larger than `maxbytes`; -1 with an exception set. */
static int sa_chan_copy_in(PyObject *data, sa_chan_item_t *it, size_t maxbytes)
{
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return -1;
    if ((size_t)view.len > maxbytes) {
        PyBuffer_Release(&view);
        return 1;
    }
    char *buf = sa_chan_buf_alloc((size_t)view.len);
    if (buf == NULL) {
        PyBuffer_Release(&view);
        PyErr_NoMemory();
        return -1;
    }
    if (view.len >= SA_CHAN_NOGIL_COPY) {
        /* The exported view pins the source; release the GIL for the copy. */
        Py_BEGIN_ALLOW_THREADS
        memcpy(buf, view.buf, (size_t)view.len);
        Py_END_ALLOW_THREADS
    }
    else {
        memcpy(buf, view.buf, (size_t)view.len);
    }
    it->buf = buf;
    it->len = (size_t)view.len;
    PyBuffer_Release(&view);
    return 0;
}

/* Progress of a batch send through End_block(). */
typedef struct {
    sa_chan_item_t *items; /* the messages; items[done..n) still the caller's */
    size_t n;              /* how many */
    size_t done;           /* how many were queued so far */
} sa_chan_send_ctx_t;

static int sa_chan_send_op(sa_chan_t *ch, int side, void *arg, int64_t deadline)
{
    sa_chan_send_ctx_t *c = arg;
    size_t sent;
    int rc = sa_chan_send_batch(ch, side, c->items + c->done, c->n - c->done, &sent, deadline);
    c->done += sent;
    return rc;
}

/* Progress of a batch receive through End_block(). */
typedef struct {
    sa_chan_item_t *out; /* room for max messages */
    size_t max;          /* at most this many */
    size_t got;          /* how many were taken */
} sa_chan_recv_ctx_t;

static int sa_chan_recv_op(sa_chan_t *ch, int side, void *arg, int64_t deadline)
{
    sa_chan_recv_ctx_t *c = arg;
    return sa_chan_recv_batch(ch, side, c->out, c->max, &c->got, deadline);
}

/* Set `sent` on the pending exception: how many messages a failed batch
 * send queued before it failed. */
static void sa_chan_note_sent(size_t sent)
{
    PyObject *exc = PyErr_GetRaisedException();
    PyObject *n = PyLong_FromSize_t(sent);
    if (exc != NULL && n != NULL && PyObject_SetAttrString(exc, "sent", n) < 0)
        PyErr_Clear();
    Py_XDECREF(n);
    PyErr_SetRaisedException(exc);
}

/* Copy and queue items [*done, end) of a batch: copy-in stops after
 * SA_CHAN_CHUNK_BYTES or SA_CHAN_CHUNK_MSGS so that a batch of large
 * messages is not all in memory twice. `timeout_ns` -2: nowait. Returns a
 * core code or SA_CHAN_PYERR; *done grows by what was queued. */
#define SA_CHAN_CHUNK_BYTES (4u << 20)
#define SA_CHAN_CHUNK_MSGS 256
static int End_send_chunk(EndObject *self, sa_chan_t *ch, PyObject *const *objs, size_t n, size_t *done,
                          int64_t timeout_ns)
{
    sa_chan_item_t items[SA_CHAN_CHUNK_MSGS];
    unsigned char taken[SA_CHAN_CHUNK_MSGS]; /* items[j] is objs[start + j]'s own buffer */
    size_t k = 0, bytes = 0, start = *done;
    int rc = SA_OK;
    sa_state_t *st = sa_state_from_type(Py_TYPE(self));
    if (st == NULL)
        return SA_CHAN_PYERR;
    while (start + k < n && k < SA_CHAN_CHUNK_MSGS && (k == 0 || bytes < SA_CHAN_CHUNK_BYTES)) {
        /* An outgoing Message (dumps_msg) is queued as it is: no copy. */
        taken[k] = (unsigned char)sa_chan_message_take(&st->chan, objs[start + k], &items[k]);
        if (taken[k] && items[k].len > sa_chan_maxbytes(ch)) {
            sa_chan_message_give_back(objs[start + k], &items[k]);
            rc = SA_ERR_TOOBIG;
            break;
        }
        if (!taken[k]) {
            int r = sa_chan_copy_in(objs[start + k], &items[k], sa_chan_maxbytes(ch));
            if (r != 0) {
                rc = r > 0 ? SA_ERR_TOOBIG : SA_CHAN_PYERR;
                break;
            }
        }
        bytes += items[k++].len;
    }
    sa_chan_send_ctx_t ctx = {items, k, 0};
    if (rc == SA_OK && k > 0)
        rc = timeout_ns == -2 ? sa_chan_send_op(ch, self->side, &ctx, SA_CHAN_NOWAIT)
                              : End_block(self, ch, sa_chan_send_op, &ctx, timeout_ns);
    for (size_t j = ctx.done; j < k; j++) { /* the channel owns the queued prefix */
        if (taken[j])
            sa_chan_message_give_back(objs[start + j], &items[j]); /* the caller may retry */
        else
            sa_chan_buf_free(items[j].buf);
    }
    *done += ctx.done;
    return rc;
}

/* A new tuple of the items of `msgs` (any iterable, as PySequence_Fast
 * takes, with the same TypeError for a non-iterable), or NULL with an
 * exception set. The tuple owns a reference to each item and can't change,
 * whatever runs meanwhile. */
static PyObject *sa_chan_snapshot(PyObject *msgs)
{
    if (PyTuple_CheckExact(msgs) || PyList_CheckExact(msgs))
        return PySequence_Tuple(msgs);
    PyObject *it = PyObject_GetIter(msgs);
    if (it == NULL) {
        if (PyErr_ExceptionMatches(PyExc_TypeError))
            PyErr_SetString(PyExc_TypeError, "send_many() needs a sequence of bytes-like objects");
        return NULL;
    }
    PyObject *t = PySequence_Tuple(it);
    Py_DECREF(it);
    return t;
}

/* send / send_nowait / send_many / send_many_nowait. `many`: data is a
 * sequence of bytes-like objects; `timeout_ns`: -2 for nowait. Returns the
 * number queued, or -1 with an exception set. A nowait batch queues the
 * longest prefix that fits and returns its length (BlockingIOError only if
 * none fits). */
static Py_ssize_t End_send_impl(EndObject *self, PyObject *data, int many, int64_t timeout_ns)
{
    PyObject *seq = NULL;
    PyObject *const *objs = &data;
    size_t n = 1, done = 0;
    Py_ssize_t result = -1;
    int rc = SA_OK;
    sa_chan_t *ch = End_acquire(self);
    if (ch == NULL)
        return -1;
    if (many) {
        /* Work on a tuple of the items, never on the caller's list: an
         * item's __buffer__ (Python code) may change the list, and so may
         * another thread while a wait below releases the GIL; either would
         * leave pointers into the list's items array dangling. */
        seq = sa_chan_snapshot(data);
        if (seq == NULL)
            goto done;
        n = (size_t)PyTuple_GET_SIZE(seq);
        objs = ((PyTupleObject *)seq)->ob_item;
        /* Refuse a batch with a too large message before queueing any. */
        for (size_t k = 0; k < n; k++) {
            Py_buffer v;
            if (PyObject_GetBuffer(objs[k], &v, PyBUF_SIMPLE) < 0)
                goto done;
            size_t len = (size_t)v.len;
            PyBuffer_Release(&v);
            if (len > sa_chan_maxbytes(ch)) {
                End_raise(self, ch, SA_ERR_TOOBIG);
                sa_chan_note_sent(0);
                goto done;
            }
        }
    }
    else if (timeout_ns == -2 && PyObject_CheckBuffer(data)) {
        /* Don't copy a large message that can't go now anyway. */
        Py_buffer v;
        if (PyObject_GetBuffer(data, &v, PyBUF_SIMPLE) < 0)
            goto done;
        size_t len = (size_t)v.len;
        PyBuffer_Release(&v);
        if (len >= SA_CHAN_PRECHECK && (rc = sa_chan__send_check(ch, self->side, len)) < 0) {
            End_raise(self, ch, rc);
            goto done;
        }
    }
    while (done < n) {
        size_t before = done;
        rc = End_send_chunk(self, ch, objs, n, &done, timeout_ns);
        if (rc == SA_ERR_FULL && timeout_ns == -2 && many && done > 0) {
            rc = SA_OK; /* a nowait batch says how much went */
            break;
        }
        if (rc < 0)
            break;
        assert(done > before);
        (void)before;
    }
    if (rc < 0) {
        End_raise(self, ch, rc);
        if (many)
            sa_chan_note_sent(done);
        goto done;
    }
    result = (Py_ssize_t)done;
done:
    Py_XDECREF(seq);
    sa_chan_decref(ch);
    return result;
}

static PyObject *End_send(EndObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *data = NULL;
    int64_t ns;
    if (sa_chan_parse("send", "data", args, nargs, kwnames, &data, &ns) < 0)
        return NULL;
    if (End_send_impl(self, data, 0, ns) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *End_send_nowait(EndObject *self, PyObject *data)
{
    if (End_send_impl(self, data, 0, -2) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *End_send_many(EndObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *data = NULL;
    int64_t ns;
    if (sa_chan_parse("send_many", "msgs", args, nargs, kwnames, &data, &ns) < 0)
        return NULL;
    Py_ssize_t n = End_send_impl(self, data, 1, ns);
    return n < 0 ? NULL : PyLong_FromSsize_t(n);
}

static PyObject *End_send_many_nowait(EndObject *self, PyObject *data)
{
    Py_ssize_t n = End_send_impl(self, data, 1, -2);
    return n < 0 ? NULL : PyLong_FromSsize_t(n);
}

/* recv / recv_nowait / recv_many / recv_many_nowait. `max` 0: one message
 * (not a list); `timeout_ns` -2: nowait. */
static PyObject *End_recv_impl(EndObject *self, Py_ssize_t max, int64_t timeout_ns)
{
    sa_chan_item_t one, *out = &one;
    PyObject *result = NULL;
    sa_state_t *st = sa_state_from_type(Py_TYPE(self));
    if (st == NULL)
        return NULL;
    sa_chan_t *ch = End_acquire(self);
    if (ch == NULL)
        return NULL;
    if (max > 1 && (out = PyMem_Malloc((size_t)max * sizeof *out)) == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    sa_chan_recv_ctx_t ctx = {out, max ? (size_t)max : 1, 0};
    int rc = timeout_ns == -2 ? sa_chan_recv_op(ch, self->side, &ctx, SA_CHAN_NOWAIT)
                              : End_block(self, ch, sa_chan_recv_op, &ctx, timeout_ns);
    if (rc < 0) {
        End_raise(self, ch, rc);
        goto done;
    }
    if (max == 0) {
        result = sa_chan_message_new(&st->chan, one.buf, one.len);
        goto done;
    }
    result = PyList_New((Py_ssize_t)ctx.got);
    for (size_t k = 0; k < ctx.got; k++) {
        PyObject *m = NULL;
        if (result != NULL)
            m = sa_chan_message_new(&st->chan, out[k].buf, out[k].len);
        else
            sa_chan_buf_free(out[k].buf);
        if (m == NULL) {
            /* Received already, and message_new frees its own: free the rest. */
            Py_CLEAR(result);
            for (size_t j = k + 1; j < ctx.got; j++)
                sa_chan_buf_free(out[j].buf);
            break;
        }
        PyList_SET_ITEM(result, (Py_ssize_t)k, m);
    }
done:
    if (out != &one)
        PyMem_Free(out);
    sa_chan_decref(ch);
    return result;
}

static PyObject *End_recv(EndObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *tobj = NULL;
    int64_t ns;
    if (nargs > 1 || (kwnames && (PyTuple_GET_SIZE(kwnames) != 1 ||
                                  !PyUnicode_EqualToUTF8(PyTuple_GET_ITEM(kwnames, 0), "timeout")))) {
        PyErr_SetString(PyExc_TypeError, "recv() takes only `timeout`");
        return NULL;
    }
    if (nargs + (kwnames ? 1 : 0) > 1) {
        PyErr_SetString(PyExc_TypeError, "recv() got `timeout` twice");
        return NULL;
    }
    if (nargs == 1 || kwnames)
        tobj = args[0];
    if (sa_timeout_arg(tobj, "timeout", &ns) < 0)
        return NULL;
    return End_recv_impl(self, 0, ns);
}

static PyObject *End_recv_nowait(EndObject *self, PyObject *Py_UNUSED(ignored))
{
    return End_recv_impl(self, 0, -2);
}

static int sa_chan_max_arg(PyObject *obj, Py_ssize_t *max)
{
    *max = PyLong_AsSsize_t(obj);
    if (*max == -1 && PyErr_Occurred())
        return -1;
    if (*max < 1 || *max > (1 << 20)) {
        PyErr_SetString(PyExc_ValueError, "max must be between 1 and 1048576");
        return -1;
    }
    return 0;
}

static PyObject *End_recv_many(EndObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *mobj = NULL;
    Py_ssize_t max;
    int64_t ns;
    if (sa_chan_parse("recv_many", "max", args, nargs, kwnames, &mobj, &ns) < 0 ||
        sa_chan_max_arg(mobj, &max) < 0)
        return NULL;
    return End_recv_impl(self, max, ns);
}

static PyObject *End_recv_many_nowait(EndObject *self, PyObject *mobj)
{
    Py_ssize_t max;
    if (sa_chan_max_arg(mobj, &max) < 0)
        return NULL;
    return End_recv_impl(self, max, -2);
}

static PyObject *End_fileno_impl(EndObject *self, int for_send)
{
    sa_chan_t *ch = End_acquire(self);
    if (ch == NULL)
        return NULL;
    int fd = sa_chan_fileno(ch, self->side, for_send);
    PyObject *r = fd < 0 ? End_raise(self, ch, fd) : PyLong_FromLong(fd);
    sa_chan_decref(ch);
    return r;
}

static PyObject *End_recv_fileno(EndObject *self, PyObject *Py_UNUSED(ignored))
{
    return End_fileno_impl(self, 0);
}

static PyObject *End_send_fileno(EndObject *self, PyObject *Py_UNUSED(ignored))
{
    return End_fileno_impl(self, 1);
}

static PyObject *End_close(EndObject *self, PyObject *Py_UNUSED(ignored))
{
    sa_chan_t *ch;
    Py_BEGIN_CRITICAL_SECTION(self);
    ch = self->ch;
    self->ch = NULL;
    Py_END_CRITICAL_SECTION();
    if (ch != NULL)
        sa_chan_detach(ch, self->side);
    Py_RETURN_NONE;
}

static PyObject *End_enter(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(self);
}

static PyObject *End_exit(EndObject *self, PyObject *Py_UNUSED(args))
{
    return End_close(self, NULL);
}

static PyObject *End_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"id", "side", NULL};
    unsigned long long id;
    int side;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Ki:ChannelEnd", kwlist, &id, &side))
        return NULL;
    sa_state_t *st = sa_state_from_type(type);
    if (st == NULL)
        return NULL;
    if (side != 0 && side != 1) {
        PyErr_Format(PyExc_ValueError, "channel %llu: side must be 0 or 1, not %d", id, side);
        return NULL;
    }
    sa_actor_t *a = sa_actor_current();
    uint64_t owner = a != NULL ? a->id : st->chan.owner;
    sa_chan_t *ch = NULL;
    int rc = sa_chan_attach(id, side, owner, &ch);
    switch (rc) {
    case SA_OK:
        break;
    case SA_ERR_NOT_FOUND:
        PyErr_Format(st->ClosedError, "channel %llu: no such channel (closed, destroyed or never made)", id);
        return NULL;
    case SA_ERR_CLOSED:
        PyErr_Format(st->ClosedError, "channel %llu side %d: closed (an end is attached once)", id, side);
        return NULL;
    case SA_ERR_STATE:
        PyErr_Format(PyExc_ValueError, "channel %llu side %d: already attached and open", id, side);
        return NULL;
    default:
        return sa_raise(st, rc, "ChannelEnd");
    }
    EndObject *self = (EndObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        sa_chan_detach(ch, side);
        return NULL;
    }
    self->ch = ch;
    self->id = id;
    self->side = side;
    return (PyObject *)self;
}

static void End_dealloc(EndObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    if (self->ch != NULL) {
        sa_chan_detach(self->ch, self->side);
        self->ch = NULL;
    }
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyObject *End_get_closed(EndObject *self, void *Py_UNUSED(c))
{
    sa_chan_t *ch;
    int closed = 1, peer_broken;
    Py_BEGIN_CRITICAL_SECTION(self);
    ch = self->ch;
    if (ch != NULL)
        sa_chan__peek(ch, self->side, &closed, &peer_broken);
    Py_END_CRITICAL_SECTION();
    return PyBool_FromLong(closed);
}

static PyObject *End_repr(EndObject *self)
{
    PyObject *closed = End_get_closed(self, NULL);
    if (closed == NULL)
        return NULL;
    int c = closed == Py_True;
    Py_DECREF(closed);
    return PyUnicode_FromFormat("<ChannelEnd channel=%llu side=%d %s>", SA_WHAT_ARGS(self),
                                c ? "closed" : "open");
}

static PyObject *End_get_id(EndObject *self, void *Py_UNUSED(c))
{
    return PyLong_FromUnsignedLongLong(self->id);
}

static PyObject *End_get_side(EndObject *self, void *Py_UNUSED(c))
{
    return PyLong_FromLong(self->side);
}

#define SA_TIMEOUT_DOC "timeout=None waits without end; after `timeout` seconds TimeoutError.\n"
static PyMethodDef End_methods[] = {
    {"send", (PyCFunction)(void (*)(void))End_send, METH_FASTCALL | METH_KEYWORDS,
     "send(data, timeout=None)\n\nQueue a copy of the bytes-like `data`, waiting (GIL released) while the\n"
     "channel is full. " SA_TIMEOUT_DOC "BrokenError if the peer closed or broke; ClosedError if this\n"
     "end is closed; ValueError if data is larger than the channel's byte bound."},
    {"send_nowait", (PyCFunction)End_send_nowait, METH_O,
     "send_nowait(data)\n\nsend() that never waits: BlockingIOError if there is no room now."},
    {"send_many", (PyCFunction)(void (*)(void))End_send_many, METH_FASTCALL | METH_KEYWORDS,
     "send_many(msgs, timeout=None) -> int\n\nQueue every message of the sequence in order, as send() does each,\n"
     "taking the channel lock once per batch that fits. Returns len(msgs). On an\n"
     "error the exception's `sent` attribute says how many were queued."},
    {"send_many_nowait", (PyCFunction)End_send_many_nowait, METH_O,
     "send_many_nowait(msgs) -> int\n\nQueue the longest prefix of msgs that fits now and return its length;\n"
     "BlockingIOError if not even the first fits."},
    {"recv", (PyCFunction)(void (*)(void))End_recv, METH_FASTCALL | METH_KEYWORDS,
     "recv(timeout=None) -> Message\n\nThe next message, waiting (GIL released) while there is none.\n"
     SA_TIMEOUT_DOC "EndOfChannel once the peer closed and everything it sent was received;\n"
     "BrokenError (after the same draining) if the peer broke; ClosedError if this end is closed."},
    {"recv_nowait", (PyCFunction)End_recv_nowait, METH_NOARGS,
     "recv_nowait() -> Message\n\nrecv() that never waits: BlockingIOError if nothing is queued."},
    {"recv_many", (PyCFunction)(void (*)(void))End_recv_many, METH_FASTCALL | METH_KEYWORDS,
     "recv_many(max, timeout=None) -> list[Message]\n\nBetween 1 and `max` queued messages, in order, waiting as recv() does."},
    {"recv_many_nowait", (PyCFunction)End_recv_many_nowait, METH_O,
     "recv_many_nowait(max) -> list[Message]\n\nrecv_many() that never waits: BlockingIOError if nothing is queued."},
    {"recv_fileno", (PyCFunction)End_recv_fileno, METH_NOARGS,
     "recv_fileno() -> int\n\nAn eventfd readable iff recv_nowait() would not raise BlockingIOError.\n"
     "Level-triggered: await trio.lowlevel.wait_readable() on it, then recv_nowait().\n"
     "close() closes it (call trio.lowlevel.notify_closing() first if a task waits on it)."},
    {"send_fileno", (PyCFunction)End_send_fileno, METH_NOARGS,
     "send_fileno() -> int\n\nAn eventfd readable iff a send would not block: there is room for the\n"
     "message the last BlockingIOError was about (any message after a success), or\n"
     "the channel is closed or broken."},
    {"close", (PyCFunction)End_close, METH_NOARGS,
     "close()\n\nClose this end (idempotent). The peer still receives what this end sent,\n"
     "then EndOfChannel; what the peer sent and this end did not receive is dropped."},
    {"__enter__", End_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)End_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef End_getset[] = {
    {"closed", (getter)End_get_closed, NULL, "True once this end is closed (by close(), its owner's end or channel_destroy)", NULL},
    {"id", (getter)End_get_id, NULL, "the channel id", NULL},
    {"side", (getter)End_get_side, NULL, "0 or 1", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot End_slots[] = {
    {Py_tp_new, End_new},
    {Py_tp_dealloc, End_dealloc},
    {Py_tp_methods, End_methods},
    {Py_tp_getset, End_getset},
    {Py_tp_repr, End_repr},
    {Py_tp_doc, "ChannelEnd(id, side)\n\nAttach one end (side 0 or 1) of channel `id` in this interpreter. Each side\n"
                "is attached once; the end belongs to the actor running this code, and is\n"
                "closed (or broken) when that actor ends. ClosedError if the channel or that\n"
                "side is closed, ValueError if that side is attached already."},
    {0, NULL},
};

static PyType_Spec End_spec = {
    .name = "subactor._ext.ChannelEnd",
    .basicsize = sizeof(EndObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = End_slots,
};

int sa_chan_end_type_add(PyObject *mod, sa_chan_state_t *st)
{
    st->EndType = (PyTypeObject *)PyType_FromModuleAndSpec(mod, &End_spec, NULL);
    if (st->EndType == NULL || PyModule_AddType(mod, st->EndType) < 0)
        return -1;
    return 0;
}
