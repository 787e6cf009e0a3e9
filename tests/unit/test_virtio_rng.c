/* virtio-rng device model on fake guest memory. The test plays the
 * transport (the queue, its eventfds, an interrupt handle that records
 * calls) and the driver (rings, writable buffers, kicks), and waits for the
 * device's worker with a timeout. The rate limit is checked on the real
 * clock against an upper bound that a slow host cannot break: the bytes
 * given over any interval stay within burst + rate * interval. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "devices/virtio/rng.h"
#include "vmm/base/guest_mem.h"
#include "vmm/base/log.h"
#include "vmm/base/thread_start.h"
#include "vmm/sandbox.h"
#include "captured_log.h"
#include "proc_census.h"
#include "sandboxed_starter.h"
#include "virtq_driver.h"

#define RAM_SIZE  0x400000ull      /* 4 MiB of fake guest RAM at 0 */
#define QSIZE     128
#define RING_GPA  0x10000ull
#define BUF_GPA   0x100000ull      /* buffers from here to the end of RAM */
#define GUARD     0xcc             /* what the buffers hold before the device writes */

static uint8_t *ram;
static struct guest_mem mem;
static struct virtio_rng *rng;
static struct virtio_queue queue;   /* the transport's side */
static struct recording_irq irq_log;
static struct virtq_driver drv;     /* the guest's side */

static void *gpa(uint64_t a) { return guest_ptr(&mem, a); }

static void setup(void)
{
	ram = calloc(1, RAM_SIZE);
	cr_assert_not_null(ram);
	memset(&mem, 0, sizeof(mem));
	cr_assert_eq(guest_mem_add_region(&mem, 0, RAM_SIZE, ram), 0);
	memset(ram + BUF_GPA, GUARD, RAM_SIZE - BUF_GPA);
	recording_irq_init(&irq_log);
	memset(&queue, 0, sizeof(queue));
	queue.kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	queue.call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	cr_assert(queue.kick_fd >= 0 && queue.call_fd >= 0);
	rng = NULL;
	cr_redirect_stderr();
}

static void teardown(void)
{
	virtio_rng_destroy(rng);   /* joins the worker if still active */
	close(queue.kick_fd);
	close(queue.call_fd);
	free(ram);
}

TestSuite(virtio_rng, .init = setup, .fini = teardown);

static struct virtio_rng *create_with(uint64_t bw, const struct thread_starter *threads)
{
	char err[256] = "";
	struct virtio_rng *r = virtio_rng_create(
		&(struct virtio_rng_params){ .bytes_per_sec = bw, .index = 0, .threads = threads }, err, sizeof(err));
	cr_assert_not_null(r, "create: %s", err);
	return r;
}

/* What the transport does at DRIVER_OK: the queue set up on zeroed rings. */
static void activate(bool event_idx)
{
	virtq_driver_init(&drv, &queue, 0, &mem, QSIZE, RING_GPA, event_idx, false);
	virtq_driver_set_buffers(&drv, BUF_GPA, RAM_SIZE - BUF_GPA);
	cr_assert_eq(virtio_rng_ops.activate(rng, 1ull << VIRTIO_F_VERSION_1, &queue, 1, &irq_log.irq), 0);
}

static void start(uint64_t bw)
{
	rng = create_with(bw, NULL);
	activate(false);
}

static struct virtio_rng_stats stats(void)
{
	struct virtio_rng_stats st;
	virtio_rng_stats(rng, &st);
	return st;
}

/* Bytes of [a, a + len) that still hold the guard value. */
static uint64_t guard_bytes(uint64_t a, uint64_t len)
{
	const uint8_t *p = gpa(a);
	uint64_t n = 0;
	for (uint64_t i = 0; i < len; i++)
		n += p[i] == GUARD;
	return n;
}

/* Written by the device: random bytes hold the guard value 1 time in 256. */
static void assert_filled(uint64_t a, uint64_t len)
{
	uint64_t g = guard_bytes(a, len);
	cr_assert_leq(g, len / 64 + 8, "[0x%llx, +%llu): %llu bytes not written", (unsigned long long)a,
		      (unsigned long long)len, (unsigned long long)g);
}

static void assert_untouched(uint64_t a, uint64_t len)
{
	cr_assert_eq(guard_bytes(a, len), len, "[0x%llx, +%llu) was written", (unsigned long long)a,
		     (unsigned long long)len);
}

/* One writable buffer of len bytes at a: submitted, waited for. */
static struct virtq_used_elem request(uint64_t a, uint32_t len)
{
	uint16_t head = virtq_driver_submit(&drv, &(struct virtq_seg){ a, len, true }, 1);
	struct virtq_used_elem e = virtq_driver_wait_used(&drv);
	cr_assert_eq(e.id, head);
	return e;
}

/* ---- identity ---- */

Test(virtio_rng, ops_identity)
{
	rng = create_with(0, NULL);
	cr_assert_str_eq(virtio_rng_ops.name, "rng");
	cr_assert_eq(virtio_rng_ops.device_id, VIRTIO_ID_RNG);
	cr_assert_eq(VIRTIO_ID_RNG, 4);
	cr_assert_eq(virtio_rng_ops.num_queues(rng), 1);
	cr_assert_eq(virtio_rng_ops.features(rng), 0);
	cr_assert_eq(virtio_rng_ops.config_size(rng), 0);
	cr_assert_geq(virtio_rng_ops.queue_max_size, QSIZE);
	cr_assert_null(virtio_rng_ops.save, "no state of its own");
	cr_assert_eq(census_threads("rng0", 0), 0, "no thread before activation");
}

/* ---- requests ---- */

Test(virtio_rng, request_filled_and_returned_with_its_length)
{
	start(0);
	cr_assert_eq(census_threads("rng0", 1), 1);
	struct virtq_used_elem e = request(BUF_GPA, 4096);
	cr_assert_eq(e.len, 4096);
	assert_filled(BUF_GPA, 4096);
	assert_untouched(BUF_GPA + 4096, 4096);
	cr_assert_geq(atomic_load(&irq_log.queue_calls[0]), 1, "no interrupt");

	/* a chain of three buffers, one of them a single byte */
	uint64_t a = BUF_GPA + 0x10000, b = a + 0x1000, c = a + 0x2000;
	uint16_t head =
		virtq_driver_submit(&drv, (struct virtq_seg[]){ { a, 100, true }, { b, 1, true }, { c, 3000, true } }, 3);
	e = virtq_driver_wait_used(&drv);
	cr_assert_eq(e.id, head);
	cr_assert_eq(e.len, 3101);
	assert_filled(a, 100);
	assert_filled(c, 3000);
	assert_untouched(a + 100, 0x1000 - 100);
	assert_untouched(b + 1, 0x1000 - 1);
	assert_untouched(c + 3000, 100);

	/* two requests do not get the same bytes */
	e = request(BUF_GPA + 0x20000, 64);
	cr_assert_eq(e.len, 64);
	e = request(BUF_GPA + 0x21000, 64);
	cr_assert_arr_neq(gpa(BUF_GPA + 0x20000), gpa(BUF_GPA + 0x21000), 64);

	struct virtio_rng_stats st = stats();
	cr_assert_eq(st.requests, 4);
	cr_assert_eq(st.bytes, 4096 + 3101 + 128);
	cr_assert_eq(st.errors, 0);
	cr_assert_eq(atomic_load(&irq_log.needs_reset_calls), 0);
	cr_assert_str_empty(logged());
}

Test(virtio_rng, many_requests_with_event_idx)
{
	rng = create_with(0, NULL);
	activate(true);
	for (unsigned round = 0; round < 3; round++) {
		for (unsigned i = 0; i < 100; i++)
			virtq_driver_add(&drv, &(struct virtq_seg){ BUF_GPA + 0x1000 * i, 512, true }, 1);
		virtq_driver_kick(&drv);
		for (unsigned i = 0; i < 100; i++)
			cr_assert_eq(virtq_driver_wait_used(&drv).len, 512);
	}
	cr_assert_eq(stats().requests, 300);
	cr_assert_eq(stats().bytes, 300 * 512);
}

/* Any device-readable byte: given back with length 0, the buffers as the
 * driver left them, one warning; the queue goes on. */
Test(virtio_rng, chain_with_a_readable_descriptor_refused_without_touching_memory)
{
	start(0);
	uint64_t r = BUF_GPA, w = BUF_GPA + 0x1000;
	uint16_t head = virtq_driver_submit(&drv, (struct virtq_seg[]){ { r, 64, false }, { w, 64, true } }, 2);
	struct virtq_used_elem e = virtq_driver_wait_used(&drv);
	cr_assert_eq(e.id, head);
	cr_assert_eq(e.len, 0);
	head = virtq_driver_submit(&drv, &(struct virtq_seg){ r, 4096, false }, 1);
	e = virtq_driver_wait_used(&drv);
	cr_assert_eq(e.id, head);
	cr_assert_eq(e.len, 0);
	assert_untouched(BUF_GPA, 0x2000);
	cr_assert(strstr(logged(), "minivmm: warning: rng0: request (head 0) has device-readable bytes (the device only "
			 "writes); given back with nothing written"), "logged: %s", logged());
	/* no writable byte at all: a zero-length writable descriptor */
	e = request(w, 0);
	cr_assert_eq(e.len, 0);
	cr_assert(strstr(logged(), "has no device-writable bytes; given back with nothing written"));
	assert_untouched(BUF_GPA, 0x2000);
	/* the queue is fine */
	e = request(BUF_GPA + 0x4000, 32);
	cr_assert_eq(e.len, 32);
	assert_filled(BUF_GPA + 0x4000, 32);
	struct virtio_rng_stats st = stats();
	cr_assert_eq(st.errors, 3);
	cr_assert_eq(st.requests, 1);
	cr_assert_eq(st.bytes, 32);
	cr_assert_eq(atomic_load(&irq_log.needs_reset_calls), 0);
}

/* A buffer past the end of guest RAM breaks the queue (virtq's check):
 * nothing written, nothing used, DEVICE_NEEDS_RESET; a reset and a new
 * set-up serve again. */
Test(virtio_rng, out_of_bounds_address_refused)
{
	start(0);
	uint64_t tail = RAM_SIZE - 16;
	virtq_driver_submit(&drv, &(struct virtq_seg){ tail, 64, true }, 1);
	wait_count(&irq_log.needs_reset_calls, 1, "needs_reset calls");
	assert_untouched(tail, 16);
	virtq_driver_assert_no_used(&drv, 50);
	cr_assert(strstr(logged(), "rng0 requestq"), "the line names the queue: %s", logged());
	virtio_rng_ops.reset(rng);
	cr_assert_eq(census_threads("rng0", 0), 0);

	activate(false);
	virtq_driver_submit(&drv, &(struct virtq_seg){ 1ull << 40, 64, true }, 1);
	wait_count(&irq_log.needs_reset_calls, 2, "needs_reset calls");
	virtq_driver_assert_no_used(&drv, 50);
	virtio_rng_ops.reset(rng);

	activate(false);
	cr_assert_eq(request(BUF_GPA, 16).len, 16);
	cr_assert_eq(stats().bytes, 16);
}

/* A request gets VIRTIO_RNG_REQUEST_MAX bytes at most: the first ones of
 * its buffers, in chain order; the used length says so. */
Test(virtio_rng, per_request_cap)
{
	start(0);
	struct virtq_used_elem e = request(BUF_GPA, 200 * 1024);
	cr_assert_eq(e.len, VIRTIO_RNG_REQUEST_MAX);
	assert_filled(BUF_GPA, VIRTIO_RNG_REQUEST_MAX);
	assert_untouched(BUF_GPA + VIRTIO_RNG_REQUEST_MAX, 200 * 1024 - VIRTIO_RNG_REQUEST_MAX);

	memset(gpa(BUF_GPA), GUARD, 0x40000);
	uint64_t a = BUF_GPA, b = BUF_GPA + 0x20000;
	virtq_driver_submit(&drv, (struct virtq_seg[]){ { a, 60 * 1024, true }, { b, 60 * 1024, true } }, 2);
	e = virtq_driver_wait_used(&drv);
	cr_assert_eq(e.len, VIRTIO_RNG_REQUEST_MAX);
	assert_filled(a, 60 * 1024);
	assert_filled(b, 4 * 1024);
	assert_untouched(b + 4 * 1024, 56 * 1024);
	cr_assert_eq(stats().bytes, 2 * VIRTIO_RNG_REQUEST_MAX);
}

/* ---- the rate limit ---- */

/* Requests of 1 KiB at 8 KiB/s (burst 8 KiB): the burst comes at once,
 * then 8 per second; over the whole run the bytes stay within burst +
 * rate * time, and the worker sleeps between refills: it waits once per
 * request at most, it does not spin. */
Test(virtio_rng, rate_limit_holds)
{
	const uint64_t bw = 8192, req = 1024;
	uint64_t t0 = monotonic_ns();
	start(bw);
	for (unsigned i = 0; i < 64; i++)
		virtq_driver_add(&drv, &(struct virtq_seg){ BUF_GPA + 0x1000 * i, req, true }, 1);
	virtq_driver_kick(&drv);
	/* the burst, then two refills */
	uint64_t deadline = now_ms() + TEST_TIMEOUT_MS;
	while (stats().bytes < bw + 2 * req) {
		cr_assert_lt(now_ms(), deadline, "only %llu bytes after %d ms", (unsigned long long)stats().bytes,
			     TEST_TIMEOUT_MS);
		usleep(1000);
	}
	usleep(300 * 1000);
	struct virtio_rng_stats st = stats();
	uint64_t elapsed_ns = monotonic_ns() - t0;
	uint64_t budget = bw + bw * elapsed_ns / 1000000000u;
	cr_assert_leq(st.bytes, budget, "%llu bytes in %llu ms, over the budget of %llu", (unsigned long long)st.bytes,
		      (unsigned long long)(elapsed_ns / 1000000), (unsigned long long)budget);
	cr_assert_eq(st.bytes, st.requests * req, "each request whole");
	cr_assert_geq(st.throttled, 1);
	cr_assert_leq(st.throttled, st.requests + 2, "%llu waits for %llu requests: the worker spins",
		      (unsigned long long)st.throttled, (unsigned long long)st.requests);
	/* what was used is what the device filled, in ring order */
	unsigned used = virtq_driver_used_idx(&drv);
	cr_assert_geq(used, st.requests);
	for (unsigned i = 0; i < used; i++) {
		struct virtq_used_elem e = virtq_driver_wait_used(&drv);
		cr_assert_eq(e.id, i);
		cr_assert_eq(e.len, req);
	}
	cr_assert_eq(atomic_load(&irq_log.needs_reset_calls), 0);
}

/* Under a limit smaller than the cap the burst is one second's bytes: a
 * big request gets that much, not more. */
Test(virtio_rng, small_limit_caps_a_request_at_its_burst)
{
	start(1000);
	struct virtq_used_elem e = request(BUF_GPA, 4096);
	cr_assert_eq(e.len, 1000);
	assert_filled(BUF_GPA, 1000);
	assert_untouched(BUF_GPA + 1000, 3096);
}

/* A throttled request stays in the ring: a pause finds nothing in flight
 * (last_avail_idx == used_idx), and the request is served after resume. A
 * reset does not refill the bucket. */
Test(virtio_rng, throttled_request_is_not_held_across_a_pause)
{
	start(4096);   /* burst 4096: one request of 4096, then one per second */
	uint64_t t0 = now_ms();
	cr_assert_eq(request(BUF_GPA, 4096).len, 4096);
	virtq_driver_submit(&drv, &(struct virtq_seg){ BUF_GPA + 0x2000, 4096, true }, 1);
	usleep(50 * 1000);
	if (now_ms() - t0 >= 900)   /* a host that stalled a second earned the bucket a second */
		cr_skip_test("the host stalled for %llu ms", (unsigned long long)(now_ms() - t0));
	cr_assert_not(virtq_driver_has_used(&drv), "served past the limit");
	cr_assert_geq(stats().throttled, 1);
	virtio_rng_ops.pause(rng);
	cr_assert_eq(census_threads("rng0", 0), 0);
	cr_assert_eq(queue.vq.last_avail_idx, queue.vq.used_idx, "a chain in flight across the pause");
	cr_assert_eq(queue.vq.used_idx, 1);
	cr_assert_eq(virtio_rng_ops.resume(rng), 0);
	cr_assert_eq(census_threads("rng0", 1), 1);
	cr_assert_eq(virtq_driver_wait_used(&drv).len, 4096);
	assert_filled(BUF_GPA + 0x2000, 4096);

	/* reset and set up again: the bucket is still empty */
	virtio_rng_ops.reset(rng);
	activate(false);
	t0 = now_ms();
	virtq_driver_submit(&drv, &(struct virtq_seg){ BUF_GPA, 4096, true }, 1);
	usleep(100 * 1000);
	if (now_ms() - t0 < 900)   /* a host that slept a second earned it a second */
		cr_assert_not(virtq_driver_has_used(&drv), "a reset refilled the bucket");
	cr_assert_eq(virtq_driver_wait_used(&drv).len, 4096);
}

/* ---- life cycle ---- */

Test(virtio_rng, pause_resume_reset)
{
	start(0);
	cr_assert_eq(census_threads("rng0", 1), 1);
	virtio_rng_ops.pause(rng);
	cr_assert_eq(census_threads("rng0", 0), 0);
	virtq_driver_submit(&drv, &(struct virtq_seg){ BUF_GPA, 64, true }, 1);
	virtq_driver_assert_no_used(&drv, 50);
	cr_assert_eq(virtio_rng_ops.resume(rng), 0);
	cr_assert_eq(virtq_driver_wait_used(&drv).len, 64);
	virtio_rng_ops.reset(rng);
	cr_assert_eq(census_threads("rng0", 0), 0);
	virtio_rng_ops.reset(rng);   /* twice: nothing to do */
	cr_assert_eq(virtio_rng_ops.resume(rng), 0, "resume of a reset device: nothing to start");
	cr_assert_eq(census_threads("rng0", 0), 0);
	activate(false);
	cr_assert_eq(request(BUF_GPA, 8).len, 8);
	cr_assert_eq(virtio_rng_ops.activate(rng, 0, &queue, 1, &irq_log.irq), -1, "activated twice");
	cr_assert(strstr(logged(), "rng0: activated twice without a reset"));
	virtio_rng_destroy(rng);   /* while active */
	rng = NULL;
	cr_assert_eq(census_threads("rng0", 0), 0);
}

Test(virtio_rng, queue_not_set_up)
{
	rng = create_with(0, NULL);
	queue.ready = false;
	cr_assert_eq(virtio_rng_ops.activate(rng, 0, &queue, 1, &irq_log.irq), 0);
	cr_assert(strstr(logged(), "rng0: the driver did not set up the request queue; no entropy"));
	cr_assert_eq(census_threads("rng0", 0), 0);
	virtio_rng_ops.pause(rng);
	cr_assert_eq(virtio_rng_ops.resume(rng), 0);
	cr_assert_eq(census_threads("rng0", 0), 0);
	virtio_rng_ops.reset(rng);
}

/* ---- the worker under its seccomp filter ---- */

/* Everything the worker does, under THREAD_ROLE_RNG's allow list: a call
 * missing from it ends this process with status 159 (the test fails). */
Test(virtio_rng, the_worker_keeps_to_its_seccomp_allow_list)
{
	const struct thread_starter *starter = sandboxed_starter(THREAD_ROLE_RNG);
	rng = create_with(2048, starter);
	activate(true);
	/* filled, refused (a warning), throttled (a timed sleep), served again */
	cr_assert_eq(request(BUF_GPA, 2048).len, 2048);
	virtq_driver_submit(&drv, &(struct virtq_seg){ BUF_GPA, 16, false }, 1);
	cr_assert_eq(virtq_driver_wait_used(&drv).len, 0);
	for (int i = 0; i < 3 && !stats().throttled; i++)   /* each a second's bytes: throttled unless the host stalls */
		cr_assert_eq(request(BUF_GPA, 2048).len, 2048);
	cr_assert_geq(stats().throttled, 1);
	/* pause, resume (a new thread, sandboxed too), a broken queue, reset */
	virtio_rng_ops.pause(rng);
	cr_assert_eq(virtio_rng_ops.resume(rng), 0);
	cr_assert_eq(request(BUF_GPA, 256).len, 256);
	virtq_driver_submit(&drv, &(struct virtq_seg){ RAM_SIZE, 16, true }, 1);
	wait_count(&irq_log.needs_reset_calls, 1, "needs_reset calls");
	virtio_rng_ops.reset(rng);
	cr_assert_eq(atomic_load(&sandboxed_threads), 2);
	virtio_rng_destroy(rng);   /* on this (unfiltered) thread */
	rng = NULL;
	sandbox_destroy(&sandbox);
}
