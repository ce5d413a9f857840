/* actor.c: the actor host.
 *
 * Owns: actor records (sa_actor_t), the process-wide registry of them, the
 * dedicated thread of each actor, and the Python handle type `Actor`.
 *
 * Lifecycle of an actor (one pthread, one interpreter, one run):
 *   spawn()   parent allocates the record, an eventfd, and creates the thread
 *   thread    Py_NewInterpreterFromConfig() -> set sys.path -> import _ext
 *             -> publish the interpreter (RUNNING) -> compile + eval code
 *             -> ENDING (no more interrupts) -> record outcome
 *             -> Py_EndInterpreter() -> write eventfd -> exit
 *   join()    parent waits on the eventfd (or trio does), then pthread_join()
 *   free      when the registry and every handle let go (after the join)
 *
 * Interrupts. interrupt() is asked for on any thread (the parent's event
 * loop, the exit hook) and never delivers there: delivering takes the
 * actor's GIL, and an actor inside one long C call (sum(range(10**10)), a
 * huge int power, regex backtracking) holds its GIL until that call
 * returns, which may be never. sa_actor_request_interrupt() notes the
 * request and starts a helper thread (one per actor at a time; it holds a
 * reference to the record) that delivers it, however long that takes; the
 * caller returns at once and its deadlines decide what happens next. A
 * late delivery to an actor that was abandoned meanwhile is harmless: it
 * is made under actor->lock like every other, so it never races
 * Py_EndInterpreter(), and it only ends an actor nobody waits for.
 *
 * Locks and GIL rules:
 *   - sa_registry_lock guards the registry list, `joined` and `joining`. It
 *     is held only for short, non-blocking work (never a waiting
 *     pthread_join: a done thread may still wait for a core before it
 *     exits), and no GIL is ever acquired while holding it.
 *   - actor->lock serialises interrupt() (which makes a temporary thread state
 *     in the actor's interpreter) with the actor's own Py_EndInterpreter():
 *     racing the two aborts the process ("not the last thread"). It is never
 *     taken while the taker holds a GIL.
 *   - No PyObject* is stored in a record; everything crossing threads is
 *     plain bytes allocated with PyMem_Raw*.
 */
#include "common.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The nice value of an actor's thread once its code is done (see
 * sa_actor_thread). */
#define SA_ENDING_NICE 10

/* How long the exit hook waits for the reserve of warm interpreters to end. */
#define SA_WARM_EXIT_DEADLINE_S 10

/* Key under which each interpreter's ActorInterrupted type is kept in that
 * interpreter's PyInterpreterState_GetDict(), so that interrupt(), running
 * on a foreign thread with a temporary thread state, can find it without
 * importing anything. */
#define SA_INTERRUPTED_KEY "subactor._ext.ActorInterrupted"

static pthread_mutex_t sa_registry_lock = PTHREAD_MUTEX_INITIALIZER;
static sa_actor_t *sa_registry_head;      /* guarded by sa_registry_lock */
static atomic_uint_fast64_t sa_next_id = 1;
static _Thread_local sa_actor_t *sa_current;

/* Exit code noted by sys.exit() calls routed through _ext (see
 * _shutdown_at_exit); -1 when none was noted. */
static atomic_int sa_exit_code_hint = -1;

sa_actor_t *sa_actor_current(void)
{
    return sa_current;
}

/* ---------------------------------------------------------------------- */
/* Raw helpers (no GIL needed)                                             */

/* Copy `len` bytes into a new NUL-terminated raw buffer. NULL on no memory. */
static char *sa_rawdup(const char *s, size_t len)
{
    char *p = PyMem_RawMalloc(len + 1);
    if (p == NULL)
        return NULL;
    if (len)
        memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void sa_actor_free(sa_actor_t *a)
{
    if (a->done_fd >= 0)
        close(a->done_fd);
    if (a->wake_fd >= 0)
        close(a->wake_fd);
    pthread_mutex_destroy(&a->lock);
    PyMem_RawFree(a->name);
    PyMem_RawFree(a->code);
    PyMem_RawFree(a->label);
    PyMem_RawFree(a->sys_path);
    PyMem_RawFree(a->input);
    PyMem_RawFree(a->err_type);
    PyMem_RawFree(a->err_msg);
    PyMem_RawFree(a->err_tb);
    PyMem_RawFree(a->result);
    PyMem_RawFree(a->preload);
    if (atomic_load(&a->abandoned))
        atomic_fetch_sub(&sa_counters.abandoned, 1);
    atomic_fetch_sub(&sa_counters.actors, 1);
    PyMem_RawFree(a);
}

/* The ending gate. Ending an interpreter (Py_EndInterpreter) is CPU work
 * that no one waits on in the actor's code, and when many actors end at
 * once (an.cancel() of a thousand) every one of their threads wanted a core
 * at the same moment: even at nice 10, a thousand runnable threads took
 * nearly all of two cores from the parent's event loop and from the actors
 * that had not yet answered the cancel, so those answered only after
 * kill_after and were abandoned. At most one interpreter per core (of the
 * process's affinity) ends at a time now; the others wait for a turn
 * without a GIL and without CPU.
 *
 * No turn waits on a stuck one: a turn held for SA_END_STALE_NS no longer
 * counts (a teardown that hangs, joining a thread of the actor's own that
 * never ends, does not stop the others), and nobody waits longer than
 * SA_END_WAIT_NS for a turn. */
#define SA_END_SLOTS 64
#define SA_END_STALE_NS (1000LL * 1000000)
#define SA_END_WAIT_NS (30LL * 1000000000)
#define SA_END_SLICE_NS (50LL * 1000000)

static pthread_mutex_t sa_end_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sa_end_cond;
static pthread_once_t sa_end_once = PTHREAD_ONCE_INIT;
static int sa_end_width;                       /* turns at once: online cores */
static int64_t sa_end_since[SA_END_SLOTS];     /* when its holder took it; 0: free */
static uint64_t sa_end_gen[SA_END_SLOTS];      /* bumped at each take */
static long sa_end_waited;                     /* threads that had to wait (a counter) */

static void sa_end_postfork_child(void)
{
    /* Only the forking thread lives on in the child: nobody holds a turn. */
    pthread_mutex_init(&sa_end_lock, NULL);
    memset(sa_end_since, 0, sizeof sa_end_since);
}

static void sa_end_init(void)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&sa_end_cond, &ca);
    pthread_condattr_destroy(&ca);
    /* The cores this process may run on (its affinity), else the online ones. */
    cpu_set_t set;
    long n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : sysconf(_SC_NPROCESSORS_ONLN);
    sa_end_width = n < 1 ? 1 : n > SA_END_SLOTS ? SA_END_SLOTS : (int)n;
    pthread_atfork(NULL, NULL, sa_end_postfork_child);
}

typedef struct {
    int slot;       /* -1: entered without a turn (the wait ran out) */
    uint64_t gen;
} sa_end_turn_t;

/* Wait for a turn to end an interpreter. Call without a GIL. */
static sa_end_turn_t sa_end_enter(void)
{
    pthread_once(&sa_end_once, sa_end_init);
    sa_end_turn_t turn = {-1, 0};
    int64_t start = sa_now_ns();
    int waited = 0;
    pthread_mutex_lock(&sa_end_lock);
    for (;;) {
        int64_t now = sa_now_ns();
        int active = 0, slot = -1;
        int64_t next_stale = now + SA_END_SLICE_NS;
        for (int i = 0; i < SA_END_SLOTS; i++) {
            if (sa_end_since[i] != 0 && now - sa_end_since[i] < SA_END_STALE_NS) {
                active++;
                if (sa_end_since[i] + SA_END_STALE_NS < next_stale)
                    next_stale = sa_end_since[i] + SA_END_STALE_NS;
            }
            else if (slot < 0)
                slot = i; /* free, or held too long to count */
        }
        if (slot >= 0 && active < sa_end_width) {
            sa_end_since[slot] = now > 0 ? now : 1;
            turn.slot = slot;
            turn.gen = ++sa_end_gen[slot];
            break;
        }
        if (now - start >= SA_END_WAIT_NS)
            break;
        if (!waited) {
            waited = 1;
            sa_end_waited++;
        }
        int64_t until = next_stale < start + SA_END_WAIT_NS ? next_stale : start + SA_END_WAIT_NS;
        struct timespec ts = {.tv_sec = until / 1000000000, .tv_nsec = until % 1000000000};
        pthread_cond_timedwait(&sa_end_cond, &sa_end_lock, &ts);
    }
    pthread_mutex_unlock(&sa_end_lock);
    return turn;
}

/* Give the turn back (if it is still this thread's: a stale one may have
 * been taken over) and let one waiter in. */
static void sa_end_leave(sa_end_turn_t turn)
{
    pthread_mutex_lock(&sa_end_lock);
    if (turn.slot >= 0 && sa_end_gen[turn.slot] == turn.gen)
        sa_end_since[turn.slot] = 0;
    pthread_cond_signal(&sa_end_cond);
    pthread_mutex_unlock(&sa_end_lock);
}

/* Py_EndInterpreter(ts) in its turn; `ts` is the calling thread's, current. */
static void sa_end_interpreter(PyThreadState *ts)
{
    PyThreadState *saved = PyEval_SaveThread();
    sa_end_turn_t turn = sa_end_enter();
    PyEval_RestoreThread(saved);
    Py_EndInterpreter(ts);
    sa_end_leave(turn);
}

/* _unraisable(unraisable): an actor's sys.unraisablehook, installed before
 * its code runs. An interrupt that lands in code whose errors Python can
 * only report, not raise (a weakref callback, a __del__, the import
 * system's lock cleanup while a module loads), would be printed as
 * "Exception ignored" and lost: the actor would go on as if never
 * interrupted, until kill_after abandons it. It is asked for again in this
 * thread instead, so it is raised at the next bytecode of the code that
 * runs; anything else goes to sys.__unraisablehook__. */
static PyObject *sa_py_unraisable(PyObject *mod, PyObject *unraisable)
{
    sa_state_t *st = sa_state(mod);
    PyObject *exc = PyObject_GetAttrString(unraisable, "exc_value");
    if (exc == NULL)
        PyErr_Clear();
    else if (st->actor.ActorInterrupted != NULL && PyErr_GivenExceptionMatches(exc, st->actor.ActorInterrupted)) {
        Py_DECREF(exc);
        PyThreadState_SetAsyncExc(PyThread_get_thread_ident(), st->actor.ActorInterrupted);
        Py_RETURN_NONE;
    }
    Py_XDECREF(exc);
    PyObject *sys = PyImport_ImportModule("sys");
    PyObject *dflt = sys ? PyObject_GetAttrString(sys, "__unraisablehook__") : NULL;
    Py_XDECREF(sys);
    if (dflt == NULL)
        return NULL;
    PyObject *r = PyObject_CallOneArg(dflt, unraisable);
    Py_DECREF(dflt);
    return r;
}

/* Install _unraisable as the actor's sys.unraisablehook. */
static int sa_install_unraisable_hook(PyObject *ext)
{
    PyObject *hook = PyObject_GetAttrString(ext, "_unraisable");
    if (hook == NULL)
        return -1;
    int rc = PySys_SetObject("unraisablehook", hook);
    Py_DECREF(hook);
    return rc;
}

/* Wait up to timeout_ns (< 0: forever) for the actor to be done.
 * Returns 0 when done, SA_ERR_TIMEOUT, or SA_ERR_OS. Call without a GIL. */
static int sa_actor_wait(sa_actor_t *a, int64_t timeout_ns)
{
    int64_t deadline = timeout_ns < 0 ? -1 : sa_now_ns() + timeout_ns;
    while (!atomic_load(&a->done)) {
        if (deadline >= 0 && sa_now_ns() >= deadline)
            return SA_ERR_TIMEOUT;
        int ms = sa_poll_ms(deadline);
        struct pollfd p = {.fd = a->done_fd, .events = POLLIN};
        if (poll(&p, 1, ms) < 0 && errno != EINTR)
            return SA_ERR_OS;
    }
    return SA_OK;
}

/* Join the thread of a done actor if it has exited, without waiting: 1 if
 * it is joined (now or before), 0 if it has not exited yet or another
 * caller is joining it. A done thread is past its last step, but on a busy
 * machine it may wait several scheduler slices before it exits, and a
 * pthread_join() here would stall whoever holds the registry lock (the
 * parent's event loop, dropping a handle). Caller holds sa_registry_lock.
 * Can't fail. */
static int sa_actor_tryjoin_locked(sa_actor_t *a)
{
    assert(atomic_load(&a->done));
    if (a->joined)
        return 1;
    if (a->joining || pthread_tryjoin_np(a->thread, NULL) != 0)
        return 0;
    a->joined = 1;
    return 1;
}

/* Join the thread of a done actor, waiting for it to exit, never with the
 * registry lock held. Call without a GIL (from code that may block). */
static void sa_actor_join(sa_actor_t *a)
{
    assert(atomic_load(&a->done));
    pthread_mutex_lock(&sa_registry_lock);
    int mine = !a->joined && !a->joining;
    if (mine)
        a->joining = 1;
    pthread_mutex_unlock(&sa_registry_lock);
    if (!mine)
        return; /* joined already, or by the caller that is joining it */
    pthread_join(a->thread, NULL);
    pthread_mutex_lock(&sa_registry_lock);
    a->joined = 1;
    a->joining = 0;
    pthread_mutex_unlock(&sa_registry_lock);
}

/* Free every done actor that no handle refers to any more and whose thread
 * has exited (joined without waiting). Returns how many were freed. Can't
 * fail. */
static int sa_registry_reap(void)
{
    int n = 0;
    pthread_mutex_lock(&sa_registry_lock);
    sa_actor_t *a = sa_registry_head;
    while (a != NULL) {
        sa_actor_t *next = a->next;
        if (atomic_load(&a->done) && atomic_load(&a->refs) == 1 && sa_actor_tryjoin_locked(a)) {
            if (a->prev)
                a->prev->next = a->next;
            else
                sa_registry_head = a->next;
            if (a->next)
                a->next->prev = a->prev;
            sa_actor_free(a);
            n++;
        }
        a = next;
    }
    pthread_mutex_unlock(&sa_registry_lock);
    return n;
}

/* Drop one reference; the registry's own is dropped only by reaping, so
 * this never frees. Can't fail. */
static void sa_actor_decref(sa_actor_t *a)
{
    int left = atomic_fetch_sub(&a->refs, 1) - 1;
    assert(left >= 1);
    (void)left;
}

/* Wake the actor if it is blocked waiting on its wake descriptor (its
 * event loop, or a blocking receive that watches it). Can't fail: an
 * eventfd write only fails on counter overflow, which is harmless here. */
static void sa_actor_wake(sa_actor_t *a)
{
    uint64_t one = 1;
    ssize_t w = write(a->wake_fd, &one, sizeof one);
    (void)w;
}

/* Ask for a cooperative cancel: set the flag, then wake the actor. Returns
 * 1, or 0 if the actor is done already. Can't fail. */
static int sa_actor_request_cancel(sa_actor_t *a)
{
    if (atomic_load(&a->done))
        return 0;
    atomic_store(&a->cancel_requested, 1);
    sa_actor_wake(a);
    return 1;
}

/* Deliver an interrupt, blocking until the actor's GIL is free. Returns 1
 * if delivered (or queued while the actor is still starting), 0 if the
 * actor is ending or gone. Only the helper thread below calls it, without
 * any GIL held: it takes the actor's lock and then the actor's GIL. */
static int sa_actor_deliver_interrupt(sa_actor_t *a)
{
    int delivered = 0;
    pthread_mutex_lock(&a->lock);
    int state = atomic_load(&a->lifecycle);
    if (state == SA_ACTOR_STARTING) {
        a->interrupt_pending = 1;
        delivered = 1;
    }
    else if (state == SA_ACTOR_RUNNING && a->interp != NULL) {
        /* A temporary thread state of the target interpreter; it takes the
         * target's GIL, which costs up to one switch interval when the
         * actor is busy. */
        PyThreadState *ts = PyThreadState_New(a->interp);
        if (ts != NULL) {
            PyEval_AcquireThread(ts);
            PyObject *dict = PyInterpreterState_GetDict(a->interp);
            PyObject *exc = NULL;
            if (dict != NULL && PyDict_GetItemStringRef(dict, SA_INTERRUPTED_KEY, &exc) > 0) {
                if (PyThreadState_SetAsyncExc(a->py_ident, exc) == 1) {
                    delivered = 1;
                    a->interrupts++;
                }
                Py_DECREF(exc);
            }
            PyErr_Clear();
            PyThreadState_Clear(ts);
            PyThreadState_DeleteCurrent();
        }
    }
    pthread_mutex_unlock(&a->lock);
    if (delivered)
        sa_actor_wake(a);
    return delivered;
}

/* Block the asynchronous signals in the calling thread, saving the old
 * mask in *old. Signals belong to the main thread of the main interpreter;
 * a thread of ours must never be the one the kernel picks for SIGINT. */
static void sa_block_async_signals(sigset_t *old)
{
    sigset_t all;
    sigfillset(&all);
    int sync_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS};
    for (size_t i = 0; i < sizeof sync_signals / sizeof sync_signals[0]; i++)
        sigdelset(&all, sync_signals[i]);
    pthread_sigmask(SIG_BLOCK, &all, old);
}

/* The helper thread of one actor: delivers requested interrupts until none
 * is wanted, then leaves. It owns one reference to the record. */
static void *sa_interrupter_main(void *arg)
{
    sa_actor_t *a = arg;
    for (;;) {
        while (atomic_exchange(&a->interrupt_wanted, 0))
            sa_actor_deliver_interrupt(a);
        atomic_store(&a->interrupter, 0);
        /* A request that came after the exchange above saw interrupter == 1
         * and started no thread: this one must take it. */
        int expected = 0;
        if (!atomic_load(&a->interrupt_wanted) || !atomic_compare_exchange_strong(&a->interrupter, &expected, 1))
            break;
    }
    sa_actor_decref(a);
    atomic_fetch_sub(&sa_counters.interrupters, 1);
    return NULL;
}

/* Ask for an interrupt without waiting for it (see "Interrupts" at the top).
 * 1 if it was asked for (or queued while the actor starts), 0 if the actor
 * is ending or gone, SA_ERR_OS (errno set) if no helper thread could be
 * made. Never blocks: the actor's lock is only held for a state check here,
 * and its holders never wait for anything while holding it except the
 * helper, which this call does not wait for (the state is re-read by the
 * helper under the lock). Call without a GIL or with one; can't block. */
static int sa_actor_request_interrupt(sa_actor_t *a)
{
    int state = atomic_load(&a->lifecycle);
    if (atomic_load(&a->done) || state == SA_ACTOR_ENDING || state == SA_ACTOR_EXITED)
        return 0;
    atomic_store(&a->interrupt_wanted, 1);
    int expected = 0;
    if (!atomic_compare_exchange_strong(&a->interrupter, &expected, 1))
        return 1; /* a helper is at work; it sees interrupt_wanted */
    atomic_fetch_add(&a->refs, 1);
    atomic_fetch_add(&sa_counters.interrupters, 1);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigset_t old;
    sa_block_async_signals(&old);
    pthread_t t;
    int rc = pthread_create(&t, &attr, sa_interrupter_main, a);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        atomic_store(&a->interrupter, 0);
        atomic_fetch_sub(&sa_counters.interrupters, 1);
        sa_actor_decref(a);
        errno = rc;
        return SA_ERR_OS;
    }
    return 1;
}

/* ---------------------------------------------------------------------- */
/* The actor thread                                                        */

/* Copy a Python str into a new raw buffer; on any failure, a copy of
 * `fallback`. Runs with the actor's GIL; never leaves an exception set. */
static char *sa_str_to_raw(PyObject *s, const char *fallback)
{
    if (s != NULL && PyUnicode_Check(s)) {
        Py_ssize_t n;
        const char *u = PyUnicode_AsUTF8AndSize(s, &n);
        if (u != NULL)
            return sa_rawdup(u, (size_t)n);
    }
    PyErr_Clear();
    return sa_rawdup(fallback, strlen(fallback));
}

/* Format `exc` with its traceback as the traceback module would. A plain
 * exception (no chaining, notes or group) is formatted with the C API
 * (PyTraceBack_Print), which imports nothing: importing `traceback` into a
 * fresh interpreter costs several milliseconds, and an interrupted actor
 * should end quickly. Anything richer goes through traceback. Returns a new
 * str or NULL with an exception set. */
static PyObject *sa_format_traceback(PyObject *exc, const char *type_name, const char *msg)
{
    PyObject *cause = PyException_GetCause(exc);
    PyObject *context = PyException_GetContext(exc);
    int rich = cause != NULL || context != NULL ||
               PyObject_HasAttrString(exc, "__notes__") ||
               PyObject_IsInstance(exc, PyExc_BaseExceptionGroup) > 0 ||
               PyObject_IsInstance(exc, PyExc_SyntaxError) > 0;
    Py_XDECREF(cause);
    Py_XDECREF(context);
    PyErr_Clear();
    if (rich) {
        PyObject *tb = NULL, *tbmod = PyImport_ImportModule("traceback");
        if (tbmod != NULL) {
            PyObject *lines = PyObject_CallMethod(tbmod, "format_exception", "O", exc);
            if (lines != NULL) {
                PyObject *empty = PyUnicode_FromString("");
                if (empty != NULL) {
                    tb = PyUnicode_Join(empty, lines);
                    Py_DECREF(empty);
                }
                Py_DECREF(lines);
            }
            Py_DECREF(tbmod);
        }
        return tb;
    }
    PyObject *res = NULL, *sio = NULL, *io = PyImport_ImportModule("io");
    PyObject *tbobj = PyException_GetTraceback(exc);
    if (io == NULL || (sio = PyObject_CallMethod(io, "StringIO", NULL)) == NULL)
        goto done;
    if (tbobj != NULL && PyTraceBack_Print(tbobj, sio) < 0)
        goto done;
    if (PyFile_WriteString(type_name, sio) < 0 ||
        (msg[0] && (PyFile_WriteString(": ", sio) < 0 || PyFile_WriteString(msg, sio) < 0)) ||
        PyFile_WriteString("\n", sio) < 0)
        goto done;
    res = PyObject_CallMethod(sio, "getvalue", NULL);
done:
    Py_XDECREF(tbobj);
    Py_XDECREF(sio);
    Py_XDECREF(io);
    return res;
}

/* Record `exc` (an exception instance) as the actor's error outcome: its
 * qualified type name, its message and its formatted traceback. Runs with
 * the actor's GIL after the actor has left RUNNING, so no interrupt can
 * land in the middle of the formatting. */
static void sa_record_exception(sa_actor_t *a, PyObject *exc)
{
    PyObject *type = (PyObject *)Py_TYPE(exc);
    PyObject *mod = PyObject_GetAttrString(type, "__module__");
    PyObject *qual = PyType_GetQualName(Py_TYPE(exc));
    PyObject *full = NULL;
    if (mod && qual && PyUnicode_Check(mod) && !PyUnicode_EqualToUTF8(mod, "builtins"))
        full = PyUnicode_FromFormat("%U.%U", mod, qual);
    else if (qual)
        full = Py_NewRef(qual);
    PyErr_Clear();
    a->err_type = sa_str_to_raw(full, Py_TYPE(exc)->tp_name);
    Py_XDECREF(full);
    Py_XDECREF(qual);
    Py_XDECREF(mod);

    PyObject *msg = PyObject_Str(exc);
    a->err_msg = sa_str_to_raw(msg, "<str() of the exception failed>");
    Py_XDECREF(msg);

    PyObject *tb = sa_format_traceback(exc, a->err_type, a->err_msg);
    a->err_tb = sa_str_to_raw(tb, "<formatting the traceback failed>\n");
    Py_XDECREF(tb);
    PyErr_Clear();
}

int sa_actor_set_sys_path(sa_actor_t *a)
{
    PyObject *list = PyList_New(0);
    if (list == NULL)
        return -1;
    const char *p = a->sys_path, *end = a->sys_path + a->sys_path_len;
    while (p < end && *p) {
        size_t n = strlen(p);
        PyObject *s = PyUnicode_DecodeFSDefaultAndSize(p, (Py_ssize_t)n);
        if (s == NULL || PyList_Append(list, s) < 0) {
            Py_XDECREF(s);
            Py_DECREF(list);
            return -1;
        }
        Py_DECREF(s);
        p += n + 1;
    }
    int rc = PySys_SetObject("path", list);
    Py_DECREF(list);
    return rc;
}

/* Empty sys.path_importer_cache of the current interpreter, as a fresh
 * interpreter has it: the path finders made while the preload was imported
 * cached directory listings, and the next import makes new ones, which
 * read the directories as they are now. (Not importlib.invalidate_caches():
 * it imports importlib.metadata, tens of milliseconds.) 0, or -1 with an
 * exception set. */
static int sa_invalidate_import_caches(void)
{
    PyObject *cache = PySys_GetObject("path_importer_cache"); /* borrowed */
    if (cache != NULL && PyDict_Check(cache))
        PyDict_Clear(cache);
    return 0;
}

/* Flush sys.stdout and sys.stderr of the current interpreter; errors are
 * ignored (a closed stream must not turn into an outcome). */
static void sa_flush_std_streams(void)
{
    const char *names[] = {"stdout", "stderr"};
    for (int i = 0; i < 2; i++) {
        PyObject *f = PySys_GetObject(names[i]); /* borrowed */
        if (f != NULL && f != Py_None) {
            PyObject *r = PyObject_CallMethod(f, "flush", NULL);
            Py_XDECREF(r);
        }
        PyErr_Clear();
    }
}

/* Run the actor's code in its interpreter; returns the raised exception
 * (new reference) or NULL when the code ran to the end. */
static PyObject *sa_actor_run_code(sa_actor_t *a)
{
    PyObject *main = NULL, *globals, *co = NULL, *res = NULL;
    if (a->interrupt_pending) {
        PyObject *dict = PyInterpreterState_GetDict(PyInterpreterState_Get());
        PyObject *exc = NULL;
        if (dict && PyDict_GetItemStringRef(dict, SA_INTERRUPTED_KEY, &exc) > 0) {
            PyErr_SetString(exc, "interrupted before it started");
            Py_DECREF(exc);
            a->interrupts++;
        }
        goto error;
    }
    main = PyImport_AddModuleRef("__main__");
    if (main == NULL)
        goto error;
    globals = PyModule_GetDict(main);
    co = Py_CompileString(a->code, a->label, Py_file_input);
    if (co == NULL)
        goto error;
    res = PyEval_EvalCode(co, globals, globals);
    if (res == NULL)
        goto error;
    Py_DECREF(res);
    Py_DECREF(co);
    Py_DECREF(main);
    return NULL;
error:
    Py_XDECREF(co);
    Py_XDECREF(main);
    if (!PyErr_Occurred())
        PyErr_SetString(PyExc_SystemError, "actor failed without an exception");
    return PyErr_GetRaisedException();
}

static void *sa_actor_thread(void *arg)
{
    sa_actor_t *a = arg;
    sa_current = a;
    a->native_id = PyThread_get_thread_native_id();
    if (a->warm && !sa_warm_settle(a)) {
        sa_current = NULL;
        sa_warm_thread_exit(a); /* retired before it made anything */
        return NULL;
    }

    PyInterpreterConfig cfg;
    if (a->shared_gil) {
        cfg = (PyInterpreterConfig){
            .use_main_obmalloc = 1,
            .allow_fork = 0,
            .allow_exec = 0,
            .allow_threads = 1,
            .allow_daemon_threads = 0,
            .check_multi_interp_extensions = 0,
            .gil = PyInterpreterConfig_SHARED_GIL,
        };
    }
    else {
        cfg = (PyInterpreterConfig){
            .use_main_obmalloc = 0,
            .allow_fork = 0,
            .allow_exec = 0,
            .allow_threads = 1,
            .allow_daemon_threads = 0,
            .check_multi_interp_extensions = 1,
            .gil = PyInterpreterConfig_OWN_GIL,
        };
    }

    PyThreadState *ts = NULL;
    PyStatus status = Py_NewInterpreterFromConfig(&ts, &cfg);
    if (PyStatus_Exception(status) || ts == NULL) {
        const char *m = status.err_msg ? status.err_msg : "unknown reason";
        a->outcome = SA_OUTCOME_START_FAILED;
        a->err_type = sa_rawdup("RuntimeError", 12);
        a->err_msg = sa_rawdup(m, strlen(m));
        a->err_tb = sa_rawdup("", 0);
        pthread_mutex_lock(&a->lock);
        atomic_store(&a->lifecycle, SA_ACTOR_ENDING);
        pthread_mutex_unlock(&a->lock);
        goto done;
    }
    atomic_fetch_add(&sa_counters.interpreters, 1);
    PyInterpreterState *interp = PyThreadState_GetInterpreter(ts);
    a->interp_id = PyInterpreterState_GetID(interp);
    a->py_ident = PyThread_get_thread_ident();

    /* sys.path first, then _ext itself, so that the interrupt exception
     * type is registered before the interpreter is published. */
    PyObject *exc = NULL;
    PyObject *ext = NULL;
    if (sa_actor_set_sys_path(a) < 0 || (ext = PyImport_ImportModule("subactor._ext")) == NULL ||
        sa_install_unraisable_hook(ext) < 0)
        exc = PyErr_GetRaisedException();
    Py_XDECREF(ext);

    if (a->warm) {
        /* A warm interpreter waits here until an actor takes it. Retired (or
         * unable to preload), it ends without having run anything. */
        int taken = sa_warm_park(a, exc); /* it takes exc (a failed start) */
        exc = NULL;
        if (!taken) {
            errno = 0;
            if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), SA_ENDING_NICE) < 0)
                errno = 0;
            sa_end_interpreter(ts);
            atomic_fetch_sub(&sa_counters.interpreters, 1);
            sa_current = NULL;
            sa_warm_thread_exit(a);
            return NULL;
        }
        /* Taken: what a cold start gives the actor's code, again. sys.path
         * anew (the preload ran with the same one; this undoes anything it
         * did to the list), and the import system's caches dropped, so that
         * a module file made since the interpreter warmed up is found as
         * it would be by a fresh interpreter. */
        if (sa_actor_set_sys_path(a) < 0 || sa_invalidate_import_caches() < 0)
            exc = PyErr_GetRaisedException();
    }

    /* Publish: from here on interrupt() acts on this interpreter. */
    PyThreadState *saved = PyEval_SaveThread();
    pthread_mutex_lock(&a->lock);
    a->interp = interp;
    atomic_store(&a->lifecycle, SA_ACTOR_RUNNING);
    pthread_mutex_unlock(&a->lock);
    PyEval_RestoreThread(saved);

    if (exc == NULL)
        exc = sa_actor_run_code(a);

    /* Unpublish: once ENDING, interrupt() returns 0 without touching this
     * interpreter, so no temporary thread state can race Py_EndInterpreter. */
    saved = PyEval_SaveThread();
    pthread_mutex_lock(&a->lock);
    a->interp = NULL;
    atomic_store(&a->lifecycle, SA_ACTOR_ENDING);
    pthread_mutex_unlock(&a->lock);
    PyEval_RestoreThread(saved);
    /* An interrupt that arrived after the code finished is dropped. */
    PyThreadState_SetAsyncExc(a->py_ident, NULL);
    /* What is left (recording the outcome, ending the interpreter: tens of
     * milliseconds of CPU for one that imported trio) is background work.
     * When many actors end at once it must not starve the threads that
     * still run code, the parent's event loop first among them: this
     * thread gives up some of its priority (raising one's own nice value
     * needs no privilege; it only matters when the cores are all busy). */
    errno = 0;
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), SA_ENDING_NICE) < 0)
        errno = 0; /* a lower priority is a nicety; running without it is fine */

    if (exc == NULL) {
        a->outcome = SA_OUTCOME_OK;
    }
    else {
        PyObject *dict = PyInterpreterState_GetDict(interp);
        PyObject *itype = NULL;
        int is_interrupt = 0;
        if (dict && PyDict_GetItemStringRef(dict, SA_INTERRUPTED_KEY, &itype) > 0) {
            is_interrupt = PyErr_GivenExceptionMatches(exc, itype);
            Py_DECREF(itype);
        }
        PyErr_Clear();
        a->outcome = is_interrupt ? SA_OUTCOME_INTERRUPTED : SA_OUTCOME_ERROR;
        sa_record_exception(a, exc);
        /* Before anything closes them cleanly (the teardown, or dropping
         * `exc`, whose traceback may hold the last reference to an end): a
         * peer of an actor that failed must learn it failed, not see
         * end-of-stream. The error is recorded first, so it can tell why. */
        sa_chan_break_owned_by(a->id);
        Py_DECREF(exc);
    }
    sa_flush_std_streams();
    sa_end_interpreter(ts);
    atomic_fetch_sub(&sa_counters.interpreters, 1);
    /* Ends the code left open were closed by the teardown; this catches any
     * that were not (a leaked end object). */
    sa_chan_close_owned_by(a->id);
    /* An actor that ended before it attached its own channel (interrupted
     * while it started) leaves side 1 unattached; what the parent queued
     * toward it would keep the channel alive for good. */
    if (a->chan_id != 0)
        sa_chan_close_unattached(a->chan_id, 1);

done:
    a->ended_ns = sa_now_ns();
    atomic_store(&a->lifecycle, SA_ACTOR_EXITED);
    atomic_store(&a->done, 1);
    uint64_t one = 1;
    /* The parent may have no event loop any more; a write to an eventfd
     * still succeeds. It can only fail on overflow, which one write can't. */
    ssize_t w = write(a->done_fd, &one, sizeof one);
    (void)w;
    sa_current = NULL;
    atomic_fetch_sub(&sa_counters.threads, 1);
    return NULL;
}

/* Create the thread of a fully initialised record and register it.
 * Returns 0 or a negative SA_ERR_* (errno set for SA_ERR_OS). */
static int sa_actor_start(sa_actor_t *a)
{
    /* The actor thread starts with asynchronous signals blocked, so the
     * kernel never picks it to deliver SIGINT and friends. */
    sigset_t old;
    sa_block_async_signals(&old);

    pthread_mutex_lock(&sa_registry_lock);
    atomic_fetch_add(&sa_counters.threads, 1);
    int rc = pthread_create(&a->thread, NULL, sa_actor_thread, a);
    if (rc == 0) {
        a->next = sa_registry_head;
        if (sa_registry_head)
            sa_registry_head->prev = a;
        sa_registry_head = a;
    }
    else {
        atomic_fetch_sub(&sa_counters.threads, 1);
    }
    pthread_mutex_unlock(&sa_registry_lock);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        errno = rc;
        return SA_ERR_OS;
    }
    return SA_OK;
}

int sa_actor_start_warm(sa_actor_t *a)
{
    sigset_t old;
    sa_block_async_signals(&old);
    atomic_fetch_add(&sa_counters.threads, 1);
    int rc = pthread_create(&a->thread, NULL, sa_actor_thread, a);
    if (rc != 0)
        atomic_fetch_sub(&sa_counters.threads, 1);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        errno = rc;
        return SA_ERR_OS;
    }
    return SA_OK;
}

void sa_actor_register(sa_actor_t *a)
{
    pthread_mutex_lock(&sa_registry_lock);
    a->next = sa_registry_head;
    if (sa_registry_head)
        sa_registry_head->prev = a;
    sa_registry_head = a;
    pthread_mutex_unlock(&sa_registry_lock);
}

uint64_t sa_actor_new_id(void)
{
    return atomic_fetch_add(&sa_next_id, 1);
}

sa_actor_t *sa_actor_alloc(const char *sys_path, size_t sys_path_len)
{
    sa_actor_t *a = PyMem_RawCalloc(1, sizeof *a);
    if (a == NULL)
        return NULL;
    atomic_fetch_add(&sa_counters.actors, 1);
    a->done_fd = -1;
    a->wake_fd = -1;
    a->interp_id = -1;
    pthread_mutex_init(&a->lock, NULL);
    a->id = sa_actor_new_id();
    a->started_ns = sa_now_ns();
    atomic_init(&a->refs, 2);
    a->name = sa_rawdup("(warm)", 6);
    a->label = sa_rawdup("<warm interpreter>", 18);
    a->code = sa_rawdup("", 0);
    a->input = sa_rawdup("", 0);
    a->sys_path = PyMem_RawMalloc(sys_path_len ? sys_path_len : 1);
    if (!a->name || !a->label || !a->code || !a->input || !a->sys_path) {
        sa_actor_free(a);
        return NULL;
    }
    if (sys_path_len)
        memcpy(a->sys_path, sys_path, sys_path_len);
    else
        a->sys_path[0] = '\0';
    a->sys_path_len = sys_path_len;
    a->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    a->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (a->done_fd < 0 || a->wake_fd < 0) {
        int e = errno;
        sa_actor_free(a);
        errno = e;
        return NULL;
    }
    return a;
}

/* ---------------------------------------------------------------------- */
/* The Python handle: Actor                                                */

typedef struct {
    PyObject_HEAD
    sa_actor_t *a; /* one reference to the record */
} SubintHandleObject;

static const char *sa_state_name(sa_actor_t *a)
{
    if (atomic_load(&a->abandoned) && !atomic_load(&a->done))
        return "abandoned";
    switch (atomic_load(&a->lifecycle)) {
    case SA_ACTOR_STARTING: return "starting";
    case SA_ACTOR_RUNNING: return "running";
    case SA_ACTOR_ENDING: return "ending";
    default: break;
    }
    switch (a->outcome) {
    case SA_OUTCOME_OK: return "exited-ok";
    case SA_OUTCOME_INTERRUPTED: return "interrupted";
    default: return "exited-error";
    }
}

static PyObject *sa_actor_info(sa_actor_t *a)
{
    int64_t end = atomic_load(&a->done) ? a->ended_ns : sa_now_ns();
    return Py_BuildValue(
        "{s:K,s:s,s:s,s:s,s:L,s:k,s:d}",
        "id", (unsigned long long)a->id,
        "name", a->name,
        "state", sa_state_name(a),
        "running", a->label,
        "interp_id", (long long)a->interp_id,
        "thread_id", a->native_id,
        "age", (double)(end - a->started_ns) / 1e9);
}

static void SubintHandle_dealloc(SubintHandleObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (self->a != NULL) {
        sa_actor_decref(self->a);
        self->a = NULL;
        sa_registry_reap();
    }
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static int SubintHandle_traverse(SubintHandleObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static PyObject *SubintHandle_fileno(SubintHandleObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLong(self->a->done_fd);
}

static PyObject *SubintHandle_interrupt(SubintHandleObject *self, PyObject *Py_UNUSED(ignored))
{
    int r = sa_actor_request_interrupt(self->a);
    if (r == SA_ERR_OS)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyBool_FromLong(r);
}

static PyObject *SubintHandle_cancel(SubintHandleObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(sa_actor_request_cancel(self->a));
}

static PyObject *SubintHandle_wait(SubintHandleObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"timeout", NULL};
    PyObject *tobj = Py_None;
    int64_t ns;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:wait", kwlist, &tobj) ||
        sa_timeout_arg(tobj, "wait() timeout", &ns) < 0)
        return NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = sa_actor_wait(self->a, ns);
    Py_END_ALLOW_THREADS
    if (rc == SA_ERR_OS)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyBool_FromLong(rc == SA_OK);
}

/* Mark the actor abandoned and warn; the thread is left to run, the record
 * is never freed while it does. Returns -1 if the warning raised. */
static int sa_abandon(sa_actor_state_t *st, sa_actor_t *a)
{
    if (atomic_load(&a->done) || atomic_exchange(&a->abandoned, 1))
        return 0;
    atomic_fetch_add(&sa_counters.abandoned, 1);
    /* Its peers must not wait for it any more. */
    sa_chan_break_owned_by(a->id);
    return PyErr_WarnFormat(
        st->AbandonedWarning, 1,
        "actor '%s' (interpreter %lld) abandoned while running %s: it did not end by its deadline",
        a->name, (long long)a->interp_id, a->label);
}

static PyObject *SubintHandle_join(SubintHandleObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"timeout", "abandon", NULL};
    PyObject *tobj = Py_None;
    int abandon = 1;
    int64_t ns;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|Op:join", kwlist, &tobj, &abandon) ||
        sa_timeout_arg(tobj, "join() timeout", &ns) < 0)
        return NULL;
    sa_actor_t *a = self->a;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = sa_actor_wait(a, ns);
    if (rc == SA_OK && ns == 0) {
        /* join(0): never waits, not even for a done thread to exit (the
         * event loop's ladder calls it); the registry frees it later. */
        pthread_mutex_lock(&sa_registry_lock);
        sa_actor_tryjoin_locked(a);
        pthread_mutex_unlock(&sa_registry_lock);
    }
    else if (rc == SA_OK) {
        sa_actor_join(a);
    }
    Py_END_ALLOW_THREADS
    if (rc == SA_ERR_OS)
        return PyErr_SetFromErrno(PyExc_OSError);
    if (rc == SA_OK)
        Py_RETURN_TRUE;
    if (abandon) {
        sa_state_t *st = sa_state_from_type(Py_TYPE(self));
        if (st == NULL || sa_abandon(&st->actor, a) < 0)
            return NULL;
    }
    Py_RETURN_FALSE;
}

static PyObject *SubintHandle_abandon(SubintHandleObject *self, PyObject *Py_UNUSED(ignored))
{
    sa_state_t *st = sa_state_from_type(Py_TYPE(self));
    if (st == NULL)
        return NULL;
    if (atomic_load(&self->a->done))
        Py_RETURN_FALSE;
    if (sa_abandon(&st->actor, self->a) < 0)
        return NULL;
    Py_RETURN_TRUE;
}

static PyObject *SubintHandle_outcome(SubintHandleObject *self, PyObject *Py_UNUSED(ignored))
{
    sa_actor_t *a = self->a;
    if (!atomic_load(&a->done)) {
        PyErr_Format(PyExc_RuntimeError, "actor %s has not finished", a->name);
        return NULL;
    }
    switch (a->outcome) {
    case SA_OUTCOME_OK:
        if (!a->has_result)
            return Py_BuildValue("(sO)", "ok", Py_None);
        return Py_BuildValue("(sy#)", "ok", a->result, (Py_ssize_t)a->result_len);
    case SA_OUTCOME_INTERRUPTED:
    case SA_OUTCOME_ERROR:
    case SA_OUTCOME_START_FAILED:
    default:
        return Py_BuildValue(
            "(ssss)",
            a->outcome == SA_OUTCOME_INTERRUPTED ? "interrupted"
            : a->outcome == SA_OUTCOME_START_FAILED ? "start-failed" : "error",
            a->err_type, a->err_msg, a->err_tb);
    }
}

static PyObject *SubintHandle_info(SubintHandleObject *self, PyObject *Py_UNUSED(ignored))
{
    return sa_actor_info(self->a);
}

static PyObject *SubintHandle_repr(SubintHandleObject *self)
{
    return PyUnicode_FromFormat("<SubintHandle %s id=%llu %s>", self->a->name,
                                (unsigned long long)self->a->id, sa_state_name(self->a));
}

static PyObject *SubintHandle_get_id(SubintHandleObject *self, void *Py_UNUSED(c))
{
    return PyLong_FromUnsignedLongLong(self->a->id);
}
static PyObject *SubintHandle_get_name(SubintHandleObject *self, void *Py_UNUSED(c))
{
    return PyUnicode_FromString(self->a->name);
}
static PyObject *SubintHandle_get_state(SubintHandleObject *self, void *Py_UNUSED(c))
{
    return PyUnicode_FromString(sa_state_name(self->a));
}
static PyObject *SubintHandle_get_done(SubintHandleObject *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(atomic_load(&self->a->done));
}
static PyObject *SubintHandle_get_interp_id(SubintHandleObject *self, void *Py_UNUSED(c))
{
    return PyLong_FromLongLong(self->a->interp_id);
}
static PyObject *SubintHandle_get_interrupts(SubintHandleObject *self, void *Py_UNUSED(c))
{
    return PyLong_FromLong(self->a->interrupts);
}

static PyMethodDef SubintHandle_methods[] = {
    {"fileno", (PyCFunction)SubintHandle_fileno, METH_NOARGS,
     "fileno() -> int\n\nAn eventfd that becomes readable (and stays so) when the actor is done."},
    {"interrupt", (PyCFunction)SubintHandle_interrupt, METH_NOARGS,
     "interrupt() -> bool\n\nAsk for ActorInterrupted to be raised in the actor's running code, and\n"
     "return at once: a helper thread delivers it as soon as the actor's GIL is\n"
     "free (an actor inside one long C call takes it when that call returns).\n"
     "False if the actor is ending or gone (nothing is done then)."},
    {"cancel", (PyCFunction)SubintHandle_cancel, METH_NOARGS,
     "cancel() -> bool\n\nAsk for a cooperative cancel, out of band: sets the actor's cancel flag\n"
     "and wakes it through its wake descriptor. False if it is done."},
    {"wait", (PyCFunction)(void (*)(void))SubintHandle_wait, METH_VARARGS | METH_KEYWORDS,
     "wait(timeout=None) -> bool\n\nBlock (GIL released) until the actor is done or the timeout passes."},
    {"join", (PyCFunction)(void (*)(void))SubintHandle_join, METH_VARARGS | METH_KEYWORDS,
     "join(timeout=None, abandon=True) -> bool\n\nWait until done and join its thread. When the timeout passes first\n"
     "and abandon is true, the actor is marked abandoned and a warning names it."},
    {"abandon", (PyCFunction)SubintHandle_abandon, METH_NOARGS,
     "abandon() -> bool\n\nMark a running actor abandoned (with a warning). False if it is done."},
    {"outcome", (PyCFunction)SubintHandle_outcome, METH_NOARGS,
     "outcome() -> tuple\n\n('ok', result_bytes_or_None) or (kind, type_name, message, traceback_text)\n"
     "with kind one of 'error', 'interrupted', 'start-failed'."},
    {"info", (PyCFunction)SubintHandle_info, METH_NOARGS, "info() -> dict\n\nName, state, interpreter id, thread id, age."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef SubintHandle_getset[] = {
    {"id", (getter)SubintHandle_get_id, NULL, "process-unique actor id", NULL},
    {"name", (getter)SubintHandle_get_name, NULL, "actor name", NULL},
    {"state", (getter)SubintHandle_get_state, NULL, "lifecycle state", NULL},
    {"done", (getter)SubintHandle_get_done, NULL, "True once the actor's thread has finished its work", NULL},
    {"interp_id", (getter)SubintHandle_get_interp_id, NULL, "interpreter id (-1 before it exists)", NULL},
    {"interrupts", (getter)SubintHandle_get_interrupts, NULL, "interrupts delivered so far", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot SubintHandle_slots[] = {
    {Py_tp_dealloc, SubintHandle_dealloc},
    {Py_tp_traverse, SubintHandle_traverse},
    {Py_tp_methods, SubintHandle_methods},
    {Py_tp_getset, SubintHandle_getset},
    {Py_tp_repr, SubintHandle_repr},
    {Py_tp_doc, "Parent-side handle of a subinterpreter actor; made by spawn()."},
    {0, NULL},
};

static PyType_Spec SubintHandle_spec = {
    .name = "subactor._ext.SubintHandle",
    .basicsize = sizeof(SubintHandleObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION |
             Py_TPFLAGS_IMMUTABLETYPE,
    .slots = SubintHandle_slots,
};

/* ---------------------------------------------------------------------- */
/* Module functions                                                        */

/* Move what makes `from` an actor (its id, name, label, code, input,
 * channel, start time) into the warm record `w`; `from` is left with empty
 * fields to be freed. Both are owned by the caller. Can't fail. */
static void sa_actor_adopt(sa_actor_t *w, sa_actor_t *from)
{
#define SA_SWAP(field) do { __typeof__(w->field) t_ = w->field; w->field = from->field; from->field = t_; } while (0)
    SA_SWAP(id);
    SA_SWAP(name);
    SA_SWAP(label);
    SA_SWAP(code);
    SA_SWAP(input);
    SA_SWAP(input_len);
#undef SA_SWAP
    w->chan_id = from->chan_id;
    w->started_ns = from->started_ns;
}

char *sa_actor_pack_paths(PyObject *paths, size_t *len_out)
{
    PyObject *seq = PySequence_Fast(paths, "sys_path must be a sequence of str");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    size_t total = 1;
    PyObject **items = PySequence_Fast_ITEMS(seq);
    PyObject *encoded = PyList_New(n);
    if (encoded == NULL)
        goto error;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyUnicode_Check(items[i])) {
            PyErr_Format(PyExc_TypeError, "sys_path[%zd] must be str, not %.100s", i, Py_TYPE(items[i])->tp_name);
            goto error;
        }
        PyObject *b = PyUnicode_EncodeFSDefault(items[i]);
        if (b == NULL)
            goto error;
        PyList_SET_ITEM(encoded, i, b);
        total += (size_t)PyBytes_GET_SIZE(b) + 2; /* "" becomes "." */
    }
    char *buf = PyMem_RawMalloc(total);
    if (buf == NULL) {
        PyErr_NoMemory();
        goto error;
    }
    size_t off = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *b = PyList_GET_ITEM(encoded, i);
        size_t bl = (size_t)PyBytes_GET_SIZE(b);
        if (memchr(PyBytes_AS_STRING(b), '\0', bl))
            continue; /* NUL can't be in a path */
        if (bl == 0) {
            /* "" means the current directory; it can't be stored as "" (that
             * ends the list), so store "." which Python treats the same. */
            memcpy(buf + off, ".", 2);
            off += 2;
            continue;
        }
        memcpy(buf + off, PyBytes_AS_STRING(b), bl + 1);
        off += bl + 1;
    }
    buf[off++] = '\0';
    *len_out = off;
    Py_DECREF(encoded);
    Py_DECREF(seq);
    return buf;
error:
    Py_XDECREF(encoded);
    Py_DECREF(seq);
    return NULL;
}

static PyObject *sa_spawn(PyObject *mod, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"code", "name", "label", "input", "shared_gil", "sys_path", "chan", "warm", NULL};
    const char *code, *name = "actor", *label = NULL;
    Py_ssize_t code_len;
    Py_buffer input = {0};
    int shared_gil = 0, warm = 0;
    PyObject *sys_path = NULL;
    unsigned long long chan_id = 0;
    sa_actor_t *a = NULL;
    SubintHandleObject *self = NULL;
    sa_state_t *st = sa_state(mod);

    if (!PyArg_ParseTupleAndKeywords(args, kw, "s#|$sz" "y*pOKp:spawn", kwlist, &code, &code_len, &name,
                                     &label, &input, &shared_gil, &sys_path, &chan_id, &warm))
        return NULL;
    if (sys_path == NULL || sys_path == Py_None) {
        sys_path = PySys_GetObject("path"); /* borrowed */
        if (sys_path == NULL) {
            PyErr_SetString(PyExc_RuntimeError, "sys.path is missing");
            goto error;
        }
    }
    a = PyMem_RawCalloc(1, sizeof *a);
    if (a == NULL) {
        PyErr_NoMemory();
        goto error;
    }
    atomic_fetch_add(&sa_counters.actors, 1);
    a->done_fd = -1;
    a->wake_fd = -1;
    a->interp_id = -1;
    pthread_mutex_init(&a->lock, NULL);
    a->id = atomic_fetch_add(&sa_next_id, 1);
    a->shared_gil = shared_gil;
    a->chan_id = chan_id;
    a->started_ns = sa_now_ns();
    atomic_init(&a->refs, 2); /* the registry + this handle */
    if (label == NULL)
        label = "<actor code>";
    a->name = sa_rawdup(name, strlen(name));
    a->label = sa_rawdup(label, strlen(label));
    a->code = sa_rawdup(code, (size_t)code_len);
    a->input = sa_rawdup(input.buf ? input.buf : "", input.buf ? (size_t)input.len : 0);
    a->input_len = input.buf ? (size_t)input.len : 0;
    if (!a->name || !a->label || !a->code || !a->input) {
        PyErr_NoMemory();
        goto error;
    }
    if (strlen(a->code) != (size_t)code_len) {
        PyErr_SetString(PyExc_ValueError, "code must not contain NUL characters");
        goto error;
    }
    a->sys_path = sa_actor_pack_paths(sys_path, &a->sys_path_len);
    if (a->sys_path == NULL)
        goto error;
    a->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    a->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (a->done_fd < 0 || a->wake_fd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        goto error;
    }
    self = PyObject_GC_New(SubintHandleObject, st->actor.HandleType);
    if (self == NULL)
        goto error;
    self->a = NULL;
    PyObject_GC_Track(self);
    /* Reaping here keeps records of forgotten, finished actors from piling up. */
    sa_registry_reap();
    sa_actor_t *w = (warm && !shared_gil) ? sa_warm_take(a->sys_path, a->sys_path_len) : NULL;
    if (w != NULL) {
        /* A warm interpreter takes this actor's place: the record built
         * above lends it what makes it this actor, and is freed. */
        sa_actor_adopt(w, a);
        sa_actor_free(a);
        a = w;
        sa_actor_register(a);
        sa_warm_give(a);
    }
    else {
        int rc = sa_actor_start(a);
        if (rc < 0) {
            sa_raise(st, rc, "pthread_create");
            goto error;
        }
    }
    self->a = a;
    PyBuffer_Release(&input);
    return (PyObject *)self;
error:
    if (input.obj)
        PyBuffer_Release(&input);
    Py_XDECREF(self);
    if (a != NULL)
        sa_actor_free(a);
    return NULL;
}

static PyObject *sa_list_actors(PyObject *Py_UNUSED(mod), PyObject *Py_UNUSED(args))
{
    sa_registry_reap();
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    pthread_mutex_lock(&sa_registry_lock);
    for (sa_actor_t *a = sa_registry_head; a != NULL; a = a->next) {
        if (atomic_load(&a->done) && !atomic_load(&a->abandoned))
            continue; /* finished: not live */
        PyObject *info = sa_actor_info(a);
        if (info == NULL || PyList_Append(out, info) < 0) {
            Py_XDECREF(info);
            Py_CLEAR(out);
            break;
        }
        Py_DECREF(info);
    }
    pthread_mutex_unlock(&sa_registry_lock);
    return out;
}

static PyObject *sa_reap(PyObject *Py_UNUSED(mod), PyObject *Py_UNUSED(args))
{
    return PyLong_FromLong(sa_registry_reap());
}

static PyObject *sa_py_current_actor(PyObject *Py_UNUSED(mod), PyObject *Py_UNUSED(args))
{
    sa_actor_t *a = sa_current;
    if (a == NULL)
        Py_RETURN_NONE;
    return Py_BuildValue("{s:K,s:s}", "id", (unsigned long long)a->id, "name", a->name);
}

static PyObject *sa_py_wake_fileno(PyObject *Py_UNUSED(mod), PyObject *Py_UNUSED(args))
{
    sa_actor_t *a = sa_current;
    if (a == NULL)
        Py_RETURN_NONE;
    return PyLong_FromLong(a->wake_fd);
}

static PyObject *sa_py_cancel_requested(PyObject *Py_UNUSED(mod), PyObject *Py_UNUSED(args))
{
    sa_actor_t *a = sa_current;
    return PyBool_FromLong(a != NULL && atomic_load(&a->cancel_requested));
}

static PyObject *sa_py_actor_input(PyObject *Py_UNUSED(mod), PyObject *Py_UNUSED(args))
{
    sa_actor_t *a = sa_current;
    if (a == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "actor_input() called outside an actor");
        return NULL;
    }
    return PyBytes_FromStringAndSize(a->input, (Py_ssize_t)a->input_len);
}

static PyObject *sa_py_set_result(PyObject *Py_UNUSED(mod), PyObject *arg)
{
    sa_actor_t *a = sa_current;
    if (a == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "set_result() called outside an actor");
        return NULL;
    }
    Py_buffer b;
    if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0)
        return NULL;
    char *copy = sa_rawdup(b.buf, (size_t)b.len);
    PyBuffer_Release(&b);
    if (copy == NULL)
        return PyErr_NoMemory();
    PyMem_RawFree(a->result);
    a->result = copy;
    a->result_len = (size_t)b.len;
    a->has_result = 1;
    Py_RETURN_NONE;
}

/* sys.exit() stand-in for the main interpreter: notes the exit code so that
 * a process that must skip finalisation (because an actor was abandoned)
 * still exits with the code the program asked for. */
static PyObject *sa_py_note_exit(PyObject *Py_UNUSED(mod), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "exit expected at most 1 argument");
        return NULL;
    }
    PyObject *code = nargs ? args[0] : Py_None;
    int hint = 1;
    if (code == Py_None)
        hint = 0;
    else if (PyLong_Check(code)) {
        int overflow;
        long v = PyLong_AsLongAndOverflow(code, &overflow);
        hint = overflow ? -1 : (int)(v & 0xff);
        PyErr_Clear();
    }
    atomic_store(&sa_exit_code_hint, hint);
    PyErr_SetObject(PyExc_SystemExit, code);
    return NULL;
}

/* How many actors are live (not done and not abandoned) and how many are
 * not done (abandoned ones included). Can't fail. */
static void sa_registry_count(int *live, int *running)
{
    *live = *running = 0;
    pthread_mutex_lock(&sa_registry_lock);
    for (sa_actor_t *a = sa_registry_head; a != NULL; a = a->next) {
        if (atomic_load(&a->done))
            continue;
        (*running)++;
        if (!atomic_load(&a->abandoned))
            (*live)++;
    }
    pthread_mutex_unlock(&sa_registry_lock);
}

/* _live_handles(): a new handle for every live actor (not done, not
 * abandoned), for the ladder at exit: actors whose handles the program
 * dropped are still ended through it. */
static PyObject *sa_py_live_handles(PyObject *mod, PyObject *Py_UNUSED(args))
{
    sa_state_t *st = sa_state(mod);
    sa_registry_reap();
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    for (;;) {
        /* One record at a time: the handle is made without the registry lock
         * (allocating may run the GC, which may drop other handles). */
        sa_actor_t *pick = NULL;
        pthread_mutex_lock(&sa_registry_lock);
        for (sa_actor_t *a = sa_registry_head; a != NULL; a = a->next) {
            if (atomic_load(&a->done) || atomic_load(&a->abandoned))
                continue;
            int seen = 0;
            for (Py_ssize_t i = 0; i < PyList_GET_SIZE(out) && !seen; i++)
                seen = ((SubintHandleObject *)PyList_GET_ITEM(out, i))->a == a;
            if (!seen) {
                atomic_fetch_add(&a->refs, 1);
                pick = a;
                break;
            }
        }
        pthread_mutex_unlock(&sa_registry_lock);
        if (pick == NULL)
            return out;
        SubintHandleObject *h = PyObject_GC_New(SubintHandleObject, st->actor.HandleType);
        if (h == NULL) {
            sa_actor_decref(pick);
            Py_DECREF(out);
            return NULL;
        }
        h->a = pick;
        PyObject_GC_Track(h);
        int rc = PyList_Append(out, (PyObject *)h);
        Py_DECREF(h);
        if (rc < 0) {
            Py_DECREF(out);
            return NULL;
        }
    }
}

/* atexit hook of the main interpreter (registered when _ext is imported
 * there, so it runs after every hook registered later). Finished actors are
 * reaped. If any actor is still live, or the ladder module was imported
 * (which also ends process actors), subactor._ladder.at_exit() takes them
 * down the ladder with its exit deadlines: cancel, interrupt, abandon. The
 * ladder is one piece of Python code for every caller; if it cannot run,
 * every live actor is abandoned here, so that the process still ends.
 * Then, if an abandoned actor is still alive, the interpreter cannot
 * finalise (CPython would try to end that interpreter while its thread runs
 * it), so the process flushes its streams and leaves with _exit() and the
 * exit code the program had. */
static PyObject *sa_py_shutdown_at_exit(PyObject *mod, PyObject *Py_UNUSED(args))
{
    sa_state_t *st = sa_state(mod);
    sa_registry_reap();
    int live, running;
    sa_registry_count(&live, &running);
    PyObject *loaded = NULL;
    PyObject *modules = PyImport_GetModuleDict(); /* borrowed */
    if (modules != NULL && PyDict_GetItemStringRef(modules, "subactor._ladder", &loaded) < 0)
        PyErr_Clear();
    if (live > 0 || loaded != NULL) {
        PyObject *ladder = PyImport_ImportModule("subactor._ladder");
        PyObject *r = ladder ? PyObject_CallMethod(ladder, "at_exit", NULL) : NULL;
        Py_XDECREF(ladder);
        if (r == NULL) {
            PyErr_WriteUnraisable(mod);
            PyObject *handles = sa_py_live_handles(mod, NULL);
            if (handles == NULL)
                PyErr_WriteUnraisable(mod);
            for (Py_ssize_t i = 0; handles && i < PyList_GET_SIZE(handles); i++)
                if (sa_abandon(&st->actor, ((SubintHandleObject *)PyList_GET_ITEM(handles, i))->a) < 0)
                    PyErr_WriteUnraisable(mod);
            Py_XDECREF(handles);
        }
        Py_XDECREF(r);
    }
    Py_XDECREF(loaded);
    /* The reserve of warm interpreters ends with the process: each ends its
     * interpreter on its own thread (one that is still importing its
     * preload finishes that first), by a deadline. One still in Python past
     * it counts as a running actor: finalising would race it. */
    int warm_done;
    Py_BEGIN_ALLOW_THREADS
    warm_done = sa_warm_drain((int64_t)SA_WARM_EXIT_DEADLINE_S * 1000000000);
    Py_END_ALLOW_THREADS
    sa_registry_reap();
    sa_registry_count(&live, &running);
    if (running == 0 && warm_done)
        Py_RETURN_NONE;

    int code = 0;
    PyObject *last = PySys_GetObject("last_exc"); /* borrowed; set by an unhandled error */
    if (last != NULL && last != Py_None) {
        if (PyErr_GivenExceptionMatches(last, PyExc_KeyboardInterrupt))
            code = 128 + SIGINT;
        else
            code = 1;
    }
    else if (atomic_load(&sa_exit_code_hint) >= 0) {
        code = atomic_load(&sa_exit_code_hint);
    }
    sa_flush_std_streams();
    fflush(NULL);
    if (code == 128 + SIGINT) {
        /* As CPython does for an unhandled KeyboardInterrupt. */
        signal(SIGINT, SIG_DFL);
        kill(getpid(), SIGINT);
    }
    _exit(code);
}

/* _ending_stats(): the ending gate's figures, for tests and benchmarks. */
static PyObject *sa_py_ending_stats(PyObject *Py_UNUSED(mod), PyObject *Py_UNUSED(args))
{
    pthread_once(&sa_end_once, sa_end_init);
    pthread_mutex_lock(&sa_end_lock);
    long waited = sa_end_waited;
    int width = sa_end_width;
    pthread_mutex_unlock(&sa_end_lock);
    return Py_BuildValue("{s:i,s:l}", "width", width, "waited", waited);
}

static PyMethodDef sa_actor_functions[] = {
    {"spawn", (PyCFunction)(void (*)(void))sa_spawn, METH_VARARGS | METH_KEYWORDS,
     "spawn(code, *, name='actor', label=None, input=b'', shared_gil=False, sys_path=None, chan=0,\n"
     "      warm=False) -> SubintHandle\n\n"
     "Start an actor: a new thread that makes a subinterpreter (own GIL unless\n"
     "shared_gil), sets its sys.path (default: this interpreter's), imports\n"
     "subactor._ext, runs `code` in its __main__, ends the interpreter and exits.\n"
     "`chan` names the actor's own channel (side 1 is the actor's): if the actor\n"
     "ends without attaching it, that side is closed so nothing queued leaks.\n"
     "warm: take a parked interpreter of the reserve (warm_configure()) made\n"
     "with the same sys.path and environment, if there is one (own GIL only)."},
    {"list_actors", sa_list_actors, METH_NOARGS,
     "list_actors() -> list[dict]\n\nLive actors of the process: id, name, state, running, interp_id, thread_id, age."},
    {"reap", sa_reap, METH_NOARGS, "reap() -> int\n\nJoin and free finished actors that no handle refers to."},
    {"current_actor", sa_py_current_actor, METH_NOARGS,
     "current_actor() -> dict | None\n\nId and name of the actor this code runs in, None in a non-actor thread."},
    {"wake_fileno", sa_py_wake_fileno, METH_NOARGS,
     "wake_fileno() -> int | None\n\nIn an actor: the eventfd its parent writes on cancel() and interrupt().\n"
     "The actor's event loop watches it and drains it. None outside an actor."},
    {"cancel_requested", sa_py_cancel_requested, METH_NOARGS,
     "cancel_requested() -> bool\n\nIn an actor: True once its parent asked for a cooperative cancel."},
    {"actor_input", sa_py_actor_input, METH_NOARGS, "actor_input() -> bytes\n\nThe input given to spawn()."},
    {"set_result", sa_py_set_result, METH_O, "set_result(data: bytes-like)\n\nThe bytes outcome() returns to the parent."},
    {"_note_exit", (PyCFunction)(void (*)(void))sa_py_note_exit, METH_FASTCALL,
     "_note_exit(code=None)\n\nsys.exit() that also notes the code for a forced exit."},
    {"_shutdown_at_exit", sa_py_shutdown_at_exit, METH_NOARGS,
     "_shutdown_at_exit()\n\nThe exit hook: live actors go down subactor._ladder.at_exit(); _exit() if\n"
     "an abandoned one is still alive."},
    {"_live_handles", sa_py_live_handles, METH_NOARGS,
     "_live_handles() -> list[SubintHandle]\n\nA new handle for every live (not done, not abandoned) actor."},
    {"_unraisable", sa_py_unraisable, METH_O,
     "_unraisable(unraisable)\n\nAn actor's sys.unraisablehook: an ActorInterrupted that Python could\n"
     "only report (in a weakref callback, a __del__) is asked for again in\n"
     "this thread; anything else goes to sys.__unraisablehook__."},
    {"_ending_stats", sa_py_ending_stats, METH_NOARGS,
     "_ending_stats() -> dict\n\nThe ending gate: how many interpreters may end at once (width) and how\n"
     "many actor threads have had to wait for a turn so far (waited)."},
    {NULL, NULL, 0, NULL},
};

int sa_actor_module_init(PyObject *mod, sa_actor_state_t *st)
{
    st->HandleType = (PyTypeObject *)PyType_FromModuleAndSpec(mod, &SubintHandle_spec, NULL);
    if (st->HandleType == NULL || PyModule_AddType(mod, st->HandleType) < 0)
        return -1;
    st->ActorInterrupted = PyErr_NewExceptionWithDoc(
        "subactor._ext.ActorInterrupted",
        "Raised inside an actor by Actor.interrupt(). A BaseException, so that\n"
        "`except Exception` in the actor's code does not swallow it.",
        PyExc_BaseException, NULL);
    if (st->ActorInterrupted == NULL || PyModule_AddObjectRef(mod, "ActorInterrupted", st->ActorInterrupted) < 0)
        return -1;
    st->AbandonedWarning = PyErr_NewExceptionWithDoc(
        "subactor._ext.AbandonedActorWarning",
        "An actor did not end by its deadline and was abandoned.", PyExc_RuntimeWarning, NULL);
    if (st->AbandonedWarning == NULL ||
        PyModule_AddObjectRef(mod, "AbandonedActorWarning", st->AbandonedWarning) < 0)
        return -1;
    PyObject *idict = PyInterpreterState_GetDict(PyInterpreterState_Get());
    if (idict == NULL || PyDict_SetItemString(idict, SA_INTERRUPTED_KEY, st->ActorInterrupted) < 0)
        return -1;
    if (PyModule_AddFunctions(mod, sa_actor_functions) < 0 || sa_warm_module_init(mod) < 0)
        return -1;

    /* The main interpreter reaps, interrupts and, if it must, abandons its
     * actors at exit, and routes sys.exit() through _note_exit. */
    if (PyInterpreterState_Get() == PyInterpreterState_Main()) {
        PyObject *hook = PyObject_GetAttrString(mod, "_shutdown_at_exit");
        PyObject *atexit = hook ? PyImport_ImportModule("atexit") : NULL;
        PyObject *r = atexit ? PyObject_CallMethod(atexit, "register", "O", hook) : NULL;
        Py_XDECREF(atexit);
        Py_XDECREF(hook);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
        PyObject *note = PyObject_GetAttrString(mod, "_note_exit");
        if (note == NULL || PySys_SetObject("exit", note) < 0) {
            Py_XDECREF(note);
            return -1;
        }
        Py_DECREF(note);
    }
    return 0;
}

int sa_actor_state_traverse(sa_actor_state_t *st, visitproc visit, void *arg)
{
    Py_VISIT(st->HandleType);
    Py_VISIT(st->ActorInterrupted);
    Py_VISIT(st->AbandonedWarning);
    return 0;
}

void sa_actor_state_clear(sa_actor_state_t *st)
{
    Py_CLEAR(st->HandleType);
    Py_CLEAR(st->ActorInterrupted);
    Py_CLEAR(st->AbandonedWarning);
}
