#include "vmm/base/io_bus.h"

#include <string.h>

int io_bus_register(struct io_bus *bus, uint64_t base, uint64_t len, const struct io_ops *ops,
		    void *dev, const char *name)
{
	if (bus->n == IO_BUS_MAX_RANGES || len == 0 || base + len < base)
		return -1;
	unsigned pos = 0;
	for (unsigned i = 0; i < bus->n; i++) {
		const struct io_range *r = &bus->ranges[i];
		if (base < r->base + r->len && r->base < base + len)
			return -1;
		if (r->base < base)
			pos = i + 1;
	}
	memmove(&bus->ranges[pos + 1], &bus->ranges[pos], (bus->n - pos) * sizeof(bus->ranges[0]));
	bus->ranges[pos] = (struct io_range){ base, len, ops, dev, name };
	bus->n++;
	return 0;
}

const struct io_range *io_bus_find(const struct io_bus *bus, uint64_t addr)
{
	unsigned lo = 0, hi = bus->n;
	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		const struct io_range *r = &bus->ranges[mid];
		if (addr < r->base)
			hi = mid;
		else if (addr - r->base >= r->len)
			lo = mid + 1;
		else
			return r;
	}
	return NULL;
}

bool io_bus_access(const struct io_bus *bus, uint64_t addr, void *data, unsigned size, bool is_write)
{
	const struct io_range *r = io_bus_find(bus, addr);
	if (!r || size > r->len - (addr - r->base)) {
		if (!is_write)
			memset(data, 0xff, size);
		return false;
	}
	if (is_write) {
		if (r->ops->write)
			r->ops->write(r->dev, addr - r->base, data, size);
	} else {
		if (r->ops->read)
			r->ops->read(r->dev, addr - r->base, data, size);
		else
			memset(data, 0xff, size);
	}
	return true;
}
