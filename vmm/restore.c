/* --restore DIR: the snapshot's files opened and checked, its memory
 * mapped, and the machine and devices put back (vmm/snapshot.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/virtio/mmio.h"
#include "devices/virtio/pci.h"
#include "vmm/arch.h"
#include "vmm/base/file_util.h"
#include "vmm/base/log.h"
#include "vmm/snapshot.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

int snapshot_open(const char *dir, struct snapshot *s, int *mem_fd)
{
	char path[4096 + 16], err[300];
	*mem_fd = -1;
	if (arch_snapshot_unsupported) {
		log_error("--restore %s: %s", dir, arch_snapshot_unsupported);
		return -1;
	}
	struct stat st;
	if (stat(dir, &st)) {
		log_error("--restore %s: %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		log_error("--restore %s: not a directory", dir);
		return -1;
	}
	snprintf(path, sizeof(path), "%s/" SNAP_STATE_FILE, dir);
	uint8_t *file;
	size_t len;
	if (read_input_file("--restore", path, SNAP_STATE_MAX, &file, &len))
		return -1;
	if (snapshot_parse(file, len, s, err, sizeof(err))) {
		free(file);
		log_error("--restore %s: %s", path, err);
		return -1;
	}
	s->file = file;   /* the parsed readers point into it */
	s->file_len = len;
	snprintf(path, sizeof(path), "%s/" SNAP_MEMORY_FILE, dir);
	uint64_t size;
	*mem_fd = open_input_file("--restore", path, &size);
	if (*mem_fd < 0)
		return -1;
	const struct snapshot_region *last = &s->regions[s->n_regions - 1];
	if (size < last->file_off + last->size) {
		log_error("--restore %s: %llu bytes, shorter than the snapshot's %llu bytes of guest memory", path,
			  (unsigned long long)size, (unsigned long long)(last->file_off + last->size));
		return -1;
	}
	return 0;
}

/* Reads the file's data into dst, skipping its holes (they are zero pages,
 * which anonymous memory already is, and stay untouched). */
static int read_sparse(int fd, uint8_t *dst, uint64_t len, uint64_t off)
{
	uint64_t pos = 0;
	while (pos < len) {
		off_t data = lseek(fd, (off_t)(off + pos), SEEK_DATA);
		if (data < 0 && errno == ENXIO)
			return 0;   /* only a hole left */
		if (data < 0)
			data = (off_t)(off + pos);   /* no SEEK_DATA here: read everything */
		if ((uint64_t)data >= off + len)
			return 0;
		off_t hole = lseek(fd, data, SEEK_HOLE);
		uint64_t end = hole < 0 || (uint64_t)hole > off + len ? off + len : (uint64_t)hole;
		for (uint64_t p = (uint64_t)data; p < end;) {
			ssize_t n = pread(fd, dst + (p - off), end - p, (off_t)p);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return -1;
			p += (uint64_t)n;
		}
		pos = end - off;
	}
	return 0;
}

void *snapshot_map_region(int mem_fd, const struct snapshot_region *r, bool copy)
{
	if (!copy)
		return mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, mem_fd, (off_t)r->file_off);
	void *p = mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p != MAP_FAILED && read_sparse(mem_fd, p, r->size, r->file_off)) {
		int e = errno ? errno : EIO;
		munmap(p, r->size);
		errno = e;
		return MAP_FAILED;
	}
	return p;
}

static int check_devices(struct vm *vm, const struct snapshot *s)
{
	const struct vm_devices *d = &vm->devices;
	if (d->n_descs != s->n_devices) {
		log_error("--restore: the snapshot has %u devices, the command line %u (give the same --disk, --net, "
			  "--vsock and --rng options, in the same order; paths and taps may differ)", s->n_devices,
			  d->n_descs);
		return -1;
	}
	for (unsigned i = 0; i < d->n_descs; i++) {
		if (strcmp(d->descs[i].type, s->devices[i].type) || strcmp(d->descs[i].transport, s->devices[i].transport)) {
			log_error("--restore: device %u (%s) is %s on %s, the snapshot's is %s on %s", i, d->descs[i].name,
				  d->descs[i].type, d->descs[i].transport, s->devices[i].type, s->devices[i].transport);
			return -1;
		}
	}
	return 0;
}

int snapshot_restore_machine(struct vm *vm, const struct snapshot *s)
{
	char err[300];
	if (check_devices(vm, s))
		return -1;
	if (arch_snapshot_check_cpu(vm, s->vcpus[0], err, sizeof(err)) || arch_vm_restore(vm, s->arch_vm, err, sizeof(err))) {
		log_error("--restore: %s", err);
		return -1;
	}
	for (unsigned i = 0; i < vm->n_vcpus; i++) {
		if (arch_vcpu_restore(&vm->vcpus[i], s->vcpus[i], err, sizeof(err))) {
			log_error("--restore: %s", err);
			return -1;
		}
		/* The guest was stopped: its watchdogs must not count the gap. */
		arch_vcpu_resuming(&vm->vcpus[i]);
	}
	struct snap_reader uart = s->uart;
	if (serial_8250_load(&vm->uart, &uart) || snap_section_done(&uart)) {
		log_error("--restore: UART: %s", s->err);
		return -1;
	}
	return 0;
}

int snapshot_restore_devices(struct vm *vm, struct snapshot *s)
{
	char err[300];
	for (unsigned i = 0; i < vm->devices.n_descs; i++) {
		const struct vm_device_desc *d = &vm->devices.descs[i];
		struct snap_reader *r = &s->devices[i].state;
		int rc = d->mmio ? virtio_mmio_restore(d->mmio, r, err, sizeof(err))
				 : virtio_pci_restore(d->pci, r, err, sizeof(err));
		if (!rc && r->off != r->len) {
			snprintf(err, sizeof(err), "%zu bytes more than expected", r->len - r->off);
			rc = -1;
		}
		if (rc) {
			log_error("--restore: %s: %s", d->name, err);
			return -1;
		}
	}
	return 0;
}
