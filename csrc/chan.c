/* chan.c: channels, the GIL-free core (the Python face is in msgobj.c,
 * endobj.c and chanmod.c).
 *
 * Owns: channel records (sa_chan_t), the process-wide registry that maps a
 * channel id to its record, the message buffers in flight (counted by
 * sa_counters.buffers) and the pool of large free ones, the readiness
 * eventfds, and the close/break of the ends an actor owned.
 *
 * Shape. A channel is two ends, side 0 and side 1, and one FIFO queue per
 * direction: q[d] holds what side d sent to side 1-d. Each queue is bounded
 * by a message count and a byte count (maxmsgs, maxbytes); a full queue
 * makes its sender wait up to a deadline, and never drops a message. A
 * message is one raw buffer: send() copies the caller's bytes into it
 * once, the queue owns it, recv() hands it out (as a Message object that
 * frees it when released or collected). Nothing in a record is a
 * PyObject*, so any interpreter may touch any record.
 *
 * Lifetime. sa_chan_create() registers a record with one reference owned
 * by the registry. Each side is attached at most once (UNATTACHED -> OPEN ->
 * CLOSED); an attached end holds one reference. The registry lets go when
 * both sides are CLOSED, which happens when:
 *   - each side was attached and then closed (close(), the end object's
 *     deallocation, or the end of its owner actor), or
 *   - a side was never attached and its peer closed with nothing queued
 *     toward it: nobody could ever receive anything there, so that side is
 *     closed too and attaching it later raises ClosedError; while messages
 *     are queued toward a never-attached side, it stays attachable, so a
 *     slow actor still drains what was sent before its parent closed, or
 *   - sa_chan_close_unattached() closes a never-attached side, as if an end
 *     had been attached and closed. It is for the actor host, to call for
 *     an actor's own channel when the actor's thread ends: an actor
 *     interrupted while starting never attaches its side, and the rule
 *     above would then keep a channel with messages queued toward that
 *     side alive for ever, or
 *   - sa_chan_destroy() (channel_destroy(id)) closes both sides at once.
 * The record is freed when the last reference goes. A channel whose id is
 * never attached stays until channel_destroy(); that is the creator's job.
 *
 * Closing and breaking. Closing side s frees what was queued toward s
 * (nobody will read it). Its peer still drains what s sent and then gets
 * SA_CHAN_EOF (EndOfChannel); a send to it fails with SA_ERR_BROKEN at once.
 * Breaking (the owner actor failed, was interrupted or abandoned) is the
 * same except that the drained peer gets SA_ERR_BROKEN instead of EOF: the
 * messages a dead side sent were acknowledged to it when its send()
 * returned, so they are delivered, not dropped; draining is bounded by the
 * queue, so it can't hang. Any operation on a side that is CLOSED fails
 * with SA_ERR_CLOSED.
 *
 * Readiness. Per side, two eventfds made on first use: the recv fd is
 * readable iff a recv would not block (a message is queued, or either side
 * is closed), the send fd iff a send would not block (room for `want`
 * bytes, or either side is closed). `want` is the size of the last message
 * that found no room (0 after a successful send), so a task that waits on
 * the send fd and retries the same message wakes only when that message
 * fits. Levels are set and reset under the channel lock with each change,
 * and only on a change (a write or read of the eventfd); an fd nobody asked
 * for costs nothing.
 *
 * Waiting. A blocked call first spins (lock released, no GIL) for up to
 * sa_chan_spin_ns watching its queue's version counter, then sleeps on a
 * condition variable: on the 2-core VM this was measured on, waking a
 * sleeping thread costs ~25 us each way (a C condvar ping-pong has a 52 us
 * round trip), noticing a change while spinning ~0.2 us.
 *
 * Locks:
 *   - sa_chan_registry_lock guards the registry list and `linked`. Order:
 *     the registry lock before any channel lock, never the reverse.
 *   - ch->lock guards everything in a record except `refs` (atomic), the
 *     queues' `ver` (atomic, written under the lock, read by spinners) and
 *     the constants id, maxmsgs, maxbytes. It is held for short,
 *     non-blocking work (an eventfd write is the longest).
 *   - sa_chan_pool_lock guards the buffer pool; nothing is taken under it.
 *   - No lock here is ever held while waiting for a GIL.
 *
 * GIL rules: nothing here needs a GIL or calls into Python; any function
 * may be called with or without one, except that a call that may wait
 * (a deadline other than SA_CHAN_NOWAIT) must be made without: it would
 * stall that interpreter for the wait.
 */
#include "common.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>



/* One direction: a ring of queued messages. */
typedef struct {
    sa_chan_item_t *ring;  /* `cap` slots; the queue is ring[head .. head+count) mod cap */
    size_t cap;            /* slots allocated; grows by doubling up to maxmsgs */
    size_t head;           /* slot of the oldest message */
    size_t count;          /* messages queued */
    atomic_size_t acount;  /* a copy of count (written under the lock), read without it by recv_nowait */
    size_t bytes;          /* bytes queued */
    size_t want;           /* size of the last message that found no room; 0 after a send */
    int recv_waiters;      /* threads blocked until this queue is non-empty */
    int send_waiters;      /* threads blocked until this queue has room */
    atomic_uint ver;       /* bumped on every push, pop and close: what spinning waiters watch */
    pthread_cond_t nonempty; /* broadcast on push and on close (if recv_waiters) */
    pthread_cond_t room;     /* broadcast on pop and on close (if send_waiters) */
} sa_chan_queue_t;

/* One end's shared state. */
typedef struct {
    int state;     /* SA_CHAN_UNATTACHED, SA_CHAN_OPEN or SA_CHAN_CLOSED */
    int broken;    /* 1 if it was closed by sa_chan_break_owned_by() */
    uint64_t owner;/* actor id that attached it; 0: none (never auto-closed) */
    int rfd;       /* eventfd readable iff a recv would not block; -1 until asked */
    int sfd;       /* eventfd readable iff a send would not block; -1 until asked */
    int rlevel;    /* 1 iff rfd is readable now (fdlock) */
    int slevel;    /* 1 iff sfd is readable now (fdlock) */
} sa_chan_side_t;

/* The eventfd levels the record's state called for at one moment, taken
 * under ch->lock and made true after it is let go (sa_chan_fds_apply). */
typedef struct {
    unsigned seq;       /* order of the snapshots of one record (0: nothing to do) */
    unsigned char r[2]; /* per side: the recv fd's level */
    unsigned char s[2]; /* per side: the send fd's level */
} sa_chan_levels_t;

struct sa_chan {
    uint64_t id;              /* process-unique, never reused */
    atomic_int refs;          /* the registry's (while linked) + one per attached end + extra */
    size_t maxmsgs;           /* bound on messages queued per direction (constant) */
    size_t maxbytes;          /* bound on bytes queued per direction (constant) */
    pthread_mutex_t lock;     /* guards sides and queues */
    pthread_mutex_t fdlock;   /* guards the fds' levels and fdapplied; taken after lock or alone */
    unsigned fdseq;           /* snapshots of the levels taken so far (lock) */
    unsigned fdapplied;       /* seq of the newest snapshot made true (fdlock) */
    atomic_int aclosed;       /* 1 once either side is closed: recv_nowait must then take the lock */
    sa_chan_side_t side[2];   /* the two ends */
    sa_chan_queue_t q[2];     /* q[d]: sent by side d, received by side 1-d */
    int linked;               /* 1 while in the registry (registry lock) */
    sa_chan_t *prev, *next;   /* registry links (registry lock) */
};

/* How long a blocking call spins (lock released, GIL released) watching
 * for a change before it sleeps on a condition variable, and for how much
 * of that it spins on the CPU before it spins with sched_yield() (which
 * gives the core to the thread it waits for when the machine is busy). */
static atomic_llong sa_chan_spin_ns = 20000;
#define SA_CHAN_PAUSE_NS 2000

static pthread_mutex_t sa_chan_registry_lock = PTHREAD_MUTEX_INITIALIZER;
static sa_chan_t *sa_chan_registry;           /* guarded by sa_chan_registry_lock */
static atomic_uint_fast64_t sa_chan_next_id = 1;

/* ---------------------------------------------------------------------- */
/* Buffers                                                                  */

/* Every buffer starts SA_CHAN_BUF_HDR bytes into its allocation, after a
 * header that says how large it is, so that free() knows where a large one
 * goes back to. Large buffers (>= SA_CHAN_POOL_MIN) are rounded up to a
 * size class (quarter steps between powers of two, so at most 25% slack)
 * and, when freed, kept in a small process-wide pool, newest first:
 * glibc gives freed megabyte chunks back to the kernel and the next
 * message then faults every page in again (measured: up to 170 faults per
 * 1 MiB message, a third of the throughput). A request takes a kept
 * buffer of its own class or of one up to twice its size (a pool full of
 * one size served no other: a 1 MiB message missed it every time after a
 * stream of 1 MiB items plus their header had filled it). The pool keeps
 * at most SA_CHAN_POOL_MAX bytes; sa_counters.buffers does not count what
 * it keeps (those are free, not live). */
#define SA_CHAN_BUF_HDR 16
#define SA_CHAN_POOL_MIN ((size_t)64 << 10)
#define SA_CHAN_POOL_MAX ((size_t)32 << 20)
static size_t sa_chan_pool_max = SA_CHAN_POOL_MAX; /* guarded by sa_chan_pool_lock; _chan_pool(max=) sets it */
#define SA_CHAN_POOL_CLASSES 64
#define SA_CHAN_POOL_UP 5 /* classes a request may take a kept buffer from: its own and the next 4 (up to 2x) */

typedef struct {
    size_t cap;  /* bytes usable after the header */
    size_t klass;/* pool class + 1, or 0 for a small buffer (not pooled) */
} sa_chan_buf_hdr_t;

static pthread_mutex_t sa_chan_pool_lock = PTHREAD_MUTEX_INITIALIZER;
static char *sa_chan_pool[SA_CHAN_POOL_CLASSES]; /* per class, a stack linked through the first word */
static size_t sa_chan_pool_bytes;                /* bytes kept, guarded by sa_chan_pool_lock */
static size_t sa_chan_pool_count;                /* buffers kept, guarded by sa_chan_pool_lock */
static size_t sa_chan_pool_misses;               /* large allocations the pool had nothing for (same lock) */
static size_t sa_chan_pool_drops;                /* large frees the full pool did not keep (same lock) */

/* The class of a large request and its rounded capacity. */
static size_t sa_chan_pool_class(size_t len, size_t *cap)
{
    unsigned k = 63 - (unsigned)__builtin_clzll((unsigned long long)len); /* 2^k <= len */
    size_t step = ((size_t)1 << k) / 4;
    size_t q = (len + step - 1) / step; /* 4..8 quarter steps */
    *cap = q * step;
    return (k - 16) * 4 + (q - 4); /* q == 8 is class 0 of k + 1: same index */
}

static sa_chan_buf_hdr_t *sa_chan_hdr(char *buf)
{
    return (sa_chan_buf_hdr_t *)(void *)(buf - SA_CHAN_BUF_HDR);
}

char *sa_chan_buf_alloc(size_t len)
{
    char *raw = NULL;
    size_t cap = len, klass = 0;
    if (len >= SA_CHAN_POOL_MIN) {
        klass = sa_chan_pool_class(len, &cap) + 1;
        if (klass <= SA_CHAN_POOL_CLASSES) {
            /* A kept buffer of this class, else of one of the next
             * SA_CHAN_POOL_UP classes (at most twice the size): a pool
             * full of one size must not leave every other size to fresh
             * memory. A kept buffer keeps its header (its own class and
             * capacity), so it goes back where it came from. */
            pthread_mutex_lock(&sa_chan_pool_lock);
            for (size_t c = klass - 1; c < klass - 1 + SA_CHAN_POOL_UP && c < SA_CHAN_POOL_CLASSES; c++) {
                raw = sa_chan_pool[c];
                if (raw != NULL) {
                    memcpy(&sa_chan_pool[c], raw + SA_CHAN_BUF_HDR, sizeof(char *));
                    sa_chan_pool_bytes -= ((sa_chan_buf_hdr_t *)(void *)raw)->cap;
                    sa_chan_pool_count--;
                    break;
                }
            }
            if (raw == NULL)
                sa_chan_pool_misses++;
            pthread_mutex_unlock(&sa_chan_pool_lock);
            if (raw != NULL) {
                atomic_fetch_add(&sa_counters.buffers, 1);
                return raw + SA_CHAN_BUF_HDR;
            }
        }
        else {
            klass = 0;
            cap = len;
        }
    }
    if ((raw = PyMem_RawMalloc(SA_CHAN_BUF_HDR + (cap ? cap : 1))) == NULL)
        return NULL;
    sa_chan_buf_hdr_t *h = (sa_chan_buf_hdr_t *)(void *)raw;
    h->cap = cap;
    h->klass = klass;
    atomic_fetch_add(&sa_counters.buffers, 1);
    return raw + SA_CHAN_BUF_HDR;
}

size_t sa_chan_buf_cap(char *buf)
{
    return sa_chan_hdr(buf)->cap;
}

void sa_chan_buf_free(char *buf)
{
    if (buf == NULL)
        return;
    atomic_fetch_sub(&sa_counters.buffers, 1);
    sa_chan_buf_hdr_t *h = sa_chan_hdr(buf);
    if (h->klass != 0) {
        pthread_mutex_lock(&sa_chan_pool_lock);
        if (sa_chan_pool_bytes + h->cap <= sa_chan_pool_max) {
            memcpy(buf, &sa_chan_pool[h->klass - 1], sizeof(char *));
            sa_chan_pool[h->klass - 1] = (char *)h;
            sa_chan_pool_bytes += h->cap;
            sa_chan_pool_count++;
            h = NULL;
        }
        else
            sa_chan_pool_drops++;
        pthread_mutex_unlock(&sa_chan_pool_lock);
    }
    PyMem_RawFree(h);
}

void sa_chan__pool(int clear, long long max, size_t *count, size_t *bytes, size_t *misses, size_t *drops)
{
    pthread_mutex_lock(&sa_chan_pool_lock);
    if (max >= 0)
        sa_chan_pool_max = (size_t)max;
    *count = sa_chan_pool_count;
    *bytes = sa_chan_pool_bytes;
    *misses = sa_chan_pool_misses;
    *drops = sa_chan_pool_drops;
    for (int c = 0; clear && c < SA_CHAN_POOL_CLASSES; c++) {
        char *raw = sa_chan_pool[c];
        while (raw != NULL) {
            char *next;
            memcpy(&next, raw + SA_CHAN_BUF_HDR, sizeof next);
            PyMem_RawFree(raw);
            raw = next;
        }
        sa_chan_pool[c] = NULL;
        sa_chan_pool_bytes = sa_chan_pool_count = 0;
    }
    pthread_mutex_unlock(&sa_chan_pool_lock);
}

/* ---------------------------------------------------------------------- */
/* Queues (caller holds ch->lock)                                          */

/* Append one message; the queue must have fewer than maxmsgs. 0 or NOMEM. */
static int sa_chan_queue_push(sa_chan_queue_t *q, size_t maxmsgs, sa_chan_item_t it)
{
    if (q->count == q->cap) {
        size_t ncap = q->cap ? q->cap * 2 : 16;
        if (ncap > maxmsgs)
            ncap = maxmsgs;
        sa_chan_item_t *r = PyMem_RawMalloc(ncap * sizeof *r);
        if (r == NULL)
            return SA_ERR_NOMEM;
        for (size_t i = 0, j = q->head; i < q->count; i++) {
            r[i] = q->ring[j];
            if (++j == q->cap)
                j = 0;
        }
        PyMem_RawFree(q->ring);
        q->ring = r;
        q->cap = ncap;
        q->head = 0;
    }
    size_t tail = q->head + q->count;
    if (tail >= q->cap)
        tail -= q->cap;
    q->ring[tail] = it;
    q->count++;
    q->bytes += it.len;
    atomic_store_explicit(&q->acount, q->count, memory_order_release);
    return SA_OK;
}

/* Remove the oldest message; the queue must not be empty. */
static sa_chan_item_t sa_chan_queue_pop(sa_chan_queue_t *q)
{
    assert(q->count > 0);
    sa_chan_item_t it = q->ring[q->head];
    if (++q->head == q->cap)
        q->head = 0;
    q->count--;
    q->bytes -= it.len;
    atomic_store_explicit(&q->acount, q->count, memory_order_relaxed);
    return it;
}

/* Free every queued message. */
static void sa_chan_queue_clear(sa_chan_queue_t *q)
{
    while (q->count > 0)
        sa_chan_buf_free(sa_chan_queue_pop(q).buf);
    q->head = 0;
}

static inline int sa_chan_fits(const sa_chan_t *ch, const sa_chan_queue_t *q, size_t len)
{
    return q->count < ch->maxmsgs && q->bytes + len <= ch->maxbytes;
}

/* ---------------------------------------------------------------------- */
/* Readiness (caller holds ch->lock)                                        */

/* Make the eventfd's level `want`. An eventfd here only ever counts 0 or 1,
 * so a write can't overflow and a read takes it back to 0. Caller holds
 * ch->fdlock. */
static void sa_chan_set_level(int fd, int *level, int want)
{
    if (fd < 0 || *level == want)
        return;
    uint64_t v = 1;
    if (want)
        while (write(fd, &v, sizeof v) < 0 && errno == EINTR)
            ;
    else
        while (read(fd, &v, sizeof v) < 0 && errno == EINTR)
            ;
    *level = want;
}

/* The levels the state calls for now, numbered after every earlier
 * snapshot; seq 0 (nothing to do) if the record has no fd at all. Caller
 * holds ch->lock. */
static sa_chan_levels_t sa_chan_levels(sa_chan_t *ch)
{
    sa_chan_levels_t lv = {0, {0, 0}, {0, 0}};
    int any = 0;
    for (int s = 0; s < 2; s++) {
        sa_chan_side_t *sd = &ch->side[s];
        if (sd->rfd < 0 && sd->sfd < 0)
            continue;
        any = 1;
        int gone = sd->state == SA_CHAN_CLOSED || ch->side[1 - s].state == SA_CHAN_CLOSED;
        const sa_chan_queue_t *out = &ch->q[s];
        lv.r[s] = (unsigned char)(gone || ch->q[1 - s].count > 0);
        lv.s[s] = (unsigned char)(gone || sa_chan_fits(ch, out, out->want));
    }
    if (any && ++ch->fdseq == 0)
        ch->fdseq = 1; /* 0 means "nothing to do" */
    lv.seq = any ? ch->fdseq : 0;
    return lv;
}

/* Make snapshot `lv` true, unless a newer one was made true already: the
 * eventfd writes and reads happen here, after the sender or receiver let
 * go of ch->lock, so that its peer never waits on the lock for a system
 * call. Whoever took the newest snapshot applies it (nobody has a newer
 * one to skip it for), so the fds end at the levels of the latest state;
 * in between they may be a change late, which a waiter on them tolerates
 * (it retries its nowait call). Takes ch->fdlock: with ch->lock held or
 * not, never the reverse. The fds can't be closed or made meanwhile:
 * that takes fdlock too. */
static void sa_chan_fds_apply(sa_chan_t *ch, sa_chan_levels_t lv)
{
    if (lv.seq == 0)
        return;
    pthread_mutex_lock(&ch->fdlock);
    if ((int)(lv.seq - ch->fdapplied) > 0) {
        ch->fdapplied = lv.seq;
        for (int s = 0; s < 2; s++) {
            sa_chan_side_t *sd = &ch->side[s];
            sa_chan_set_level(sd->rfd, &sd->rlevel, lv.r[s]);
            sa_chan_set_level(sd->sfd, &sd->slevel, lv.s[s]);
        }
    }
    pthread_mutex_unlock(&ch->fdlock);
}

/* Bring every existing fd of the record to the level the state calls for,
 * now (the rare paths: close, attach of an fd, a refused send). Caller
 * holds ch->lock. */
static void sa_chan_sync_fds(sa_chan_t *ch)
{
    sa_chan_fds_apply(ch, sa_chan_levels(ch));
}

/* Wake every blocked caller of the record: its state changed for all. */
static void sa_chan_wake_all(sa_chan_t *ch)
{
    for (int d = 0; d < 2; d++) {
        atomic_fetch_add_explicit(&ch->q[d].ver, 1, memory_order_release);
        if (ch->q[d].recv_waiters)
            pthread_cond_broadcast(&ch->q[d].nonempty);
        if (ch->q[d].send_waiters)
            pthread_cond_broadcast(&ch->q[d].room);
    }
}

/* Wait for a change of queue `q` until woken or `deadline` passes
 * (SA_CHAN_FOREVER: no deadline); the caller re-checks its condition.
 * Waking a sleeping thread costs tens of microseconds on some machines, a
 * spinning one notices a change within a few hundred nanoseconds; so a
 * call first spins, with ch->lock released, watching q->ver, until
 * *spin_until (set on its first wait to sa_chan_spin_ns from now), and
 * only then sleeps on `cv`, which releases ch->lock. */
static void sa_chan_wait(sa_chan_t *ch, sa_chan_queue_t *q, pthread_cond_t *cv, int64_t deadline,
                         int64_t *spin_until)
{
    int64_t now = sa_now_ns();
    if (*spin_until == 0)
        *spin_until = now + atomic_load_explicit(&sa_chan_spin_ns, memory_order_relaxed);
    if (now < *spin_until) {
        int64_t until = deadline >= 0 && deadline < *spin_until ? deadline : *spin_until;
        unsigned v = atomic_load_explicit(&q->ver, memory_order_relaxed);
        pthread_mutex_unlock(&ch->lock);
        int64_t pause_until = now + SA_CHAN_PAUSE_NS;
        int yielding = 0;
        for (unsigned i = 1; atomic_load_explicit(&q->ver, memory_order_acquire) == v; i++) {
            if (yielding) {
                sched_yield();
                if (sa_now_ns() >= until)
                    break;
                continue;
            }
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#elif defined(__aarch64__)
            __asm__ __volatile__("yield");
#endif
            if ((i & 15) == 0) {
                int64_t t = sa_now_ns();
                if (t >= until)
                    break;
                yielding = t >= pause_until;
            }
        }
        pthread_mutex_lock(&ch->lock);
        return;
    }
    if (deadline < 0) {
        pthread_cond_wait(cv, &ch->lock);
        return;
    }
    struct timespec ts = {.tv_sec = deadline / 1000000000, .tv_nsec = deadline % 1000000000};
    pthread_cond_timedwait(cv, &ch->lock, &ts);
}

/* ---------------------------------------------------------------------- */
/* Records                                                                  */

static void sa_chan_free(sa_chan_t *ch)
{
    for (int d = 0; d < 2; d++) {
        sa_chan_queue_clear(&ch->q[d]);
        PyMem_RawFree(ch->q[d].ring);
        pthread_cond_destroy(&ch->q[d].nonempty);
        pthread_cond_destroy(&ch->q[d].room);
    }
    for (int s = 0; s < 2; s++) {
        if (ch->side[s].rfd >= 0)
            close(ch->side[s].rfd);
        if (ch->side[s].sfd >= 0)
            close(ch->side[s].sfd);
    }
    pthread_mutex_destroy(&ch->lock);
    pthread_mutex_destroy(&ch->fdlock);
    PyMem_RawFree(ch);
    atomic_fetch_sub(&sa_counters.channels, 1);
}

void sa_chan_incref(sa_chan_t *ch)
{
    atomic_fetch_add(&ch->refs, 1);
}

void sa_chan_decref(sa_chan_t *ch)
{
    int left = atomic_fetch_sub(&ch->refs, 1) - 1;
    assert(left >= 0);
    if (left == 0)
        sa_chan_free(ch);
}

uint64_t sa_chan_id(const sa_chan_t *ch)
{
    return ch->id;
}

size_t sa_chan_maxbytes(const sa_chan_t *ch)
{
    return ch->maxbytes;
}

int64_t sa_chan__spin(int64_t ns)
{
    int64_t old = atomic_load(&sa_chan_spin_ns);
    if (ns >= 0)
        atomic_store(&sa_chan_spin_ns, ns > 1000000000 ? 1000000000 : ns);
    return old;
}

int sa_chan_create(size_t maxmsgs, size_t maxbytes, uint64_t *id)
{
    if (maxmsgs == 0 || maxbytes == 0)
        return SA_ERR_STATE;
    sa_chan_t *ch = PyMem_RawCalloc(1, sizeof *ch);
    if (ch == NULL)
        return SA_ERR_NOMEM;
    atomic_fetch_add(&sa_counters.channels, 1);
    ch->maxmsgs = maxmsgs;
    ch->maxbytes = maxbytes;
    atomic_init(&ch->refs, 1); /* the registry's */
    pthread_mutex_init(&ch->lock, NULL);
    pthread_mutex_init(&ch->fdlock, NULL);
    /* Deadlines are sa_now_ns() times, i.e. CLOCK_MONOTONIC. */
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    for (int d = 0; d < 2; d++) {
        pthread_cond_init(&ch->q[d].nonempty, &attr);
        pthread_cond_init(&ch->q[d].room, &attr);
        ch->side[d].rfd = ch->side[d].sfd = -1;
    }
    pthread_condattr_destroy(&attr);
    ch->id = atomic_fetch_add(&sa_chan_next_id, 1);
    *id = ch->id;

    pthread_mutex_lock(&sa_chan_registry_lock);
    ch->next = sa_chan_registry;
    if (sa_chan_registry)
        sa_chan_registry->prev = ch;
    sa_chan_registry = ch;
    ch->linked = 1;
    pthread_mutex_unlock(&sa_chan_registry_lock);
    return SA_OK;
}

/* The registered record with that id, or NULL. Caller holds the registry lock. */
static sa_chan_t *sa_chan_lookup_locked(uint64_t id)
{
    for (sa_chan_t *ch = sa_chan_registry; ch != NULL; ch = ch->next)
        if (ch->id == id)
            return ch;
    return NULL;
}

/* Unlink the record if both sides are closed. Caller holds the registry
 * lock and ch->lock. Returns 1 if unlinked: the caller then drops the
 * registry's reference, after letting go of ch->lock. */
static int sa_chan_unlink_if_done_locked(sa_chan_t *ch)
{
    if (!ch->linked || ch->side[0].state != SA_CHAN_CLOSED || ch->side[1].state != SA_CHAN_CLOSED)
        return 0;
    if (ch->prev)
        ch->prev->next = ch->next;
    else
        sa_chan_registry = ch->next;
    if (ch->next)
        ch->next->prev = ch->prev;
    ch->prev = ch->next = NULL;
    ch->linked = 0;
    return 1;
}

/* Close side s (see the top of the file). Caller holds ch->lock. */
static void sa_chan_close_side_locked(sa_chan_t *ch, int s, int broken)
{
    sa_chan_side_t *sd = &ch->side[s], *peer = &ch->side[1 - s];
    if (sd->state == SA_CHAN_CLOSED)
        return;
    sd->state = SA_CHAN_CLOSED;
    sd->broken = broken;
    atomic_store_explicit(&ch->aclosed, 1, memory_order_release);
    sa_chan_queue_clear(&ch->q[1 - s]);
    if (peer->state == SA_CHAN_UNATTACHED && ch->q[s].count == 0)
        peer->state = SA_CHAN_CLOSED;
    sa_chan_wake_all(ch);
    sa_chan_sync_fds(ch);
}

int sa_chan_attach(uint64_t id, int side, uint64_t owner, sa_chan_t **out)
{
    assert(side == 0 || side == 1);
    int rc = SA_ERR_NOT_FOUND;
    pthread_mutex_lock(&sa_chan_registry_lock);
    sa_chan_t *ch = sa_chan_lookup_locked(id);
    if (ch != NULL) {
        pthread_mutex_lock(&ch->lock);
        sa_chan_side_t *sd = &ch->side[side];
        if (sd->state == SA_CHAN_OPEN)
            rc = SA_ERR_STATE;
        else if (sd->state == SA_CHAN_CLOSED)
            rc = SA_ERR_CLOSED;
        else {
            sd->state = SA_CHAN_OPEN;
            sd->owner = owner;
            atomic_fetch_add(&ch->refs, 1);
            *out = ch;
            rc = SA_OK;
        }
        pthread_mutex_unlock(&ch->lock);
    }
    pthread_mutex_unlock(&sa_chan_registry_lock);
    return rc;
}

void sa_chan_detach(sa_chan_t *ch, int side)
{
    assert(side == 0 || side == 1);
    pthread_mutex_lock(&sa_chan_registry_lock);
    pthread_mutex_lock(&ch->lock);
    sa_chan_close_side_locked(ch, side, 0);
    sa_chan_side_t *sd = &ch->side[side];
    /* Under fdlock too: a sender may be about to apply levels to them. */
    pthread_mutex_lock(&ch->fdlock);
    if (sd->rfd >= 0)
        close(sd->rfd);
    if (sd->sfd >= 0)
        close(sd->sfd);
    sd->rfd = sd->sfd = -1;
    sd->rlevel = sd->slevel = 0;
    pthread_mutex_unlock(&ch->fdlock);
    int unlinked = sa_chan_unlink_if_done_locked(ch);
    pthread_mutex_unlock(&ch->lock);
    pthread_mutex_unlock(&sa_chan_registry_lock);
    if (unlinked)
        sa_chan_decref(ch);
    sa_chan_decref(ch);
}

int sa_chan_destroy(uint64_t id)
{
    int unlinked = 0;
    pthread_mutex_lock(&sa_chan_registry_lock);
    sa_chan_t *ch = sa_chan_lookup_locked(id);
    if (ch != NULL) {
        pthread_mutex_lock(&ch->lock);
        for (int s = 0; s < 2; s++)
            sa_chan_close_side_locked(ch, s, 0);
        unlinked = sa_chan_unlink_if_done_locked(ch);
        assert(unlinked);
        pthread_mutex_unlock(&ch->lock);
    }
    pthread_mutex_unlock(&sa_chan_registry_lock);
    if (ch == NULL)
        return SA_ERR_NOT_FOUND;
    if (unlinked)
        sa_chan_decref(ch);
    return SA_OK;
}

int sa_chan__close_unattached(uint64_t id, int side, int *closed)
{
    assert(side == 0 || side == 1);
    int unlinked = 0;
    *closed = 0;
    pthread_mutex_lock(&sa_chan_registry_lock);
    sa_chan_t *ch = sa_chan_lookup_locked(id);
    if (ch != NULL) {
        pthread_mutex_lock(&ch->lock);
        if (ch->side[side].state == SA_CHAN_UNATTACHED) {
            sa_chan_close_side_locked(ch, side, 0);
            *closed = 1;
        }
        unlinked = sa_chan_unlink_if_done_locked(ch);
        pthread_mutex_unlock(&ch->lock);
    }
    pthread_mutex_unlock(&sa_chan_registry_lock);
    if (ch == NULL)
        return SA_ERR_NOT_FOUND;
    /* An attached end still holds a reference, so this frees the record
     * only if both sides are closed and no end object is left. */
    if (unlinked)
        sa_chan_decref(ch);
    return SA_OK;
}

int sa_chan_close_unattached(uint64_t id, int side)
{
    int closed;
    return sa_chan__close_unattached(id, side, &closed);
}

/* Close or break every open side attached by `owner`. */
static void sa_chan_end_owned_by(uint64_t owner, int broken)
{
    if (owner == 0)
        return;
    pthread_mutex_lock(&sa_chan_registry_lock);
    sa_chan_t *next;
    for (sa_chan_t *ch = sa_chan_registry; ch != NULL; ch = next) {
        next = ch->next;
        pthread_mutex_lock(&ch->lock);
        for (int s = 0; s < 2; s++)
            if (ch->side[s].state == SA_CHAN_OPEN && ch->side[s].owner == owner)
                sa_chan_close_side_locked(ch, s, broken);
        int unlinked = sa_chan_unlink_if_done_locked(ch);
        pthread_mutex_unlock(&ch->lock);
        /* An attached end still holds a reference, so this never frees
         * while a side was open; it may free a record already half gone. */
        if (unlinked)
            sa_chan_decref(ch);
    }
    pthread_mutex_unlock(&sa_chan_registry_lock);
}

void sa_chan_close_owned_by(uint64_t actor_id)
{
    sa_chan_end_owned_by(actor_id, 0);
}

void sa_chan_break_owned_by(uint64_t actor_id)
{
    sa_chan_end_owned_by(actor_id, 1);
}

int sa_chan__info(uint64_t id, sa_chan_info_t *out)
{
    pthread_mutex_lock(&sa_chan_registry_lock);
    sa_chan_t *ch = sa_chan_lookup_locked(id);
    if (ch != NULL) {
        pthread_mutex_lock(&ch->lock);
        for (int s = 0; s < 2; s++) {
            out->state[s] = ch->side[s].state;
            out->broken[s] = ch->side[s].broken;
            out->queued[s] = ch->q[s].count;
            out->bytes[s] = ch->q[s].bytes;
        }
        out->maxmsgs = ch->maxmsgs;
        out->maxbytes = ch->maxbytes;
        pthread_mutex_unlock(&ch->lock);
    }
    pthread_mutex_unlock(&sa_chan_registry_lock);
    return ch != NULL ? SA_OK : SA_ERR_NOT_FOUND;
}

int sa_chan_fileno(sa_chan_t *ch, int side, int for_send)
{
    int rc;
    pthread_mutex_lock(&ch->lock);
    sa_chan_side_t *sd = &ch->side[side];
    int *fd = for_send ? &sd->sfd : &sd->rfd;
    if (sd->state == SA_CHAN_CLOSED) {
        rc = SA_ERR_CLOSED;
    }
    else if (*fd >= 0) {
        rc = *fd;
    }
    else {
        int nfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (nfd < 0) {
            rc = SA_ERR_OS;
        }
        else {
            pthread_mutex_lock(&ch->fdlock);
            *fd = nfd;
            *(for_send ? &sd->slevel : &sd->rlevel) = 0;
            pthread_mutex_unlock(&ch->fdlock);
            sa_chan_sync_fds(ch);
            rc = nfd;
        }
    }
    pthread_mutex_unlock(&ch->lock);
    return rc;
}

void sa_chan__peek(sa_chan_t *ch, int side, int *closed, int *peer_broken)
{
    pthread_mutex_lock(&ch->lock);
    *closed = ch->side[side].state == SA_CHAN_CLOSED;
    *peer_broken = ch->side[1 - side].broken;
    pthread_mutex_unlock(&ch->lock);
}

/* ---------------------------------------------------------------------- */
/* Sending and receiving                                                    */

int sa_chan_send_batch(sa_chan_t *ch, int side, const sa_chan_item_t *items, size_t n, size_t *sent,
                       int64_t deadline)
{
    assert(side == 0 || side == 1);
    sa_chan_queue_t *q = &ch->q[side];
    size_t i = 0;
    int rc = SA_OK;
    int64_t spin_until = 0;
    sa_chan_levels_t lv = {0, {0, 0}, {0, 0}}; /* applied after the lock is let go */
    *sent = 0;
    for (size_t k = 0; k < n; k++)
        if (items[k].len > ch->maxbytes)
            return SA_ERR_TOOBIG;
    pthread_mutex_lock(&ch->lock);
    for (;;) {
        if (ch->side[side].state == SA_CHAN_CLOSED) {
            rc = SA_ERR_CLOSED;
            break;
        }
        if (ch->side[1 - side].state == SA_CHAN_CLOSED) {
            rc = SA_ERR_BROKEN;
            break;
        }
        size_t before = i;
        while (i < n && sa_chan_fits(ch, q, items[i].len)) {
            if ((rc = sa_chan_queue_push(q, ch->maxmsgs, items[i])) < 0)
                break;
            i++;
        }
        if (i > before) {
            atomic_fetch_add_explicit(&q->ver, 1, memory_order_release);
            q->want = 0;
            if (q->recv_waiters)
                pthread_cond_broadcast(&q->nonempty);
            lv = sa_chan_levels(ch);
        }
        if (rc < 0 || i == n)
            break;
        if (deadline == SA_CHAN_NOWAIT) {
            /* A task waiting on the send fd wakes when this one fits. */
            q->want = items[i].len;
            lv = sa_chan_levels(ch);
            rc = SA_ERR_FULL;
            break;
        }
        /* About to wait (the queue is full): the peer must see what was
         * queued before. */
        sa_chan_fds_apply(ch, lv);
        lv.seq = 0;
        if (deadline > 0 && sa_now_ns() >= deadline) {
            rc = SA_ERR_TIMEOUT;
            break;
        }
        q->send_waiters++;
        sa_chan_wait(ch, q, &q->room, deadline, &spin_until);
        q->send_waiters--;
    }
    pthread_mutex_unlock(&ch->lock);
    sa_chan_fds_apply(ch, lv);
    *sent = i;
    return rc;
}

int sa_chan__send_check(sa_chan_t *ch, int side, size_t len)
{
    if (len > ch->maxbytes)
        return SA_ERR_TOOBIG;
    int rc = SA_OK;
    pthread_mutex_lock(&ch->lock);
    if (ch->side[side].state == SA_CHAN_CLOSED)
        rc = SA_ERR_CLOSED;
    else if (ch->side[1 - side].state == SA_CHAN_CLOSED)
        rc = SA_ERR_BROKEN;
    else if (!sa_chan_fits(ch, &ch->q[side], len)) {
        ch->q[side].want = len;
        sa_chan_sync_fds(ch);
        rc = SA_ERR_FULL;
    }
    pthread_mutex_unlock(&ch->lock);
    return rc;
}

int sa_chan_recv_batch(sa_chan_t *ch, int side, sa_chan_item_t *out, size_t max, size_t *got,
                       int64_t deadline)
{
    assert(side == 0 || side == 1);
    assert(max >= 1);
    sa_chan_queue_t *q = &ch->q[1 - side];
    int rc;
    int64_t spin_until = 0;
    sa_chan_levels_t lv = {0, {0, 0}, {0, 0}}; /* applied after the lock is let go */
    *got = 0;
    /* Empty and both sides open, seen without the lock: a nowait receive
     * (the spinning receiver's every try) must not contend with the
     * sender for the lock. A message pushed meanwhile is simply taken by
     * the next try, as if this one had come first. */
    if (deadline == SA_CHAN_NOWAIT && atomic_load_explicit(&q->acount, memory_order_acquire) == 0 &&
        !atomic_load_explicit(&ch->aclosed, memory_order_acquire))
        return SA_ERR_EMPTY;
    pthread_mutex_lock(&ch->lock);
    for (;;) {
        if (ch->side[side].state == SA_CHAN_CLOSED) {
            rc = SA_ERR_CLOSED;
            break;
        }
        if (q->count > 0) {
            size_t n = 0;
            while (n < max && q->count > 0)
                out[n++] = sa_chan_queue_pop(q);
            *got = n;
            atomic_fetch_add_explicit(&q->ver, 1, memory_order_release);
            if (q->send_waiters)
                pthread_cond_broadcast(&q->room);
            lv = sa_chan_levels(ch);
            rc = SA_OK;
            break;
        }
        if (ch->side[1 - side].state == SA_CHAN_CLOSED) {
            rc = ch->side[1 - side].broken ? SA_ERR_BROKEN : SA_CHAN_EOF;
            break;
        }
        if (deadline == SA_CHAN_NOWAIT) {
            rc = SA_ERR_EMPTY;
            break;
        }
        if (deadline > 0 && sa_now_ns() >= deadline) {
            rc = SA_ERR_TIMEOUT;
            break;
        }
        q->recv_waiters++;
        sa_chan_wait(ch, q, &q->nonempty, deadline, &spin_until);
        q->recv_waiters--;
    }
    pthread_mutex_unlock(&ch->lock);
    sa_chan_fds_apply(ch, lv);
    return rc;
}
