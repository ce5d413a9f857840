/* chan.h: channels, whole-message FIFO queues between any two interpreters.
 *
 * A channel is a pair of ends (side 0 and side 1) and one bounded FIFO queue
 * per direction. The record (sa_chan_t) is plain C memory shared by every
 * interpreter of the process, found by a process-unique id that is never
 * reused; it holds no PyObject*. See chan.c for the locks, the lifetime
 * rules and the readiness file descriptors.
 *
 * The GIL-free core is chan.c. The Python face is three files: msgobj.c
 * (the type Message), endobj.c (the type ChannelEnd) and chanmod.c (the
 * module functions, the test hooks and this concern's module state).
 *
 * Core functions need no GIL, return 0 or a negative code (SA_ERR_* of
 * common.h, or SA_CHAN_EOF) and never block past their deadline. A deadline
 * is an absolute sa_now_ns() time; SA_CHAN_FOREVER waits without end and
 * SA_CHAN_NOWAIT never waits (SA_ERR_EMPTY / SA_ERR_FULL instead of
 * SA_ERR_TIMEOUT).
 */
#ifndef SA_CHAN_H
#define SA_CHAN_H

#include <stddef.h>
#include <stdint.h>

/* Clean end of stream: the peer closed its end and everything it sent was
 * received. Chan-specific, so it lives here and not among common.h's codes. */
#define SA_CHAN_EOF (-32)

#define SA_CHAN_FOREVER ((int64_t)-1) /* deadline: wait without end */
#define SA_CHAN_NOWAIT ((int64_t)0)   /* deadline: do not wait at all */

#define SA_CHAN_DEFAULT_MAXMSGS 1024          /* messages queued per direction */
#define SA_CHAN_DEFAULT_MAXBYTES (64u << 20)  /* bytes queued per direction */

typedef struct sa_chan sa_chan_t;

/* One message in flight: a raw buffer from sa_chan_buf_alloc() and its length. */
typedef struct {
    char *buf;  /* owned by whoever holds the item */
    size_t len; /* bytes in buf */
} sa_chan_item_t;

/* Per-interpreter state of the chan concern (part of the module state). */
typedef struct {
    PyTypeObject *EndType;     /* _ext.ChannelEnd */
    PyTypeObject *MessageType; /* _ext.Message: a received message, read-only buffer */
    PyObject *EndOfChannel;    /* _ext.EndOfChannel, an EOFError subclass */
    PyObject *tick;            /* a Python no-op; calling it delivers pending interrupts */
    uint64_t owner;            /* actor that imported this module (0: none) */
} sa_chan_state_t;

/* Add Message, ChannelEnd, EndOfChannel and the channel functions to `mod`
 * and fill `st` (chanmod.c): 0, or -1 with an exception set. Traverse and
 * clear visit and drop the references `st` holds. */
int sa_chan_module_init(PyObject *mod, sa_chan_state_t *st);
int sa_chan_state_traverse(sa_chan_state_t *st, visitproc visit, void *arg);
void sa_chan_state_clear(sa_chan_state_t *st);

/* --- message buffers ----------------------------------------------------
 * Every buffer that travels through a channel comes from here, so that
 * sa_counters.buffers counts them all: ChannelEnd.send() copies the
 * caller's bytes-like object (typically the bytes of dumps()) into one. No
 * other allocator's buffer may be queued; in particular the PyMem_Raw
 * buffer of sa_codec_encode_raw() (codec.h) is not one of these, and the
 * channel layer never calls the codec. */

/* A raw buffer of `len` bytes, or NULL on no memory. Free it only with
 * sa_chan_buf_free (not PyMem_RawFree): it carries a header, and large ones
 * go back to a pool for reuse. Needs no GIL. */
char *sa_chan_buf_alloc(size_t len);
/* Free a buffer from sa_chan_buf_alloc() (or one received). NULL is fine. */
void sa_chan_buf_free(char *buf);
/* Bytes usable at a buffer from sa_chan_buf_alloc() (>= the length asked). */
size_t sa_chan_buf_cap(char *buf);

/* --- records -------------------------------------------------------------- */

/* Create a channel bounded per direction by `maxmsgs` messages and `maxbytes`
 * bytes (both >= 1) and register it; its id goes to *id. The registry keeps
 * it alive (see chan.c for when it lets go). 0, SA_ERR_NOMEM or SA_ERR_STATE
 * (a zero bound). */
int sa_chan_create(size_t maxmsgs, size_t maxbytes, uint64_t *id);

/* Attach `side` of channel `id` for the actor `owner` (0: none) and give
 * the caller one reference in *out. 0; SA_ERR_NOT_FOUND (no such channel,
 * or both sides are closed); SA_ERR_CLOSED (that side was closed already);
 * SA_ERR_STATE (that side is attached and open). */
int sa_chan_attach(uint64_t id, int side, uint64_t owner, sa_chan_t **out);

/* Close `side` (if still open), close its file descriptors and drop the
 * caller's reference from sa_chan_attach(). `ch` must not be used after.
 * Can't fail. */
void sa_chan_detach(sa_chan_t *ch, int side);

/* Extra references, for C code that keeps a record beyond an end object. */
void sa_chan_incref(sa_chan_t *ch);
void sa_chan_decref(sa_chan_t *ch);

uint64_t sa_chan_id(const sa_chan_t *ch);

/* Close both sides of channel `id` at once: attached ends get SA_ERR_CLOSED,
 * queued messages are freed, the registry lets go. 0 or SA_ERR_NOT_FOUND. */
int sa_chan_destroy(uint64_t id);

/* Close `side` of channel `id` if it was never attached: what was queued
 * toward it is freed and the registry lets go once the other side closes
 * too (as if an end had been attached and closed). A side that is
 * attached (open or closed) is left alone. 0, or SA_ERR_NOT_FOUND if the
 * channel is gone. Needs no GIL; can't block. */
int sa_chan_close_unattached(uint64_t id, int side);

/* Mark every open end attached by actor `actor_id` closed (close_) or broken
 * (break_), waking every waiter. The peer of a closed end drains what was
 * sent and then gets SA_CHAN_EOF; the peer of a broken end drains what was
 * sent and then gets SA_ERR_BROKEN; sends to either get SA_ERR_BROKEN at
 * once. actor_id 0 does nothing. Call without holding any channel lock (a
 * GIL may be held). Can't fail. */
void sa_chan_close_owned_by(uint64_t actor_id);
void sa_chan_break_owned_by(uint64_t actor_id);

/* --- messages --------------------------------------------------------------- */

/* Queue `items[0..n)` from `side` in order, waiting for room up to
 * `deadline`. *sent says how many were queued (a prefix); the channel owns
 * those buffers, the caller still owns the rest. 0 when all were queued;
 * else SA_ERR_CLOSED (own side closed), SA_ERR_BROKEN (peer closed or
 * broken), SA_ERR_TOOBIG (some item is larger than maxbytes; nothing queued),
 * SA_ERR_FULL (NOWAIT), SA_ERR_TIMEOUT, SA_ERR_NOMEM. */
int sa_chan_send_batch(sa_chan_t *ch, int side, const sa_chan_item_t *items, size_t n, size_t *sent,
                       int64_t deadline);

/* Take up to `max` (>= 1) queued messages for `side` into out[], waiting up
 * to `deadline` for at least one. *got says how many; their buffers now
 * belong to the caller (free with sa_chan_buf_free). 0; SA_ERR_CLOSED (own
 * side closed); SA_CHAN_EOF (drained, peer closed); SA_ERR_BROKEN (drained,
 * peer broken); SA_ERR_EMPTY (NOWAIT); SA_ERR_TIMEOUT. */
int sa_chan_recv_batch(sa_chan_t *ch, int side, sa_chan_item_t *out, size_t max, size_t *got,
                       int64_t deadline);

/* The readiness eventfd of `side`, made on first use: `for_send` 0 gives the
 * one readable iff a recv would not block, 1 the one readable iff a send
 * would not block. Closed by sa_chan_detach(). The fd (>= 0), SA_ERR_CLOSED
 * or SA_ERR_OS. */
int sa_chan_fileno(sa_chan_t *ch, int side, int for_send);

/* The byte bound of one direction (constant). */
size_t sa_chan_maxbytes(const sa_chan_t *ch);

/* --- internal: shared by chan.c (core) and its binding files only ---------- */

enum { SA_CHAN_UNATTACHED = 0, SA_CHAN_OPEN = 1, SA_CHAN_CLOSED = 2 }; /* side states */

/* A snapshot of a registered channel, for tests. */
typedef struct {
    int state[2];       /* per side: SA_CHAN_UNATTACHED, SA_CHAN_OPEN or SA_CHAN_CLOSED */
    int broken[2];      /* per side: 1 if it was broken */
    size_t queued[2];   /* per direction (sent by side d): messages queued */
    size_t bytes[2];    /* per direction: bytes queued */
    size_t maxmsgs;     /* bound on messages per direction */
    size_t maxbytes;    /* bound on bytes per direction */
} sa_chan_info_t;

/* Fill *out for channel `id`: 0 or SA_ERR_NOT_FOUND. */
int sa_chan__info(uint64_t id, sa_chan_info_t *out);
/* sa_chan_close_unattached() that also says, in *closed, whether it closed
 * the side (1) or left it alone (0: attached, or closed already), for the
 * test hook _chan_close_unattached. */
int sa_chan__close_unattached(uint64_t id, int side, int *closed);
/* Whether `side` is closed and whether its peer broke, read under the lock. */
void sa_chan__peek(sa_chan_t *ch, int side, int *closed, int *peer_broken);
/* Whether a message of `len` bytes could be sent now, without sending it:
 * 0, SA_ERR_CLOSED, SA_ERR_BROKEN, SA_ERR_TOOBIG or SA_ERR_FULL (which
 * notes `len` for the send fd, as a failed nowait send does). */
int sa_chan__send_check(sa_chan_t *ch, int side, size_t len);
/* How long blocking calls spin before they sleep (ns, process-wide); set
 * it if ns >= 0. Returns the previous value. */
int64_t sa_chan__spin(int64_t ns);
/* How many large buffers the pool keeps and their bytes; frees them all
 * (after reading) if `clear`. */
void sa_chan__pool(int clear, long long max, size_t *count, size_t *bytes, size_t *misses, size_t *drops);

/* --- binding helpers (msgobj.c, endobj.c, chanmod.c; GIL held) -------------- */

/* A new _ext.Message owning `buf` (given up by the caller in every case:
 * freed on failure), or NULL with MemoryError set. In msgobj.c, for the
 * receives of endobj.c. */
PyObject *sa_chan_message_new(sa_chan_state_t *st, char *buf, size_t len);
/* The same, marked outgoing (codec.c's dumps_msg()): ChannelEnd.send()
 * queues its buffer itself instead of a copy, and the Message reads as
 * released once queued. */
PyObject *sa_chan_message_out(sa_chan_state_t *st, char *buf, size_t len);
/* If `obj` is an outgoing Message with no view alive, move its buffer into
 * *it (the Message is released) and return 1; else 0, nothing done. */
int sa_chan_message_take(sa_chan_state_t *st, PyObject *obj, sa_chan_item_t *it);
/* Undo a take whose item was not queued: the Message owns it again. */
void sa_chan_message_give_back(PyObject *obj, sa_chan_item_t *it);

/* Make the type Message (msgobj.c) or ChannelEnd (endobj.c) for the
 * module `mod`, add it to `mod` and keep a reference in st->MessageType or
 * st->EndType (cleared by sa_chan_state_clear()). For sa_chan_module_init()
 * of chanmod.c. 0, or -1 with an exception set. */
int sa_chan_message_type_add(PyObject *mod, sa_chan_state_t *st);
int sa_chan_end_type_add(PyObject *mod, sa_chan_state_t *st);

#endif
