/* Writing a paused VM's snapshot, and parsing one (vmm/snapshot.h). */
#define _GNU_SOURCE
#include "vmm/snapshot.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "devices/virtio/mmio.h"
#include "devices/virtio/pci.h"
#include "vmm/arch.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

#define TAG_VM SNAP_TAG('V', 'M', 'L', 'Y')
#define TAG_UART SNAP_TAG('U', 'A', 'R', 'T')
#define TAG_DEVICE SNAP_TAG('D', 'E', 'V', 'S')
#define PAGE 4096ull
/* The memory file is written in runs of non-zero pages of at most this. */
#define WRITE_RUN (1ull << 20)

static void put_str(struct snap_writer *w, const char *s, size_t field)
{
	char buf[32] = { 0 };
	strncpy(buf, s, field < sizeof(buf) ? field : sizeof(buf));
	snap_put_bytes(w, buf, field);
}

static void get_str(struct snap_reader *r, char *out, size_t field)
{
	snap_get_bytes(r, out, field);
	out[field - 1] = 0;
	for (size_t i = 0; out[i]; i++)
		if (out[i] < 0x20 || out[i] > 0x7e)
			out[i] = '?';
}

/* ---- saving ---- */

static void save_layout(struct vm *vm, struct snap_writer *w)
{
	size_t at = snap_begin(w, TAG_VM);
	uint64_t off = 0, bytes = 0;
	for (unsigned i = 0; i < vm->mem.n_regions; i++)
		bytes += vm->mem.regions[i].size;
	snap_put_u32(w, vm->n_vcpus);
	snap_put_u64(w, bytes);
	snap_put_u32(w, vm->mem.n_regions);
	for (unsigned i = 0; i < vm->mem.n_regions; i++) {
		snap_put_u64(w, vm->mem.regions[i].gpa);
		snap_put_u64(w, vm->mem.regions[i].size);
		snap_put_u64(w, off);
		off += (vm->mem.regions[i].size + PAGE - 1) & ~(PAGE - 1);
	}
	const struct vm_devices *d = &vm->devices;
	snap_put_u32(w, d->n_descs);
	for (unsigned i = 0; i < d->n_descs; i++) {
		put_str(w, d->descs[i].type, 16);
		put_str(w, d->descs[i].transport, 8);
	}
	snap_end(w, at);
}

static bool page_is_zero(const uint8_t *p)
{
	const uint64_t *q = (const uint64_t *)p;
	for (size_t i = 0; i < PAGE / 8; i++)
		if (q[i])
			return false;
	return true;
}

static int pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	const uint8_t *p = buf;
	while (len) {
		ssize_t n = pwrite(fd, p, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

/* Region by region, the zero pages left as holes of a file truncated to
 * full size first. */
static int save_memory(struct vm *vm, int fd, struct snapshot_result *res, char *err, size_t errlen)
{
	uint64_t total = 0;
	for (unsigned i = 0; i < vm->mem.n_regions; i++)
		total += (vm->mem.regions[i].size + PAGE - 1) & ~(PAGE - 1);
	if (ftruncate(fd, 0) || ftruncate(fd, (off_t)total)) {
		snprintf(err, errlen, "memory file: %s", strerror(errno));
		return -1;
	}
	uint64_t file_off = 0;
	res->memory_bytes = total;
	res->memory_written = 0;
	for (unsigned i = 0; i < vm->mem.n_regions; i++) {
		const struct guest_region *r = &vm->mem.regions[i];
		const uint8_t *base = r->hva;
		uint64_t pos = 0;
		while (pos < r->size) {
			uint64_t len = r->size - pos < PAGE ? r->size - pos : PAGE;
			if (len == PAGE && page_is_zero(base + pos)) {
				pos += PAGE;
				continue;
			}
			uint64_t start = pos;
			while (pos < r->size && pos - start < WRITE_RUN) {
				len = r->size - pos < PAGE ? r->size - pos : PAGE;
				if (len == PAGE && page_is_zero(base + pos))
					break;
				pos += len;
			}
			if (pwrite_all(fd, base + start, pos - start, (off_t)(file_off + start))) {
				snprintf(err, errlen, "memory file: %s", errno ? strerror(errno) : "short write");
				return -1;
			}
			res->memory_written += pos - start;
		}
		file_off += (r->size + PAGE - 1) & ~(PAGE - 1);
	}
	return 0;
}

static void save_device(const struct vm_device_desc *d, struct snap_writer *w)
{
	size_t at = snap_begin(w, TAG_DEVICE);
	if (d->mmio)
		virtio_mmio_save(d->mmio, w);
	else
		virtio_pci_save(d->pci, w);
	snap_end(w, at);
}

int snapshot_save(struct vm *vm, int state_fd, int mem_fd, struct snapshot_result *res, char *err, size_t errlen)
{
	struct snap_writer w = { 0 };
	uint64_t fingerprint = 0;
	memset(res, 0, sizeof(*res));
	save_layout(vm, &w);
	if (arch_vm_save(vm, &w, err, errlen))
		goto fail;
	for (unsigned i = 0; i < vm->n_vcpus; i++)
		if (arch_vcpu_save(&vm->vcpus[i], &w, i ? NULL : &fingerprint, err, errlen))
			goto fail;
	size_t at = snap_begin(&w, TAG_UART);
	serial_8250_save(&vm->uart, &w);
	snap_end(&w, at);
	for (unsigned i = 0; i < vm->devices.n_descs; i++)
		save_device(&vm->devices.descs[i], &w);
	if (w.err) {
		snprintf(err, errlen, "state: out of memory");
		goto fail;
	}
	if (save_memory(vm, mem_fd, res, err, errlen))
		goto fail;
	uint8_t header[SNAP_HEADER_SIZE];
	snap_header_encode(header, arch_snap_id, fingerprint, w.buf, w.len);
	if (ftruncate(state_fd, 0) || pwrite_all(state_fd, header, sizeof(header), 0) ||
	    pwrite_all(state_fd, w.buf, w.len, SNAP_HEADER_SIZE) || fdatasync(state_fd)) {
		snprintf(err, errlen, "state file: %s", errno ? strerror(errno) : "short write");
		goto fail;
	}
	res->state_bytes = SNAP_HEADER_SIZE + w.len;
	snap_writer_free(&w);
	return 0;
fail:
	snap_writer_free(&w);
	return -1;
}

/* ---- parsing ---- */

static int read_layout(struct snap_reader *parent, struct snapshot *s)
{
	struct snap_reader r;
	if (snap_section(parent, TAG_VM, "VM layout", &r))
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
	if (arch_vcpu_state_fingerprint(s->vcpus[0]) != s->header.cpu_fingerprint) {
		snap_fail(&r, "vCPU 0's CPU model does not match the header's fingerprint");
		goto fail;
	}
	if (snap_section(&r, TAG_UART, "UART", &s->uart))
		goto fail;
	for (unsigned i = 0; i < s->n_devices; i++) {
		if (snap_section(&r, TAG_DEVICE, "device", &s->devices[i].state))
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
