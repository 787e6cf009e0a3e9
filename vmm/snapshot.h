/* Snapshots of a paused VM, and restoring them (docs/snapshots.md).
 *
 * A snapshot is two files: the state (vmm/base/snap_format.h: header,
 * then sections in this order: VM layout and device list, the
 * architecture's VM state, each vCPU, the UART, each device) and the guest
 * memory, every RAM region at its page-aligned offset, written sparse (the
 * zero pages, which include every page the guest never touched, are
 * holes).
 *
 * The VMM never opens a snapshot file itself once sandboxed: "minivmm ctl
 * PATH snapshot DIR" opens both and passes the fds with the request
 * (SCM_RIGHTS); --restore DIR opens them at start, before the sandbox. */
#ifndef MINIVMM_SNAPSHOT_H
#define MINIVMM_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/base/guest_mem.h"
#include "vmm/base/snap_format.h"
#include "vmm/devices.h"

struct vm;
struct arch_vcpu_state;
struct arch_vm_state;

/* The VM-level sections (vmm/snapshot.c writes them, snapshot_parse.c reads). */
#define SNAP_TAG_VM SNAP_TAG('V', 'M', 'L', 'Y')
#define SNAP_TAG_UART SNAP_TAG('U', 'A', 'R', 'T')
#define SNAP_TAG_DEVICE SNAP_TAG('D', 'E', 'V', 'S')

#define SNAP_STATE_FILE "state"
#define SNAP_MEMORY_FILE "memory"
#define SNAP_MAX_VCPUS 255
#define SNAP_STATE_MAX (SNAP_HEADER_SIZE + SNAP_MAX_PAYLOAD)

struct snapshot_region {
	uint64_t gpa, size, file_off;
};

struct snapshot_device {
	char type[16];          /* "virtio-blk" */
	char transport[8];      /* "mmio", "pci" */
	struct snap_reader state;   /* its section, read when it is restored */
};

/* A state file read and checked, before anything is created. */
struct snapshot {
	uint8_t *file;          /* the whole state file (the readers point into it) */
	size_t file_len;
	struct snap_header header;
	char err[256];          /* the readers' error line */
	uint32_t n_vcpus;
	uint64_t mem_bytes;
	uint32_t n_regions;
	struct snapshot_region regions[GUEST_MEM_MAX_REGIONS];
	uint32_t n_devices;
	struct snapshot_device devices[VM_MAX_VIRTIO * 2];
	struct arch_vm_state *arch_vm;
	struct arch_vcpu_state **vcpus;   /* [n_vcpus] */
	struct snap_reader uart;
};

struct snapshot_result {
	uint64_t state_bytes, memory_bytes, memory_written;
};

/* Writes the paused VM (vm_pause and the devices paused) into the two
 * files. Returns 0, or -1 with one line in err. */
int snapshot_save(struct vm *vm, int state_fd, int mem_fd, struct snapshot_result *res, char *err, size_t errlen);

/* Parses a whole state file (hostile input: bounded, checksummed); for
 * --restore and the fuzz target. Returns 0, or -1 with a line in err; s
 * must be freed with snapshot_free either way. */
int snapshot_parse(const uint8_t *file, size_t len, struct snapshot *s, char *err, size_t errlen);
void snapshot_free(struct snapshot *s);

/* --restore DIR: reads DIR/state and opens DIR/memory, checking its size
 * against the layout; *mem_fd gets the memory file. Logs one line naming
 * the file and returns -1 on failure. */
int snapshot_open(const char *dir, struct snapshot *s, int *mem_fd);

/* Maps region i of the memory file: MAP_PRIVATE (pages shared with every
 * VM restored from the file until written) or, copy, read into anonymous
 * memory. Returns the address or MAP_FAILED. */
void *snapshot_map_region(int mem_fd, const struct snapshot_region *r, bool copy);

/* After the VM is created with the snapshot's vCPUs and memory and its
 * devices are added (before the sandbox): checks the device list, the CPU,
 * and restores the VM's and every vCPU's state and the UART. -1 logged. */
int snapshot_restore_machine(struct vm *vm, const struct snapshot *s);
/* On the control thread, sandboxed, before the vCPUs start: replays each
 * device's set-up (its threads start in their roles). -1 logged. */
int snapshot_restore_devices(struct vm *vm, struct snapshot *s);

#endif
