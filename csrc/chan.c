/* chan.c: placeholder of the chan concern (filled in by its issue). */
#include "common.h"

int sa_chan_module_init(PyObject *Py_UNUSED(mod), sa_chan_state_t *st)
{
    st->unused = NULL;
    return 0;
}

int sa_chan_state_traverse(sa_chan_state_t *st, visitproc visit, void *arg)
{
    Py_VISIT(st->unused);
    return 0;
}

void sa_chan_state_clear(sa_chan_state_t *st)
{
    Py_CLEAR(st->unused);
}
