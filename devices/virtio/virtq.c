#include "devices/virtio/virtq.h"

#include <endian.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "vmm/base/log.h"
#include "vmm/base/log_limit.h"

/* Ring fields are shared with the guest's CPUs: read and write each one with
 * a single (relaxed) atomic access, so the compiler can neither tear it nor
 * fetch it twice. Ordering comes from the explicit fences below. */
static inline uint16_t rd16(const uint16_t *p)
{
	return le16toh(__atomic_load_n(p, __ATOMIC_RELAXED));
}

static inline void wr16(uint16_t *p, uint16_t v)
{
	__atomic_store_n(p, htole16(v), __ATOMIC_RELAXED);
}

static inline void wr32(uint32_t *p, uint32_t v)
{
	__atomic_store_n(p, htole32(v), __ATOMIC_RELAXED);
}

static inline uint16_t *used_event(const struct virtq *q)
{
	return &q->avail->ring[q->size];
}

static inline uint16_t *avail_event(const struct virtq *q)
{
	return (uint16_t *)&q->used->ring[q->size];
}

/* Copies one descriptor out of guest memory, exactly once: the compiler
 * barrier forbids re-reading guest memory in place of the local copy, so the
 * values we check are the values we use. src may be unaligned (an indirect
 * table can sit anywhere). */
static inline void read_desc(struct virtq_desc *d, const uint8_t *src)
{
	memcpy(d, src, sizeof(*d));
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	d->addr = le64toh(d->addr);
	d->len = le32toh(d->len);
	d->flags = le16toh(d->flags);
	d->next = le16toh(d->next);
}

/* Marks the queue broken, logging the first reason only. Returns -1. */
static int __attribute__((format(printf, 2, 3))) fail(struct virtq *q, const char *fmt, ...)
{
	if (!q->broken) {
		char msg[200];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		log_warn_limited(q->log_limit, "virtq%s%s: %s; queue stopped until the device is reset",
				 q->name ? " " : "", q->name ? q->name : "", msg);
		q->broken = true;
	}
	return -1;
}

static int layout_err(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int layout_err(char *why, size_t len, const char *fmt, ...)
{
	if (why && len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why, len, fmt, ap);
		va_end(ap);
	}
	return -1;
}

int virtq_check_layout(const struct guest_mem *mem, uint16_t size, uint64_t desc, uint64_t avail, uint64_t used,
		       char *why, size_t why_len)
{
	if (size == 0 || size > VIRTQ_MAX_SIZE || (size & (size - 1)))
		return layout_err(why, why_len, "size %u is not a power of 2 in 1..%u", size, VIRTQ_MAX_SIZE);
	static const char *const names[3] = { "descriptor table", "available ring", "used ring" };
	const uint64_t gpa[3] = { desc, avail, used };
	const uint64_t bytes[3] = { VIRTQ_DESC_BYTES(size), VIRTQ_AVAIL_BYTES(size), VIRTQ_USED_BYTES(size) };
	const unsigned align[3] = { 16, 2, 4 };
	for (unsigned i = 0; i < 3; i++) {
		if (gpa[i] % align[i])
			return layout_err(why, why_len, "%s 0x%" PRIx64 " is not %u-byte aligned", names[i], gpa[i],
					  align[i]);
		void *p = guest_mem_ptr(mem, gpa[i], bytes[i]);
		if (!p)
			return layout_err(why, why_len, "%s 0x%" PRIx64 "+0x%" PRIx64 " is outside guest RAM", names[i],
					  gpa[i], bytes[i]);
		/* The host side must be aligned too for the atomic accesses. */
		if ((uintptr_t)p % align[i])
			return layout_err(why, why_len, "%s 0x%" PRIx64 " maps to a misaligned host address", names[i],
					  gpa[i]);
	}
	return 0;
}

int virtq_init(struct virtq *q, const struct guest_mem *mem, uint16_t size, uint64_t desc,
	       uint64_t avail, uint64_t used, bool event_idx, bool indirect)
{
	memset(q, 0, sizeof(*q));
	q->broken = true;   /* until everything checks out: every call then fails */
	if (virtq_check_layout(mem, size, desc, avail, used, NULL, 0))
		return -1;
	void *d = guest_mem_ptr(mem, desc, VIRTQ_DESC_BYTES(size));
	void *a = guest_mem_ptr(mem, avail, VIRTQ_AVAIL_BYTES(size));
	void *u = guest_mem_ptr(mem, used, VIRTQ_USED_BYTES(size));

	q->mem = mem;
	q->size = size;
	q->desc_gpa = desc;
	q->avail_gpa = avail;
	q->used_gpa = used;
	q->event_idx = event_idx;
	q->indirect = indirect;
	q->desc = d;
	q->avail = a;
	q->used = u;
	q->broken = false;
	return 0;
}

/* Reads avail->idx. Returns how many entries are available, or -1 (broken)
 * when the driver claims more than the ring holds. */
static int refresh_avail(struct virtq *q)
{
	/* Ring entries and descriptors are read after the index that covers
	 * them: an acquire load (not a fence: ThreadSanitizer models loads and
	 * stores, not fences, and the test harnesses pair with it). */
	uint16_t idx = le16toh(__atomic_load_n(&q->avail->idx, __ATOMIC_ACQUIRE));
	uint16_t n = idx - q->last_avail_idx;
	if (n > q->size)
		return fail(q, "available index %u is %u entries ahead of the device's %u (queue size %u)",
			    idx, n, q->last_avail_idx, q->size);
	q->avail_idx_shadow = idx;
	return n;
}

/* 1: a chain is available, 0: none, -1: broken. */
static int avail_check(struct virtq *q)
{
	if (q->broken)
		return -1;
	if (q->avail_idx_shadow != q->last_avail_idx)
		return 1;
	int n = refresh_avail(q);
	if (n != 0 || !q->event_idx || q->kicks_off)
		return n < 0 ? -1 : n > 0;
	/* Empty. Ask for a kick when the driver adds entry last_avail_idx, then
	 * look again: the driver may have added it (and read the old
	 * avail_event, deciding not to kick) just before our write. Pairs with
	 * the driver's full barrier between writing avail->idx and reading
	 * avail_event. */
	wr16(avail_event(q), q->last_avail_idx);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	n = refresh_avail(q);
	return n < 0 ? -1 : n > 0;
}

bool virtq_has_buffers(struct virtq *q)
{
	return avail_check(q) > 0;
}

/* Walks the chain starting at head into c. Returns 0, or -1 (broken). Every
 * loop is bounded: at most size steps in the descriptor table, at most
 * VIRTQ_MAX_IOV descriptors in all (so at most size + VIRTQ_MAX_IOV reads). */
static int walk_chain(struct virtq *q, struct virtq_chain *c, uint16_t head)
{
	const uint8_t *table = (const uint8_t *)q->desc;
	uint32_t table_len = q->size;      /* entries in the current table */
	uint32_t steps = 0;                /* descriptors read in the current table */
	uint32_t idx = head;
	bool in_indirect = false, seen_write = false;
	unsigned n_desc = 0, n_iov = 0;

	c->head = head;
	c->n_out = c->n_in = 0;
	c->out_len = c->in_len = 0;
	if (head >= q->size)
		return fail(q, "head index %u out of range (queue size %u)", head, q->size);

	for (;;) {
		struct virtq_desc d;

		if (++steps > table_len) {
			if (in_indirect)
				return fail(q, "indirect descriptor chain loops (head %u)", head);
			return fail(q, "descriptor chain loops (head %u)", head);
		}
		read_desc(&d, table + (size_t)idx * sizeof(struct virtq_desc));

		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			if (in_indirect)
				return fail(q, "indirect descriptor inside an indirect table (head %u)", head);
			if (!q->indirect)
				return fail(q, "indirect descriptor without VIRTIO_F_INDIRECT_DESC (head %u)", head);
			if (d.flags & VIRTQ_DESC_F_NEXT)
				return fail(q, "descriptor with both INDIRECT and NEXT (head %u)", head);
			if (d.len == 0 || d.len % sizeof(struct virtq_desc))
				return fail(q, "indirect table length %" PRIu32 " is not a non-zero multiple of 16 (head %u)",
					    d.len, head);
			table = guest_mem_ptr(q->mem, d.addr, d.len);
			if (!table)
				return fail(q, "indirect table 0x%" PRIx64 "+0x%" PRIx32 " is outside guest RAM (head %u)",
					    d.addr, d.len, head);
			table_len = d.len / sizeof(struct virtq_desc);
			idx = 0;
			steps = 0;
			in_indirect = true;
			continue;
		}

		if (++n_desc > VIRTQ_MAX_IOV)
			return fail(q, "descriptor chain holds more than %u descriptors (head %u)", VIRTQ_MAX_IOV, head);
		bool write = d.flags & VIRTQ_DESC_F_WRITE;
		if (!write && seen_write)
			return fail(q, "device-readable descriptor after a device-writable one (head %u)", head);
		seen_write |= write;

		if (d.len) {
			void *p = guest_mem_ptr(q->mem, d.addr, d.len);
			if (!p)
				return fail(q, "buffer 0x%" PRIx64 "+0x%" PRIx32 " is outside guest RAM (head %u)",
					    d.addr, d.len, head);
			/* each len < 2^32 and at most VIRTQ_MAX_IOV of them: no 64-bit overflow */
			if (c->out_len + c->in_len + d.len > UINT32_MAX)
				return fail(q, "descriptor chain is longer than 4 GiB in total (head %u)", head);
			c->iov[n_iov].iov_base = p;
			c->iov[n_iov].iov_len = d.len;
			n_iov++;
			if (write) {
				c->n_in++;
				c->in_len += d.len;
			} else {
				c->n_out++;
				c->out_len += d.len;
			}
		}

		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		if (d.next >= table_len)
			return fail(q, "next index %u out of range (%s of %" PRIu32 " entries, head %u)", d.next,
				    in_indirect ? "indirect table" : "queue", table_len, head);
		idx = d.next;
	}
}

int virtq_pop_chain(struct virtq *q, struct virtq_chain *c)
{
	int r = avail_check(q);
	if (r <= 0)
		return r;
	/* The ring entry is read once; the acquire fence in refresh_avail()
	 * ordered it after the avail->idx that published it. */
	uint16_t head = rd16(&q->avail->ring[q->last_avail_idx & (q->size - 1)]);
	if (walk_chain(q, c, head) < 0)
		return -1;
	q->last_avail_idx++;
	return 1;
}

void virtq_unpop(struct virtq *q)
{
	if (!q->broken)
		q->last_avail_idx--;
}

int virtq_push_used(struct virtq *q, uint16_t head, uint32_t len)
{
	if (q->broken || head >= q->size)
		return -1;
	struct virtq_used_elem *e = &q->used->ring[q->used_idx & (q->size - 1)];
	wr32(&e->id, head);
	wr32(&e->len, len);
	uint16_t old = q->used_idx, new_idx = old + 1;
	q->used_idx = new_idx;
	/* The element (and the data the device wrote into the buffers) before
	 * the index that publishes it: a release store. */
	__atomic_store_n(&q->used->idx, htole16(new_idx), __ATOMIC_RELEASE);
	/* After 2^15 entries without a notification decision signalled_used no
	 * longer tells which way the 16-bit window points: forget it, so the
	 * next virtq_should_notify() says yes (as QEMU does). */
	if ((int16_t)(new_idx - q->signalled_used) < (uint16_t)(new_idx - old))
		q->signalled_used_valid = false;
	return 0;
}

bool virtq_should_notify(struct virtq *q)
{
	if (q->broken)
		return false;
	/* Our used->idx write must be visible before we read the driver's
	 * suppression fields: otherwise the driver can re-enable interrupts,
	 * see the old used->idx, and sleep while we read its stale flags. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	uint16_t old = q->signalled_used, new_idx = q->used_idx;
	bool valid = q->signalled_used_valid;
	q->signalled_used = new_idx;
	q->signalled_used_valid = true;
	if (valid && old == new_idx)
		return false;   /* nothing pushed since the last decision */
	if (!q->event_idx)
		return !(rd16(&q->avail->flags) & VIRTQ_AVAIL_F_NO_INTERRUPT);
	if (!valid)
		return true;
	return virtq_need_event(rd16(used_event(q)), new_idx, old);
}
