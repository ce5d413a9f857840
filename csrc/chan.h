/* chan.h: placeholder interface of the chan concern (filled in by its issue). */
#ifndef SA_CHAN_H
#define SA_CHAN_H

typedef struct {
    PyObject *unused; /* no state yet */
} sa_chan_state_t;

int sa_chan_module_init(PyObject *mod, sa_chan_state_t *st);
int sa_chan_state_traverse(sa_chan_state_t *st, visitproc visit, void *arg);
void sa_chan_state_clear(sa_chan_state_t *st);

#endif
