/* Parsing a snapshot's state file (vmm/snapshot.h): everything checked
 * before anything is created; the libFuzzer target fuzz_snapshot runs it. */
#include "vmm/snapshot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/arch.h"

#define PAGE 4096ull

static void get_str(struct snap_reader *r, char *out, size_t field)
{
	snap_get_bytes(r, out, field);
	out[field - 1] = 0;
	for (size_t i = 0; out[i]; i++)
		if (out[i] < 0x20 || out[i] > 0x7e)
			out[i] = '?';
}

/* ---- parsing ---- */

static int read_layout(struct snap_reader *parent, struct snapshot *s)
{
	struct snap_reader r;
	if (snap_section(parent, SNAP_TAG_VM, "VM layout", &r))
		return -1;
	s->n_vcpus = snap_get_u32(&r);
	s->mem_bytes = snap_get_u64(&r);
	s->n_regions = snap_get_bounded(&r, GUEST_MEM_MAX_REGIONS, "memory region count");
	if (!snap_failed(&r) && (s->n_vcpus == 0 || s->n_vcpus > SNAP_MAX_VCPUS))
		snap_fail(&r, "%u vCPUs (1 to %u)", s->n_vcpus, SNAP_MAX_VCPUS);
	uint64_t sum = 0, off = 0;
	for (unsigned i = 0; i < s->n_regions && !snap_failed(&r); i++) {
		struct snapshot_region *g = &s->regions[i];
		g->gpa = snap_get_u64(&r);
		g->size = snap_get_u64(&r);
		g->file_off = snap_get_u64(&r);
		if (snap_failed(&r))
			break;
		if (g->size == 0 || g->size % PAGE || g->gpa % PAGE || g->gpa + g->size < g->gpa || g->file_off != off)
			snap_fail(&r, "memory region %u (0x%llx bytes at 0x%llx, file offset 0x%llx) is malformed", i,
				  (unsigned long long)g->size, (unsigned long long)g->gpa, (unsigned long long)g->file_off);
		off += g->size;
		sum += g->size;
	}
	if (!snap_failed(&r) && (sum != s->mem_bytes || s->n_regions == 0 || s->mem_bytes % (1ull << 20)))
		snap_fail(&r, "memory regions add up to %llu bytes, the VM has %llu", (unsigned long long)sum,
			  (unsigned long long)s->mem_bytes);
	s->n_devices = snap_get_bounded(&r, VM_MAX_VIRTIO * 2, "device count");
	for (unsigned i = 0; i < s->n_devices && !snap_failed(&r); i++) {
		get_str(&r, s->devices[i].type, sizeof(s->devices[i].type));
		get_str(&r, s->devices[i].transport, sizeof(s->devices[i].transport));
	}
	return snap_section_done(&r);
}

int snapshot_parse(const uint8_t *file, size_t len, struct snapshot *s, char *err, size_t errlen)
{
	struct snap_reader r;
	memset(s, 0, sizeof(*s));
	if (snap_header_decode(file, len, arch_snap_id, &s->header, err, errlen))
		return -1;
	snap_reader_init(&r, file + SNAP_HEADER_SIZE, len - SNAP_HEADER_SIZE, s->err, sizeof(s->err));
	if (read_layout(&r, s))
		goto fail;
	s->arch_vm = arch_vm_state_read(&r);
	if (!s->arch_vm)
		goto fail;
	s->vcpus = calloc(s->n_vcpus, sizeof(*s->vcpus));
	if (!s->vcpus) {
		snap_fail(&r, "out of memory");
		goto fail;
	}
	for (unsigned i = 0; i < s->n_vcpus; i++) {
		s->vcpus[i] = arch_vcpu_state_read(&r);
		if (!s->vcpus[i])
			goto fail;
	}
	if (snap_section(&r, SNAP_TAG_UART, "UART", &s->uart))
		goto fail;
	for (unsigned i = 0; i < s->n_devices; i++) {
		if (snap_section(&r, SNAP_TAG_DEVICE, "device", &s->devices[i].state))
			goto fail;
	}
	if (r.off != r.len) {
		snap_fail(&r, "%zu bytes after the last device", r.len - r.off);
		goto fail;
	}
	return 0;
fail:
	snprintf(err, errlen, "%s", s->err[0] ? s->err : "malformed");
	return -1;
}

void snapshot_free(struct snapshot *s)
{
	if (s->vcpus)
		for (unsigned i = 0; i < s->n_vcpus; i++)
			arch_vcpu_state_free(s->vcpus[i]);
	free(s->vcpus);
	arch_vm_state_free(s->arch_vm);
	free(s->file);
	memset(s, 0, sizeof(*s));
}
