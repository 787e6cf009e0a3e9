/* Host-notifier setup and teardown: 15 virtio devices x 64 queues started
 * (DRIVER_OK: every queue's ioeventfd assigned in one batch) and reset
 * (all removed), through minivmm's real transport code, against the raw
 * KVM_IOEVENTFD floor for the same 960 notifiers, in the same run.
 * The workload is that of QEMU's batching patch (630 ms -> 75 ms there).
 * Usage: bench_notifiers [ROUNDS]   prints medians and the ratio. */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "devices/virtio/mmio.h"
#include "vmm/kvm_notify.h"
#include "vmm/vm.h"

#define DEVICES 15
#define QUEUES 64
#define BASE 0xd0000000ull

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* A device that does nothing: the benchmark is the transport's work. */
static uint64_t nd_features(void *d) { (void)d; return 0; }
static unsigned nd_queues(void *d) { (void)d; return QUEUES; }
static uint32_t nd_config_size(void *d) { (void)d; return 0; }
static void nd_config(void *d, uint32_t o, void *p, uint32_t l) { (void)d; (void)o; (void)p; (void)l; }
static int nd_activate(void *d, uint64_t f, struct virtio_queue *q, unsigned n, const struct virtio_irq *i)
{
	(void)d; (void)f; (void)q; (void)n; (void)i;
	return 0;
}
static void nd_reset(void *d) { (void)d; }
static const struct virtio_dev_ops null_ops = {
	.name = "null", .device_id = 99, .features = nd_features, .num_queues = nd_queues,
	.queue_max_size = 16, .config_size = nd_config_size, .config_read = nd_config,
	.activate = nd_activate, .reset = nd_reset,
};

static void wr(struct virtio_mmio *m, uint64_t off, uint32_t v)
{
	virtio_mmio_io_ops.write(m, off, &v, 4);
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 10;
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		perror("/dev/kvm");
		return 1;
	}
	static struct vm vm;
	vm.fd = ioctl(kvm, KVM_CREATE_VM, 0);
	size_t ram_size = 64 << 20;
	void *ram = mmap(NULL, ram_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	struct kvm_userspace_memory_region slot = { 0, 0, 0, ram_size, (uintptr_t)ram };
	if (vm.fd < 0 || ioctl(vm.fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0 || ioctl(vm.fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		perror("vm");
		return 1;
	}
	guest_mem_add_region(&vm.mem, 0, ram_size, ram);

	/* Floor: the same 960 registrations as raw back-to-back ioctls. */
	static struct host_notifier raw[DEVICES * QUEUES];
	for (int d = 0; d < DEVICES; d++)
		for (int q = 0; q < QUEUES; q++) {
			struct host_notifier *n = &raw[d * QUEUES + q];
			*n = (struct host_notifier){ BASE + d * 0x1000 + VIRTIO_MMIO_QUEUE_NOTIFY, 4, false, true,
						     (uint64_t)q, eventfd(0, EFD_CLOEXEC) };
		}
	static struct virtio_mmio devs[DEVICES];
	const struct device_host host = vm_device_host(&vm);
	for (int d = 0; d < DEVICES; d++) {
		if (virtio_mmio_init(&devs[d], "null", &null_ops, NULL, &vm.mem, &host,
				     BASE + d * 0x1000, 5 + d % 10)) {
			fprintf(stderr, "transport init failed\n");
			return 1;
		}
	}

	double fa[64], fd[64], ma[64], md[64];
	if (rounds > 64)
		rounds = 64;
	for (int r = 0; r < rounds; r++) {
		struct kvm_ioeventfd io;
		double t0 = now_ms();
		for (int i = 0; i < DEVICES * QUEUES; i++) {
			io = (struct kvm_ioeventfd){ .datamatch = raw[i].data, .addr = raw[i].addr, .len = 4,
						     .fd = raw[i].fd, .flags = KVM_IOEVENTFD_FLAG_DATAMATCH };
			if (ioctl(vm.fd, KVM_IOEVENTFD, &io) < 0) {
				perror("KVM_IOEVENTFD");
				return 1;
			}
		}
		double t1 = now_ms();
		for (int i = 0; i < DEVICES * QUEUES; i++) {
			io = (struct kvm_ioeventfd){ .datamatch = raw[i].data, .addr = raw[i].addr, .len = 4,
						     .fd = raw[i].fd,
						     .flags = KVM_IOEVENTFD_FLAG_DATAMATCH | KVM_IOEVENTFD_FLAG_DEASSIGN };
			ioctl(vm.fd, KVM_IOEVENTFD, &io);
		}
		double t2 = now_ms();
		fa[r] = t1 - t0;
		fd[r] = t2 - t1;

		/* minivmm: each device driven through its registers as a driver
		 * would, up to DRIVER_OK; timed from the DRIVER_OK write. */
		for (int d = 0; d < DEVICES; d++) {
			struct virtio_mmio *m = &devs[d];
			wr(m, VIRTIO_MMIO_STATUS, 3);
			wr(m, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
			wr(m, VIRTIO_MMIO_DRIVER_FEATURES, 1);
			wr(m, VIRTIO_MMIO_STATUS, 11);
			for (int q = 0; q < QUEUES; q++) {
				uint64_t rings = 0x100000 + (uint64_t)q * 0x1000;
				wr(m, VIRTIO_MMIO_QUEUE_SEL, (uint32_t)q);
				wr(m, VIRTIO_MMIO_QUEUE_NUM, 16);
				wr(m, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)rings);
				wr(m, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)rings + 0x400);
				wr(m, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)rings + 0x800);
				wr(m, VIRTIO_MMIO_QUEUE_READY, 1);
			}
		}
		t0 = now_ms();
		for (int d = 0; d < DEVICES; d++)
			wr(&devs[d], VIRTIO_MMIO_STATUS, 15);
		t1 = now_ms();
		for (int d = 0; d < DEVICES; d++)
			if (!devs[d].t.active || !devs[d].t.notifiers_assigned) {
				fprintf(stderr, "device %d did not start\n", d);
				return 1;
			}
		double t1b = now_ms();
		for (int d = 0; d < DEVICES; d++)
			wr(&devs[d], VIRTIO_MMIO_STATUS, 0);
		t2 = now_ms() - (t1b - t1);
		ma[r] = t1 - t0;
		md[r] = t2 - t1;
	}
	double mfa = median(fa, rounds), mfd = median(fd, rounds), mma = median(ma, rounds), mmd = median(md, rounds);
	printf("host notifiers: %d devices x %d queues = %d ioeventfds, median of %d rounds\n", DEVICES, QUEUES,
	       DEVICES * QUEUES, rounds);
	printf("%-22s %12s %12s %8s\n", "", "minivmm ms", "floor ms", "ratio");
	printf("%-22s %12.2f %12.2f %8.2f\n", "start (assign)", mma, mfa, mma / mfa);
	printf("%-22s %12.2f %12.2f %8.2f\n", "stop (deassign)", mmd, mfd, mmd / mfd);
	printf("%-22s %12.2f %12.2f %8.2f\n", "start + stop", mma + mmd, mfa + mfd, (mma + mmd) / (mfa + mfd));
	return 0;
}
