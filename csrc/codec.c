/* codec.c: placeholder of the codec concern (filled in by its issue). */
#include "common.h"

int sa_codec_module_init(PyObject *Py_UNUSED(mod), sa_codec_state_t *st)
{
    st->unused = NULL;
    return 0;
}

int sa_codec_state_traverse(sa_codec_state_t *st, visitproc visit, void *arg)
{
    Py_VISIT(st->unused);
    return 0;
}

void sa_codec_state_clear(sa_codec_state_t *st)
{
    Py_CLEAR(st->unused);
}
