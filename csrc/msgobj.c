/* msgobj.c: the Python type `Message`, a received channel message.
 *
 * Owns: the type `Message` (a read-only bytes-like object that owns one raw
 * message buffer from chan.c's sa_chan_buf_alloc() and frees it with
 * sa_chan_buf_free() when released or collected) and sa_chan_message_new(),
 * through which endobj.c hands every received buffer to Python. The type
 * is a heap type of the module state of each interpreter; a Message is
 * used only in the interpreter that received it, although its buffer is
 * plain C memory that any interpreter could free.
 *
 * Locks: none. A Message's fields are changed only with its interpreter's
 * GIL held (release(), dealloc, buffer export), and the buffer is private
 * to the Message once received: no channel lock covers it.
 *
 * GIL rules: every function here runs with the calling interpreter's GIL
 * and never releases it (nothing here waits). sa_chan_buf_free() needs no
 * GIL, so freeing is safe from any of them.
 */
#include "common.h"

#include <string.h>

/* ---------------------------------------------------------------------- */
/* Message: a received message, a read-only buffer that owns its bytes      */

typedef struct {
    PyObject_HEAD
    char *buf;           /* raw buffer from sa_chan_buf_alloc(), owned; NULL once released */
    Py_ssize_t len;      /* bytes in buf */
    Py_ssize_t exports;  /* buffer views handed out and not yet released */
    int outgoing;        /* made by dumps_msg(): ChannelEnd.send() may take its buffer */
} MessageObject;

PyObject *sa_chan_message_new(sa_chan_state_t *st, char *buf, size_t len)
{
    MessageObject *m = PyObject_New(MessageObject, st->MessageType);
    if (m == NULL) {
        sa_chan_buf_free(buf);
        return NULL;
    }
    m->buf = buf;
    m->len = (Py_ssize_t)len;
    m->exports = 0;
    m->outgoing = 0;
    return (PyObject *)m;
}

PyObject *sa_chan_message_out(sa_chan_state_t *st, char *buf, size_t len)
{
    PyObject *m = sa_chan_message_new(st, buf, len);
    if (m != NULL)
        ((MessageObject *)m)->outgoing = 1;
    return m;
}

int sa_chan_message_take(sa_chan_state_t *st, PyObject *obj, sa_chan_item_t *it)
{
    if (Py_TYPE(obj) != st->MessageType)
        return 0;
    MessageObject *m = (MessageObject *)obj;
    if (!m->outgoing || m->exports > 0 || m->buf == NULL)
        return 0;
    it->buf = m->buf;
    it->len = (size_t)m->len;
    m->buf = NULL;
    m->len = 0;
    return 1;
}

void sa_chan_message_give_back(PyObject *obj, sa_chan_item_t *it)
{
    MessageObject *m = (MessageObject *)obj;
    m->buf = it->buf;
    m->len = (Py_ssize_t)it->len;
}

static int Message_check_live(MessageObject *self)
{
    if (self->buf != NULL)
        return 0;
    PyErr_SetString(PyExc_ValueError, "operation forbidden on a released Message");
    return -1;
}

static void Message_dealloc(MessageObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    assert(self->exports == 0); /* every view holds a reference to us */
    sa_chan_buf_free(self->buf);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static int Message_getbuffer(MessageObject *self, Py_buffer *view, int flags)
{
    if (Message_check_live(self) < 0)
        return -1;
    if (PyBuffer_FillInfo(view, (PyObject *)self, self->buf, self->len, 1, flags) < 0)
        return -1;
    self->exports++;
    return 0;
}

static void Message_releasebuffer(MessageObject *self, Py_buffer *Py_UNUSED(view))
{
    self->exports--;
}

static Py_ssize_t Message_length(MessageObject *self)
{
    if (Message_check_live(self) < 0)
        return -1;
    return self->len;
}

static PyObject *Message_release(MessageObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->exports > 0) {
        PyErr_Format(PyExc_BufferError, "Message has %zd exported buffer(s) (a memoryview?) still alive",
                     self->exports);
        return NULL;
    }
    sa_chan_buf_free(self->buf);
    self->buf = NULL;
    self->len = 0;
    Py_RETURN_NONE;
}

static PyObject *Message_richcompare(MessageObject *self, PyObject *other, int op)
{
    if ((op != Py_EQ && op != Py_NE) || self->buf == NULL || !PyObject_CheckBuffer(other))
        Py_RETURN_NOTIMPLEMENTED;
    Py_buffer b;
    if (PyObject_GetBuffer(other, &b, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        Py_RETURN_NOTIMPLEMENTED;
    }
    int eq = b.len == self->len && memcmp(b.buf, self->buf, (size_t)b.len) == 0;
    PyBuffer_Release(&b);
    return PyBool_FromLong(op == Py_EQ ? eq : !eq);
}

static PyObject *Message_repr(MessageObject *self)
{
    if (self->buf == NULL)
        return PyUnicode_FromString("<Message released>");
    return PyUnicode_FromFormat("<Message %zd bytes>", self->len);
}

static PyObject *Message_get_released(MessageObject *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(self->buf == NULL);
}

static PyObject *Message_enter(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(self);
}

static PyObject *Message_exit(MessageObject *self, PyObject *Py_UNUSED(args))
{
    return Message_release(self, NULL);
}

static PyMethodDef Message_methods[] = {
    {"release", (PyCFunction)Message_release, METH_NOARGS,
     "release()\n\nFree the bytes now (BufferError while a memoryview of it is alive).\n"
     "Using the message afterwards raises ValueError. Collection frees them too."},
    {"__enter__", Message_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)Message_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Message_getset[] = {
    {"released", (getter)Message_get_released, NULL, "True once release() freed the bytes", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Message_slots[] = {
    {Py_tp_dealloc, Message_dealloc},
    {Py_bf_getbuffer, Message_getbuffer},
    {Py_bf_releasebuffer, Message_releasebuffer},
    {Py_sq_length, Message_length},
    {Py_mp_length, Message_length},
    {Py_tp_richcompare, Message_richcompare},
    {Py_tp_hash, PyObject_HashNotImplemented},
    {Py_tp_repr, Message_repr},
    {Py_tp_methods, Message_methods},
    {Py_tp_getset, Message_getset},
    {Py_tp_doc, "A received message: a read-only bytes-like object that owns its bytes.\n\n"
                "memoryview(m) and bytes(m) work; len(m) is its size; m == b'...' compares\n"
                "contents. release() (or `with m:`) frees the bytes at once."},
    {0, NULL},
};

static PyType_Spec Message_spec = {
    .name = "subactor._ext.Message",
    .basicsize = sizeof(MessageObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = Message_slots,
};

int sa_chan_message_type_add(PyObject *mod, sa_chan_state_t *st)
{
    st->MessageType = (PyTypeObject *)PyType_FromModuleAndSpec(mod, &Message_spec, NULL);
    if (st->MessageType == NULL || PyModule_AddType(mod, st->MessageType) < 0)
        return -1;
    return 0;
}
