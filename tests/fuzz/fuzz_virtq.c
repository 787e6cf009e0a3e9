/* libFuzzer target for the split virtqueue (devices/virtio/virtq.c): the
 * input is a hostile driver's view of a small guest, i.e. the queue setup and
 * the whole contents of guest RAM. The device side pops every chain, reads
 * its readable buffers, fills its writable ones, returns it, and decides on
 * notifications, until the queue is empty or broken. Checked on every chain:
 * each iov lies wholly inside the fake guest RAM, the counts and lengths add
 * up, a broken queue stays broken. ASan/UBSan catch the rest; libFuzzer's
 * -timeout catches a call that does not return. Build and run: tests/fuzz/run.sh.
 *
 * Input layout (little-endian), missing bytes read as zero:
 *   0      u8   queue size = 1 << (b % 9): 1..256; with bit 7 set, the u16 at
 *               offset 10 instead, as is (init checks it)
 *   1      u8   bit 0 EVENT_IDX, bit 1 INDIRECT_DESC, bit 2 unpop each chain once
 *   2      u16  starting index (device's last_avail_idx and used_idx)
 *   4      u16  desc, avail, used ring addresses (3 x u16; init may refuse them)
 *   10     u16  avail->idx the driver publishes before rounds 2, 3 and 4 (3 x u16)
 *   16     RAM A (16 KiB at guest address 0), then RAM B (4 KiB at 0x8000)
 * plus RAM C (64 KiB at 0x10000): RAM A four times over, room for indirect
 * tables of more than VIRTQ_MAX_IOV entries. The hole between B and C, and
 * the one between A and B, are not RAM.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/virtio/virtq.h"
#include "vmm/base/guest_mem.h"
#include "fuzz_check.h"

#define HDR        16
#define RAM_A_GPA  0x0ull
#define RAM_A_SIZE 0x4000u
#define RAM_B_GPA  0x8000ull
#define RAM_B_SIZE 0x1000u
#define RAM_C_GPA  0x10000ull
#define RAM_C_SIZE (4 * RAM_A_SIZE)
#define ROUNDS     4

static uint8_t ram_a[RAM_A_SIZE], ram_b[RAM_B_SIZE], ram_c[RAM_C_SIZE];
static struct virtq_chain chain;

static bool inside(const void *p, size_t len, const uint8_t *ram, size_t size)
{
	uintptr_t a = (uintptr_t)p, r = (uintptr_t)ram;
	return a >= r && a - r <= size && len <= size - (a - r);
}

static uint16_t get16(const uint8_t *d, size_t n, size_t off)
{
	uint8_t b[2] = { off < n ? d[off] : 0, off + 1 < n ? d[off + 1] : 0 };
	return (uint16_t)(b[0] | b[1] << 8);
}

static void check_chain(const struct virtq *q, const struct virtq_chain *c)
{
	CHECK(c->head < q->size);
	CHECK(c->n_out + c->n_in <= VIRTQ_MAX_IOV);
	CHECK(c->out_len + c->in_len <= UINT32_MAX);
	uint64_t out = 0, in = 0;
	for (unsigned i = 0; i < c->n_out + c->n_in; i++) {
		const struct iovec *v = &c->iov[i];
		CHECK(v->iov_base && v->iov_len > 0);
		CHECK(inside(v->iov_base, v->iov_len, ram_a, sizeof(ram_a)) ||
		      inside(v->iov_base, v->iov_len, ram_b, sizeof(ram_b)) ||
		      inside(v->iov_base, v->iov_len, ram_c, sizeof(ram_c)));
		*(i < c->n_out ? &out : &in) += v->iov_len;
	}
	CHECK(out == c->out_len && in == c->in_len);
}

/* What a device does with a chain: read the request, write the reply. The
 * writes land in guest RAM and may well hit the rings themselves, as a
 * hostile driver can arrange. */
static uint32_t serve(const struct virtq_chain *c)
{
	volatile uint8_t sink = 0;
	for (unsigned i = 0; i < c->n_out; i++) {
		const uint8_t *p = c->iov[i].iov_base;
		sink ^= p[0] ^ p[c->iov[i].iov_len - 1];
	}
	(void)sink;
	for (unsigned i = c->n_out; i < c->n_out + c->n_in; i++)
		memset(c->iov[i].iov_base, 0xa5, c->iov[i].iov_len);
	return (uint32_t)c->in_len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	memset(ram_a, 0, sizeof(ram_a));
	memset(ram_b, 0, sizeof(ram_b));
	if (size > HDR) {
		size_t n = size - HDR;
		size_t na = n < sizeof(ram_a) ? n : sizeof(ram_a);
		memcpy(ram_a, data + HDR, na);
		if (n > na)
			memcpy(ram_b, data + HDR + na, n - na < sizeof(ram_b) ? n - na : sizeof(ram_b));
	}
	for (size_t off = 0; off < sizeof(ram_c); off += sizeof(ram_a))
		memcpy(ram_c + off, ram_a, sizeof(ram_a));

	struct guest_mem mem = { 0 };
	CHECK(guest_mem_add_region(&mem, RAM_A_GPA, sizeof(ram_a), ram_a) == 0);
	CHECK(guest_mem_add_region(&mem, RAM_B_GPA, sizeof(ram_b), ram_b) == 0);
	CHECK(guest_mem_add_region(&mem, RAM_C_GPA, sizeof(ram_c), ram_c) == 0);

	uint8_t b0 = size > 0 ? data[0] : 0, flags = size > 1 ? data[1] : 0;
	uint16_t qsize = (b0 & 0x80) ? get16(data, size, 10) : (uint16_t)(1u << (b0 % 9));
	struct virtq q;
	if (virtq_init(&q, &mem, qsize, get16(data, size, 4), get16(data, size, 6), get16(data, size, 8),
		       flags & 1, flags & 2) < 0) {
		CHECK(q.broken);
		CHECK(virtq_pop_chain(&q, &chain) == -1);
		CHECK(!virtq_has_buffers(&q) && !virtq_should_notify(&q));
		return 0;
	}
	q.name = "fuzz";
	uint16_t start = get16(data, size, 2);
	q.last_avail_idx = q.avail_idx_shadow = q.used_idx = start;

	for (unsigned round = 0; round < ROUNDS && !q.broken; round++) {
		if (round > 0) {
			uint16_t idx = get16(data, size, 10 + 2 * (round - 1));
			memcpy(&q.avail->idx, &idx, sizeof(idx));   /* the driver adds more */
		}
		unsigned pops = 0;
		bool unpopped = false;
		int r;
		/* The driver can keep a device busy for ever (here by placing the
		 * used ring over avail->idx, so that every push publishes a new
		 * buffer): a real device bounds its work per wake-up, and so does
		 * this loop. Each call is bounded by the queue itself; -timeout
		 * in run.sh would catch one that is not. */
		while (pops++ < 4u * qsize + 4 && (r = virtq_pop_chain(&q, &chain)) > 0) {
			check_chain(&q, &chain);
			if ((flags & 4) && !unpopped) {
				unpopped = true;
				virtq_unpop(&q);
				continue;
			}
			CHECK(virtq_push_used(&q, chain.head, serve(&chain)) == 0);
		}
		CHECK(r == 0 || (r == -1 && q.broken));
		(void)virtq_should_notify(&q);
		(void)virtq_has_buffers(&q);
	}
	if (q.broken) {
		CHECK(virtq_pop_chain(&q, &chain) == -1);
		CHECK(virtq_push_used(&q, 0, 0) == -1);
		CHECK(!virtq_has_buffers(&q));
	}
	return 0;
}
