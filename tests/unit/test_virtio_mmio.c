/* virtio-mmio register state machine with a fake device and fake host:
 * feature negotiation, queue setup, activation with notifiers assigned in
 * one batch, notify before/after, interrupts and ISR, reset, hostile values. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/virtio/mmio.h"
#include "captured_log.h"
#include "virtio_transport_fakes.h"

#define BASE 0xd0000000ull
#define RAM (1u << 20)

static const struct virtio_dev_ops fake_ops = FAKE_VIRTIO_DEV_OPS(42);

static struct virtio_mmio m;
static struct fake_virtio_dev dev;
static struct fake_virtio_host host;
static struct guest_mem mem;
static uint8_t *ram;

static uint32_t rd(uint64_t off)
{
	uint32_t v;
	virtio_mmio_io_ops.read(&m, off, &v, 4);
	return v;
}
static void wr(uint64_t off, uint32_t v) { virtio_mmio_io_ops.write(&m, off, &v, 4); }

static void setup(void)
{
	cr_redirect_stderr();   /* for the tests that count log lines (logged()) */
	memset(&dev, 0, sizeof(dev));
	memset(&host, 0, sizeof(host));
	memset(&mem, 0, sizeof(mem));
	ram = calloc(1, RAM);
	guest_mem_add_region(&mem, 0, RAM, ram);
	cr_assert_eq(virtio_mmio_init(&m, "fake0", &fake_ops, &dev, &mem, &(struct device_host){ &fake_virtio_host_ops, &host },
				      BASE, 5),
		     0);
}

static void teardown(void)
{
	virtio_mmio_destroy(&m);
	free(ram);
}

TestSuite(virtio_mmio, .init = setup, .fini = teardown);

static void negotiate(uint32_t lo, uint32_t hi)
{
	wr(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(VIRTIO_MMIO_DRIVER_FEATURES, lo);
	wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(VIRTIO_MMIO_DRIVER_FEATURES, hi);
	wr(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
}

static void setup_queue(unsigned q, uint64_t base)
{
	wr(VIRTIO_MMIO_QUEUE_SEL, q);
	wr(VIRTIO_MMIO_QUEUE_NUM, 16);
	wr(VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)base);
	wr(VIRTIO_MMIO_QUEUE_DESC_HIGH, 0);
	wr(VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)base + 0x1000);
	wr(VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)base + 0x2000);
	wr(VIRTIO_MMIO_QUEUE_READY, 1);
}

static const uint8_t ALL_OK = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
			      VIRTIO_STATUS_DRIVER_OK;

Test(virtio_mmio, identity_registers)
{
	cr_assert_eq(rd(VIRTIO_MMIO_MAGIC), 0x74726976);
	cr_assert_eq(rd(VIRTIO_MMIO_VERSION), 2);
	cr_assert_eq(rd(VIRTIO_MMIO_DEVICE_ID), 42);
	cr_assert_eq(host.irqfd_gsi, 5, "irqfd wired at init");
	wr(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	uint32_t lo = rd(VIRTIO_MMIO_DEVICE_FEATURES);
	cr_assert(lo & (1u << 5), "device feature");
	cr_assert(lo & (1u << VIRTIO_F_EVENT_IDX));
	wr(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	cr_assert(rd(VIRTIO_MMIO_DEVICE_FEATURES) & 1, "VERSION_1");
	wr(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 7);
	cr_assert_eq(rd(VIRTIO_MMIO_DEVICE_FEATURES), 0);
	wr(VIRTIO_MMIO_QUEUE_SEL, 0);
	cr_assert_eq(rd(VIRTIO_MMIO_QUEUE_NUM_MAX), 256);
	wr(VIRTIO_MMIO_QUEUE_SEL, 2);
	cr_assert_eq(rd(VIRTIO_MMIO_QUEUE_NUM_MAX), 0, "no queue 2");
}

Test(virtio_mmio, features_ok_refused_without_version_1_or_unknown_bits)
{
	negotiate(1u << 5, 0);
	cr_assert_eq(rd(VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK, 0, "no VERSION_1");
	wr(VIRTIO_MMIO_STATUS, 0);
	negotiate(1u << 6, 1);
	cr_assert_eq(rd(VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK, 0, "bit 6 not offered");
	wr(VIRTIO_MMIO_STATUS, 0);
	negotiate(1u << 5, 1);
	cr_assert(rd(VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK);
	/* features are frozen after FEATURES_OK */
	wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(VIRTIO_MMIO_DRIVER_FEATURES, 0);
	cr_assert_eq(m.t.driver_features, (1ull << 5) | (1ull << 32));
}

Test(virtio_mmio, driver_ok_activates_with_one_notifier_batch)
{
	negotiate((1u << 5) | (1u << VIRTIO_F_EVENT_IDX), 1);
	setup_queue(0, 0x10000);
	setup_queue(1, 0x20000);
	cr_assert_eq(dev.activations, 0);
	wr(VIRTIO_MMIO_STATUS, ALL_OK);
	cr_assert_eq(dev.activations, 1);
	cr_assert_eq(dev.n_active, 2);
	cr_assert(dev.features & (1ull << VIRTIO_F_EVENT_IDX));
	cr_assert_eq(host.batches, 1, "one batch for the device");
	cr_assert_eq(host.assigned, 2);
	cr_assert_eq(host.last[1].addr, BASE + VIRTIO_MMIO_QUEUE_NOTIFY);
	cr_assert(host.last[1].datamatch);
	cr_assert_eq(host.last[1].data, 1);
	cr_assert_eq(host.last[1].len, 4);
	cr_assert_eq(host.last[0].fd, m.t.queues[0].kick_fd);
	/* every queue is kicked once after activation */
	uint64_t v;
	cr_assert_eq(read(m.t.queues[1].kick_fd, &v, 8), 8);
	cr_assert_eq(rd(VIRTIO_MMIO_STATUS), ALL_OK);
}

Test(virtio_mmio, notify_through_exit_reaches_the_kick_eventfd)
{
	negotiate(0, 1);
	setup_queue(0, 0x10000);
	wr(VIRTIO_MMIO_QUEUE_NOTIFY, 0);   /* before DRIVER_OK: dropped, device not running */
	uint64_t v;
	cr_assert_eq(read(m.t.queues[0].kick_fd, &v, 8), -1);
	wr(VIRTIO_MMIO_STATUS, ALL_OK);
	cr_assert_eq(read(m.t.queues[0].kick_fd, &v, 8), 8, "post-activation kick");
	wr(VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	cr_assert_eq(read(m.t.queues[0].kick_fd, &v, 8), 8, "exit-path notify forwarded");
	wr(VIRTIO_MMIO_QUEUE_NOTIFY, 99);   /* out of range: ignored */
}

Test(virtio_mmio, interrupts_and_isr)
{
	negotiate(0, 1);
	setup_queue(0, 0x10000);
	wr(VIRTIO_MMIO_STATUS, ALL_OK);
	dev.irq->queue(dev.irq, 0);
	cr_assert_eq(rd(VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING);
	uint64_t v;
	cr_assert_eq(read(m.irq_fd, &v, 8), 8, "irqfd signalled");
	dev.irq->config(dev.irq);
	cr_assert_eq(rd(VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG);
	wr(VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
	cr_assert_eq(rd(VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
	dev.irq->needs_reset(dev.irq);
	cr_assert(rd(VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
	/* no eventfd for vhost to signal: a queue interrupt sets InterruptStatus first */
	cr_assert_null(dev.irq->queue_notifier);
}

/* Level semantics over the edge irqfd: one edge per bit until the guest
 * acknowledges it; a different bit raises the line again. */
Test(virtio_mmio, one_edge_until_acknowledged)
{
	negotiate(0, 1);
	setup_queue(0, 0x10000);
	wr(VIRTIO_MMIO_STATUS, ALL_OK);
	uint64_t v;
	dev.irq->queue(dev.irq, 0);
	dev.irq->queue(dev.irq, 0);
	dev.irq->queue(dev.irq, 0);
	cr_assert_eq(read(m.irq_fd, &v, 8), 8);
	cr_assert_eq(v, 1, "three queue interrupts before the ack raise the line once, not %llu times",
		     (unsigned long long)v);
	dev.irq->config(dev.irq);
	cr_assert_eq(read(m.irq_fd, &v, 8), 8, "CONFIG while VRING is pending still raises the line");
	dev.irq->config(dev.irq);
	cr_assert_eq(read(m.irq_fd, &v, 8), -1, "a second CONFIG before the ack does not");
	cr_assert_eq(rd(VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG);
	wr(VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG);
	dev.irq->queue(dev.irq, 0);
	cr_assert_eq(read(m.irq_fd, &v, 8), 8, "after the ack the next queue interrupt raises it again");
	/* A reset clears the status: the first interrupt after it raises the line. */
	wr(VIRTIO_MMIO_STATUS, 0);
	negotiate(0, 1);
	setup_queue(0, 0x10000);
	wr(VIRTIO_MMIO_STATUS, ALL_OK);
	dev.irq->queue(dev.irq, 0);
	cr_assert_eq(read(m.irq_fd, &v, 8), 8);
}

Test(virtio_mmio, reset_stops_device_and_removes_notifiers)
{
	negotiate(0, 1);
	setup_queue(0, 0x10000);
	wr(VIRTIO_MMIO_STATUS, ALL_OK);
	wr(VIRTIO_MMIO_STATUS, 0);
	cr_assert_eq(dev.resets, 1);
	cr_assert_eq(host.assigned, 0, "notifiers removed");
	cr_assert_eq(host.batches, 2);
	cr_assert_eq(rd(VIRTIO_MMIO_STATUS), 0);
	wr(VIRTIO_MMIO_QUEUE_SEL, 0);
	cr_assert_eq(rd(VIRTIO_MMIO_QUEUE_READY), 0);
	/* and it works again */
	negotiate(0, 1);
	setup_queue(0, 0x10000);
	wr(VIRTIO_MMIO_STATUS, ALL_OK);
	cr_assert_eq(dev.activations, 2);
}

Test(virtio_mmio, hostile_queue_setup_gives_needs_reset_not_a_crash)
{
	negotiate(0, 1);
	wr(VIRTIO_MMIO_QUEUE_SEL, 0);
	wr(VIRTIO_MMIO_QUEUE_NUM, 16);
	wr(VIRTIO_MMIO_QUEUE_DESC_LOW, 0xfffff000);   /* outside guest RAM */
	wr(VIRTIO_MMIO_QUEUE_DESC_HIGH, 0x7);
	wr(VIRTIO_MMIO_QUEUE_READY, 1);
	wr(VIRTIO_MMIO_STATUS, ALL_OK);
	cr_assert(rd(VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
	cr_assert_eq(dev.activations, 0);
	cr_assert_eq(host.assigned, 0);
	wr(VIRTIO_MMIO_STATUS, 0);
	cr_assert_eq(rd(VIRTIO_MMIO_STATUS), 0, "reset clears NEEDS_RESET");
}

Test(virtio_mmio, queue_num_above_max_and_changes_after_ready_ignored)
{
	negotiate(0, 1);
	wr(VIRTIO_MMIO_QUEUE_SEL, 0);
	wr(VIRTIO_MMIO_QUEUE_NUM, 4096);
	cr_assert_eq(m.t.queues[0].size, 0);
	setup_queue(0, 0x10000);
	wr(VIRTIO_MMIO_QUEUE_DESC_LOW, 0x50000);
	cr_assert_eq(m.t.queues[0].desc, 0x10000, "ready queue is frozen");
	wr(VIRTIO_MMIO_QUEUE_SEL, 1000);
	wr(VIRTIO_MMIO_QUEUE_READY, 1);   /* no such queue: ignored */
}

Test(virtio_mmio, driver_ok_without_features_ok)
{
	wr(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK);
	cr_assert(rd(VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
	cr_assert_eq(dev.activations, 0);
}

Test(virtio_mmio, config_space_bounds_and_odd_widths)
{
	dev.config[0] = 0x11;
	dev.config[7] = 0x77;
	uint8_t b;
	virtio_mmio_io_ops.read(&m, VIRTIO_MMIO_CONFIG + 7, &b, 1);
	cr_assert_eq(b, 0x77);
	uint32_t w = 0xdeadbeef;
	virtio_mmio_io_ops.read(&m, VIRTIO_MMIO_CONFIG + 6, &w, 4);
	cr_assert_eq(w, 0, "read past the end of config gives zeroes");
	uint16_t h = 0xabcd;
	virtio_mmio_io_ops.write(&m, VIRTIO_MMIO_CONFIG + 2, &h, 2);
	cr_assert_eq(dev.config[2], 0xcd);
	virtio_mmio_io_ops.write(&m, VIRTIO_MMIO_CONFIG + 7, &h, 2);   /* past the end: ignored */
	cr_assert_eq(dev.config[7], 0x77);
	uint16_t reg;
	virtio_mmio_io_ops.read(&m, VIRTIO_MMIO_MAGIC, &reg, 2);
	cr_assert_eq(reg, 0, "registers are 32-bit only");
}

/* Spec 2.1.2: with DRIVER_OK set, DEVICE_NEEDS_RESET comes with a
 * configuration change notification, also when the device refuses the queue
 * setup at DRIVER_OK (found by tests/e2e/hostile_guest). */
Test(virtio_mmio, bad_queue_setup_at_driver_ok_sends_a_config_interrupt)
{
	static const struct {
		uint32_t size, desc_lo;
	} bad[] = { { 0, 0x10000 }, { 3, 0x10000 }, { 16, 0xfffff000 }, { 16, 0x10008 } };
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		wr(VIRTIO_MMIO_STATUS, 0);
		uint64_t junk;
		while (read(m.irq_fd, &junk, 8) == 8)
			;
		negotiate(0, 1);
		wr(VIRTIO_MMIO_QUEUE_SEL, 0);
		wr(VIRTIO_MMIO_QUEUE_NUM, bad[i].size);
		wr(VIRTIO_MMIO_QUEUE_DESC_LOW, bad[i].desc_lo);
		wr(VIRTIO_MMIO_QUEUE_DESC_HIGH, bad[i].desc_lo == 0xfffff000 ? 7 : 0);
		wr(VIRTIO_MMIO_QUEUE_READY, 1);
		wr(VIRTIO_MMIO_STATUS, ALL_OK);
		cr_assert(rd(VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET, "case %u", i);
		cr_assert_eq(rd(VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG, "case %u", i);
		cr_assert_eq(read(m.irq_fd, &junk, 8), 8, "case %u: interrupt line raised", i);
		cr_assert_eq(dev.activations, 0);
	}
	wr(VIRTIO_MMIO_STATUS, 0);
	cr_assert_eq(rd(VIRTIO_MMIO_INTERRUPT_STATUS), 0, "reset clears InterruptStatus");
	wr(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK);
	cr_assert(rd(VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
	cr_assert_eq(rd(VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
}

/* Issue 13, item 2: broken rings at each DRIVER_OK gave one log line per
 * reset cycle, for as long as the guest looped. */
Test(virtio_mmio, broken_rings_in_a_reset_loop_log_a_few_lines)
{
	logged();
	for (int i = 0; i < 200; i++) {
		wr(VIRTIO_MMIO_STATUS, 0);
		negotiate(0, 1);
		wr(VIRTIO_MMIO_QUEUE_SEL, 0);
		wr(VIRTIO_MMIO_QUEUE_NUM, 16);
		wr(VIRTIO_MMIO_QUEUE_DESC_LOW, 0xfffff000);
		wr(VIRTIO_MMIO_QUEUE_DESC_HIGH, 7);
		wr(VIRTIO_MMIO_QUEUE_READY, 1);
		wr(VIRTIO_MMIO_STATUS, ALL_OK);
		cr_assert(rd(VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET, "cycle %d", i);
		/* and DRIVER_OK without FEATURES_OK, the other line a cycle can give */
		wr(VIRTIO_MMIO_STATUS, 0);
		wr(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK);
	}
	const char *l = logged();
	int lines = 0;
	for (const char *p = l; *p; p++)
		lines += *p == '\n';
	cr_assert_eq(lines, 5, "%s", l);
	cr_assert(strstr(l, "fake0: queue 0: "), "%s", l);
}

/* Issue 13: device activation and reset ran on the vCPU that wrote the
 * status, so vCPU threads needed the tap and vhost calls. They go through
 * the host's run_control (minivmm's main thread) now. */
Test(virtio_mmio, activation_and_reset_run_where_the_host_says)
{
	negotiate(0, 1);
	setup_queue(0, 0x10000);
	wr(VIRTIO_MMIO_STATUS, ALL_OK);
	cr_assert_eq(dev.activations, 1);
	cr_assert_eq(host.control_calls, 1, "activate went through run_control");
	wr(VIRTIO_MMIO_STATUS, 0);
	cr_assert_eq(dev.resets, 1);
	cr_assert_eq(host.control_calls, 2, "reset went through run_control");
	/* A VMM shutting down runs nothing more: the device stays active (not
	 * reset behind the host's back) and destroy resets it. */
	negotiate(0, 1);
	setup_queue(0, 0x10000);
	wr(VIRTIO_MMIO_STATUS, ALL_OK);
	cr_assert_eq(dev.activations, 2);
	host.control_refuse = -ESHUTDOWN;
	wr(VIRTIO_MMIO_STATUS, 0);
	cr_assert_eq(dev.resets, 1, "the refused reset did not run");
	host.control_refuse = 0;
	virtio_mmio_destroy(&m);
	cr_assert_eq(dev.resets, 2, "destroy reset the device");
	cr_assert_eq(virtio_mmio_init(&m, "fake0", &fake_ops, &dev, &mem, &(struct device_host){ &fake_virtio_host_ops, &host },
				      BASE, 5),
		     0);
}

Test(virtio_mmio, failed_notifier_registration_sets_needs_reset)
{
	host.fail_assign = 1;
	negotiate(0, 1);
	setup_queue(0, 0x10000);
	wr(VIRTIO_MMIO_STATUS, ALL_OK);
	cr_assert(rd(VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
	cr_assert_eq(dev.activations, 0);
}
