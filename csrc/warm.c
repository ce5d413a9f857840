/* warm.c: the reserve of warm interpreters.
 *
 * Owns: the reserve (a list of warm records: actor records whose thread
 * made its interpreter exactly as a cold actor's does, set sys.path,
 * imported _ext and a preload of modules, and now waits to be given an
 * actor), its size, the key its interpreters are made for (the packed
 * sys.path), the preload list, and what it did (takes, misses, made,
 * retired, the last preload error).
 *
 * Lifecycle of a warm record:
 *   refill   a record is made and its thread started (sa_actor_start_warm),
 *            outside the registry: no listing, handle or ladder sees it
 *   thread   interpreter, sys.path, _ext (actor.c) -> the preload, one
 *            module at a time (PyImport_ImportModule: nothing of it lands in
 *            __main__), the retire flag read between modules -> PARKED:
 *            waits on sa_warm_cond, GIL released, in one-second slices
 *   take     spawn(warm=True), under sa_warm_lock: the first parked record
 *            made with the same sys.path and environment leaves the list;
 *            the parent moves the actor's fields into it, registers it and
 *            sets TAKEN (sa_warm_give); its thread goes on as a cold one
 *   retire   RETIRE set and the record unlinked, under the lock: its thread
 *            ends its interpreter (at a low priority, as an ending actor
 *            does) and frees the record (sa_warm_thread_exit)
 *
 * Refills run one at a time: at most one warm interpreter is being made at
 * any moment, so the reserve never competes for the cores more than one
 * cold spawn would; a record that parks starts the next refill if the
 * reserve is still short.
 *
 * Locks and GIL rules: sa_warm_lock guards every static below and the
 * warm_state and warm_next of records; it is held only for short work (a
 * scan of the list, at most one pthread_create), never while a GIL is being
 * acquired. A parked thread holds no GIL. The fork handlers hold the lock
 * across fork(); the child starts with an empty, switched-off reserve (the
 * parent's warm threads do not exist there).
 */
#include "common.h"

#include <errno.h>
#include <string.h>
#include <time.h>

extern char **environ;

/* The largest reserve accepted. */
#define SA_WARM_MAX 64
/* A refill made because an actor took a warm interpreter waits this long
 * before it makes its own, so that it does not compete for a core with
 * that actor while it starts and answers (tens of milliseconds of CPU
 * against a few). */
#define SA_WARM_SETTLE_NS ((int64_t)20000000)
/* A parked thread wakes at least this often to re-check its state. */
#define SA_WARM_SLICE_NS ((int64_t)1000000000)

static pthread_mutex_t sa_warm_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sa_warm_cond;      /* broadcast on take, retire and thread exit */
static pthread_once_t sa_warm_once = PTHREAD_ONCE_INIT;
static sa_actor_t *sa_warm_head;         /* warming and parked records */
static int sa_warm_size;                 /* the reserve's target size; 0: off */
static char *sa_warm_key;                /* packed sys.path its interpreters get (owned) */
static size_t sa_warm_key_len;           /* bytes in sa_warm_key */
static char *sa_warm_preload_list;       /* '\0'-separated module names, "\0\0"-ended (owned) */
static size_t sa_warm_preload_len;       /* bytes in sa_warm_preload_list */
static int sa_warm_warming;              /* records importing their preload now */
static int sa_warm_failed;               /* 1: the preload failed: no refill until reconfigured */
static char *sa_warm_error;              /* that failure, "Type: message" (owned) */
static long sa_warm_takes, sa_warm_misses, sa_warm_made, sa_warm_retired;

/* Monotonic condition variable (deadlines are sa_now_ns() times). */
static void sa_warm_init_once(void)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&sa_warm_cond, &ca);
    pthread_condattr_destroy(&ca);
}

static void sa_warm_init_process(void);

/* Wait on sa_warm_cond (lock held) until deadline_ns, at most one slice. */
static void sa_warm_wait_slice(int64_t deadline_ns)
{
    int64_t now = sa_now_ns();
    int64_t until = now + SA_WARM_SLICE_NS;
    if (deadline_ns >= 0 && deadline_ns < until)
        until = deadline_ns;
    struct timespec ts = {.tv_sec = until / 1000000000, .tv_nsec = until % 1000000000};
    pthread_cond_timedwait(&sa_warm_cond, &sa_warm_lock, &ts);
}

/* FNV-1a over the process's environment: a cold interpreter copies it into
 * os.environ when it is made, so a warm one made under another environment
 * would differ. Never 0 (0 marks a record that matches nothing). */
static uint64_t sa_env_hash(void)
{
    uint64_t h = 1469598103934665603ULL;
    for (char **e = environ; e != NULL && *e != NULL; e++) {
        for (const unsigned char *p = (const unsigned char *)*e; *p; p++) {
            h ^= *p;
            h *= 1099511628211ULL;
        }
        h ^= 0xff;
        h *= 1099511628211ULL;
    }
    return h ? h : 1;
}

static char *sa_warm_dup(const char *s, size_t n)
{
    char *p = PyMem_RawMalloc(n ? n : 1);
    if (p != NULL && n)
        memcpy(p, s, n);
    return p;
}

static void sa_warm_unlink_locked(sa_actor_t *a)
{
    for (sa_actor_t **pp = &sa_warm_head; *pp != NULL; pp = &(*pp)->warm_next) {
        if (*pp == a) {
            *pp = a->warm_next;
            a->warm_next = NULL;
            return;
        }
    }
}

/* Tell a record of the list to end (lock held). */
static void sa_warm_retire_locked(sa_actor_t *a)
{
    sa_warm_unlink_locked(a);
    a->warm_state = SA_WARM_RETIRE;
    pthread_cond_broadcast(&sa_warm_cond);
}

static void sa_warm_retire_all_locked(void)
{
    while (sa_warm_head != NULL)
        sa_warm_retire_locked(sa_warm_head);
}

/* Start one refill if the reserve is short and none is being made (lock
 * held); `settle`: after a take (see SA_WARM_SETTLE_NS). Best effort: if
 * no thread can be made, the next spawn is cold. */
static void sa_warm_refill_locked(int settle)
{
    if (sa_warm_size <= 0 || sa_warm_failed || sa_warm_key == NULL || sa_warm_warming > 0)
        return;
    int have = 0;
    for (sa_actor_t *r = sa_warm_head; r != NULL; r = r->warm_next)
        have++;
    if (have >= sa_warm_size)
        return;
    sa_actor_t *a = sa_actor_alloc(sa_warm_key, sa_warm_key_len);
    if (a == NULL)
        return;
    a->warm = 1;
    a->warm_state = SA_WARM_WARMING;
    a->warm_not_before_ns = settle ? sa_now_ns() + SA_WARM_SETTLE_NS : 0;
    a->env_hash = sa_env_hash();
    a->preload = sa_warm_dup(sa_warm_preload_list, sa_warm_preload_len);
    if (a->preload == NULL) {
        sa_actor_free(a);
        return;
    }
    if (sa_warm_preload_len == 0)
        a->preload[0] = '\0';
    a->warm_next = sa_warm_head;
    sa_warm_head = a;
    sa_warm_warming++;
    atomic_fetch_add(&sa_counters.warm, 1);
    if (sa_actor_start_warm(a) < 0) {
        sa_warm_unlink_locked(a);
        sa_warm_warming--;
        atomic_fetch_sub(&sa_counters.warm, 1);
        sa_actor_free(a);
    }
}

/* Note why the preload failed (GIL held, exception set); it is cleared. */
static void sa_warm_note_error(const char *module)
{
    PyObject *exc = PyErr_GetRaisedException();
    PyObject *msg = exc ? PyUnicode_FromFormat("importing %s: %s: %S", module, Py_TYPE(exc)->tp_name, exc) : NULL;
    const char *u = msg ? PyUnicode_AsUTF8(msg) : NULL;
    char *copy = u ? sa_warm_dup(u, strlen(u) + 1) : NULL;
    PyErr_Clear();
    Py_XDECREF(msg);
    Py_XDECREF(exc);
    pthread_mutex_lock(&sa_warm_lock);
    sa_warm_failed = 1;
    PyMem_RawFree(sa_warm_error);
    sa_warm_error = copy;
    pthread_mutex_unlock(&sa_warm_lock);
}

static int sa_warm_retiring(sa_actor_t *a)
{
    pthread_mutex_lock(&sa_warm_lock);
    int r = a->warm_state == SA_WARM_RETIRE;
    pthread_mutex_unlock(&sa_warm_lock);
    return r;
}

int sa_warm_settle(sa_actor_t *a)
{
    pthread_mutex_lock(&sa_warm_lock);
    while (a->warm_state != SA_WARM_RETIRE && sa_now_ns() < a->warm_not_before_ns)
        sa_warm_wait_slice(a->warm_not_before_ns);
    int go = a->warm_state != SA_WARM_RETIRE;
    if (!go)
        sa_warm_warming--;
    pthread_mutex_unlock(&sa_warm_lock);
    return go;
}

int sa_warm_park(sa_actor_t *a, PyObject *failed)
{
    int ok = 1;
    if (failed != NULL) {
        PyErr_SetRaisedException(failed);
        sa_warm_note_error("subactor._ext");
        ok = 0;
    }
    for (const char *m = a->preload; ok && m != NULL && *m; m += strlen(m) + 1) {
        if (sa_warm_retiring(a))
            ok = 0;
        else {
            PyObject *mod = PyImport_ImportModule(m);
            if (mod == NULL) {
                /* Only if this record still serves the reserve: a retired
                 * one may have been made for a sys.path now gone. */
                if (!sa_warm_retiring(a))
                    sa_warm_note_error(m);
                PyErr_Clear();
                ok = 0;
            }
            Py_XDECREF(mod);
        }
    }
    PyThreadState *saved = PyEval_SaveThread();
    pthread_mutex_lock(&sa_warm_lock);
    sa_warm_warming--;
    if (!ok && a->warm_state != SA_WARM_RETIRE)
        sa_warm_retire_locked(a);
    if (a->warm_state == SA_WARM_WARMING) {
        /* The environment it copied is the one it is matched on; if it
         * changed while the interpreter was made, it matches nothing. */
        if (a->env_hash != sa_env_hash())
            a->env_hash = 0;
        a->warm_state = SA_WARM_PARKED;
        sa_warm_made++;
    }
    sa_warm_refill_locked(0);
    while (a->warm_state == SA_WARM_PARKED)
        sa_warm_wait_slice(-1);
    int taken = a->warm_state == SA_WARM_TAKEN;
    pthread_mutex_unlock(&sa_warm_lock);
    PyEval_RestoreThread(saved);
    return taken;
}

void sa_warm_thread_exit(sa_actor_t *a)
{
    pthread_detach(pthread_self());
    sa_actor_free(a);
    atomic_fetch_sub(&sa_counters.threads, 1);
    pthread_mutex_lock(&sa_warm_lock);
    sa_warm_retired++;
    atomic_fetch_sub(&sa_counters.warm, 1);
    pthread_cond_broadcast(&sa_warm_cond);
    pthread_mutex_unlock(&sa_warm_lock);
}

sa_actor_t *sa_warm_take(const char *sys_path, size_t sys_path_len)
{
    pthread_mutex_lock(&sa_warm_lock);
    if (sa_warm_size <= 0) {
        pthread_mutex_unlock(&sa_warm_lock);
        return NULL;
    }
    uint64_t env = sa_env_hash();
    sa_actor_t *got = NULL;
    if (sa_warm_key != NULL && sys_path_len == sa_warm_key_len && memcmp(sys_path, sa_warm_key, sys_path_len) == 0) {
        sa_actor_t *r = sa_warm_head;
        while (r != NULL) {
            sa_actor_t *next = r->warm_next;
            if (r->warm_state == SA_WARM_PARKED && r->env_hash == env && got == NULL)
                got = r;
            else if (r->warm_state == SA_WARM_PARKED && r->env_hash != env)
                sa_warm_retire_locked(r);     /* made under another environment */
            r = next;
        }
    }
    else {
        /* The actors now get another sys.path: the reserve follows it. */
        char *key = sa_warm_dup(sys_path, sys_path_len);
        if (key != NULL) {
            sa_warm_retire_all_locked();
            PyMem_RawFree(sa_warm_key);
            sa_warm_key = key;
            sa_warm_key_len = sys_path_len;
            sa_warm_failed = 0;
        }
    }
    if (got != NULL) {
        sa_warm_unlink_locked(got);
        sa_warm_takes++;
    }
    else {
        sa_warm_misses++;
    }
    sa_warm_refill_locked(1);
    pthread_mutex_unlock(&sa_warm_lock);
    return got;
}

void sa_warm_give(sa_actor_t *a)
{
    pthread_mutex_lock(&sa_warm_lock);
    a->warm_state = SA_WARM_TAKEN;
    atomic_fetch_sub(&sa_counters.warm, 1);
    pthread_cond_broadcast(&sa_warm_cond);
    pthread_mutex_unlock(&sa_warm_lock);
}

long sa_warm_alive(void)
{
    return atomic_load(&sa_counters.warm);
}

int sa_warm_drain(int64_t timeout_ns)
{
    pthread_once(&sa_warm_once, sa_warm_init_process);
    int64_t deadline = timeout_ns < 0 ? -1 : sa_now_ns() + timeout_ns;
    pthread_mutex_lock(&sa_warm_lock);
    sa_warm_size = 0;
    sa_warm_retire_all_locked();
    while (atomic_load(&sa_counters.warm) > 0 && (deadline < 0 || sa_now_ns() < deadline))
        sa_warm_wait_slice(deadline);
    int done = atomic_load(&sa_counters.warm) == 0;
    pthread_mutex_unlock(&sa_warm_lock);
    return done;
}

/* fork(): the lock is held across it, so the child never inherits it taken;
 * the child's reserve is empty and off (those threads are not there). */
static void sa_warm_prefork(void)
{
    pthread_mutex_lock(&sa_warm_lock);
}

static void sa_warm_postfork_parent(void)
{
    pthread_mutex_unlock(&sa_warm_lock);
}

static void sa_warm_postfork_child(void)
{
    sa_warm_head = NULL;      /* the records are left: their threads are gone */
    sa_warm_size = 0;
    sa_warm_warming = 0;
    atomic_store(&sa_counters.warm, 0);
    pthread_mutex_unlock(&sa_warm_lock);
}

static void sa_warm_init_process(void)
{
    sa_warm_init_once();
    pthread_atfork(sa_warm_prefork, sa_warm_postfork_parent, sa_warm_postfork_child);
}

/* ---------------------------------------------------------------------- */
/* Module functions                                                        */

static PyObject *sa_py_warm_configure(PyObject *Py_UNUSED(mod), PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"size", "sys_path", "preload", NULL};
    PyObject *size_obj, *sys_path = NULL, *preload = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|$OO:warm_configure", kwlist, &size_obj, &sys_path, &preload))
        return NULL;
    if (!PyLong_Check(size_obj) || PyBool_Check(size_obj)) {
        PyErr_Format(PyExc_TypeError, "warm_configure(size=...) must be an int, not %.100s", Py_TYPE(size_obj)->tp_name);
        return NULL;
    }
    long size = PyLong_AsLong(size_obj);
    if (size == -1 && PyErr_Occurred())
        return NULL;
    if (size < 0 || size > SA_WARM_MAX) {
        PyErr_Format(PyExc_ValueError, "warm_configure(size=...) must be between 0 and %d, got %ld", SA_WARM_MAX, size);
        return NULL;
    }
    char *key = NULL, *pre = NULL;
    size_t key_len = 0, pre_len = 0;
    if (sys_path != NULL && sys_path != Py_None && (key = sa_actor_pack_paths(sys_path, &key_len)) == NULL)
        return NULL;
    if (preload != NULL && preload != Py_None) {
        /* Module names are packed as paths are: str items, '\0'-separated. */
        if ((pre = sa_actor_pack_paths(preload, &pre_len)) == NULL) {
            PyMem_RawFree(key);
            return NULL;
        }
    }
    pthread_once(&sa_warm_once, sa_warm_init_process);
    pthread_mutex_lock(&sa_warm_lock);
    if (key != NULL && (sa_warm_key == NULL || key_len != sa_warm_key_len || memcmp(key, sa_warm_key, key_len) != 0)) {
        sa_warm_retire_all_locked();
        PyMem_RawFree(sa_warm_key);
        sa_warm_key = key;
        sa_warm_key_len = key_len;
        key = NULL;
    }
    if (pre != NULL && (sa_warm_preload_list == NULL || pre_len != sa_warm_preload_len ||
                        memcmp(pre, sa_warm_preload_list, pre_len) != 0)) {
        sa_warm_retire_all_locked();
        PyMem_RawFree(sa_warm_preload_list);
        sa_warm_preload_list = pre;
        sa_warm_preload_len = pre_len;
        pre = NULL;
    }
    sa_warm_size = (int)size;
    sa_warm_failed = 0;
    /* A smaller reserve: the newest records go first (parked ones before
     * one being made, which would otherwise finish its preload for nothing). */
    int have = 0;
    for (sa_actor_t *r = sa_warm_head; r != NULL; r = r->warm_next)
        have++;
    while (have > sa_warm_size) {
        sa_actor_t *victim = sa_warm_head;
        for (sa_actor_t *r = sa_warm_head; r != NULL; r = r->warm_next)
            if (r->warm_state == SA_WARM_WARMING)
                victim = r;
        sa_warm_retire_locked(victim);
        have--;
    }
    sa_warm_refill_locked(0);
    pthread_mutex_unlock(&sa_warm_lock);
    PyMem_RawFree(key);
    PyMem_RawFree(pre);
    Py_RETURN_NONE;
}

static PyObject *sa_py_warm_info(PyObject *Py_UNUSED(mod), PyObject *Py_UNUSED(args))
{
    pthread_mutex_lock(&sa_warm_lock);
    int parked = 0, warming = 0;
    for (sa_actor_t *r = sa_warm_head; r != NULL; r = r->warm_next) {
        if (r->warm_state == SA_WARM_PARKED)
            parked++;
        else
            warming++;
    }
    int size = sa_warm_size;
    long takes = sa_warm_takes, misses = sa_warm_misses, made = sa_warm_made, retired = sa_warm_retired;
    char *err = sa_warm_error ? sa_warm_dup(sa_warm_error, strlen(sa_warm_error) + 1) : NULL;
    pthread_mutex_unlock(&sa_warm_lock);
    PyObject *res = Py_BuildValue("{s:i,s:i,s:i,s:l,s:l,s:l,s:l,s:l,s:z}", "size", size, "parked", parked,
                                  "warming", warming, "alive", atomic_load(&sa_counters.warm), "takes", takes,
                                  "misses", misses, "made", made, "retired", retired, "error", err);
    PyMem_RawFree(err);
    return res;
}

static PyObject *sa_py_warm_drain(PyObject *Py_UNUSED(mod), PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"timeout", NULL};
    PyObject *tobj = Py_None;
    int64_t ns;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:warm_drain", kwlist, &tobj) ||
        sa_timeout_arg(tobj, "warm_drain() timeout", &ns) < 0)
        return NULL;
    int done;
    Py_BEGIN_ALLOW_THREADS
    done = sa_warm_drain(ns);
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(done);
}

static PyMethodDef sa_warm_functions[] = {
    {"warm_configure", (PyCFunction)(void (*)(void))sa_py_warm_configure, METH_VARARGS | METH_KEYWORDS,
     "warm_configure(size, *, sys_path=None, preload=None)\n\n"
     "Keep `size` warm interpreters (0: none; at most 64) for spawn(warm=True):\n"
     "made one at a time in the background, each with sys.path `sys_path` and\n"
     "the modules `preload` imported. Returns at once; a change retires the\n"
     "interpreters that no longer fit (they end in the background)."},
    {"warm_info", sa_py_warm_info, METH_NOARGS,
     "warm_info() -> dict\n\nThe reserve: size, parked, warming, alive (threads not done with\n"
     "Python), takes, misses, made, retired, error (why the preload failed, or None)."},
    {"warm_drain", (PyCFunction)(void (*)(void))sa_py_warm_drain, METH_VARARGS | METH_KEYWORDS,
     "warm_drain(timeout=None) -> bool\n\nSwitch the reserve off, retire its interpreters and wait (GIL\n"
     "released) until their threads are done with Python or the timeout passes."},
    {NULL, NULL, 0, NULL},
};

int sa_warm_module_init(PyObject *mod)
{
    pthread_once(&sa_warm_once, sa_warm_init_process);
    return PyModule_AddFunctions(mod, sa_warm_functions);
}
