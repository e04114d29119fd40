/* dream_ring: a lock-free single-producer single-consumer ring of floats.
 *
 * One thread writes, one thread reads; neither ever waits. Head and tail are
 * free-running counters (they wrap at SIZE_MAX, which unsigned arithmetic
 * handles); capacity is a power of two so an index is `counter & mask`.
 * The producer publishes data with a release store of `head`, the consumer
 * frees room with a release store of `tail`; each side loads the other's
 * counter with acquire, so the samples are visible before the counter is.
 *
 * Multichannel audio travels interleaved (frame after frame); the _planar
 * variants convert from and to a host's one-buffer-per-channel layout.
 *
 * No host headers: every host's glue can use it. */
#ifndef DREAM_RING_H
#define DREAM_RING_H

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* perform must never block: refuse to build where size_t atomics take a lock. */
#if defined(__SIZEOF_SIZE_T__) && __SIZEOF_SIZE_T__ == 8 && ATOMIC_LLONG_LOCK_FREE != 2
#error "dream_ring needs lock-free 64-bit atomics"
#elif defined(__SIZEOF_SIZE_T__) && __SIZEOF_SIZE_T__ == 4 && ATOMIC_INT_LOCK_FREE != 2
#error "dream_ring needs lock-free 32-bit atomics"
#endif

typedef struct dream_ring {
    float *data;
    size_t mask;              /* capacity - 1 */
    _Atomic size_t head;      /* written by the producer only */
    _Atomic size_t tail;      /* written by the consumer only */
} dream_ring;

/* Allocates room for at least `min_capacity` samples; returns 0 on success. */
static inline int dream_ring_init(dream_ring *r, size_t min_capacity)
{
    size_t cap = 1;
    while (cap < min_capacity)
        cap <<= 1;
    r->data = (float *)calloc(cap, sizeof(float));
    if (!r->data)
        return -1;
    r->mask = cap - 1;
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    return 0;
}

static inline void dream_ring_free(dream_ring *r)
{
    free(r->data);
    r->data = NULL;
}

/* Samples ready to read (consumer side). */
static inline size_t dream_ring_readable(dream_ring *r)
{
    size_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    return head - tail;
}

/* Room to write (producer side). */
static inline size_t dream_ring_writable(dream_ring *r)
{
    size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    size_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    return r->mask + 1 - (head - tail);
}

/* Copies up to n samples in; returns how many fitted. */
static inline size_t dream_ring_write(dream_ring *r, const float *src, size_t n)
{
    size_t room = dream_ring_writable(r);
    size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    size_t i, first;
    if (n > room)
        n = room;
    i = head & r->mask;
    first = r->mask + 1 - i;        /* samples before the wrap */
    if (first > n)
        first = n;
    memcpy(r->data + i, src, first * sizeof(float));
    memcpy(r->data, src + first, (n - first) * sizeof(float));
    atomic_store_explicit(&r->head, head + n, memory_order_release);
    return n;
}

/* Copies up to n samples out (dst may be NULL to discard); returns how many. */
static inline size_t dream_ring_read(dream_ring *r, float *dst, size_t n)
{
    size_t avail = dream_ring_readable(r);
    size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    size_t i, first;
    if (n > avail)
        n = avail;
    if (dst) {
        i = tail & r->mask;
        first = r->mask + 1 - i;
        if (first > n)
            first = n;
        memcpy(dst, r->data + i, first * sizeof(float));
        memcpy(dst + first, r->data, (n - first) * sizeof(float));
    }
    atomic_store_explicit(&r->tail, tail + n, memory_order_release);
    return n;
}

/* Interleaves n frames of nch planar channels in; all or nothing, so frames
 * never split. Returns n, or 0 when they do not fit. */
static inline size_t dream_ring_write_planar(dream_ring *r, const float *const *src,
                                             unsigned nch, size_t n)
{
    size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    size_t i;
    unsigned c;
    if (n * nch > dream_ring_writable(r))
        return 0;
    for (i = 0; i < n; i++)
        for (c = 0; c < nch; c++)
            r->data[(head + i * nch + c) & r->mask] = src[c][i];
    atomic_store_explicit(&r->head, head + n * nch, memory_order_release);
    return n;
}

/* De-interleaves up to n whole frames out to nch planar buffers; returns how
 * many frames. */
static inline size_t dream_ring_read_planar(dream_ring *r, float *const *dst,
                                            unsigned nch, size_t n)
{
    size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    size_t avail = dream_ring_readable(r) / nch, i;
    unsigned c;
    if (n > avail)
        n = avail;
    for (i = 0; i < n; i++)
        for (c = 0; c < nch; c++)
            dst[c][i] = r->data[(tail + i * nch + c) & r->mask];
    atomic_store_explicit(&r->tail, tail + n * nch, memory_order_release);
    return n;
}

/* Empties the ring. Only safe while neither side is using it. */
static inline void dream_ring_clear(dream_ring *r)
{
    atomic_store_explicit(&r->head, 0, memory_order_relaxed);
    atomic_store_explicit(&r->tail, 0, memory_order_relaxed);
}

#endif
