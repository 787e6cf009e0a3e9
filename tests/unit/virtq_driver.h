/* The guest's side of split virtqueues on fake guest memory, for the tests
 * that play the driver against a device model: rings laid out and set up as
 * the transport would at DRIVER_OK, descriptor chains made available, kicks,
 * used elements taken back with a timeout, and an interrupt handle that only
 * counts its calls. Header-only, like proc_census.h: every test binary is
 * built from its one source file. */
#ifndef MINIVMM_TESTS_VIRTQ_DRIVER_H
#define MINIVMM_TESTS_VIRTQ_DRIVER_H

#include <criterion/criterion.h>
#include <endian.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "devices/virtio/virtio.h"
#include "vmm/base/guest_mem.h"

/* How long a test waits for a device's threads before it fails: far more
 * than they need, even in the sanitizer build on a busy host. */
#define TEST_TIMEOUT_MS 5000

/* Ring layout: each part on a page of its own, the descriptor table at the
 * ring address. A page holds the descriptor table of 256 entries. */
#define VIRTQ_DRIVER_AVAIL_OFF  0x1000
#define VIRTQ_DRIVER_USED_OFF   0x2000
#define VIRTQ_DRIVER_RING_BYTES 0x3000
#define VIRTQ_DRIVER_MAX_SIZE   256

static inline uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Waits (at most TEST_TIMEOUT_MS) for *counter, bumped by a device thread,
 * to reach at least want; calls tick (if not NULL) at every look, for a test
 * that times how late this thread wakes, and then looks every 100 µs. */
static inline void wait_count_ticking(atomic_uint *counter, unsigned want, const char *what, void (*tick)(void))
{
	uint64_t deadline = now_ms() + TEST_TIMEOUT_MS;
	for (;;) {
		if (tick)
			tick();
		if (atomic_load(counter) >= want)
			return;
		cr_assert_lt(now_ms(), deadline, "%s: still %u after %d ms", what, atomic_load(counter),
			     TEST_TIMEOUT_MS);
		usleep(tick ? 100 : 200);
	}
}

static inline void wait_count(atomic_uint *counter, unsigned want, const char *what)
{
	wait_count_ticking(counter, want, what, NULL);
}

/* Host address of guest address a; not RAM is a bug of the test. */
static inline void *guest_ptr(const struct guest_mem *mem, uint64_t a)
{
	void *p = guest_mem_ptr(mem, a, 1);
	cr_assert_not_null(p, "test bug: 0x%llx not RAM", (unsigned long long)a);
	return p;
}

/* ---- the interrupt handle a transport gives a device at activate ---- */

/* Counts every call. Device threads make them, where a failed cr_assert
 * would not fail the test: the test looks at the counts instead. */
struct recording_irq {
	struct virtio_irq irq;   /* what the device gets; ctx is this struct */
	atomic_uint queue_calls[VIRTIO_MAX_QUEUES];
	atomic_uint config_calls;
	atomic_uint needs_reset_calls;
};

static inline void recording_irq_queue(const struct virtio_irq *irq, unsigned q)
{
	struct recording_irq *r = irq->ctx;
	if (q < VIRTIO_MAX_QUEUES)
		atomic_fetch_add(&r->queue_calls[q], 1);
}

static inline void recording_irq_config(const struct virtio_irq *irq)
{
	atomic_fetch_add(&((struct recording_irq *)irq->ctx)->config_calls, 1);
}

static inline void recording_irq_needs_reset(const struct virtio_irq *irq)
{
	atomic_fetch_add(&((struct recording_irq *)irq->ctx)->needs_reset_calls, 1);
}

/* Counts from zero; no queue notifier (the device forwards to queue()). */
static inline void recording_irq_init(struct recording_irq *r)
{
	memset(r, 0, sizeof(*r));
	r->irq = (struct virtio_irq){
		.queue = recording_irq_queue,
		.config = recording_irq_config,
		.needs_reset = recording_irq_needs_reset,
		.ctx = r,
	};
}

/* ---- the driver of one queue ---- */

struct virtq_driver {
	const struct guest_mem *mem;
	struct virtio_queue *queue;   /* the transport's side: its kick eventfd */
	unsigned index;               /* the queue's number, for failure messages */
	uint16_t size;
	uint64_t ring_gpa;            /* VIRTQ_DRIVER_RING_BYTES there */
	uint16_t avail_idx;           /* next avail->idx */
	bool hold_publish;            /* adds wait for virtq_driver_publish() */
	uint16_t used_seen;           /* used entries consumed */
	uint16_t next_desc;           /* where the next chain goes in the descriptor table */
	uint64_t buf_gpa, buf_size;   /* what virtq_driver_alloc() hands out */
	uint64_t next_buf;
};

/* One buffer of a descriptor chain. */
struct virtq_seg {
	uint64_t gpa;
	uint32_t len;
	bool write;   /* device-writable */
};

/* What the driver and then the transport do up to DRIVER_OK: zeroed rings
 * at ring_gpa, queue q (number index) configured and ready on them and set
 * up with the negotiated event_idx and indirect; the driver starts from
 * index 0 with no buffer space. */
static inline void virtq_driver_init(struct virtq_driver *d, struct virtio_queue *q, unsigned index,
				     const struct guest_mem *mem, uint16_t size, uint64_t ring_gpa, bool event_idx,
				     bool indirect)
{
	cr_assert(size >= 1 && size <= VIRTQ_DRIVER_MAX_SIZE, "test bug: queue size %u", size);
	void *rings = guest_mem_ptr(mem, ring_gpa, VIRTQ_DRIVER_RING_BYTES);
	cr_assert_not_null(rings, "test bug: rings at 0x%llx not RAM", (unsigned long long)ring_gpa);
	memset(rings, 0, VIRTQ_DRIVER_RING_BYTES);
	memset(&q->vq, 0, sizeof(q->vq));
	q->size = size;
	q->desc = ring_gpa;
	q->avail = ring_gpa + VIRTQ_DRIVER_AVAIL_OFF;
	q->used = ring_gpa + VIRTQ_DRIVER_USED_OFF;
	q->ready = true;
	cr_assert_eq(virtq_init(&q->vq, mem, size, q->desc, q->avail, q->used, event_idx, indirect), 0);
	*d = (struct virtq_driver){ .mem = mem, .queue = q, .index = index, .size = size, .ring_gpa = ring_gpa };
}

/* Guest memory [gpa, gpa + size) for virtq_driver_alloc() to hand out. */
static inline void virtq_driver_set_buffers(struct virtq_driver *d, uint64_t gpa, uint64_t size)
{
	d->buf_gpa = gpa;
	d->buf_size = size;
	d->next_buf = 0;
}

static inline struct virtq_desc *virtq_driver_desc(const struct virtq_driver *d)
{
	return guest_ptr(d->mem, d->ring_gpa);
}

static inline struct virtq_avail *virtq_driver_avail(const struct virtq_driver *d)
{
	return guest_ptr(d->mem, d->ring_gpa + VIRTQ_DRIVER_AVAIL_OFF);
}

static inline struct virtq_used *virtq_driver_used(const struct virtq_driver *d)
{
	return guest_ptr(d->mem, d->ring_gpa + VIRTQ_DRIVER_USED_OFF);
}

/* len bytes of the buffer space, 64-byte aligned; starts over from the
 * beginning when the rest is too short. */
static inline uint64_t virtq_driver_alloc(struct virtq_driver *d, uint32_t len)
{
	uint64_t need = (len + 63u) & ~63ull;
	cr_assert_leq(need, d->buf_size, "test bug: queue %u: %u bytes of buffer space wanted", d->index, len);
	if (d->next_buf + need > d->buf_size)
		d->next_buf = 0;
	uint64_t a = d->buf_gpa + d->next_buf;
	d->next_buf += need;
	return a;
}

/* The guest's queue notify: signals the queue's kick eventfd. */
static inline void virtq_driver_kick(const struct virtq_driver *d)
{
	uint64_t one = 1;
	cr_assert_eq(write(d->queue->kick_fd, &one, sizeof(one)), sizeof(one));
}

/* Writes the chain of n buffers into the descriptor table, after the last
 * chain or from the start when it does not fit, and makes it available
 * without a kick. Returns its head. */
static inline uint16_t virtq_driver_add(struct virtq_driver *d, const struct virtq_seg *segs, unsigned n)
{
	cr_assert(n >= 1 && n <= d->size);
	if (d->next_desc + n > d->size)
		d->next_desc = 0;
	uint16_t head = d->next_desc;
	struct virtq_desc *table = virtq_driver_desc(d);
	for (unsigned i = 0; i < n; i++) {
		struct virtq_desc *e = &table[head + i];
		e->addr = htole64(segs[i].gpa);
		e->len = htole32(segs[i].len);
		e->flags = htole16((uint16_t)((i + 1 < n ? VIRTQ_DESC_F_NEXT : 0) |
					      (segs[i].write ? VIRTQ_DESC_F_WRITE : 0)));
		e->next = htole16((uint16_t)(head + i + 1));
	}
	d->next_desc = (uint16_t)(head + n);
	struct virtq_avail *avail = virtq_driver_avail(d);
	avail->ring[d->avail_idx % d->size] = htole16(head);
	d->avail_idx++;
	if (!d->hold_publish)
		__atomic_store_n(&avail->idx, htole16(d->avail_idx), __ATOMIC_RELEASE);
	return head;
}

/* Makes every chain added since hold_publish was set available at once (a
 * device looking meanwhile saw none of them), and stops holding. */
static inline void virtq_driver_publish(struct virtq_driver *d)
{
	__atomic_store_n(&virtq_driver_avail(d)->idx, htole16(d->avail_idx), __ATOMIC_RELEASE);
	d->hold_publish = false;
}

/* avail_event (EVENT_IDX): the avail index whose adding the device wants a
 * kick for. */
static inline uint16_t virtq_driver_avail_event(const struct virtq_driver *d)
{
	uint16_t v = __atomic_load_n((uint16_t *)(void *)&virtq_driver_used(d)->ring[d->size], __ATOMIC_ACQUIRE);
	return le16toh(v);
}

/* After one virtq_driver_add() (EVENT_IDX): kicks as a driver does, only
 * when the device's avail_event, read after the entry was published, asks
 * for it. Returns whether it kicked. */
static inline bool virtq_driver_kick_if_asked(const struct virtq_driver *d)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);   /* the driver's barrier between avail->idx and avail_event */
	uint16_t idx = d->avail_idx;
	bool kick = virtq_need_event(virtq_driver_avail_event(d), idx, (uint16_t)(idx - 1));
	if (kick)
		virtq_driver_kick(d);
	return kick;
}

/* virtq_driver_add(), then a kick. */
static inline uint16_t virtq_driver_submit(struct virtq_driver *d, const struct virtq_seg *segs, unsigned n)
{
	uint16_t head = virtq_driver_add(d, segs, n);
	virtq_driver_kick(d);
	return head;
}

/* used->idx as the device last published it. */
static inline uint16_t virtq_driver_used_idx(const struct virtq_driver *d)
{
	return le16toh(__atomic_load_n(&virtq_driver_used(d)->idx, __ATOMIC_ACQUIRE));
}

static inline bool virtq_driver_has_used(const struct virtq_driver *d)
{
	return virtq_driver_used_idx(d) != d->used_seen;
}

/* Takes the next used element (id and len in host order); there is one. */
static inline struct virtq_used_elem virtq_driver_take_used(struct virtq_driver *d)
{
	struct virtq_used_elem e = virtq_driver_used(d)->ring[d->used_seen % d->size];
	d->used_seen++;
	return (struct virtq_used_elem){ .id = le32toh(e.id), .len = le32toh(e.len) };
}

/* Takes the next used element (id and len in host order), waiting at most
 * TEST_TIMEOUT_MS for it; tick as for wait_count_ticking. */
static inline struct virtq_used_elem virtq_driver_wait_used_ticking(struct virtq_driver *d, void (*tick)(void))
{
	uint64_t deadline = now_ms() + TEST_TIMEOUT_MS;
	for (;;) {
		if (tick)
			tick();
		if (virtq_driver_has_used(d))
			return virtq_driver_take_used(d);
		cr_assert_lt(now_ms(), deadline, "queue %u: no used buffer after %d ms", d->index, TEST_TIMEOUT_MS);
		usleep(tick ? 100 : 200);
	}
}

static inline struct virtq_used_elem virtq_driver_wait_used(struct virtq_driver *d)
{
	return virtq_driver_wait_used_ticking(d, NULL);
}

/* Nothing is used on the queue during ms. */
static inline void virtq_driver_assert_no_used(const struct virtq_driver *d, unsigned ms)
{
	usleep(ms * 1000);
	cr_assert(!virtq_driver_has_used(d), "queue %u: unexpected used buffer", d->index);
}

#endif
