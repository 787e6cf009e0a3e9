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

#define PAGE 4096ull
/* The memory file is written in runs of non-zero pages of at most this. */
#define WRITE_RUN (1ull << 20)

static void put_str(struct snap_writer *w, const char *s, size_t field)
{
	char buf[32] = { 0 };
	strncpy(buf, s, field < sizeof(buf) ? field : sizeof(buf));
	snap_put_bytes(w, buf, field);
}

/* ---- saving ---- */

/* The room a region takes in the memory file: whole pages, each region
 * starting on a page (vmm/snapshot.h). */
static uint64_t file_bytes(uint64_t region_size)
{
	return (region_size + PAGE - 1) & ~(PAGE - 1);
}

static void save_layout(struct vm *vm, struct snap_writer *w)
{
	size_t at = snap_begin(w, SNAP_TAG_VM);
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
		off += file_bytes(vm->mem.regions[i].size);
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
		total += file_bytes(vm->mem.regions[i].size);
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
		file_off += file_bytes(r->size);
	}
	return 0;
}

static void save_device(const struct vm_device_desc *d, struct snap_writer *w)
{
	size_t at = snap_begin(w, SNAP_TAG_DEVICE);
	if (d->mmio)
		virtio_mmio_save(d->mmio, w);
	else
		virtio_pci_save(d->pci, w);
	snap_end(w, at);
}

int snapshot_save(struct vm *vm, int state_fd, int mem_fd, struct snapshot_result *res, char *err, size_t errlen)
{
	if (arch_snapshot_unsupported) {
		snprintf(err, errlen, "%s", arch_snapshot_unsupported);
		return -1;
	}
	struct snap_writer w = { 0 };
	uint64_t fingerprint = 0;
	memset(res, 0, sizeof(*res));
	save_layout(vm, &w);
	if (arch_vm_save(vm, &w, err, errlen))
		goto fail;
	for (unsigned i = 0; i < vm->n_vcpus; i++)
		if (arch_vcpu_save(&vm->vcpus[i], &w, i ? NULL : &fingerprint, err, errlen))
			goto fail;
	size_t at = snap_begin(&w, SNAP_TAG_UART);
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
