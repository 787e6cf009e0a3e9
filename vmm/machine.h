/* The machine wiring every architecture shares, done once from the arch
 * layout (vmm/arch.h): platform devices on their buses, the console behind
 * the UART, the virtio-mmio slots; and loading the boot files, where the
 * errors arch reports about them get the option they came from. */
#ifndef MINIVMM_MACHINE_H
#define MINIVMM_MACHINE_H

#include <stdint.h>

struct boot_files;
struct vm;
struct vmm_options;

/* Console UART, guest port, the PC's i8042 and power control where the
 * layout has them, and the PCI host bridge. Logs and returns -1 on failure. */
int machine_platform_init(struct vm *vm);
/* Where the index-th virtio-mmio device sits: MMIO base and GSI. Returns -1
 * when there is no room for another one. */
int machine_virtio_mmio_slot(unsigned index, uint64_t *base, unsigned *gsi);
/* Loads the kernel and the initrd, and has the arch build the boot
 * structures. Errors name the option and file they are about. */
int machine_load_kernel(struct vm *vm, const struct vmm_options *opts, const struct boot_files *files);

#endif
