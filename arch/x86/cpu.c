#include "arch/x86/cpu.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "arch/x86/layout.h"
#include "vmm/arch.h"
#include "vmm/base/log.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

#define MAX_CPUID_ENTRIES 256

#define MSR_IA32_SYSENTER_CS  0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_IA32_SYSENTER_EIP 0x176
#define MSR_STAR              0xc0000081
#define MSR_LSTAR             0xc0000082
#define MSR_CSTAR             0xc0000083
#define MSR_SYSCALL_MASK      0xc0000084
#define MSR_KERNEL_GS_BASE    0xc0000102
#define MSR_IA32_MISC_ENABLE  0x1a0
#define MSR_MTRR_DEF_TYPE     0x2ff

#define CR0_PE 0x1ull
#define CR0_ET 0x10ull
#define CR0_NE 0x20ull
#define CR0_PG 0x80000000ull
#define CR4_PAE 0x20ull
#define EFER_LME 0x100ull
#define EFER_LMA 0x400ull

unsigned x86_core_id_bits(unsigned n_cpus)
{
	unsigned bits = 0;
	while ((1u << bits) < n_cpus)
		bits++;
	return bits;
}

void x86_cpuid_set_topology(struct kvm_cpuid_entry2 *e, unsigned n, unsigned apic_id, unsigned n_cpus,
			    int tsc_deadline)
{
	unsigned shift = x86_core_id_bits(n_cpus);
	for (unsigned i = 0; i < n; i++) {
		struct kvm_cpuid_entry2 *c = &e[i];
		switch (c->function) {
		case 0x1:
			c->ebx = (c->ebx & 0x0000ffff) | (apic_id << 24) | ((1u << shift) << 16);
			if (n_cpus > 1)
				c->edx |= 1u << 28;          /* HTT: EBX[23:16] is valid */
			c->ecx |= 1u << 31;                  /* running under a hypervisor */
			if (tsc_deadline)
				c->ecx |= 1u << 24;          /* in-kernel LAPIC emulates it */
			break;
		case 0x4:
			/* Deterministic cache parameters: cores per package in
			 * EAX[31:26]; every cache private to a core except the last. */
			if ((c->eax & 0x1f) == 0)
				break;
			c->eax &= 0x3ff;
			c->eax |= ((1u << shift) - 1) << 26;
			if (((c->eax >> 5) & 7) >= 3)
				c->eax |= ((1u << shift) - 1) << 14;
			break;
		case 0xb:
		case 0x1f:
			/* Extended topology: level 0 SMT (1 thread), level 1 core. */
			c->edx = apic_id;
			if (c->index == 0) {
				c->eax = 0;
				c->ebx = 1;
				c->ecx = (1u << 8) | 0;
			} else if (c->index == 1) {
				c->eax = shift;
				c->ebx = n_cpus;
				c->ecx = (2u << 8) | 1;
			} else {
				c->eax = 0;
				c->ebx = 0;
				c->ecx = c->index;
			}
			break;
		case 0x80000008:
			/* AMD: NC = cores - 1, ApicIdCoreIdSize. */
			c->ecx = (c->ecx & ~0xf0ffu) | (shift << 12) | ((n_cpus - 1) & 0xff);
			break;
		case 0x8000001e:
			/* AMD: extended APIC ID, core ID, one thread per core. */
			c->eax = apic_id;
			c->ebx = apic_id & 0xff;
			c->ecx = 0;
			break;
		default:
			break;
		}
	}
}

int x86_vcpu_cpuid(struct vm *vm, unsigned id, struct kvm_cpuid_entry2 *out, unsigned max)
{
	size_t sz = sizeof(struct kvm_cpuid2) + max * sizeof(struct kvm_cpuid_entry2);
	struct kvm_cpuid2 *cpuid = calloc(1, sz);
	if (!cpuid)
		return -1;
	cpuid->nent = max;
	if (ioctl(vm->kvm.fd, KVM_GET_SUPPORTED_CPUID, cpuid) < 0) {
		log_error("KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
		free(cpuid);
		return -1;
	}
	int deadline = ioctl(vm->kvm.fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0;
	x86_cpuid_set_topology(cpuid->entries, cpuid->nent, id, vm->n_vcpus, deadline);
	int n = (int)cpuid->nent;
	memcpy(out, cpuid->entries, (size_t)n * sizeof(*out));
	free(cpuid);
	return n;
}

static int set_cpuid(struct vm *vm, struct vcpu *v)
{
	size_t sz = sizeof(struct kvm_cpuid2) + MAX_CPUID_ENTRIES * sizeof(struct kvm_cpuid_entry2);
	struct kvm_cpuid2 *cpuid = calloc(1, sz);
	if (!cpuid)
		return -1;
	int n = x86_vcpu_cpuid(vm, v->id, cpuid->entries, MAX_CPUID_ENTRIES);
	if (n < 0) {
		free(cpuid);
		return -1;
	}
	cpuid->nent = (unsigned)n;
	int r = ioctl(v->fd, KVM_SET_CPUID2, cpuid);
	if (r < 0)
		log_error("vcpu%u: KVM_SET_CPUID2: %s", v->id, strerror(errno));
	free(cpuid);
	return r < 0 ? -1 : 0;
}

static int set_msrs(struct vcpu *v)
{
	static const struct { uint32_t index; uint64_t value; } boot_msrs[] = {
		{ MSR_IA32_SYSENTER_CS, 0 }, { MSR_IA32_SYSENTER_ESP, 0 }, { MSR_IA32_SYSENTER_EIP, 0 },
		{ MSR_STAR, 0 }, { MSR_CSTAR, 0 }, { MSR_KERNEL_GS_BASE, 0 },
		{ MSR_SYSCALL_MASK, 0 }, { MSR_LSTAR, 0 },
		{ MSR_IA32_MISC_ENABLE, 1 },                     /* fast strings */
		{ MSR_MTRR_DEF_TYPE, (1u << 11) | 6 },           /* MTRRs on, write-back */
	};
	const unsigned n = sizeof(boot_msrs) / sizeof(boot_msrs[0]);
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[sizeof(boot_msrs) / sizeof(boot_msrs[0])];
	} msrs;
	memset(&msrs, 0, sizeof(msrs));
	msrs.hdr.nmsrs = n;
	for (unsigned i = 0; i < n; i++) {
		msrs.e[i].index = boot_msrs[i].index;
		msrs.e[i].data = boot_msrs[i].value;
	}
	int r = ioctl(v->fd, KVM_SET_MSRS, &msrs);
	if (r != (int)n) {
		log_error("vcpu%u: KVM_SET_MSRS set %d of %u boot MSRs", v->id, r, n);
		return -1;
	}
	return 0;
}

static int set_fpu_and_lapic(struct vcpu *v)
{
	struct kvm_fpu fpu;
	memset(&fpu, 0, sizeof(fpu));
	fpu.fcw = 0x37f;
	fpu.mxcsr = 0x1f80;
	if (ioctl(v->fd, KVM_SET_FPU, &fpu) < 0) {
		log_error("vcpu%u: KVM_SET_FPU: %s", v->id, strerror(errno));
		return -1;
	}

	/* LINT0 as ExtINT and LINT1 as NMI, as firmware leaves them. */
	struct kvm_lapic_state lapic;
	if (ioctl(v->fd, KVM_GET_LAPIC, &lapic) < 0) {
		log_error("vcpu%u: KVM_GET_LAPIC: %s", v->id, strerror(errno));
		return -1;
	}
	uint32_t lvt0, lvt1;
	memcpy(&lvt0, &lapic.regs[0x350], 4);
	memcpy(&lvt1, &lapic.regs[0x360], 4);
	lvt0 = (lvt0 & ~0x700u) | (7u << 8);
	lvt1 = (lvt1 & ~0x700u) | (4u << 8);
	memcpy(&lapic.regs[0x350], &lvt0, 4);
	memcpy(&lapic.regs[0x360], &lvt1, 4);
	if (ioctl(v->fd, KVM_SET_LAPIC, &lapic) < 0) {
		log_error("vcpu%u: KVM_SET_LAPIC: %s", v->id, strerror(errno));
		return -1;
	}
	return 0;
}

static void flat_segment(struct kvm_segment *s, uint16_t sel, uint8_t type, int code64)
{
	memset(s, 0, sizeof(*s));
	s->base = 0;
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = type;
	s->present = 1;
	s->s = 1;
	s->g = 1;
	s->l = code64 ? 1 : 0;
	s->db = code64 ? 0 : 1;
}

/* The boot CPU enters the kernel in 64-bit mode, as the boot protocol's
 * 64-bit entry wants: flat segments from our GDT, paging on. */
static int set_boot_regs(struct vm *vm, struct vcpu *v)
{
	struct kvm_sregs sregs;
	if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0) {
		log_error("vcpu%u: KVM_GET_SREGS: %s", v->id, strerror(errno));
		return -1;
	}
	flat_segment(&sregs.cs, 0x10, 0xb, 1);
	flat_segment(&sregs.ds, 0x18, 0x3, 0);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	memset(&sregs.tr, 0, sizeof(sregs.tr));
	sregs.tr.selector = 0x20;
	sregs.tr.type = 0xb;
	sregs.tr.present = 1;
	sregs.tr.limit = 0xffff;
	sregs.gdt.base = X86_GDT_GPA;
	sregs.gdt.limit = 5 * 8 - 1;
	sregs.idt.base = 0;
	sregs.idt.limit = 0;
	sregs.cr0 = CR0_PE | CR0_ET | CR0_NE | CR0_PG;
	sregs.cr3 = X86_PML4_GPA;
	sregs.cr4 = CR4_PAE;
	sregs.efer = EFER_LME | EFER_LMA;
	if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0) {
		log_error("vcpu%u: KVM_SET_SREGS: %s", v->id, strerror(errno));
		return -1;
	}

	struct kvm_regs regs;
	memset(&regs, 0, sizeof(regs));
	regs.rflags = 0x2;
	regs.rip = vm->boot.entry;
	regs.rsi = vm->boot.params;
	regs.rsp = X86_BOOT_STACK_GPA;
	regs.rbp = X86_BOOT_STACK_GPA;
	if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0) {
		log_error("vcpu%u: KVM_SET_REGS: %s", v->id, strerror(errno));
		return -1;
	}
	return 0;
}

int arch_vcpu_init(struct vm *vm, struct vcpu *v)
{
	if (set_cpuid(vm, v) || set_msrs(v) || set_fpu_and_lapic(v))
		return -1;
	/* Application processors wait for INIT/SIPI from the guest, in KVM. */
	if (v->id == 0)
		return set_boot_regs(vm, v);
	return 0;
}

int arch_vcpu_resuming(struct vcpu *v)
{
	/* EINVAL: the guest has not set up kvmclock on this vCPU. */
	if (ioctl(v->fd, KVM_KVMCLOCK_CTRL, 0) < 0 && errno != EINVAL)
		return -1;
	return 0;
}
