/* The VM object: owns every fd, thread and mapping of one virtual machine. */
#ifndef MINIVMM_VM_H
#define MINIVMM_VM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/debug_port.h"
#include "devices/i8042.h"
#include "devices/power_ctl.h"
#include "devices/serial_8250.h"
#include "vmm/console.h"
#include "vmm/devices.h"
#include "vmm/base/guest_mem.h"
#include "vmm/base/io_bus.h"
#include "vmm/kvm.h"
#include "vmm/options.h"
#include "vmm/sandbox.h"
#include "vmm/base/stop.h"
#include "vmm/api.h"
#include "vmm/vm_threads.h"

struct vcpu;
struct snapshot;

/* --restore: the parsed snapshot and its memory file (owned by the caller,
 * alive until vm_run returns). */
struct vm_restore {
	struct snapshot *snap;
	int mem_fd;
	bool copy;                   /* --restore-mem copy: read in, not mapped MAP_PRIVATE */
};

/* Files named on the command line, opened and checked before KVM is touched. */
struct boot_files {
	uint8_t *kernel;
	size_t kernel_len;
	int initrd_fd;
	uint64_t initrd_size;
};

struct vm {
	struct kvm_host kvm;
	int fd;
	struct guest_mem mem;
	struct io_bus pio_bus;
	struct io_bus mmio_bus;
	unsigned n_vcpus;
	struct vcpu *vcpus;
	uint64_t start_ns;

	void *arch;                  /* owned by arch code: arch_vm_init .. arch_vm_destroy */
	bool pci_msi;                /* PCI devices can have MSIs (x86: always; arm64: with an ITS) */

	struct {
		uint64_t entry;      /* first guest instruction */
		uint64_t params;     /* boot_params (x86) / device tree (arm64) */
	} boot;

	/* Lifecycle. The vCPU hot path reads only the two atomics. */
	atomic_bool stopping;
	atomic_bool pause_requested;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned n_paused;            /* under lock */
	enum vm_stop_reason stop_reason;   /* under lock: the first request wins */
	int stop_status;
	int stop_efd;                 /* eventfd: wakes the event loop on a stop request */
	struct stop_sink stop_sink;

	/* Platform devices. */
	struct console console;
	struct serial_8250 uart;
	struct i8042 i8042;
	struct power_ctl power;
	struct debug_port debug;

	/* virtio devices, their transports, the PCI bus and the GSI routes. */
	struct vm_devices devices;

	/* Threads and what they may do (vmm/vm_threads.h, vmm/sandbox.h). */
	struct vm_threads threads;
	struct sandbox sandbox;

	/* The control socket (--api-sock) and its thread. */
	struct api_server api;

	const struct vm_restore *restore;   /* NULL: a boot */
};

/* Creates the VM: KVM, memory, irqchip, platform devices, vCPUs. With
 * restore, guest memory comes from the snapshot's memory file. Logs and
 * returns -1 on failure; vm_destroy() is safe afterwards either way. */
int vm_create(struct vm *vm, const struct vmm_options *opts, const struct vm_restore *restore);
int vm_load(struct vm *vm, const struct vmm_options *opts, const struct boot_files *files);
/* Starts the vCPU threads and runs the event loop until the VM stops.
 * Returns the process exit status. */
int vm_run(struct vm *vm);
void vm_destroy(struct vm *vm);
/* After vm_load, before vm_run: compiles the seccomp filters, then (chroot,
 * user/group switch, capabilities dropped). The process must still have
 * one thread. Logs and returns -1 on failure. */
int vm_sandbox(struct vm *vm, const struct vmm_options *opts, const struct sandbox_ids *ids);

void vm_request_stop(struct vm *vm, enum vm_stop_reason reason, int status);
/* Brings every vCPU out of KVM_RUN and holds it; vm_resume lets them go. */
void vm_pause(struct vm *vm);
void vm_resume(struct vm *vm);
/* Asserts or deasserts an interrupt line (GSI) of the in-kernel irqchip;
 * -1 with errno when KVM refuses. */
int vm_set_irq_line(struct vm *vm, unsigned gsi, int level);

/* Creates the --disk/--net devices on their transports (vmm/devices.c),
 * before vm_load, which announces them to the guest; stops and frees them. */
int vm_add_devices(struct vm *vm, const struct vmm_options *opts);
void vm_remove_devices(struct vm *vm);

#endif
