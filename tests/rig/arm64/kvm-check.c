/* kvm-check: the smallest proof that arm64 KVM works where it runs (the
 * nested arm64 rig's L1). The arm64 counterpart of tests/guests/tiny_guest.S:
 * no Linux, no minivmm, just the KVM API.
 *
 * It creates a VM with one vCPU of the host's preferred target, maps one page
 * of guest RAM holding four instructions, and runs them:
 *
 *     movz x1, #0x1000, lsl #16    x1 = 0x10000000 (an address with no RAM)
 *     movz x0, #0x2a               x0 = 42
 *     str  w0, [x1]                a 4-byte MMIO write of 42
 *     b    <first instruction>     so the next KVM_RUN, which completes the
 *                                  write and steps past it, writes again
 *
 * It passes when KVM_RUN returns KVM_EXIT_MMIO for a 4-byte write of 42 at
 * 0x10000000, and prints how long each step took (VM + vCPU set-up, the first
 * KVM_RUN, then the mean of a few more guest round trips).
 *
 * Built static with aarch64-linux-gnu-gcc by tests/rig/rig.sh --arch arm64.
 * Exit status: 0 pass, 1 fail (with one line naming the step), 77 no /dev/kvm. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define RAM_GPA 0x40000000ull /* where the code page sits in guest memory */
#define MMIO_GPA 0x10000000ull
#define MMIO_VALUE 42u
#define ROUND_TRIPS 20

/* The arm64 core register id of PC: KVM_REG_ARM_CORE_REG(regs.pc). */
#define CORE_REG(field) \
	(KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | \
	 (offsetof(struct kvm_regs, field) / sizeof(uint32_t)))

static const uint32_t guest_code[] = {
	0xd2a20001, /* movz x1, #0x1000, lsl #16 */
	0xd2800540, /* movz x0, #0x2a */
	0xb9000020, /* str w0, [x1] */
	0x17fffffd, /* b .-12 */
};

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int fail(const char *step)
{
	printf("KVM-CHECK FAIL %s: %s\n", step, strerror(errno));
	return 1;
}

static int set_pc(int vcpu, uint64_t pc)
{
	struct kvm_one_reg reg = { .id = CORE_REG(regs.pc), .addr = (uint64_t)(uintptr_t)&pc };
	return ioctl(vcpu, KVM_SET_ONE_REG, &reg);
}

/* One KVM_RUN up to the next MMIO exit; 0 when the exit is the expected
 * write, else -1 with a message printed. */
static int run_once(int vcpu, struct kvm_run *run)
{
	if (ioctl(vcpu, KVM_RUN, 0) < 0)
		return fail("KVM_RUN"), -1;
	if (run->exit_reason != KVM_EXIT_MMIO) {
		printf("KVM-CHECK FAIL exit reason %u, want KVM_EXIT_MMIO (%u)\n", run->exit_reason,
		       KVM_EXIT_MMIO);
		return -1;
	}
	uint32_t v;
	memcpy(&v, run->mmio.data, sizeof(v));
	if (!run->mmio.is_write || run->mmio.phys_addr != MMIO_GPA || run->mmio.len != 4 ||
	    v != MMIO_VALUE) {
		printf("KVM-CHECK FAIL MMIO exit: %s of %u bytes at 0x%llx value %u, want a 4-byte write of %u at 0x%llx\n",
		       run->mmio.is_write ? "write" : "read", run->mmio.len,
		       (unsigned long long)run->mmio.phys_addr, v, MMIO_VALUE,
		       (unsigned long long)MMIO_GPA);
		return -1;
	}
	return 0;
}

int main(void)
{
	double t0 = now_ms();
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		printf("KVM-CHECK SKIP /dev/kvm: %s\n", strerror(errno));
		return 77;
	}
	int api = ioctl(kvm, KVM_GET_API_VERSION, 0);
	if (api != KVM_API_VERSION) {
		printf("KVM-CHECK FAIL KVM API version %d, want %d\n", api, KVM_API_VERSION);
		return 1;
	}
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		return fail("KVM_CREATE_VM");

	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	void *ram = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ram == MAP_FAILED)
		return fail("mmap");
	memcpy(ram, guest_code, sizeof(guest_code));
	struct kvm_userspace_memory_region region = {
		.slot = 0,
		.guest_phys_addr = RAM_GPA,
		.memory_size = page,
		.userspace_addr = (uint64_t)(uintptr_t)ram,
	};
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		return fail("KVM_SET_USER_MEMORY_REGION");

	int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0)
		return fail("KVM_CREATE_VCPU");
	struct kvm_vcpu_init init;
	if (ioctl(vm, KVM_ARM_PREFERRED_TARGET, &init) < 0)
		return fail("KVM_ARM_PREFERRED_TARGET");
	if (ioctl(vcpu, KVM_ARM_VCPU_INIT, &init) < 0)
		return fail("KVM_ARM_VCPU_INIT");
	int mmap_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (mmap_size <= 0)
		return fail("KVM_GET_VCPU_MMAP_SIZE");
	struct kvm_run *run = mmap(NULL, (size_t)mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED)
		return fail("mmap(kvm_run)");
	if (set_pc(vcpu, RAM_GPA) < 0)
		return fail("KVM_SET_ONE_REG(pc)");
	double t_setup = now_ms();

	if (run_once(vcpu, run) < 0)
		return 1;
	double t_first = now_ms();
	for (int i = 0; i < ROUND_TRIPS; i++)
		if (run_once(vcpu, run) < 0)
			return 1;
	double t_end = now_ms();

	printf("KVM-CHECK PASS target %u: MMIO write of %u at 0x%llx seen; set-up %.2f ms, first run %.2f ms, "
	       "round trip %.3f ms (mean of %d)\n",
	       init.target, MMIO_VALUE, (unsigned long long)MMIO_GPA, t_setup - t0, t_first - t_setup,
	       (t_end - t_first) / ROUND_TRIPS, ROUND_TRIPS);
	return 0;
}
