#include "devices/pci/pci_host.h"

#include <stdbool.h>
#include <string.h>

#include "devices/pci/msix.h"
#include "vmm/base/log.h"

#define CONFIG_ENABLE 0x80000000u
/* Bits the CONFIG_ADDRESS latch keeps: enable, bus, device, function,
 * dword register. Reserved bits 30:24 and 1:0 read as zero. */
#define CONFIG_ADDRESS_MASK 0x80fffffcu

void pci_host_init(struct pci_host *h, uint64_t window_base, uint64_t window_size)
{
	memset(h, 0, sizeof(*h));
	pthread_rwlock_init(&h->lock, NULL);
	h->window_base = window_base;
	h->window_size = window_size;
	h->next_free = window_base;
	const struct pci_device_id id = {
		.vendor = PCI_HOST_VENDOR,
		.device = PCI_HOST_DEVICE,
		.class_code = PCI_CLASS_BRIDGE_HOST,
	};
	pci_dev_init(&h->bridge, &id, NULL, NULL);
	h->bridge.host = h;
	h->bridge.slot = 0;
	h->slots[0] = &h->bridge;
}

void pci_host_destroy(struct pci_host *h)
{
	for (unsigned i = 0; i < PCI_MAX_SLOTS; i++)
		h->slots[i] = NULL;
	pthread_rwlock_destroy(&h->lock);
}

int pci_host_add(struct pci_host *h, struct pci_device *d)
{
	pthread_rwlock_wrlock(&h->lock);
	int slot = -1;
	for (unsigned i = 1; i < PCI_MAX_SLOTS; i++) {
		if (!h->slots[i]) {
			slot = (int)i;
			break;
		}
	}
	if (slot < 0) {
		pthread_rwlock_unlock(&h->lock);
		log_error("PCI: bus 0 is full (%d slots)", PCI_MAX_SLOTS - 1);
		return -1;
	}
	/* Assign every BAR before committing anything, so a failure leaves the
	 * allocator as it was. */
	uint64_t next = h->next_free, end = h->window_base + h->window_size;
	uint64_t addrs[PCI_NUM_BARS] = { 0 };
	for (unsigned n = 0; n < PCI_NUM_BARS; n++) {
		uint64_t size = d->bars[n].size;
		if (!size)
			continue;
		uint64_t a = (next + size - 1) & ~(size - 1);
		if (a < next || a > end || size > end - a) {
			pthread_rwlock_unlock(&h->lock);
			log_error("PCI: no room for a %llu KiB BAR in the PCI window", (unsigned long long)(size >> 10));
			return -1;
		}
		addrs[n] = a;
		next = a + size;
	}
	h->next_free = next;
	for (unsigned n = 0; n < PCI_NUM_BARS; n++)
		if (d->bars[n].size)
			pci_dev_set_bar_addr(d, n, addrs[n]);
	d->host = h;
	d->slot = slot;
	if (d->msix)
		msix_set_devid(d->msix, (uint32_t)slot << 3);   /* bus 0, function 0 */
	d->window_base = h->window_base;
	d->window_size = h->window_size;
	h->slots[slot] = d;
	pthread_rwlock_unlock(&h->lock);
	return slot;
}

/* The device CONFIG_ADDRESS selects, or NULL. Write lock held. */
static struct pci_device *selected(struct pci_host *h)
{
	uint32_t a = h->config_address;
	unsigned bus = (a >> 16) & 0xff, dev = (a >> 11) & 0x1f, fn = (a >> 8) & 7;
	if (!(a & CONFIG_ENABLE) || bus != 0 || fn != 0)
		return NULL;
	return h->slots[dev];
}

static void pio_read(void *dev, uint64_t off, void *data, unsigned size)
{
	struct pci_host *h = dev;
	uint32_t v = 0xffffffffu;
	pthread_rwlock_wrlock(&h->lock);
	if (off == 0 && size == 4) {
		v = h->config_address;
	} else if (off >= 4 && (off & 3) + size <= 4) {
		struct pci_device *d = selected(h);
		if (d)
			v = pci_dev_config_read(d, (h->config_address & 0xfc) + (unsigned)(off & 3), size);
	}
	pthread_rwlock_unlock(&h->lock);
	memcpy(data, &v, size <= 4 ? size : 4);
	if (size > 4)
		memset((uint8_t *)data + 4, 0xff, size - 4);
}

static void pio_write(void *dev, uint64_t off, const void *data, unsigned size)
{
	struct pci_host *h = dev;
	uint32_t v = 0;
	memcpy(&v, data, size <= 4 ? size : 4);
	pthread_rwlock_wrlock(&h->lock);
	if (off == 0 && size == 4) {
		h->config_address = v & CONFIG_ADDRESS_MASK;
	} else if (off >= 4 && (off & 3) + size <= 4) {
		struct pci_device *d = selected(h);
		if (d)
			pci_dev_config_write(d, (h->config_address & 0xfc) + (unsigned)(off & 3), v, size);
	}
	/* Anything else (byte/word at 0xcf8-0xcfb, e.g. Linux's probe of
	 * 0xcfb, or an access crossing the data dword) is ignored. */
	pthread_rwlock_unlock(&h->lock);
}

const struct io_ops pci_host_pio_ops = { .read = pio_read, .write = pio_write };

/* ECAM: offset = bus << 20 | device << 15 | function << 12 | register. The
 * device at that address, or NULL. */
static struct pci_device *ecam_device(struct pci_host *h, uint64_t off)
{
	unsigned bus = (unsigned)(off >> 20), dev = (off >> 15) & 0x1f, fn = (off >> 12) & 7;
	if (bus != 0 || fn != 0)
		return NULL;
	return h->slots[dev];
}

/* An access ECAM serves: 1, 2 or 4 bytes inside one dword. */
static bool ecam_access_ok(uint64_t off, unsigned size)
{
	return (size == 1 || size == 2 || size == 4) && (off & 3) + size <= 4;
}

static void ecam_read(void *dev, uint64_t off, void *data, unsigned size)
{
	struct pci_host *h = dev;
	uint32_t v = 0xffffffffu;
	unsigned reg = (unsigned)(off & 0xfff);
	pthread_rwlock_wrlock(&h->lock);
	struct pci_device *d = ecam_device(h, off);
	if (d && ecam_access_ok(off, size))
		/* Extended space (256-4095) is empty: no PCIe capability, so
		 * Linux does not look there; zero ends any list walk. */
		v = reg < PCI_CFG_SIZE ? pci_dev_config_read(d, reg, size) : 0;
	pthread_rwlock_unlock(&h->lock);
	memcpy(data, &v, size <= 4 ? size : 4);
	if (size > 4)
		memset((uint8_t *)data + 4, 0xff, size - 4);
}

static void ecam_write(void *dev, uint64_t off, const void *data, unsigned size)
{
	struct pci_host *h = dev;
	uint32_t v = 0;
	unsigned reg = (unsigned)(off & 0xfff);
	memcpy(&v, data, size <= 4 ? size : 4);
	pthread_rwlock_wrlock(&h->lock);
	struct pci_device *d = ecam_device(h, off);
	if (d && ecam_access_ok(off, size) && reg < PCI_CFG_SIZE)
		pci_dev_config_write(d, reg, v, size);
	pthread_rwlock_unlock(&h->lock);
}

const struct io_ops pci_host_ecam_ops = { .read = ecam_read, .write = ecam_write };

/* The BAR that decodes [addr, addr + size), or NULL. Read lock held. */
static const struct pci_bar *decoding_bar(struct pci_host *h, uint64_t addr, unsigned size, uint64_t *off)
{
	for (unsigned s = 1; s < PCI_MAX_SLOTS; s++) {
		struct pci_device *d = h->slots[s];
		if (!d)
			continue;
		for (unsigned n = 0; n < PCI_NUM_BARS; n++) {
			uint64_t base;
			if (!pci_dev_bar_decoded(d, n, &base))
				continue;
			const struct pci_bar *b = &d->bars[n];
			if (addr >= base && addr - base < b->size && size <= b->size - (addr - base)) {
				*off = addr - base;
				return b;
			}
		}
	}
	return NULL;
}

static void mmio_read(void *dev, uint64_t off, void *data, unsigned size)
{
	struct pci_host *h = dev;
	uint64_t bar_off;
	pthread_rwlock_rdlock(&h->lock);
	const struct pci_bar *b = decoding_bar(h, h->window_base + off, size, &bar_off);
	if (b && b->ops && b->ops->read)
		b->ops->read(b->opaque, bar_off, data, size);
	else
		memset(data, 0xff, size);
	pthread_rwlock_unlock(&h->lock);
}

static void mmio_write(void *dev, uint64_t off, const void *data, unsigned size)
{
	struct pci_host *h = dev;
	uint64_t bar_off;
	pthread_rwlock_rdlock(&h->lock);
	const struct pci_bar *b = decoding_bar(h, h->window_base + off, size, &bar_off);
	if (b && b->ops && b->ops->write)
		b->ops->write(b->opaque, bar_off, data, size);
	pthread_rwlock_unlock(&h->lock);
}

const struct io_ops pci_host_mmio_ops = { .read = mmio_read, .write = mmio_write };
