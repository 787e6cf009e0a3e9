/* PCI host bridge: configuration mechanism 1 on I/O ports 0xcf8-0xcff (x86)
 * or an ECAM window on the MMIO bus (arm64; both work on any arch), and one
 * fixed MMIO window in which every device BAR lives.
 *
 * - Bus 0 only, 32 slots, function 0 only. Slot 0 is the host bridge itself
 *   (class 0x0600). Anything else (absent slot, other bus or function,
 *   enable bit clear) reads all ones and ignores writes.
 * - 0xcf8: the 32-bit CONFIG_ADDRESS latch (only dword accesses; byte and
 *   word accesses to 0xcf8-0xcfb are ignored, reads give all ones).
 *   0xcfc-0xcff: CONFIG_DATA, 1/2/4-byte accesses at register
 *   (CONFIG_ADDRESS & 0xfc) + (port - 0xcfc), never crossing the dword.
 * - BARs: the whole window is ONE range on the VM's MMIO bus (the io_bus is
 *   read lock-free by vCPUs and cannot change while they run). Inside it an
 *   access goes to whichever BAR decodes the address now, so the guest may
 *   move BARs and switch memory decoding at will. pci_host_add() assigns
 *   every BAR an address in the window first, as firmware would.
 *
 * Locking: one rwlock. Config accesses (both ports) take it for writing;
 * BAR dispatch takes it for reading, so a BAR cannot move or stop decoding
 * during an access, and the device handler runs under the read lock. Device
 * hooks (pci_device_ops) run under the write lock. Lock order:
 * host lock -> device locks (virtio transport, MSI-X) -> MSI route table. */
#ifndef MINIVMM_PCI_HOST_H
#define MINIVMM_PCI_HOST_H

#include <pthread.h>
#include <stdint.h>

#include "devices/pci/pci_dev.h"
#include "vmm/base/io_bus.h"

#define PCI_HOST_PIO_BASE 0xcf8
#define PCI_HOST_PIO_LEN 8
#define PCI_MAX_SLOTS 32

/* Host bridge identity: Intel's vendor ID with device 0x0d57, as Cloud
 * Hypervisor and Firecracker use for their virtual host bridge; no Linux
 * driver or quirk matches it. */
#define PCI_HOST_VENDOR 0x8086
#define PCI_HOST_DEVICE 0x0d57
#define PCI_CLASS_BRIDGE_HOST 0x060000

struct pci_host {
	pthread_rwlock_t lock;
	uint32_t config_address;           /* CONFIG_ADDRESS latch (write lock) */
	struct pci_device bridge;          /* slot 0 */
	struct pci_device *slots[PCI_MAX_SLOTS];
	uint64_t window_base, window_size; /* the BAR window */
	uint64_t next_free;                /* BAR allocator, bottom up */
};

/* window_base/window_size: the guest-physical range for BARs, which the VM
 * registers as one MMIO range with pci_host_mmio_ops. */
void pci_host_init(struct pci_host *h, uint64_t window_base, uint64_t window_size);
void pci_host_destroy(struct pci_host *h);

/* Puts d in the first free slot (1-31) and assigns its BARs (naturally
 * aligned, bottom up in the window). Returns the slot, or -1 (logged) when
 * the bus or the window is full. Call before the vCPUs start. */
int pci_host_add(struct pci_host *h, struct pci_device *d);

/* Range PCI_HOST_PIO_BASE, length PCI_HOST_PIO_LEN, dev = the pci_host. */
extern const struct io_ops pci_host_pio_ops;
/* ECAM (PCIe enhanced configuration), bus 0: a range of at least 1 MiB on
 * the MMIO bus, dev = the pci_host. Offset bus << 20 | device << 15 |
 * function << 12 | register; 1/2/4-byte accesses inside one dword; absent
 * devices, other buses and functions read all ones; registers 256-4095 of a
 * present device read 0 and ignore writes. */
extern const struct io_ops pci_host_ecam_ops;
/* Range window_base, length window_size, dev = the pci_host. */
extern const struct io_ops pci_host_mmio_ops;

#endif
