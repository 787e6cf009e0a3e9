/* x86 state in a snapshot: each vCPU's registers, MSRs, LAPIC, XSAVE,
 * events and MP state, and the VM's PIC, IOAPIC, PIT and kvmclock.
 *
 * KVM's structures are stored as they are (length-prefixed, the length
 * checked on reading): they are KVM's stable ABI on one architecture. The
 * restore order follows what KVM needs: CPUID before anything that depends
 * on features; sregs (APIC base) before the LAPIC; the LAPIC before the MSRs
 * (the TSC deadline needs its timer mode); the events and the MP state last. */
#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "arch/x86/cpu.h"
#include "vmm/arch.h"
#include "vmm/base/snap_format.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

#define MAX_SNAP_CPUID 256
#define MAX_SNAP_MSRS 1024
#define XSAVE_MAX_BYTES (64u << 10)

#define TAG_VCPU SNAP_TAG('X', 'C', 'P', 'U')
#define TAG_XVM SNAP_TAG('X', 'V', 'M', ' ')

struct arch_vcpu_state {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_lapic_state lapic;
	struct kvm_xcrs xcrs;
	struct kvm_debugregs debugregs;
	struct kvm_vcpu_events events;
	struct kvm_mp_state mp_state;
	uint32_t tsc_khz;
	uint32_t n_cpuid;
	struct kvm_cpuid_entry2 cpuid[MAX_SNAP_CPUID];
	uint32_t n_msrs;
	struct kvm_msr_entry msrs[MAX_SNAP_MSRS];
	uint32_t xsave_len;
	uint8_t *xsave;              /* struct kvm_xsave, xsave_len bytes */
};

struct arch_vm_state {
	struct kvm_irqchip pic_master, pic_slave, ioapic;
	struct kvm_pit_state2 pit;
	uint64_t clock;
};

const uint32_t arch_snap_id = SNAP_ARCH_X86_64;
const char *const arch_snapshot_unsupported = NULL;

static int fail(char *err, size_t errlen, const char *what, unsigned id)
{
	snprintf(err, errlen, "vCPU %u: %s: %s", id, what, strerror(errno));
	return -1;
}

/* The size KVM_GET_XSAVE2 wants (larger than struct kvm_xsave with AMX). */
static size_t xsave_size(struct vm *vm)
{
	int n = ioctl(vm->kvm.fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	return n > (int)sizeof(struct kvm_xsave) ? (size_t)n : sizeof(struct kvm_xsave);
}

/* The MSRs KVM saves and restores: every index it lists, less the ones a
 * read refuses (features this CPU lacks). */
static int read_msrs(struct vm *vm, struct vcpu *v, struct arch_vcpu_state *s, char *err, size_t errlen)
{
	struct {
		struct kvm_msr_list hdr;
		uint32_t idx[MAX_SNAP_MSRS];
	} list = { .hdr.nmsrs = MAX_SNAP_MSRS };
	if (ioctl(vm->kvm.fd, KVM_GET_MSR_INDEX_LIST, &list) < 0)
		return fail(err, errlen, "KVM_GET_MSR_INDEX_LIST", v->id);
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[1];
	} one;
	s->n_msrs = 0;
	for (uint32_t i = 0; i < list.hdr.nmsrs && i < MAX_SNAP_MSRS; i++) {
		memset(&one, 0, sizeof(one));
		one.hdr.nmsrs = 1;
		one.e[0].index = list.idx[i];
		if (ioctl(v->fd, KVM_GET_MSRS, &one) != 1)
			continue;
		s->msrs[s->n_msrs++] = one.e[0];
	}
	return 0;
}

static int get_state(struct vm *vm, struct vcpu *v, struct arch_vcpu_state *s, char *err, size_t errlen)
{
	memset(s, 0, offsetof(struct arch_vcpu_state, xsave));
	if (ioctl(v->fd, KVM_GET_REGS, &s->regs) < 0)
		return fail(err, errlen, "KVM_GET_REGS", v->id);
	if (ioctl(v->fd, KVM_GET_SREGS, &s->sregs) < 0)
		return fail(err, errlen, "KVM_GET_SREGS", v->id);
	if (ioctl(v->fd, KVM_GET_LAPIC, &s->lapic) < 0)
		return fail(err, errlen, "KVM_GET_LAPIC", v->id);
	if (ioctl(v->fd, KVM_GET_XCRS, &s->xcrs) < 0)
		return fail(err, errlen, "KVM_GET_XCRS", v->id);
	if (ioctl(v->fd, KVM_GET_DEBUGREGS, &s->debugregs) < 0)
		return fail(err, errlen, "KVM_GET_DEBUGREGS", v->id);
	if (ioctl(v->fd, KVM_GET_VCPU_EVENTS, &s->events) < 0)
		return fail(err, errlen, "KVM_GET_VCPU_EVENTS", v->id);
	if (ioctl(v->fd, KVM_GET_MP_STATE, &s->mp_state) < 0)
		return fail(err, errlen, "KVM_GET_MP_STATE", v->id);
	int khz = ioctl(v->fd, KVM_GET_TSC_KHZ, 0);
	s->tsc_khz = khz > 0 ? (uint32_t)khz : 0;
	/* The CPUID minivmm gave the vCPU (what KVM reads back may differ:
	 * PVM adds bits its KVM_GET_SUPPORTED_CPUID does not list). */
	int n = x86_vcpu_cpuid(vm, v->id, s->cpuid, MAX_SNAP_CPUID);
	if (n < 0) {
		snprintf(err, errlen, "vCPU %u: KVM_GET_SUPPORTED_CPUID failed", v->id);
		return -1;
	}
	s->n_cpuid = (uint32_t)n;
	if (read_msrs(vm, v, s, err, errlen))
		return -1;
	s->xsave_len = (uint32_t)xsave_size(vm);
	s->xsave = calloc(1, s->xsave_len);
	if (!s->xsave) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	unsigned long req = s->xsave_len > sizeof(struct kvm_xsave) ? KVM_GET_XSAVE2 : KVM_GET_XSAVE;
	if (ioctl(v->fd, req, s->xsave) < 0)
		return fail(err, errlen, "KVM_GET_XSAVE", v->id);
	return 0;
}

static void put_blob(struct snap_writer *w, const void *p, size_t len)
{
	snap_put_u32(w, (uint32_t)len);
	snap_put_bytes(w, p, len);
}

static void get_blob(struct snap_reader *r, void *p, size_t len, const char *what)
{
	uint32_t n = snap_get_u32(r);
	if (!snap_failed(r) && n != len) {
		snap_fail(r, "%s is %u bytes, this build's KVM structure %zu", what, n, len);
		return;
	}
	snap_get_bytes(r, p, len);
}

static uint64_t fingerprint_of(const struct arch_vcpu_state *s)
{
	uint32_t crc = 0;
	for (uint32_t i = 0; i < s->n_cpuid; i++) {
		const struct kvm_cpuid_entry2 *e = &s->cpuid[i];
		/* Leaves whose values differ per vCPU (topology) are left out. */
		if (e->function == 0x1 || e->function == 0xb || e->function == 0x1f || e->function == 0x8000001e ||
		    e->function == 0x4)
			continue;
		uint32_t words[6] = { e->function, e->index, e->eax, e->ebx, e->ecx, e->edx };
		crc = snap_crc32c(crc, words, sizeof(words));
	}
	return crc;
}

int arch_vcpu_save(struct vcpu *v, struct snap_writer *w, uint64_t *fingerprint, char *err, size_t errlen)
{
	struct arch_vcpu_state *s = malloc(sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	s->xsave = NULL;
	int rc = get_state(v->vm, v, s, err, errlen);
	if (!rc) {
		size_t at = snap_begin(w, TAG_VCPU);
		put_blob(w, &s->regs, sizeof(s->regs));
		put_blob(w, &s->sregs, sizeof(s->sregs));
		put_blob(w, &s->lapic, sizeof(s->lapic));
		put_blob(w, &s->xcrs, sizeof(s->xcrs));
		put_blob(w, &s->debugregs, sizeof(s->debugregs));
		put_blob(w, &s->events, sizeof(s->events));
		put_blob(w, &s->mp_state, sizeof(s->mp_state));
		snap_put_u32(w, s->tsc_khz);
		snap_put_u32(w, s->n_cpuid);
		snap_put_bytes(w, s->cpuid, s->n_cpuid * sizeof(s->cpuid[0]));
		snap_put_u32(w, s->n_msrs);
		for (uint32_t i = 0; i < s->n_msrs; i++) {
			snap_put_u32(w, s->msrs[i].index);
			snap_put_u64(w, s->msrs[i].data);
		}
		put_blob(w, s->xsave, s->xsave_len);
		snap_end(w, at);
		if (fingerprint)
			*fingerprint = fingerprint_of(s);
	}
	arch_vcpu_state_free(s);
	return rc;
}

struct arch_vcpu_state *arch_vcpu_state_read(struct snap_reader *parent)
{
	struct snap_reader r;
	if (snap_section(parent, TAG_VCPU, "vCPU state", &r))
		return NULL;
	struct arch_vcpu_state *s = calloc(1, sizeof(*s));
	if (!s) {
		snap_fail(parent, "out of memory");
		return NULL;
	}
	get_blob(&r, &s->regs, sizeof(s->regs), "regs");
	get_blob(&r, &s->sregs, sizeof(s->sregs), "sregs");
	get_blob(&r, &s->lapic, sizeof(s->lapic), "LAPIC");
	get_blob(&r, &s->xcrs, sizeof(s->xcrs), "XCRs");
	get_blob(&r, &s->debugregs, sizeof(s->debugregs), "debug registers");
	get_blob(&r, &s->events, sizeof(s->events), "vCPU events");
	get_blob(&r, &s->mp_state, sizeof(s->mp_state), "MP state");
	s->tsc_khz = snap_get_u32(&r);
	s->n_cpuid = snap_get_bounded(&r, MAX_SNAP_CPUID, "CPUID entry count");
	snap_get_bytes(&r, s->cpuid, s->n_cpuid * sizeof(s->cpuid[0]));
	if (!snap_failed(&r) && s->xcrs.nr_xcrs > KVM_MAX_XCRS)
		snap_fail(&r, "%u XCRs, at most %u", s->xcrs.nr_xcrs, KVM_MAX_XCRS);
	s->n_msrs = snap_get_bounded(&r, MAX_SNAP_MSRS, "MSR count");
	for (uint32_t i = 0; i < s->n_msrs && !snap_failed(&r); i++) {
		s->msrs[i].index = snap_get_u32(&r);
		s->msrs[i].data = snap_get_u64(&r);
	}
	s->xsave_len = snap_get_bounded(&r, XSAVE_MAX_BYTES, "XSAVE size");
	if (!snap_failed(&r) && s->xsave_len < sizeof(struct kvm_xsave))
		snap_fail(&r, "XSAVE area of %u bytes, less than %zu", s->xsave_len, sizeof(struct kvm_xsave));
	if (!snap_failed(&r)) {
		s->xsave = malloc(s->xsave_len);
		if (!s->xsave)
			snap_fail(&r, "out of memory");
		else
			snap_get_bytes(&r, s->xsave, s->xsave_len);
	}
	if (snap_section_done(&r)) {
		arch_vcpu_state_free(s);
		return NULL;
	}
	return s;
}

void arch_vcpu_state_free(struct arch_vcpu_state *s)
{
	if (!s)
		return;
	free(s->xsave);
	free(s);
}

/* Feature registers whose bits the snapshot's guest may have used: each
 * must be supported here. The bits minivmm sets itself, or that follow the
 * guest's own control registers (OSXSAVE, OSPKE), are left out. */
static const struct {
	uint32_t function, index;
	uint8_t reg;                /* 0 eax, 1 ebx, 2 ecx, 3 edx */
	uint32_t ignore;
	const char *name;
} feature_regs[] = {
	{ 0x1, 0, 2, (1u << 31) | (1u << 27) | (1u << 24), "leaf 0x1 ecx" },
	{ 0x1, 0, 3, 1u << 28, "leaf 0x1 edx" },
	{ 0x7, 0, 1, 0, "leaf 0x7 ebx" },
	{ 0x7, 0, 2, 1u << 4, "leaf 0x7 ecx" },
	{ 0x7, 0, 3, 0, "leaf 0x7 edx" },
	{ 0xd, 0, 0, 0, "leaf 0xd eax (XSAVE components)" },
	{ 0xd, 1, 0, 0, "leaf 0xd.1 eax" },
	{ 0x80000001, 0, 2, 0, "leaf 0x80000001 ecx" },
	{ 0x80000001, 0, 3, 0, "leaf 0x80000001 edx" },
};

static const struct kvm_cpuid_entry2 *find_leaf(const struct kvm_cpuid_entry2 *e, unsigned n, uint32_t fn,
						uint32_t idx)
{
	for (unsigned i = 0; i < n; i++)
		if (e[i].function == fn && (!(e[i].flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || e[i].index == idx))
			return &e[i];
	return NULL;
}

static uint32_t reg_of(const struct kvm_cpuid_entry2 *e, unsigned reg)
{
	return reg == 0 ? e->eax : reg == 1 ? e->ebx : reg == 2 ? e->ecx : e->edx;
}

int arch_snapshot_check_cpu(struct vm *vm, const struct arch_vcpu_state *s, char *err, size_t errlen)
{
	struct {
		struct kvm_cpuid2 hdr;
		struct kvm_cpuid_entry2 e[MAX_SNAP_CPUID];
	} host = { .hdr.nent = MAX_SNAP_CPUID };
	if (ioctl(vm->kvm.fd, KVM_GET_SUPPORTED_CPUID, &host) < 0) {
		snprintf(err, errlen, "KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < sizeof(feature_regs) / sizeof(feature_regs[0]); i++) {
		const struct kvm_cpuid_entry2 *want = find_leaf(s->cpuid, s->n_cpuid, feature_regs[i].function,
								feature_regs[i].index);
		if (!want)
			continue;
		const struct kvm_cpuid_entry2 *have = find_leaf(host.e, host.hdr.nent, feature_regs[i].function,
								feature_regs[i].index);
		uint32_t missing = reg_of(want, feature_regs[i].reg) & ~feature_regs[i].ignore;
		if (have)
			missing &= ~reg_of(have, feature_regs[i].reg);
		if (missing) {
			snprintf(err, errlen,
				 "the snapshot's CPU has features this host's KVM does not offer (CPUID %s bits 0x%x)",
				 feature_regs[i].name, missing);
			return -1;
		}
	}
	return 0;
}

static int put_msrs(struct vcpu *v, const struct arch_vcpu_state *s, char *err, size_t errlen)
{
	size_t sz = sizeof(struct kvm_msrs) + s->n_msrs * sizeof(struct kvm_msr_entry);
	struct kvm_msrs *m = calloc(1, sz);
	if (!m) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	m->nmsrs = s->n_msrs;
	memcpy(m->entries, s->msrs, s->n_msrs * sizeof(struct kvm_msr_entry));
	int r = ioctl(v->fd, KVM_SET_MSRS, m);
	free(m);
	if (r < 0)
		return fail(err, errlen, "KVM_SET_MSRS", v->id);
	if ((uint32_t)r != s->n_msrs) {
		snprintf(err, errlen, "vCPU %u: KVM refused MSR 0x%x (value 0x%llx)", v->id, s->msrs[r].index,
			 (unsigned long long)s->msrs[r].data);
		return -1;
	}
	return 0;
}

int arch_vcpu_restore(struct vcpu *v, const struct arch_vcpu_state *s, char *err, size_t errlen)
{
	size_t sz = sizeof(struct kvm_cpuid2) + s->n_cpuid * sizeof(struct kvm_cpuid_entry2);
	struct kvm_cpuid2 *cpuid = calloc(1, sz);
	if (!cpuid) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	cpuid->nent = s->n_cpuid;
	memcpy(cpuid->entries, s->cpuid, s->n_cpuid * sizeof(struct kvm_cpuid_entry2));
	int r = ioctl(v->fd, KVM_SET_CPUID2, cpuid);
	free(cpuid);
	if (r < 0)
		return fail(err, errlen, "KVM_SET_CPUID2", v->id);
	/* The guest calibrated against this rate: keep it where KVM can scale. */
	int khz = ioctl(v->fd, KVM_GET_TSC_KHZ, 0);
	if (s->tsc_khz && khz > 0 && (uint32_t)khz != s->tsc_khz &&
	    ioctl(v->fd, KVM_SET_TSC_KHZ, (unsigned long)s->tsc_khz) < 0) {
		snprintf(err, errlen, "vCPU %u: the snapshot's TSC runs at %u kHz, this host's at %d kHz and KVM cannot "
			 "scale it (%s)", v->id, s->tsc_khz, khz, strerror(errno));
		return -1;
	}
	size_t xsave_max = xsave_size(v->vm);
	if (s->xsave_len > xsave_max) {
		snprintf(err, errlen, "vCPU %u: XSAVE area of %u bytes, this host's KVM takes %zu", v->id, s->xsave_len,
			 xsave_max);
		return -1;
	}
	if (ioctl(v->fd, KVM_SET_SREGS, &s->sregs) < 0)
		return fail(err, errlen, "KVM_SET_SREGS", v->id);
	if (ioctl(v->fd, KVM_SET_REGS, &s->regs) < 0)
		return fail(err, errlen, "KVM_SET_REGS", v->id);
	if (ioctl(v->fd, KVM_SET_XSAVE, s->xsave)   /* takes KVM_GET_XSAVE2's larger area too */ < 0)
		return fail(err, errlen, "KVM_SET_XSAVE", v->id);
	if (ioctl(v->fd, KVM_SET_XCRS, &s->xcrs) < 0)
		return fail(err, errlen, "KVM_SET_XCRS", v->id);
	if (ioctl(v->fd, KVM_SET_LAPIC, &s->lapic) < 0)
		return fail(err, errlen, "KVM_SET_LAPIC", v->id);
	if (put_msrs(v, s, err, errlen))
		return -1;
	if (ioctl(v->fd, KVM_SET_DEBUGREGS, &s->debugregs) < 0)
		return fail(err, errlen, "KVM_SET_DEBUGREGS", v->id);
	if (ioctl(v->fd, KVM_SET_MP_STATE, &s->mp_state) < 0)
		return fail(err, errlen, "KVM_SET_MP_STATE", v->id);
	if (ioctl(v->fd, KVM_SET_VCPU_EVENTS, &s->events) < 0)
		return fail(err, errlen, "KVM_SET_VCPU_EVENTS", v->id);
	return 0;
}

/* ---- the VM: irqchip, PIT, clock ---- */

static int vm_fail(char *err, size_t errlen, const char *what)
{
	snprintf(err, errlen, "%s: %s", what, strerror(errno));
	return -1;
}

int arch_vm_save(struct vm *vm, struct snap_writer *w, char *err, size_t errlen)
{
	struct arch_vm_state s;
	memset(&s, 0, sizeof(s));
	s.pic_master.chip_id = KVM_IRQCHIP_PIC_MASTER;
	s.pic_slave.chip_id = KVM_IRQCHIP_PIC_SLAVE;
	s.ioapic.chip_id = KVM_IRQCHIP_IOAPIC;
	if (ioctl(vm->fd, KVM_GET_IRQCHIP, &s.pic_master) < 0 || ioctl(vm->fd, KVM_GET_IRQCHIP, &s.pic_slave) < 0 ||
	    ioctl(vm->fd, KVM_GET_IRQCHIP, &s.ioapic) < 0)
		return vm_fail(err, errlen, "KVM_GET_IRQCHIP");
	if (ioctl(vm->fd, KVM_GET_PIT2, &s.pit) < 0)
		return vm_fail(err, errlen, "KVM_GET_PIT2");
	struct kvm_clock_data clock;
	memset(&clock, 0, sizeof(clock));
	if (ioctl(vm->fd, KVM_GET_CLOCK, &clock) < 0)
		return vm_fail(err, errlen, "KVM_GET_CLOCK");
	size_t at = snap_begin(w, TAG_XVM);
	put_blob(w, &s.pic_master, sizeof(s.pic_master));
	put_blob(w, &s.pic_slave, sizeof(s.pic_slave));
	put_blob(w, &s.ioapic, sizeof(s.ioapic));
	put_blob(w, &s.pit, sizeof(s.pit));
	snap_put_u64(w, clock.clock);
	snap_end(w, at);
	return 0;
}

struct arch_vm_state *arch_vm_state_read(struct snap_reader *parent)
{
	struct snap_reader r;
	if (snap_section(parent, TAG_XVM, "VM interrupt controllers and clock", &r))
		return NULL;
	struct arch_vm_state *s = calloc(1, sizeof(*s));
	if (!s) {
		snap_fail(parent, "out of memory");
		return NULL;
	}
	get_blob(&r, &s->pic_master, sizeof(s->pic_master), "PIC (master)");
	get_blob(&r, &s->pic_slave, sizeof(s->pic_slave), "PIC (slave)");
	get_blob(&r, &s->ioapic, sizeof(s->ioapic), "IOAPIC");
	get_blob(&r, &s->pit, sizeof(s->pit), "PIT");
	s->clock = snap_get_u64(&r);
	if (!snap_failed(&r) && (s->pic_master.chip_id != KVM_IRQCHIP_PIC_MASTER ||
				 s->pic_slave.chip_id != KVM_IRQCHIP_PIC_SLAVE || s->ioapic.chip_id != KVM_IRQCHIP_IOAPIC))
		snap_fail(&r, "interrupt controller ids %u %u %u, expected %u %u %u", s->pic_master.chip_id,
			  s->pic_slave.chip_id, s->ioapic.chip_id, KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE,
			  KVM_IRQCHIP_IOAPIC);
	if (snap_section_done(&r)) {
		free(s);
		return NULL;
	}
	return s;
}

void arch_vm_state_free(struct arch_vm_state *s)
{
	free(s);
}

int arch_vm_restore(struct vm *vm, const struct arch_vm_state *s, char *err, size_t errlen)
{
	if (ioctl(vm->fd, KVM_SET_IRQCHIP, &s->pic_master) < 0 || ioctl(vm->fd, KVM_SET_IRQCHIP, &s->pic_slave) < 0 ||
	    ioctl(vm->fd, KVM_SET_IRQCHIP, &s->ioapic) < 0)
		return vm_fail(err, errlen, "KVM_SET_IRQCHIP");
	if (ioctl(vm->fd, KVM_SET_PIT2, &s->pit) < 0)
		return vm_fail(err, errlen, "KVM_SET_PIT2");
	struct kvm_clock_data clock;
	memset(&clock, 0, sizeof(clock));
	clock.clock = s->clock;
	if (ioctl(vm->fd, KVM_SET_CLOCK, &clock) < 0)
		return vm_fail(err, errlen, "KVM_SET_CLOCK");
	return 0;
}
