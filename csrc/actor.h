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

    /* A record made for the reserve of warm interpreters (warm.c). Until it
     * is taken it is in the reserve's list, not in the registry: no handle,
     * listing or counter of actors sees it except sa_counters.warm. */
    int warm;                   /* 1: made for the reserve (set once, before the thread) */
    int warm_state;             /* an sa_warm_state_t; guarded by the reserve's lock */
    uint64_t env_hash;          /* hash of the C environ its interpreter copied (0: unknown) */
    char *preload;              /* modules it imports while warm, '\0'-separated, "\0\0"-ended (owned) */
    sa_actor_t *warm_next;      /* the reserve's list, guarded by the reserve's lock */
    int64_t warm_not_before_ns; /* a refill after a take starts making its interpreter then */
};

typedef enum {
    SA_WARM_WARMING = 0,        /* making its interpreter and importing the preload */
    SA_WARM_PARKED = 1,         /* ready; its thread waits (no GIL) to be taken or retired */
    SA_WARM_TAKEN = 2,          /* given an actor's code: it runs as that actor now */
    SA_WARM_RETIRE = 3,         /* told to end its interpreter without running anything */
} sa_warm_state_t;

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

/* --- shared by actor.c and warm.c --- */

/* A record with its descriptors and lock made and nothing else: code, name,
 * label and input empty, the given sys.path (copied). NULL on no memory or
 * a failed eventfd (errno set). The caller owns it until it starts it. */
sa_actor_t *sa_actor_alloc(const char *sys_path, size_t sys_path_len);
/* Free a record and everything it owns (thread joined or never started,
 * record in no list). Can't fail. */
void sa_actor_free(sa_actor_t *a);
/* Start the thread of a warm record, outside the registry. 0 or SA_ERR_OS
 * (errno set). */
int sa_actor_start_warm(sa_actor_t *a);
/* Link a taken warm record into the registry (it becomes an actor). */
void sa_actor_register(sa_actor_t *a);
/* Set sys.path of the current interpreter to the record's. -1 with an
 * exception set on failure. */
int sa_actor_set_sys_path(sa_actor_t *a);
/* The '\0'-separated, "\0\0"-ended copy of a sequence of str paths ("" is
 * stored as "."), length in *len_out. NULL with an exception set. */
char *sa_actor_pack_paths(PyObject *paths, size_t *len_out);
/* A fresh actor id (process-unique, never reused). */
uint64_t sa_actor_new_id(void);

/* --- the reserve of warm interpreters (warm.c) --- */

/* In the actor thread of a warm record, with its GIL, after sys.path and
 * _ext: import the preload, park (GIL released) until taken or retired.
 * `failed`: the exception that setting sys.path or importing _ext raised
 * (a new reference, taken), or NULL. 1: taken (GIL held again, the record
 * holds the actor's code now); 0: it is to end without running anything
 * (retired, or its start or preload failed: the error is kept for
 * warm_info() and the reserve stops refilling). No exception is left set. */
int sa_warm_park(sa_actor_t *a, PyObject *failed);
/* First step of a warm record's thread: wait (no GIL, by its deadline)
 * until it may make its interpreter. 1: go on; 0: it was retired meanwhile
 * (then it calls sa_warm_thread_exit() and returns). */
int sa_warm_settle(sa_actor_t *a);
/* The last step of a warm record that was never taken, on its own thread
 * after its interpreter ended: counters down, record freed, thread
 * detached. Can't fail. */
void sa_warm_thread_exit(sa_actor_t *a);
/* Take a parked warm interpreter for an own-GIL actor whose sys.path is
 * the given packed list, if one matches (same sys.path, same environment);
 * NULL if none does (a mismatch retires the stale ones and the reserve
 * follows the new sys.path). The caller moves the actor's fields into the
 * record, registers it, then calls sa_warm_give(). Never blocks for long
 * (a short critical section, a few thread creations at most). */
sa_actor_t *sa_warm_take(const char *sys_path, size_t sys_path_len);
/* Let a taken record's thread go on and run its code. Can't fail. */
void sa_warm_give(sa_actor_t *a);
/* Warm interpreters whose threads are alive (warming, parked or ending). */
long sa_warm_alive(void);
/* Retire every warm interpreter and wait up to timeout_ns (< 0: forever)
 * for their threads to be done with Python. 1 if none is left. Call
 * without a GIL. */
int sa_warm_drain(int64_t timeout_ns);
int sa_warm_module_init(PyObject *mod);

#endif
