/* One PCI function's configuration space: a type-0 header of 256 bytes with
 * a write mask per byte, memory BARs (32- and 64-bit) that size themselves
 * the standard way (write all ones, read back the size mask), the command
 * register's memory-space enable, a capability list builder, and an MSI-X
 * capability wired to struct msix.
 *
 * Locking: every function here is called with the owning pci_host's lock
 * held (config accesses take it for writing, BAR dispatch for reading), so
 * the device needs no lock of its own for this state. Before the device is
 * added to a host, its creator is the only user. */
#ifndef MINIVMM_PCI_DEV_H
#define MINIVMM_PCI_DEV_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/base/io_bus.h"

#define PCI_CFG_SIZE 256
#define PCI_NUM_BARS 6

/* Type-0 header registers. */
#define PCI_VENDOR_ID 0x00
#define PCI_DEVICE_ID 0x02
#define PCI_COMMAND 0x04
#define PCI_STATUS 0x06
#define PCI_REVISION_ID 0x08
#define PCI_CLASS_PROG 0x09
#define PCI_CLASS_DEVICE 0x0a
#define PCI_HEADER_TYPE 0x0e
#define PCI_BASE_ADDRESS_0 0x10
#define PCI_SUBSYSTEM_VENDOR_ID 0x2c
#define PCI_SUBSYSTEM_ID 0x2e
#define PCI_ROM_ADDRESS 0x30
#define PCI_CAPABILITY_LIST 0x34
#define PCI_INTERRUPT_LINE 0x3c
#define PCI_INTERRUPT_PIN 0x3d

#define PCI_COMMAND_IO 0x1
#define PCI_COMMAND_MEMORY 0x2
#define PCI_COMMAND_MASTER 0x4
#define PCI_COMMAND_PARITY 0x40
#define PCI_COMMAND_SERR 0x100
#define PCI_COMMAND_INTX_DISABLE 0x400
#define PCI_STATUS_CAP_LIST 0x10

#define PCI_BAR_MEM_TYPE_64 0x4
#define PCI_BAR_MEM_PREFETCH 0x8

#define PCI_CAP_ID_VNDR 0x09
#define PCI_CAP_ID_MSIX 0x11
#define PCI_CAP_START 0x40      /* first capability; the header ends here */

/* MSI-X capability layout. */
#define PCI_MSIX_FLAGS 2                 /* message control (16 bits) */
#define PCI_MSIX_FLAGS_QSIZE 0x07ff      /* table size - 1 */
#define PCI_MSIX_FLAGS_MASKALL 0x4000
#define PCI_MSIX_FLAGS_ENABLE 0x8000
#define PCI_MSIX_TABLE 4                 /* offset | BIR */
#define PCI_MSIX_PBA 8                   /* offset | BIR */
#define PCI_MSIX_CAP_LEN 12

struct pci_device;
struct pci_host;
struct msix;

struct pci_device_id {
	uint16_t vendor, device;
	uint16_t subsys_vendor, subsys_id;
	uint32_t class_code;     /* base class << 16 | sub class << 8 | prog-if */
	uint8_t revision;
};

/* Per-device hooks, all optional, called with the host lock held for writing. */
struct pci_device_ops {
	/* A guest read of [off, off + size) is about to be served from cfg[]:
	 * refresh those bytes if they are computed. */
	void (*config_read)(struct pci_device *d, unsigned off, unsigned size);
	/* The guest wrote [off, off + size); cfg[] already holds the new value
	 * (merged through the write mask). */
	void (*config_write)(struct pci_device *d, unsigned off, unsigned size);
	/* A BAR moved, or memory decoding was switched on or off. */
	void (*decode_changed)(struct pci_device *d);
};

struct pci_bar {
	uint64_t size;               /* power of two, >= 16; 0: BAR not implemented */
	bool is64;                   /* takes this BAR slot and the next one */
	bool prefetch;
	const struct io_ops *ops;    /* accesses inside the BAR; offset from the BAR's base */
	void *opaque;
	uint64_t addr;               /* where the BAR register points now */
};

struct pci_device {
	uint8_t cfg[PCI_CFG_SIZE];
	uint8_t wmask[PCI_CFG_SIZE];      /* bits the guest may change */
	struct pci_bar bars[PCI_NUM_BARS];
	const struct pci_device_ops *ops;
	void *ctx;                        /* for the ops' owner */
	struct msix *msix;                /* set by pci_dev_add_msix_cap */
	uint8_t msix_cap;                 /* offset of the MSI-X capability, 0 when none */
	uint8_t cap_last;                 /* offset of the last capability, 0 when none */
	uint8_t cap_end;                  /* first free byte for the next capability */
	/* Set by pci_host_add: where BARs decode (anything outside is unreachable). */
	struct pci_host *host;
	int slot;
	uint64_t window_base, window_size;
};

/* Fills the identity registers. No BARs, no capabilities, command = 0,
 * interrupt pin 0 (no INTx: MSI-X only), interrupt line writable. */
void pci_dev_init(struct pci_device *d, const struct pci_device_id *id, const struct pci_device_ops *ops,
		  void *ctx);

/* Declares memory BAR n (n + 1 is taken too for a 64-bit BAR). size must be
 * a power of two >= 16. Returns -1 on a bad index, size or overlap. */
int pci_dev_add_bar(struct pci_device *d, unsigned n, uint64_t size, bool is64, bool prefetch,
		    const struct io_ops *ops, void *opaque);

/* Points BAR n at addr (the firmware-like assignment; pci_host_add does it). */
void pci_dev_set_bar_addr(struct pci_device *d, unsigned n, uint64_t addr);

/* Appends a capability of len bytes (len >= 2) to the list: data[0] is the
 * capability ID, data[1] is overwritten with the next pointer. Returns its
 * offset, or 0 when config space has no room left. */
uint8_t pci_dev_add_cap(struct pci_device *d, const void *data, uint8_t len);

/* Makes [off, off + len) of config space guest-writable (mask per byte). */
void pci_dev_set_wmask(struct pci_device *d, unsigned off, unsigned len, uint8_t mask);

/* Adds an MSI-X capability for m: table and PBA at the given offsets of BAR
 * bir. Returns the capability offset or 0. */
uint8_t pci_dev_add_msix_cap(struct pci_device *d, struct msix *m, unsigned n_vectors, unsigned bir,
			     uint32_t table_off, uint32_t pba_off);

/* Config accesses: off < 256, size 1, 2 or 4, off + size <= 256 (the host
 * keeps every access inside one dword). Little-endian values. */
uint32_t pci_dev_config_read(struct pci_device *d, unsigned off, unsigned size);
void pci_dev_config_write(struct pci_device *d, unsigned off, uint32_t value, unsigned size);

/* True when BAR n decodes now: implemented, memory space enabled, and the
 * whole BAR inside the host's window. *addr gets its base. */
bool pci_dev_bar_decoded(const struct pci_device *d, unsigned n, uint64_t *addr);

#endif
