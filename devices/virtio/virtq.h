/* Split virtqueue, device side (virtio 1.x, spec section 2.7 "Split
 * Virtqueues"). The driver (the guest) is hostile: every index, address,
 * length and flag it writes is checked, every guest address goes through
 * guest_mem_ptr(), and every descriptor is copied once into a local before
 * it is looked at, so changing it under our feet achieves nothing.
 *
 * A malformed queue (see virtq_pop_chain) is marked broken: it logs one
 * warning line and every later pop/push fails until the device is reset and
 * the queue set up again with virtq_init(). The transport is expected to set
 * DEVICE_NEEDS_RESET and raise a configuration change interrupt. The VMM
 * itself never crashes, never touches memory outside guest RAM and never
 * loops more than a bounded number of times per call.
 *
 * Threads: one queue belongs to one thread (the device's worker). The driver
 * runs concurrently on other CPUs; the barriers that this needs are here.
 *
 * Notification suppression: with VIRTIO_F_EVENT_IDX both ways (used_event is
 * honoured, avail_event is published when the queue is found empty). Without
 * it, NO_INTERRUPT is honoured but used->flags stays 0, as the driver set it:
 * the driver kicks for every buffer.
 *
 * Typical device loop:
 *
 *	struct virtq_chain c;
 *	int r;
 *	while ((r = virtq_pop_chain(q, &c)) > 0) {
 *		uint32_t written = serve(c.iov, c.n_out, c.iov + c.n_out, c.n_in);
 *		virtq_push_used(q, c.head, written);
 *	}
 *	if (r < 0) ... device needs reset ...
 *	if (virtq_should_notify(q)) ... interrupt the guest ...
 *	... then wait for the next kick ...
 */
#ifndef MINIVMM_VIRTQ_H
#define MINIVMM_VIRTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vmm/base/guest_mem.h"

#define VIRTQ_MAX_SIZE 32768u

/* Most descriptors one chain may hold, zero-length ones included (the
 * descriptor that points to an indirect table is not counted). 1024 is
 * IOV_MAX, so any chain can be handed to one preadv/pwritev/writev, and it is
 * QEMU's limit too. Linux drivers stay well below it (virtio-blk: seg_max + 2,
 * virtio-net: MAX_SKB_FRAGS + 2). It also bounds the work of one pop whatever
 * the size of an indirect table. A longer chain breaks the queue. */
#define VIRTQ_MAX_IOV 1024u

/* Ring layout, as in the spec. All fields are little-endian in guest memory. */
#define VIRTQ_DESC_F_NEXT          1
#define VIRTQ_DESC_F_WRITE         2
#define VIRTQ_DESC_F_INDIRECT      4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY     1

struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct virtq_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[];     /* [size], then uint16_t used_event */
};

struct virtq_used_elem {
	uint32_t id;
	uint32_t len;
};

struct virtq_used {
	uint16_t flags;
	uint16_t idx;
	struct virtq_used_elem ring[];   /* [size], then uint16_t avail_event */
};

/* Sizes in bytes of the three parts for a queue of n entries, the event
 * fields included (they are part of the layout whether or not EVENT_IDX is
 * negotiated). Alignments: desc 16, avail 2, used 4. */
#define VIRTQ_DESC_BYTES(n)  (16ull * (n))
#define VIRTQ_AVAIL_BYTES(n) (6ull + 2ull * (n))
#define VIRTQ_USED_BYTES(n)  (6ull + 8ull * (n))

/* The spec's vring_need_event(): true when moving the index from old to
 * new_idx passed event, i.e. event lies in [old, new_idx) modulo 2^16. */
static inline bool virtq_need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

struct log_limit;

struct virtq {
	const struct guest_mem *mem;
	const char *name;              /* for the log line, e.g. "blk0 q0"; NULL: "virtq" */
	uint16_t size;                 /* power of 2, 1..32768 */
	uint64_t desc_gpa, avail_gpa, used_gpa;
	bool event_idx, indirect;      /* negotiated VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC */

	/* Host addresses of the rings, translated and checked once by
	 * virtq_init(): guest RAM does not move while the VM lives. */
	struct virtq_desc *desc;
	struct virtq_avail *avail;
	struct virtq_used *used;

	uint16_t last_avail_idx;       /* next avail entry to consume */
	uint16_t avail_idx_shadow;     /* avail->idx as last read (checked) */
	uint16_t used_idx;             /* our copy of used->idx */
	uint16_t signalled_used;       /* used_idx at the last notification decision */
	bool signalled_used_valid;
	bool broken;                   /* malformed input seen: the device must be reset */
	/* The device is polling the ring (with EVENT_IDX): finding it empty
	 * does not ask the driver for a kick, so the driver does not make
	 * one (an exit) for every request it adds meanwhile. The device clears
	 * it and calls virtq_has_buffers() before it sleeps. */
	bool kicks_off;
	struct log_limit *log_limit;   /* the device's, for the line saying why (NULL: none) */
};

/* One popped descriptor chain. iov[0..n_out) are the device-readable
 * buffers, iov[n_out..n_out+n_in) the device-writable ones, in chain order;
 * every iov_base comes from guest_mem_ptr() and covers exactly iov_len bytes
 * of guest RAM. Zero-length descriptors are accepted (their address is not
 * looked at) but give no iov entry. out_len + in_len <= UINT32_MAX. */
struct virtq_chain {
	uint16_t head;
	unsigned n_out, n_in;
	uint64_t out_len, in_len;
	struct iovec iov[VIRTQ_MAX_IOV];
};

/* Whether a queue of `size` entries can live at these guest addresses:
 * size a power of 2 in 1..32768, each ring aligned (desc 16, avail 2, used
 * 4) and wholly in guest RAM. Returns 0, or -1 with the first problem
 * written into why (e.g. "descriptor table 0x10008 is not 16-byte
 * aligned"), for the transport's log line. why may be NULL. */
int virtq_check_layout(const struct guest_mem *mem, uint16_t size, uint64_t desc, uint64_t avail, uint64_t used,
		       char *why, size_t why_len);

/* Sets q up for a queue of `size` entries at the given guest addresses, with
 * both indices at 0. Returns -1 (q unusable, nothing logged) unless size is a
 * power of 2 in 1..32768 and each ring lies wholly in guest RAM with its
 * alignment. q->name may be set afterwards. */
int virtq_init(struct virtq *q, const struct guest_mem *mem, uint16_t size, uint64_t desc,
	       uint64_t avail, uint64_t used, bool event_idx, bool indirect);

/* Takes the next available chain. Returns 1 with *c filled, 0 when the
 * queue is empty, -1 when the queue is (or just became) broken (*c is then
 * meaningless). With
 * EVENT_IDX, finding the queue empty publishes avail_event = last_avail_idx
 * (the driver then kicks for its next buffer) and looks again, so that a
 * buffer added meanwhile is not missed: after a 0 the device may sleep until
 * the next kick.
 *
 * The queue breaks when: avail->idx is more than size ahead of the entries
 * consumed; a head or next index is out of the table; a chain loops (longer
 * than the queue, or than its indirect table); a chain holds more than
 * VIRTQ_MAX_IOV descriptors; a buffer or indirect table is not wholly in
 * guest RAM; a device-readable descriptor follows a device-writable one;
 * INDIRECT is used without being negotiated, together with NEXT, inside an
 * indirect table, or with a length that is not a non-zero multiple of 16; or
 * the chain is longer than UINT32_MAX bytes in total.
 *
 * A chain made of direct descriptors ending with one INDIRECT descriptor is
 * valid (spec 2.7.5.3.2). The driver re-using a head the device has not
 * returned yet is not detected: the device then gets the new contents, still
 * inside guest RAM. */
int virtq_pop_chain(struct virtq *q, struct virtq_chain *c);

/* Gives back the last chain popped and not pushed (e.g. a network RX buffer
 * for which no packet came): the next pop reads it again, from guest memory.
 * Only right after a successful pop; does nothing on a broken queue. */
void virtq_unpop(struct virtq *q);

/* Returns chain `head` to the driver with `len` bytes written into its
 * device-writable buffers: writes the used element, then (release barrier)
 * used->idx. Returns -1 when the queue is broken or head >= size. */
int virtq_push_used(struct virtq *q, uint16_t head, uint32_t len);

/* Whether the driver wants an interrupt for what was pushed since the last
 * call: never when nothing was; without EVENT_IDX, unless avail->flags has
 * NO_INTERRUPT; with it, when used->idx went past used_event (the first call
 * after virtq_init says yes). Call after a batch of pushes. False on a broken
 * queue: the transport signals the reset instead. */
bool virtq_should_notify(struct virtq *q);

/* True when a chain is available (the next pop will return 1 or -1). Same
 * EVENT_IDX handling as virtq_pop_chain when the queue looks empty. False on
 * a broken queue. */
bool virtq_has_buffers(struct virtq *q);

#endif
