/* arm64 snapshots are not there yet: saving the vGICv3 (distributor,
 * redistributors, CPU interfaces) and the ITS tables is the missing part.
 * Every entry point says so in one line; none half-saves a VM. */
#include <stdio.h>

#include "vmm/arch.h"
#include "vmm/base/snap_format.h"

#define NOT_YET "snapshots are not supported on arm64 yet (the vGICv3 and ITS state is not saved)"

const uint32_t arch_snap_id = SNAP_ARCH_ARM64;
const char *const arch_snapshot_unsupported = NOT_YET;

int arch_vcpu_save(struct vcpu *v, struct snap_writer *w, uint64_t *fingerprint, char *err, size_t errlen)
{
	snprintf(err, errlen, NOT_YET);
	return -1;
}

struct arch_vcpu_state *arch_vcpu_state_read(struct snap_reader *r)
{
	snap_fail(r, NOT_YET);
	return NULL;
}

int arch_snapshot_check_cpu(struct vm *vm, const struct arch_vcpu_state *s, char *err, size_t errlen)
{
	snprintf(err, errlen, NOT_YET);
	return -1;
}

int arch_vcpu_restore(struct vcpu *v, const struct arch_vcpu_state *s, char *err, size_t errlen)
{
	snprintf(err, errlen, NOT_YET);
	return -1;
}

void arch_vcpu_state_free(struct arch_vcpu_state *s)
{
}

int arch_vm_save(struct vm *vm, struct snap_writer *w, char *err, size_t errlen)
{
	snprintf(err, errlen, NOT_YET);
	return -1;
}

struct arch_vm_state *arch_vm_state_read(struct snap_reader *r)
{
	snap_fail(r, NOT_YET);
	return NULL;
}

int arch_vm_restore(struct vm *vm, const struct arch_vm_state *s, char *err, size_t errlen)
{
	snprintf(err, errlen, NOT_YET);
	return -1;
}

void arch_vm_state_free(struct arch_vm_state *s)
{
}
