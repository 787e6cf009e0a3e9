#include "devices/pci/pci_dev.h"

#include <string.h>

#include "devices/pci/msix.h"

static uint32_t get_le(const uint8_t *p, unsigned size)
{
	uint32_t v = 0;
	for (unsigned i = 0; i < size; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

static void put_le(uint8_t *p, uint32_t v, unsigned size)
{
	for (unsigned i = 0; i < size; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static bool overlaps(unsigned off, unsigned size, unsigned start, unsigned len)
{
	return off < start + len && start < off + size;
}

void pci_dev_init(struct pci_device *d, const struct pci_device_id *id, const struct pci_device_ops *ops,
		  void *ctx)
{
	memset(d, 0, sizeof(*d));
	d->ops = ops;
	d->ctx = ctx;
	d->slot = -1;
	d->cap_end = PCI_CAP_START;
	put_le(d->cfg + PCI_VENDOR_ID, id->vendor, 2);
	put_le(d->cfg + PCI_DEVICE_ID, id->device, 2);
	d->cfg[PCI_REVISION_ID] = id->revision;
	put_le(d->cfg + PCI_CLASS_PROG, id->class_code, 3);
	d->cfg[PCI_HEADER_TYPE] = 0;             /* type 0, single function */
	put_le(d->cfg + PCI_SUBSYSTEM_VENDOR_ID, id->subsys_vendor, 2);
	put_le(d->cfg + PCI_SUBSYSTEM_ID, id->subsys_id, 2);
	d->cfg[PCI_INTERRUPT_PIN] = 0;           /* no INTx */

	/* Memory space, bus master, parity, SERR, INTx disable: plain storage
	 * except memory space, which gates BAR decoding. No I/O BARs, so the
	 * I/O space bit reads 0. */
	uint16_t cmd = PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_PARITY | PCI_COMMAND_SERR |
		       PCI_COMMAND_INTX_DISABLE;
	put_le(d->wmask + PCI_COMMAND, cmd, 2);
	d->wmask[0x0c] = 0xff;                   /* cache line size: scratch */
	d->wmask[PCI_INTERRUPT_LINE] = 0xff;     /* scratch for the OS */
}

static bool bar_slot_taken(const struct pci_device *d, unsigned n)
{
	return d->bars[n].size || (n > 0 && d->bars[n - 1].size && d->bars[n - 1].is64);
}

static uint64_t bar_addr_from_cfg(const struct pci_device *d, unsigned n)
{
	const uint8_t *r = d->cfg + PCI_BASE_ADDRESS_0 + 4 * n;
	uint64_t addr = get_le(r, 4) & ~0xfu;
	if (d->bars[n].is64)
		addr |= (uint64_t)get_le(r + 4, 4) << 32;
	return addr;
}

int pci_dev_add_bar(struct pci_device *d, unsigned n, uint64_t size, bool is64, bool prefetch,
		    const struct io_ops *ops, void *opaque)
{
	if (n >= PCI_NUM_BARS || (is64 && n + 1 >= PCI_NUM_BARS) || size < 16 || (size & (size - 1)))
		return -1;
	if (!is64 && size > (1ull << 31))
		return -1;
	if (bar_slot_taken(d, n) || (is64 && bar_slot_taken(d, n + 1)))
		return -1;
	d->bars[n] = (struct pci_bar){ .size = size, .is64 = is64, .prefetch = prefetch, .ops = ops,
				       .opaque = opaque };
	uint8_t *r = d->cfg + PCI_BASE_ADDRESS_0 + 4 * n;
	uint8_t *w = d->wmask + PCI_BASE_ADDRESS_0 + 4 * n;
	uint32_t flags = (is64 ? PCI_BAR_MEM_TYPE_64 : 0) | (prefetch ? PCI_BAR_MEM_PREFETCH : 0);
	uint64_t mask = ~(size - 1);
	put_le(r, flags, 4);
	put_le(w, (uint32_t)mask & ~0xfu, 4);
	if (is64) {
		put_le(r + 4, 0, 4);
		put_le(w + 4, (uint32_t)(mask >> 32), 4);
	}
	return 0;
}

void pci_dev_set_bar_addr(struct pci_device *d, unsigned n, uint64_t addr)
{
	if (n >= PCI_NUM_BARS || !d->bars[n].size)
		return;
	uint8_t *r = d->cfg + PCI_BASE_ADDRESS_0 + 4 * n;
	uint32_t lo = (get_le(r, 4) & 0xfu) | ((uint32_t)addr & ~0xfu);
	put_le(r, lo, 4);
	if (d->bars[n].is64)
		put_le(r + 4, (uint32_t)(addr >> 32), 4);
	d->bars[n].addr = bar_addr_from_cfg(d, n);
}

uint8_t pci_dev_add_cap(struct pci_device *d, const void *data, uint8_t len)
{
	unsigned off = (d->cap_end + 3u) & ~3u;
	if (len < 2 || off + len > PCI_CFG_SIZE)
		return 0;
	memcpy(d->cfg + off, data, len);
	d->cfg[off + 1] = 0;
	if (d->cap_last) {
		d->cfg[d->cap_last + 1] = (uint8_t)off;
	} else {
		d->cfg[PCI_CAPABILITY_LIST] = (uint8_t)off;
		d->cfg[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
	}
	d->cap_last = (uint8_t)off;
	d->cap_end = (uint8_t)(off + len < PCI_CFG_SIZE ? off + len : PCI_CFG_SIZE - 1);
	return (uint8_t)off;
}

void pci_dev_set_wmask(struct pci_device *d, unsigned off, unsigned len, uint8_t mask)
{
	for (unsigned i = off; i < off + len && i < PCI_CFG_SIZE; i++)
		d->wmask[i] = mask;
}

uint8_t pci_dev_add_msix_cap(struct pci_device *d, struct msix *m, unsigned n_vectors, unsigned bir,
			     uint32_t table_off, uint32_t pba_off)
{
	if (n_vectors == 0 || n_vectors > 2048 || bir >= PCI_NUM_BARS || (table_off | pba_off) & 7)
		return 0;
	uint8_t cap[PCI_MSIX_CAP_LEN] = { PCI_CAP_ID_MSIX };
	put_le(cap + PCI_MSIX_FLAGS, n_vectors - 1, 2);
	put_le(cap + PCI_MSIX_TABLE, table_off | bir, 4);
	put_le(cap + PCI_MSIX_PBA, pba_off | bir, 4);
	uint8_t off = pci_dev_add_cap(d, cap, sizeof(cap));
	if (!off)
		return 0;
	/* Only the enable and function-mask bits are writable. */
	d->wmask[off + PCI_MSIX_FLAGS + 1] = (PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL) >> 8;
	d->msix = m;
	d->msix_cap = off;
	return off;
}

uint32_t pci_dev_config_read(struct pci_device *d, unsigned off, unsigned size)
{
	if (off >= PCI_CFG_SIZE || size > PCI_CFG_SIZE - off)
		return 0xffffffffu;
	if (d->ops && d->ops->config_read)
		d->ops->config_read(d, off, size);
	return get_le(d->cfg + off, size);
}

void pci_dev_config_write(struct pci_device *d, unsigned off, uint32_t value, unsigned size)
{
	if (off >= PCI_CFG_SIZE || size > PCI_CFG_SIZE - off)
		return;
	bool mem_before = d->cfg[PCI_COMMAND] & PCI_COMMAND_MEMORY;
	for (unsigned i = 0; i < size; i++) {
		uint8_t b = (uint8_t)(value >> (8 * i));
		uint8_t w = d->wmask[off + i];
		d->cfg[off + i] = (uint8_t)((d->cfg[off + i] & ~w) | (b & w));
	}

	bool changed = mem_before != (bool)(d->cfg[PCI_COMMAND] & PCI_COMMAND_MEMORY);
	if (overlaps(off, size, PCI_BASE_ADDRESS_0, 4 * PCI_NUM_BARS)) {
		for (unsigned n = 0; n < PCI_NUM_BARS; n++) {
			if (!d->bars[n].size)
				continue;
			uint64_t addr = bar_addr_from_cfg(d, n);
			if (addr != d->bars[n].addr)
				changed = true;
			d->bars[n].addr = addr;
		}
	}
	if (d->msix_cap && overlaps(off, size, d->msix_cap + PCI_MSIX_FLAGS, 2))
		msix_control_write(d->msix, (uint16_t)get_le(d->cfg + d->msix_cap + PCI_MSIX_FLAGS, 2));
	if (d->ops && d->ops->config_write)
		d->ops->config_write(d, off, size);
	if (changed && d->ops && d->ops->decode_changed)
		d->ops->decode_changed(d);
}

bool pci_dev_bar_decoded(const struct pci_device *d, unsigned n, uint64_t *addr)
{
	if (n >= PCI_NUM_BARS || !d->bars[n].size || !(d->cfg[PCI_COMMAND] & PCI_COMMAND_MEMORY))
		return false;
	uint64_t a = d->bars[n].addr, size = d->bars[n].size;
	if (size > d->window_size || a < d->window_base || a - d->window_base > d->window_size - size)
		return false;
	*addr = a;
	return true;
}
