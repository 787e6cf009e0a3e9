/* The floor for "VMM start to first guest instruction": the fewest KVM
 * ioctls that can run one guest instruction (a port write) in 64-bit mode,
 * with the same memory size minivmm uses. Prints the time from process start
 * to that first exit, in ms, and the peak RSS in KiB. */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double since_start_ms(void)
{
	/* Process start time from /proc, as minivmm's marker is measured from
	 * its own start: compare like with like by using CLOCK_MONOTONIC here
	 * against a start stamp taken first thing in main. */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
	double t0 = since_start_ms();
	size_t mem = (argc > 1 ? strtoull(argv[1], NULL, 0) : 256) << 20;
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		perror("/dev/kvm");
		return 1;
	}
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	uint8_t *ram = mmap(NULL, mem, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	struct kvm_userspace_memory_region slot = { 0, 0, 0, mem, (uintptr_t)ram };
	if (vm < 0 || ram == MAP_FAILED || ioctl(vm, KVM_SET_USER_MEMORY_REGION, &slot) < 0) {
		perror("vm setup");
		return 1;
	}
	/* out %al, $0x4f1 ; hlt  at 0x200000, identity-mapped with a 2M page */
	uint8_t code_io[] = { 0x66, 0xba, 0xf1, 0x04, 0xb0, 0x01, 0xee, 0xf4 };  /* mov $0x4f1,%dx; mov $1,%al; out %al,(%dx); hlt */
	memcpy(ram + 0x200000, code_io, sizeof(code_io));
	uint64_t *pml4 = (uint64_t *)(ram + 0x9000), *pdpt = (uint64_t *)(ram + 0xa000), *pd = (uint64_t *)(ram + 0xb000);
	pml4[0] = 0xa000 | 3;
	pdpt[0] = 0xb000 | 3;
	for (int i = 0; i < 512; i++)
		pd[i] = ((uint64_t)i << 21) | 0x83;
	uint64_t gdt[] = { 0, 0, 0x00af9b000000ffffull, 0x00cf93000000ffffull };
	memcpy(ram + 0x500, gdt, sizeof(gdt));

	int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	int sz = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	struct kvm_run *run = mmap(NULL, (size_t)sz, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	struct kvm_sregs s;
	ioctl(vcpu, KVM_GET_SREGS, &s);
	struct kvm_segment cs = { .base = 0, .limit = 0xffffffff, .selector = 0x10, .type = 0xb, .present = 1,
				  .s = 1, .l = 1, .g = 1 };
	struct kvm_segment ds = cs;
	ds.selector = 0x18;
	ds.type = 3;
	ds.l = 0;
	ds.db = 1;
	s.cs = cs;
	s.ds = s.es = s.fs = s.gs = s.ss = ds;
	s.gdt.base = 0x500;
	s.gdt.limit = 31;
	s.cr0 = 0x80000031;
	s.cr3 = 0x9000;
	s.cr4 = 0x20;
	s.efer = 0x500;
	struct kvm_regs r = { .rip = 0x200000, .rflags = 2 };
	if (ioctl(vcpu, KVM_SET_SREGS, &s) < 0 || ioctl(vcpu, KVM_SET_REGS, &r) < 0) {
		perror("vcpu setup");
		return 1;
	}
	if (ioctl(vcpu, KVM_RUN, 0) < 0 || run->exit_reason != KVM_EXIT_IO || run->io.port != 0x4f1) {
		fprintf(stderr, "unexpected exit %u\n", run->exit_reason);
		return 1;
	}
	double t1 = since_start_ms();
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("first_exit_ms=%.3f maxrss_kib=%ld\n", t1 - t0, ru.ru_maxrss);
	return 0;
}
