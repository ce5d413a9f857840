/* actor.h: the actor host.
 *
 * An actor is one subinterpreter (own GIL by default) living on one dedicated
 * pthread. The record below is plain C memory (PyMem_Raw*) shared by the
 * parent and the actor thread; it holds no PyObject*.
 */
#ifndef SA_ACTOR_H
#define SA_ACTOR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

/* Lifecycle states. STARTING -> RUNNING -> ENDING -> EXITED. The outcome
 * (ok, error, interrupted) is recorded separately; "abandoned" is a flag
 * because an abandoned actor is still in whatever state it was in. */
typedef enum {
    SA_ACTOR_STARTING = 0, /* thread made, interpreter being created */
    SA_ACTOR_RUNNING = 1,  /* interpreter published; interrupt() acts on it */
    SA_ACTOR_ENDING = 2,   /* code done; interpreter being ended; no interrupt */
    SA_ACTOR_EXITED = 3,   /* thread finished its work; join() will not block long */
} sa_actor_lifecycle_t;

typedef enum {
    SA_OUTCOME_NONE = 0,        /* not finished */
    SA_OUTCOME_OK = 1,          /* the code ran to the end */
    SA_OUTCOME_ERROR = 2,       /* the code raised */
    SA_OUTCOME_INTERRUPTED = 3, /* the code was stopped by interrupt() */
    SA_OUTCOME_START_FAILED = 4 /* the interpreter could not be made */
} sa_outcome_t;

typedef struct sa_actor sa_actor_t;

struct sa_actor {
    uint64_t id;                /* process-unique, never reused */
    char *name;                 /* actor name (UTF-8, owned) */
    char *code;                 /* source run in the actor's __main__ (owned) */
    char *label;                /* what it runs, for warnings and listings (owned) */
    char *sys_path;             /* parent's sys.path, '\0'-separated, "\0\0"-terminated (owned) */
    size_t sys_path_len;        /* bytes in sys_path */
    char *input;                /* bytes handed to the actor at spawn (owned) */
    uint64_t chan_id;           /* the actor's own channel (0: none); side 1 is the actor's */
    size_t input_len;           /* length of input */
    int shared_gil;             /* 1: legacy shared-GIL interpreter */

    atomic_int lifecycle;       /* an sa_actor_lifecycle_t */
    atomic_int refs;            /* the registry's reference + one per Python handle */
    atomic_int done;            /* 1 once the outcome is final and done_fd written */
    atomic_int abandoned;       /* 1 once marked abandoned (never freed after that) */

    /* Serialises interrupt() with the actor's own Py_EndInterpreter(). It is
     * never taken while the taker holds any GIL. Guards interp,
     * interrupt_pending and the RUNNING -> ENDING transition. */
    pthread_mutex_t lock;
    PyInterpreterState *interp; /* the actor's interpreter while RUNNING, else NULL */
    int interrupt_pending;      /* interrupt() arrived while STARTING */
    int interrupts;             /* how many interrupts were delivered */

    /* interrupt() never delivers on the caller's thread: delivery takes the
     * actor's GIL, which an actor inside one long C call holds until that
     * call returns. A helper thread delivers instead (see actor.c). */
    atomic_int interrupt_wanted; /* 1: a requested interrupt is not yet delivered */
    atomic_int interrupter;      /* 1 while a helper thread for this actor lives */

    int64_t interp_id;          /* interpreter id, -1 before it exists */
    unsigned long py_ident;     /* PyThread_get_thread_ident() of the actor thread */
    unsigned long native_id;    /* OS thread id of the actor thread */
    pthread_t thread;           /* the dedicated thread */
    int joined;                 /* 1 once the thread was joined (registry lock) */
    int joining;                /* 1 while a caller waits in pthread_join() without the
                                   registry lock; nobody else joins then (registry lock) */
    int done_fd;                /* eventfd: becomes readable when done (never read) */
    int wake_fd;                /* eventfd: written on cancel() and interrupt() so an
                                   actor blocked in poll/epoll wakes up; the actor drains it */
    atomic_int cancel_requested; /* 1 once the parent asked for a cooperative cancel */
    int64_t started_ns;         /* sa_now_ns() at spawn */
    int64_t ended_ns;           /* sa_now_ns() when done, 0 before */

    /* Outcome, written by the actor thread before `done` is set. */
    sa_outcome_t outcome;
    char *err_type;             /* qualified exception type name (owned) */
    char *err_msg;              /* str() of the exception (owned) */
    char *err_tb;               /* formatted traceback text (owned) */
    char *result;               /* bytes set by the actor with set_result() (owned) */
    size_t result_len;          /* length of result */
    int has_result;             /* 1 if set_result() was called */

    sa_actor_t *prev, *next;    /* registry links, guarded by the registry lock */
};

typedef struct {
    PyTypeObject *HandleType;    /* SubintHandle: parent-side handle of an actor */
    PyObject *ActorInterrupted;  /* raised inside an actor by interrupt() */
    PyObject *AbandonedWarning;  /* warned when an actor is abandoned */
} sa_actor_state_t;

int sa_actor_module_init(PyObject *mod, sa_actor_state_t *st);
int sa_actor_state_traverse(sa_actor_state_t *st, visitproc visit, void *arg);
void sa_actor_state_clear(sa_actor_state_t *st);

/* The actor record of the calling thread, or NULL outside an actor. */
sa_actor_t *sa_actor_current(void);

#endif
