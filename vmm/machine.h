/* The machine wiring every architecture shares, done once from the arch
 * layout (vmm/arch.h): platform devices on their buses, the console behind
 * the UART, the virtio-mmio slots. */
#ifndef MINIVMM_MACHINE_H
#define MINIVMM_MACHINE_H

#include <stdint.h>

struct vm;

/* Console UART, guest port, the PC's i8042 and power control where the
 * layout has them, and the PCI host bridge. Logs and returns -1 on failure. */
int machine_platform_init(struct vm *vm);
/* Where the index-th virtio-mmio device sits: MMIO base and GSI. Returns -1
 * when there is no room for another one. */
int machine_virtio_mmio_slot(unsigned index, uint64_t *base, unsigned *gsi);

#endif
