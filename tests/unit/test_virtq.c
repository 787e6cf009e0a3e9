#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "devices/virtio/virtq.h"
#include "vmm/base/guest_mem.h"
#include "vmm/base/log.h"
#include "captured_log.h"

/* Fake guest RAM: 2 MiB at 0, a hole, 64 KiB at 16 MiB. The test plays the
 * driver, writing rings and descriptors straight into this memory. */
#define RAM_A_SIZE 0x200000ull
#define RAM_B_GPA  0x1000000ull
#define RAM_B_SIZE 0x10000ull

#define QSIZE     16
#define DESC_GPA  0x1000ull
#define AVAIL_GPA 0x2000ull
#define USED_GPA  0x3000ull
#define TABLE_GPA 0x8000ull      /* indirect tables */
#define BUF_GPA   0x10000ull     /* data buffers */

static uint8_t *ram_a, *ram_b;
static struct guest_mem mem;
static struct virtq q;
static struct virtq_chain c;
static uint16_t drv_avail_idx;   /* the driver's avail->idx */

static void *gpa(uint64_t a)
{
	void *p = guest_mem_ptr(&mem, a, 1);
	cr_assert_not_null(p, "test bug: 0x%llx not RAM", (unsigned long long)a);
	return p;
}

static void setup(void)
{
	ram_a = calloc(1, RAM_A_SIZE);
	ram_b = calloc(1, RAM_B_SIZE);
	cr_assert(ram_a && ram_b);
	memset(&mem, 0, sizeof(mem));
	cr_assert_eq(guest_mem_add_region(&mem, 0, RAM_A_SIZE, ram_a), 0);
	cr_assert_eq(guest_mem_add_region(&mem, RAM_B_GPA, RAM_B_SIZE, ram_b), 0);
	drv_avail_idx = 0;
	cr_redirect_stderr();   /* every test checks what was logged, if anything */
}

static void teardown(void)
{
	free(ram_a);
	free(ram_b);
}

TestSuite(virtq, .init = setup, .fini = teardown);

static void assert_nothing_logged(void)
{
	const char *log = logged();
	cr_assert_str_empty(log, "unexpected log: %s", log);
}

/* A test that, after its body, checks nothing was logged but what the body
 * looked at (an assertion in the suite's .fini would not fail the test). */
#define VQ_TEST(name)                                  \
	static void name##_body(void);                 \
	Test(virtq, name) { name##_body(); assert_nothing_logged(); } \
	static void name##_body(void)

static void init_q(uint16_t size, bool event_idx, bool indirect)
{
	cr_assert_eq(virtq_init(&q, &mem, size, DESC_GPA, AVAIL_GPA, USED_GPA, event_idx, indirect), 0);
}

/* ---- driver side ---- */

static void set_desc_at(uint64_t table, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
			uint16_t next)
{
	struct virtq_desc d = { addr, len, flags, next };
	memcpy(gpa(table + 16ull * i), &d, sizeof(d));
}

static void set_desc(unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	set_desc_at(DESC_GPA, i, addr, len, flags, next);
}

static struct virtq_avail *avail(void)
{
	return gpa(AVAIL_GPA);
}

static struct virtq_used *used(void)
{
	return gpa(USED_GPA);
}

static void avail_add(uint16_t head)
{
	avail()->ring[drv_avail_idx % q.size] = head;
	avail()->idx = ++drv_avail_idx;
}

static uint16_t *used_event_field(void)
{
	return &avail()->ring[q.size];
}

static uint16_t *avail_event_field(void)
{
	return (uint16_t *)&used()->ring[q.size];
}

/* Device and driver both start at index idx, as after many uses. */
static void start_at(uint16_t idx)
{
	q.last_avail_idx = q.avail_idx_shadow = q.used_idx = idx;
	avail()->idx = used()->idx = drv_avail_idx = idx;
}

/* The next pop finds the queue malformed for the reason `why`, logs one line
 * saying so, and the queue stays broken. */
static void assert_broken(const char *why)
{
	cr_assert_eq(virtq_pop_chain(&q, &c), -1);
	cr_assert(q.broken);
	/* and it stays so */
	cr_assert_eq(virtq_pop_chain(&q, &c), -1);
	cr_assert_not(virtq_has_buffers(&q));
	cr_assert_eq(virtq_push_used(&q, 0, 0), -1);
	cr_assert_not(virtq_should_notify(&q));
	const char *log = logged();
	cr_assert(strstr(log, why), "expected \"%s\" in the log, got \"%s\"", why, log);
	const char *nl = strchr(log, '\n');
	cr_assert(nl && !nl[1], "expected one line, got \"%s\"", log);
}

/* ---- init ---- */

VQ_TEST(init_accepts_valid_queues)
{
	init_q(QSIZE, false, false);
	cr_assert_not(q.broken);
	cr_assert_eq(q.size, QSIZE);
	cr_assert_eq((void *)q.desc, ram_a + DESC_GPA);
	init_q(1, true, true);
	cr_assert_eq(virtq_init(&q, &mem, 32768, 0, 0x80000, 0x100000, false, false), 0);
	/* rings in the second region, the used ring ending exactly at its end */
	cr_assert_eq(virtq_init(&q, &mem, 256, RAM_B_GPA, RAM_B_GPA + 0x1000,
				RAM_B_GPA + RAM_B_SIZE - VIRTQ_USED_BYTES(256) - 2, false, false), 0);
}

VQ_TEST(init_rejects_bad_sizes)
{
	const uint16_t bad[] = { 0, 3, 6, 100, 255, 32767, 49152, 65535 };
	for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
		cr_assert_eq(virtq_init(&q, &mem, bad[i], DESC_GPA, AVAIL_GPA + 0x100000, USED_GPA + 0x100000,
					false, false), -1, "size %u", bad[i]);
		cr_assert(q.broken);
		cr_assert_eq(virtq_pop_chain(&q, &c), -1);
		cr_assert_not(virtq_should_notify(&q));
	}
}

VQ_TEST(init_rejects_misaligned_rings)
{
	cr_assert_eq(virtq_init(&q, &mem, QSIZE, DESC_GPA + 8, AVAIL_GPA, USED_GPA, false, false), -1);
	cr_assert_eq(virtq_init(&q, &mem, QSIZE, DESC_GPA, AVAIL_GPA + 1, USED_GPA, false, false), -1);
	cr_assert_eq(virtq_init(&q, &mem, QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA + 2, false, false), -1);
	cr_assert_eq(virtq_init(&q, &mem, QSIZE, DESC_GPA, AVAIL_GPA + 2, USED_GPA + 4, false, false), 0);
}

/* The transport's warning says which part of the setup is wrong. */
VQ_TEST(check_layout_names_the_problem)
{
	char why[160];
	cr_assert_eq(virtq_check_layout(&mem, QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA, why, sizeof(why)), 0);
	cr_assert_eq(virtq_check_layout(&mem, 3, DESC_GPA, AVAIL_GPA, USED_GPA, why, sizeof(why)), -1);
	cr_assert(strstr(why, "size 3 is not a power of 2"), "%s", why);
	cr_assert_eq(virtq_check_layout(&mem, 0, DESC_GPA, AVAIL_GPA, USED_GPA, why, sizeof(why)), -1);
	cr_assert(strstr(why, "size 0"), "%s", why);
	cr_assert_eq(virtq_check_layout(&mem, QSIZE, DESC_GPA + 8, AVAIL_GPA, USED_GPA, why, sizeof(why)), -1);
	cr_assert(strstr(why, "descriptor table") && strstr(why, "16-byte aligned"), "%s", why);
	cr_assert_eq(virtq_check_layout(&mem, QSIZE, DESC_GPA, AVAIL_GPA + 1, USED_GPA, why, sizeof(why)), -1);
	cr_assert(strstr(why, "available ring") && strstr(why, "2-byte aligned"), "%s", why);
	cr_assert_eq(virtq_check_layout(&mem, QSIZE, DESC_GPA, AVAIL_GPA, 0x7ff000000000ull, why, sizeof(why)), -1);
	cr_assert(strstr(why, "used ring 0x7ff000000000+0x") && strstr(why, "outside guest RAM"), "%s", why);
	cr_assert_eq(virtq_check_layout(&mem, QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA, NULL, 0), 0);
	cr_assert_eq(virtq_check_layout(&mem, 5, DESC_GPA, AVAIL_GPA, USED_GPA, NULL, 0), -1);
}

VQ_TEST(init_rejects_rings_outside_ram)
{
	/* in the hole */
	cr_assert_eq(virtq_init(&q, &mem, QSIZE, 0x800000, AVAIL_GPA, USED_GPA, false, false), -1);
	/* straddling the end of a region, for each ring */
	cr_assert_eq(virtq_init(&q, &mem, QSIZE, RAM_A_SIZE - 0x80, AVAIL_GPA, USED_GPA, false, false), -1);
	cr_assert_eq(virtq_init(&q, &mem, QSIZE, DESC_GPA, RAM_A_SIZE - VIRTQ_AVAIL_BYTES(QSIZE) + 2, USED_GPA,
				false, false), -1);
	cr_assert_eq(virtq_init(&q, &mem, QSIZE, DESC_GPA, AVAIL_GPA, RAM_B_GPA + RAM_B_SIZE - 0x80,
				false, false), -1);
	/* the event fields count: the used ring without avail_event fits, with it not */
	cr_assert_eq(virtq_init(&q, &mem, QSIZE, DESC_GPA, AVAIL_GPA,
				RAM_B_GPA + RAM_B_SIZE - VIRTQ_USED_BYTES(QSIZE) + 2, false, false), -1);
	/* wrapping the address space */
	cr_assert_eq(virtq_init(&q, &mem, QSIZE, UINT64_MAX - 0xf, AVAIL_GPA, USED_GPA, false, false), -1);
	cr_assert_eq(virtq_init(&q, &mem, QSIZE, DESC_GPA, AVAIL_GPA, UINT64_MAX - 3, false, false), -1);
	/* size 32768 needs 512 KiB of descriptors: not in the 64 KiB region */
	cr_assert_eq(virtq_init(&q, &mem, 32768, RAM_B_GPA, AVAIL_GPA, USED_GPA, false, false), -1);
}

/* ---- normal operation ---- */

VQ_TEST(empty_queue)
{
	init_q(QSIZE, false, false);
	cr_assert_eq(virtq_pop_chain(&q, &c), 0);
	cr_assert_not(virtq_has_buffers(&q));
	cr_assert_not(q.broken);
}

VQ_TEST(simple_chain_out_then_in)
{
	init_q(QSIZE, false, false);
	set_desc(3, BUF_GPA, 100, VIRTQ_DESC_F_NEXT, 7);
	set_desc(7, BUF_GPA + 0x1000, 200, VIRTQ_DESC_F_NEXT, 1);
	set_desc(1, RAM_B_GPA + 0x100, 50, VIRTQ_DESC_F_WRITE, 0);
	avail_add(3);
	cr_assert(virtq_has_buffers(&q));

	cr_assert_eq(virtq_pop_chain(&q, &c), 1);
	cr_assert_eq(c.head, 3);
	cr_assert_eq(c.n_out, 2);
	cr_assert_eq(c.n_in, 1);
	cr_assert_eq(c.out_len, 300);
	cr_assert_eq(c.in_len, 50);
	cr_assert_eq(c.iov[0].iov_base, ram_a + BUF_GPA);
	cr_assert_eq(c.iov[0].iov_len, 100);
	cr_assert_eq(c.iov[1].iov_base, ram_a + BUF_GPA + 0x1000);
	cr_assert_eq(c.iov[1].iov_len, 200);
	cr_assert_eq(c.iov[2].iov_base, ram_b + 0x100);
	cr_assert_eq(c.iov[2].iov_len, 50);
	cr_assert_eq(virtq_pop_chain(&q, &c), 0);

	cr_assert_eq(virtq_push_used(&q, 3, 50), 0);
	cr_assert_eq(used()->idx, 1);
	cr_assert_eq(used()->ring[0].id, 3);
	cr_assert_eq(used()->ring[0].len, 50);
	cr_assert(virtq_should_notify(&q));
	cr_assert_not(q.broken);
}

VQ_TEST(single_descriptor_chains)
{
	init_q(QSIZE, false, false);
	set_desc(0, BUF_GPA, 10, 0, 0);                      /* out only */
	set_desc(1, BUF_GPA + 0x100, 20, VIRTQ_DESC_F_WRITE, 0);   /* in only */
	avail_add(0);
	avail_add(1);
	cr_assert_eq(virtq_pop_chain(&q, &c), 1);
	cr_assert(c.head == 0 && c.n_out == 1 && c.n_in == 0 && c.out_len == 10);
	cr_assert_eq(virtq_pop_chain(&q, &c), 1);
	cr_assert(c.head == 1 && c.n_out == 0 && c.n_in == 1 && c.in_len == 20);
	cr_assert_eq(c.iov[0].iov_base, ram_a + BUF_GPA + 0x100);
}

VQ_TEST(longest_direct_chain_is_the_queue_size)
{
	init_q(QSIZE, false, false);
	for (unsigned i = 0; i < QSIZE; i++)
		set_desc(i, BUF_GPA + i, 1, i + 1 < QSIZE ? VIRTQ_DESC_F_NEXT : 0, i + 1);
	avail_add(0);
	cr_assert_eq(virtq_pop_chain(&q, &c), 1);
	cr_assert_eq(c.n_out, QSIZE);
	cr_assert_eq(c.iov[QSIZE - 1].iov_base, ram_a + BUF_GPA + QSIZE - 1);
}

VQ_TEST(zero_length_descriptors_give_no_iov)
{
	init_q(QSIZE, false, false);
	/* the address of an empty buffer is not looked at, even in the hole */
	set_desc(0, 0x800000, 0, VIRTQ_DESC_F_NEXT, 1);
	set_desc(1, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 2);
	set_desc(2, UINT64_MAX, 0, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 3);
	set_desc(3, BUF_GPA + 0x100, 4, VIRTQ_DESC_F_WRITE, 0);
	avail_add(0);
	cr_assert_eq(virtq_pop_chain(&q, &c), 1);
	cr_assert_eq(c.n_out, 1);
	cr_assert_eq(c.n_in, 1);
	cr_assert_eq(c.iov[0].iov_base, ram_a + BUF_GPA);
	cr_assert_eq(c.iov[1].iov_base, ram_a + BUF_GPA + 0x100);
}

VQ_TEST(many_chains_in_a_row)
{
	init_q(8, false, false);
	for (unsigned round = 0; round < 100; round++) {
		/* a varying number of 2-descriptor chains, all in flight together */
		unsigned n = 1 + round % 4;
		for (unsigned k = 0; k < n; k++) {
			unsigned h = 2 * k;
			set_desc(h, BUF_GPA + 0x100 * round, 16, VIRTQ_DESC_F_NEXT, h + 1);
			set_desc(h + 1, BUF_GPA + 0x100 * round + 16, 32 + k, VIRTQ_DESC_F_WRITE, 0);
			avail_add(h);
		}
		for (unsigned k = 0; k < n; k++) {
			cr_assert_eq(virtq_pop_chain(&q, &c), 1, "round %u chain %u", round, k);
			cr_assert_eq(c.head, 2 * k);
			cr_assert_eq(c.in_len, 32 + k);
			cr_assert_eq(c.iov[0].iov_base, ram_a + BUF_GPA + 0x100 * round);
		}
		cr_assert_eq(virtq_pop_chain(&q, &c), 0);
		/* completed in reverse order, as a device may */
		for (unsigned k = n; k-- > 0;) {
			uint16_t slot = q.used_idx % 8;
			cr_assert_eq(virtq_push_used(&q, 2 * k, k), 0);
			cr_assert_eq(used()->ring[slot].id, 2 * k);
			cr_assert_eq(used()->ring[slot].len, k);
		}
		cr_assert_eq(used()->idx, drv_avail_idx);
	}
	cr_assert_eq(q.last_avail_idx, 250);
	cr_assert_not(q.broken);
}

VQ_TEST(index_wraparound)
{
	init_q(QSIZE, false, false);
	start_at(65530);
	set_desc(5, BUF_GPA, 64, VIRTQ_DESC_F_NEXT, 6);
	set_desc(6, BUF_GPA + 64, 64, VIRTQ_DESC_F_WRITE, 0);
	for (unsigned i = 0; i < 40; i++) {
		uint16_t before = drv_avail_idx;
		avail_add(5);
		if (i % 3 == 0)   /* sometimes two at once */
			avail_add(5);
		while (q.last_avail_idx != drv_avail_idx) {
			cr_assert_eq(virtq_pop_chain(&q, &c), 1, "at index %u", q.last_avail_idx);
			cr_assert_eq(c.head, 5);
			uint16_t slot = q.used_idx % QSIZE;
			cr_assert_eq(virtq_push_used(&q, 5, 64), 0);
			cr_assert_eq(used()->ring[slot].id, 5);
		}
		cr_assert_eq(virtq_pop_chain(&q, &c), 0);
		cr_assert_eq(used()->idx, drv_avail_idx, "after %u", before);
	}
	cr_assert_lt(drv_avail_idx, 100, "the indices wrapped");
	cr_assert_not(q.broken);
}

VQ_TEST(full_ring_across_the_wrap)
{
	init_q(QSIZE, false, false);
	start_at(65535 - 3);
	for (unsigned i = 0; i < QSIZE; i++) {
		set_desc(i, BUF_GPA + i * 16, 16, 0, 0);
		avail_add(i);
	}
	for (unsigned i = 0; i < QSIZE; i++) {
		cr_assert_eq(virtq_pop_chain(&q, &c), 1);
		cr_assert_eq(c.head, i);
	}
	cr_assert_eq(virtq_pop_chain(&q, &c), 0);
}

VQ_TEST(unpop_gives_the_chain_back)
{
	init_q(QSIZE, false, false);
	set_desc(2, BUF_GPA, 16, VIRTQ_DESC_F_WRITE, 0);
	avail_add(2);
	cr_assert_eq(virtq_pop_chain(&q, &c), 1);
	virtq_unpop(&q);
	cr_assert(virtq_has_buffers(&q));
	cr_assert_eq(virtq_pop_chain(&q, &c), 1);
	cr_assert_eq(c.head, 2);
	cr_assert_eq(virtq_pop_chain(&q, &c), 0);
}

/* ---- indirect ---- */

VQ_TEST(indirect_chain)
{
	init_q(QSIZE, false, true);
	set_desc_at(TABLE_GPA, 0, BUF_GPA, 10, VIRTQ_DESC_F_NEXT, 2);
	set_desc_at(TABLE_GPA, 2, BUF_GPA + 0x100, 20, VIRTQ_DESC_F_NEXT, 1);
	set_desc_at(TABLE_GPA, 1, RAM_B_GPA, 30, VIRTQ_DESC_F_WRITE, 0);
	/* the WRITE flag on the descriptor pointing to the table is ignored */
	set_desc(4, TABLE_GPA, 3 * 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE, 0);
	avail_add(4);
	cr_assert_eq(virtq_pop_chain(&q, &c), 1);
	cr_assert_eq(c.head, 4);
	cr_assert_eq(c.n_out, 2);
	cr_assert_eq(c.n_in, 1);
	cr_assert_eq(c.out_len, 30);
	cr_assert_eq(c.in_len, 30);
	cr_assert_eq(c.iov[1].iov_base, ram_a + BUF_GPA + 0x100);
	cr_assert_eq(c.iov[2].iov_base, ram_b);
	cr_assert_eq(virtq_push_used(&q, 4, 30), 0);
	cr_assert_eq(used()->ring[0].id, 4);
}

VQ_TEST(indirect_table_may_be_unaligned_and_in_high_ram)
{
	init_q(QSIZE, false, true);
	uint64_t t = RAM_B_GPA + 0x203;
	set_desc_at(t, 0, BUF_GPA, 10, VIRTQ_DESC_F_NEXT, 1);
	set_desc_at(t, 1, BUF_GPA + 0x10, 10, VIRTQ_DESC_F_WRITE, 0);
	set_desc(0, t, 32, VIRTQ_DESC_F_INDIRECT, 0);
	avail_add(0);
	cr_assert_eq(virtq_pop_chain(&q, &c), 1);
	cr_assert(c.n_out == 1 && c.n_in == 1);
}

VQ_TEST(direct_descriptors_then_indirect)
{
	init_q(QSIZE, false, true);
	/* spec 2.7.5.3.2: normal chained descriptors followed by one indirect */
	set_desc(0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 9);
	set_desc(9, TABLE_GPA, 2 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	set_desc_at(TABLE_GPA, 0, BUF_GPA + 8, 8, VIRTQ_DESC_F_NEXT, 1);
	set_desc_at(TABLE_GPA, 1, BUF_GPA + 16, 100, VIRTQ_DESC_F_WRITE, 0);
	avail_add(0);
	cr_assert_eq(virtq_pop_chain(&q, &c), 1);
	cr_assert_eq(c.n_out, 2);
	cr_assert_eq(c.n_in, 1);
	cr_assert_eq(c.iov[0].iov_base, ram_a + BUF_GPA);
	cr_assert_eq(c.iov[1].iov_base, ram_a + BUF_GPA + 8);
	cr_assert_eq(c.iov[2].iov_len, 100);
}

VQ_TEST(mixed_direct_and_indirect_chains)
{
	init_q(QSIZE, true, true);
	/* a full ring: even heads direct, odd heads indirect, all in flight */
	for (unsigned h = 0; h < QSIZE; h++) {
		uint64_t table = TABLE_GPA + 0x100 * h;
		if (h % 2) {
			set_desc_at(table, 0, BUF_GPA, 4, VIRTQ_DESC_F_NEXT, 1);
			set_desc_at(table, 1, BUF_GPA + 4, h, VIRTQ_DESC_F_WRITE, 0);
			set_desc(h, table, 32, VIRTQ_DESC_F_INDIRECT, 0);
		} else {
			set_desc(h, BUF_GPA + h, h + 1, 0, 0);
		}
		avail_add(QSIZE - 1 - h);
	}
	for (unsigned i = 0; i < QSIZE; i++) {
		uint16_t h = QSIZE - 1 - i;
		cr_assert_eq(virtq_pop_chain(&q, &c), 1);
		cr_assert_eq(c.head, h);
		if (h % 2)
			cr_assert(c.n_out == 1 && c.n_in == 1 && c.out_len == 4 && c.in_len == h);
		else
			cr_assert(c.n_out == 1 && c.n_in == 0 && c.out_len == h + 1u);
	}
	cr_assert_eq(virtq_pop_chain(&q, &c), 0);
}

VQ_TEST(interleaved_direct_and_indirect)
{
	init_q(QSIZE, true, true);
	for (unsigned i = 0; i < 50; i++) {
		uint16_t h = i % QSIZE;
		uint64_t table = TABLE_GPA + 0x100 * (i % 4);
		if (i % 2) {
			set_desc_at(table, 0, BUF_GPA, 4, VIRTQ_DESC_F_NEXT, 1);
			set_desc_at(table, 1, BUF_GPA + 4, i, VIRTQ_DESC_F_WRITE, 0);
			set_desc(h, table, 32, VIRTQ_DESC_F_INDIRECT, 0);
		} else {
			set_desc(h, BUF_GPA, i + 1, 0, 0);
		}
		avail_add(h);
		cr_assert_eq(virtq_pop_chain(&q, &c), 1);
		cr_assert_eq(c.head, h);
		if (i % 2)
			cr_assert(c.n_out == 1 && c.n_in == 1 && c.in_len == i);
		else
			cr_assert(c.n_out == 1 && c.n_in == 0 && c.out_len == i + 1);
		cr_assert_eq(virtq_push_used(&q, h, c.in_len), 0);
	}
	cr_assert_not(q.broken);
}

VQ_TEST(max_iov_descriptors_accepted)
{
	init_q(QSIZE, false, true);
	for (unsigned i = 0; i < VIRTQ_MAX_IOV; i++)
		set_desc_at(TABLE_GPA, i, BUF_GPA + i, 1, i + 1 < VIRTQ_MAX_IOV ? VIRTQ_DESC_F_NEXT : 0, i + 1);
	set_desc(0, TABLE_GPA, 16 * VIRTQ_MAX_IOV, VIRTQ_DESC_F_INDIRECT, 0);
	avail_add(0);
	cr_assert_eq(virtq_pop_chain(&q, &c), 1);
	cr_assert_eq(c.n_out, VIRTQ_MAX_IOV);
	cr_assert_eq(c.iov[VIRTQ_MAX_IOV - 1].iov_base, ram_a + BUF_GPA + VIRTQ_MAX_IOV - 1);
}

/* ---- notifications ---- */

VQ_TEST(no_interrupt_flag_without_event_idx)
{
	init_q(QSIZE, false, false);
	set_desc(0, BUF_GPA, 4, VIRTQ_DESC_F_WRITE, 0);
	cr_assert_eq(virtq_push_used(&q, 0, 4), 0);
	cr_assert(virtq_should_notify(&q));
	cr_assert_not(virtq_should_notify(&q), "nothing new was used");
	avail()->flags = VIRTQ_AVAIL_F_NO_INTERRUPT;
	cr_assert_eq(virtq_push_used(&q, 0, 4), 0);
	cr_assert_not(virtq_should_notify(&q));
	avail()->flags = 0;
	cr_assert_eq(virtq_push_used(&q, 0, 4), 0);
	cr_assert(virtq_should_notify(&q));
	/* without EVENT_IDX used_event means nothing */
	*used_event_field() = 1000;
	cr_assert_eq(virtq_push_used(&q, 0, 4), 0);
	cr_assert(virtq_should_notify(&q));
}

VQ_TEST(event_idx_used_event)
{
	init_q(QSIZE, true, false);
	/* the flag means nothing with EVENT_IDX */
	avail()->flags = VIRTQ_AVAIL_F_NO_INTERRUPT;
	*used_event_field() = 0;
	cr_assert_eq(virtq_push_used(&q, 0, 0), 0);             /* used idx 1 */
	cr_assert(virtq_should_notify(&q), "first decision");
	*used_event_field() = 1;   /* interrupt me when entry 1 is used */
	cr_assert_eq(virtq_push_used(&q, 0, 0), 0);             /* 2 */
	cr_assert(virtq_should_notify(&q));
	*used_event_field() = 5;
	cr_assert_eq(virtq_push_used(&q, 0, 0), 0);             /* 3 */
	cr_assert_not(virtq_should_notify(&q), "entry 2 used, driver waits for 5");
	cr_assert_eq(virtq_push_used(&q, 0, 0), 0);             /* 4 */
	cr_assert_eq(virtq_push_used(&q, 0, 0), 0);             /* 5 */
	cr_assert_not(virtq_should_notify(&q));
	cr_assert_eq(virtq_push_used(&q, 0, 0), 0);             /* 6: entry 5 used */
	cr_assert_eq(virtq_push_used(&q, 0, 0), 0);             /* 7 */
	cr_assert(virtq_should_notify(&q), "entry 5 was used in this batch");
	cr_assert_not(virtq_should_notify(&q), "nothing new");
	/* an event behind us: no interrupt until the index comes round again */
	*used_event_field() = 3;
	cr_assert_eq(virtq_push_used(&q, 0, 0), 0);
	cr_assert_not(virtq_should_notify(&q));
}

VQ_TEST(event_idx_across_the_wrap)
{
	init_q(QSIZE, true, false);
	start_at(65534);
	q.signalled_used = 65534;
	q.signalled_used_valid = true;
	*used_event_field() = 65535;
	cr_assert_eq(virtq_push_used(&q, 0, 0), 0);   /* 65535 */
	cr_assert_not(virtq_should_notify(&q));
	cr_assert_eq(virtq_push_used(&q, 0, 0), 0);   /* 0: entry 65535 used */
	cr_assert_eq(virtq_push_used(&q, 0, 0), 0);   /* 1 */
	cr_assert(virtq_should_notify(&q));
	cr_assert_eq(used()->idx, 1);
}

VQ_TEST(stale_signalled_used_still_notifies)
{
	init_q(QSIZE, true, false);
	cr_assert(virtq_push_used(&q, 0, 0) == 0 && virtq_should_notify(&q));
	/* 40000 entries with no decision: the 16-bit window is ambiguous */
	*used_event_field() = 50000;
	for (unsigned i = 0; i < 40000; i++)
		cr_assert_eq(virtq_push_used(&q, 0, 0), 0);
	cr_assert(virtq_should_notify(&q));
}

VQ_TEST(event_idx_publishes_avail_event)
{
	init_q(QSIZE, true, false);
	*avail_event_field() = 0xdead;
	cr_assert_eq(virtq_pop_chain(&q, &c), 0);
	cr_assert_eq(*avail_event_field(), 0, "kick me for entry 0");
	set_desc(0, BUF_GPA, 4, 0, 0);
	avail_add(0);
	avail_add(0);
	avail_add(0);
	cr_assert_eq(virtq_pop_chain(&q, &c), 1);
	cr_assert_eq(*avail_event_field(), 0, "not rewritten while busy: the driver need not kick");
	cr_assert_eq(virtq_pop_chain(&q, &c), 1);
	cr_assert_eq(virtq_pop_chain(&q, &c), 1);
	cr_assert_eq(virtq_pop_chain(&q, &c), 0);
	cr_assert_eq(*avail_event_field(), 3);
	/* the driver's side of it: adding entry 3 needs a kick, entry 4 then not */
	cr_assert(virtq_need_event(*avail_event_field(), 4, 3));
	cr_assert_not(virtq_need_event(*avail_event_field(), 5, 4));
	/* has_buffers publishes it too */
	avail_add(0);
	cr_assert(virtq_has_buffers(&q));
	cr_assert_eq(virtq_pop_chain(&q, &c), 1);
	cr_assert_not(virtq_has_buffers(&q));
	cr_assert_eq(*avail_event_field(), 4);
}

VQ_TEST(kicks_off_leaves_avail_event_alone)
{
	init_q(QSIZE, true, false);
	set_desc(0, BUF_GPA, 4, 0, 0);
	cr_assert_eq(virtq_pop_chain(&q, &c), 0);
	cr_assert_eq(*avail_event_field(), 0);
	avail_add(0);
	q.kicks_off = true;   /* the device polls */
	cr_assert_eq(virtq_pop_chain(&q, &c), 1);
	cr_assert_eq(virtq_pop_chain(&q, &c), 0);
	cr_assert_not(virtq_has_buffers(&q));
	cr_assert_eq(*avail_event_field(), 0, "empty while polling: no kick asked for entry 1");
	/* the driver adds entries 1 and 2 without a kick (its event is behind) */
	cr_assert_not(virtq_need_event(*avail_event_field(), 2, 1));
	avail_add(0);
	avail_add(0);
	cr_assert(virtq_has_buffers(&q), "the poll finds them");
	cr_assert_eq(virtq_pop_chain(&q, &c), 1);
	cr_assert_eq(virtq_pop_chain(&q, &c), 1);
	/* done polling: the next look asks for a kick for entry 3 */
	q.kicks_off = false;
	cr_assert_not(virtq_has_buffers(&q));
	cr_assert_eq(*avail_event_field(), 3);
}

VQ_TEST(no_avail_event_without_event_idx)
{
	init_q(QSIZE, false, false);
	*avail_event_field() = 0xdead;
	cr_assert_eq(virtq_pop_chain(&q, &c), 0);
	cr_assert_eq(*avail_event_field(), 0xdead);
}

VQ_TEST(need_event_helper)
{
	cr_assert(virtq_need_event(0, 1, 0));
	cr_assert_not(virtq_need_event(1, 1, 0));
	cr_assert(virtq_need_event(5, 10, 3));
	cr_assert_not(virtq_need_event(10, 10, 3));
	cr_assert(virtq_need_event(65535, 2, 65530));
	cr_assert_not(virtq_need_event(3, 2, 65530));
	cr_assert_not(virtq_need_event(7, 7, 7));
}

/* ---- hostile drivers ---- */

VQ_TEST(avail_idx_too_far_ahead)
{
	init_q(QSIZE, false, false);
	set_desc(0, BUF_GPA, 4, 0, 0);
	avail()->idx = QSIZE + 1;
	assert_broken("available index 17 is 17 entries ahead");
}

VQ_TEST(avail_idx_going_backwards)
{
	init_q(QSIZE, false, false);
	set_desc(0, BUF_GPA, 4, 0, 0);
	avail_add(0);
	cr_assert_eq(virtq_pop_chain(&q, &c), 1);
	avail()->idx = 0;   /* looks like 65535 entries ahead */
	assert_broken("available index 0 is 65535 entries ahead");
}

VQ_TEST(avail_idx_exactly_size_ahead_is_fine)
{
	init_q(QSIZE, false, false);
	set_desc(0, BUF_GPA, 4, 0, 0);
	for (unsigned i = 0; i < QSIZE; i++)
		avail_add(0);
	for (unsigned i = 0; i < QSIZE; i++)
		cr_assert_eq(virtq_pop_chain(&q, &c), 1);
	cr_assert_eq(virtq_pop_chain(&q, &c), 0);
}

VQ_TEST(head_out_of_range)
{
	init_q(QSIZE, false, false);
	avail_add(QSIZE);
	assert_broken("head index 16 out of range");
}

VQ_TEST(next_out_of_range)
{
	init_q(QSIZE, false, false);
	set_desc(0, BUF_GPA, 4, VIRTQ_DESC_F_NEXT, QSIZE);
	avail_add(0);
	assert_broken("next index 16 out of range (queue of 16 entries");
}

VQ_TEST(chain_loops_on_itself)
{
	init_q(QSIZE, false, false);
	set_desc(0, BUF_GPA, 4, VIRTQ_DESC_F_NEXT, 0);
	avail_add(0);
	assert_broken("descriptor chain loops (head 0)");
}

VQ_TEST(chain_loops)
{
	init_q(QSIZE, false, false);
	set_desc(2, BUF_GPA, 4, VIRTQ_DESC_F_NEXT, 5);
	set_desc(5, BUF_GPA, 4, VIRTQ_DESC_F_NEXT, 9);
	set_desc(9, BUF_GPA, 4, VIRTQ_DESC_F_NEXT, 2);
	avail_add(2);
	assert_broken("descriptor chain loops (head 2)");
}

VQ_TEST(zero_length_loop_is_still_a_loop)
{
	init_q(QSIZE, false, false);
	set_desc(0, 0, 0, VIRTQ_DESC_F_NEXT, 1);
	set_desc(1, 0, 0, VIRTQ_DESC_F_NEXT, 0);
	avail_add(0);
	assert_broken("descriptor chain loops (head 0)");
}

VQ_TEST(buffer_outside_ram)
{
	init_q(QSIZE, false, false);
	set_desc(0, 0x800000, 4, 0, 0);   /* in the hole */
	avail_add(0);
	assert_broken("buffer 0x800000+0x4 is outside guest RAM");
}

VQ_TEST(buffer_crossing_into_the_hole)
{
	init_q(QSIZE, false, false);
	set_desc(0, BUF_GPA, 4, VIRTQ_DESC_F_NEXT, 1);
	set_desc(1, RAM_A_SIZE - 16, 17, VIRTQ_DESC_F_WRITE, 0);
	avail_add(0);
	assert_broken("buffer 0x1ffff0+0x11 is outside guest RAM");
}

VQ_TEST(buffer_crossing_from_one_region_to_the_next)
{
	static uint8_t next_ram[0x1000];
	cr_assert_eq(guest_mem_add_region(&mem, RAM_A_SIZE, sizeof(next_ram), next_ram), 0);
	init_q(QSIZE, false, false);
	/* contiguous in guest-physical space, but not in the host: refused */
	set_desc(0, RAM_A_SIZE - 16, 32, 0, 0);
	avail_add(0);
	assert_broken("buffer 0x1ffff0+0x20 is outside guest RAM");
}

VQ_TEST(buffer_wrapping_the_address_space)
{
	init_q(QSIZE, false, false);
	set_desc(0, UINT64_MAX - 7, 0x20, 0, 0);   /* would end at 0x18 */
	avail_add(0);
	assert_broken("buffer 0xfffffffffffffff8+0x20 is outside guest RAM");
}

VQ_TEST(readable_after_writable)
{
	init_q(QSIZE, false, false);
	set_desc(0, BUF_GPA, 4, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	set_desc(1, BUF_GPA + 4, 4, 0, 0);
	avail_add(0);
	assert_broken("device-readable descriptor after a device-writable one");
}

VQ_TEST(readable_after_writable_inside_indirect)
{
	init_q(QSIZE, false, true);
	set_desc(0, BUF_GPA, 4, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	set_desc(1, TABLE_GPA, 16, VIRTQ_DESC_F_INDIRECT, 0);
	set_desc_at(TABLE_GPA, 0, BUF_GPA + 4, 4, 0, 0);
	avail_add(0);
	assert_broken("device-readable descriptor after a device-writable one");
}

VQ_TEST(indirect_not_negotiated)
{
	init_q(QSIZE, false, false);
	set_desc_at(TABLE_GPA, 0, BUF_GPA, 4, 0, 0);
	set_desc(0, TABLE_GPA, 16, VIRTQ_DESC_F_INDIRECT, 0);
	avail_add(0);
	assert_broken("without VIRTIO_F_INDIRECT_DESC");
}

VQ_TEST(indirect_with_next)
{
	init_q(QSIZE, false, true);
	set_desc_at(TABLE_GPA, 0, BUF_GPA, 4, 0, 0);
	set_desc(0, TABLE_GPA, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
	set_desc(1, BUF_GPA, 4, VIRTQ_DESC_F_WRITE, 0);
	avail_add(0);
	assert_broken("both INDIRECT and NEXT");
}

VQ_TEST(indirect_empty_table)
{
	init_q(QSIZE, false, true);
	set_desc(0, TABLE_GPA, 0, VIRTQ_DESC_F_INDIRECT, 0);
	avail_add(0);
	assert_broken("indirect table length 0 is not");
}

VQ_TEST(indirect_table_length_not_multiple_of_16)
{
	init_q(QSIZE, false, true);
	set_desc_at(TABLE_GPA, 0, BUF_GPA, 4, 0, 0);
	set_desc(0, TABLE_GPA, 24, VIRTQ_DESC_F_INDIRECT, 0);
	avail_add(0);
	assert_broken("indirect table length 24 is not");
}

VQ_TEST(indirect_table_outside_ram)
{
	init_q(QSIZE, false, true);
	set_desc(0, RAM_B_GPA + RAM_B_SIZE - 16, 32, VIRTQ_DESC_F_INDIRECT, 0);
	avail_add(0);
	assert_broken("indirect table 0x100fff0+0x20 is outside guest RAM");
}

VQ_TEST(indirect_table_wrapping_the_address_space)
{
	init_q(QSIZE, false, true);
	set_desc(0, UINT64_MAX - 15, 32, VIRTQ_DESC_F_INDIRECT, 0);
	avail_add(0);
	assert_broken("indirect table 0xfffffffffffffff0+0x20 is outside");
}

VQ_TEST(indirect_inside_indirect)
{
	init_q(QSIZE, false, true);
	set_desc_at(TABLE_GPA, 0, BUF_GPA, 4, VIRTQ_DESC_F_NEXT, 1);
	set_desc_at(TABLE_GPA, 1, TABLE_GPA + 0x100, 16, VIRTQ_DESC_F_INDIRECT, 0);
	set_desc_at(TABLE_GPA + 0x100, 0, BUF_GPA, 4, 0, 0);
	set_desc(0, TABLE_GPA, 32, VIRTQ_DESC_F_INDIRECT, 0);
	avail_add(0);
	assert_broken("indirect descriptor inside an indirect table");
}

VQ_TEST(indirect_next_out_of_table)
{
	init_q(QSIZE, false, true);
	/* next 2 is a valid queue index but not an index in this 2-entry table */
	set_desc_at(TABLE_GPA, 0, BUF_GPA, 4, VIRTQ_DESC_F_NEXT, 2);
	set_desc_at(TABLE_GPA, 1, BUF_GPA, 4, 0, 0);
	set_desc_at(TABLE_GPA, 2, BUF_GPA, 4, 0, 0);
	set_desc(0, TABLE_GPA, 32, VIRTQ_DESC_F_INDIRECT, 0);
	avail_add(0);
	assert_broken("next index 2 out of range (indirect table of 2 entries");
}

VQ_TEST(indirect_loop)
{
	init_q(QSIZE, false, true);
	set_desc_at(TABLE_GPA, 0, BUF_GPA, 4, VIRTQ_DESC_F_NEXT, 1);
	set_desc_at(TABLE_GPA, 1, BUF_GPA, 4, VIRTQ_DESC_F_NEXT, 2);
	set_desc_at(TABLE_GPA, 2, BUF_GPA, 4, VIRTQ_DESC_F_NEXT, 1);
	set_desc(0, TABLE_GPA, 48, VIRTQ_DESC_F_INDIRECT, 0);
	avail_add(0);
	assert_broken("indirect descriptor chain loops");
}

VQ_TEST(too_many_descriptors)
{
	init_q(QSIZE, false, true);
	unsigned n = VIRTQ_MAX_IOV + 1;
	for (unsigned i = 0; i < n; i++)
		set_desc_at(TABLE_GPA, i, BUF_GPA, 1, i + 1 < n ? VIRTQ_DESC_F_NEXT : 0, i + 1);
	set_desc(0, TABLE_GPA, 16 * n, VIRTQ_DESC_F_INDIRECT, 0);
	avail_add(0);
	assert_broken("more than 1024 descriptors");
}

VQ_TEST(huge_indirect_loop_is_bounded)
{
	init_q(QSIZE, false, true);
	/* a 1 MiB table of 65536 zero-length entries, each pointing to the next:
	 * the walk stops at VIRTQ_MAX_IOV, not at the end of the table */
	uint64_t table = 0x100000, entries = 0x10000;
	for (unsigned i = 0; i < entries; i++)
		set_desc_at(table, i, 0, 0, VIRTQ_DESC_F_NEXT, (i + 1) % entries);
	set_desc(0, table, 16 * entries, VIRTQ_DESC_F_INDIRECT, 0);
	avail_add(0);
	assert_broken("more than 1024 descriptors");
}

VQ_TEST(total_length_above_4g)
{
	/* 2 GiB of address space reserved, never touched */
	size_t big = 0x80000000ull;
	void *p = mmap(NULL, big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	cr_assert_neq(p, MAP_FAILED);
	cr_assert_eq(guest_mem_add_region(&mem, 0x100000000ull, big, p), 0);
	init_q(QSIZE, false, false);

	/* exactly UINT32_MAX bytes: fine */
	set_desc(0, 0x100000000ull, 0x80000000u, VIRTQ_DESC_F_NEXT, 1);
	set_desc(1, 0x100000000ull, 0x7fffffffu, VIRTQ_DESC_F_WRITE, 0);
	avail_add(0);
	cr_assert_eq(virtq_pop_chain(&q, &c), 1);
	cr_assert_eq(c.out_len + c.in_len, UINT32_MAX);

	/* one byte more: broken */
	set_desc(1, 0x100000000ull, 0x80000000u, VIRTQ_DESC_F_WRITE, 0);
	avail_add(0);
	assert_broken("longer than 4 GiB");
	munmap(p, big);
}

VQ_TEST(push_used_refuses_bad_heads)
{
	init_q(QSIZE, false, false);
	cr_assert_eq(virtq_push_used(&q, QSIZE, 0), -1);
	cr_assert_eq(used()->idx, 0);
	cr_assert_not(q.broken, "a device bug, not the guest's");
}

VQ_TEST(broken_queue_logs_one_line)
{
	init_q(QSIZE, false, false);
	q.name = "blk0 q0";
	set_desc(0, BUF_GPA, 4, VIRTQ_DESC_F_NEXT, 0);
	avail_add(0);
	for (unsigned i = 0; i < 5; i++)
		cr_assert_eq(virtq_pop_chain(&q, &c), -1);
	cr_assert_eq(virtq_push_used(&q, 0, 0), -1);
	cr_assert_str_eq(logged(), "minivmm: warning: virtq blk0 q0: descriptor chain loops (head 0); "
			 "queue stopped until the device is reset\n");
}

VQ_TEST(reinit_repairs_a_broken_queue)
{
	init_q(QSIZE, false, false);
	avail_add(QSIZE + 3);
	assert_broken("head index 19 out of range");
	/* the device reset: the driver sets the queue up again */
	memset(ram_a + AVAIL_GPA, 0, VIRTQ_AVAIL_BYTES(QSIZE));
	drv_avail_idx = 0;
	init_q(QSIZE, false, false);
	set_desc(0, BUF_GPA, 4, 0, 0);
	avail_add(0);
	cr_assert_eq(virtq_pop_chain(&q, &c), 1);
}
