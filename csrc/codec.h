/* codec.h: placeholder interface of the codec concern (filled in by its issue). */
#ifndef SA_CODEC_H
#define SA_CODEC_H

typedef struct {
    PyObject *unused; /* no state yet */
} sa_codec_state_t;

int sa_codec_module_init(PyObject *mod, sa_codec_state_t *st);
int sa_codec_state_traverse(sa_codec_state_t *st, visitproc visit, void *arg);
void sa_codec_state_clear(sa_codec_state_t *st);

#endif
