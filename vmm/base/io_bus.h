/* Dispatch of port-I/O and MMIO exits to device emulation. The bus is filled
 * while the VM is set up and only read once vCPUs run, so the exit path looks
 * a range up without taking any lock. */
#ifndef MINIVMM_IO_BUS_H
#define MINIVMM_IO_BUS_H

#include <stdbool.h>
#include <stdint.h>

#define IO_BUS_MAX_RANGES 64

struct io_ops {
	/* offset is relative to the range base; size is 1, 2, 4 or 8. */
	void (*read)(void *dev, uint64_t offset, void *data, unsigned size);
	void (*write)(void *dev, uint64_t offset, const void *data, unsigned size);
};

struct io_range {
	uint64_t base;
	uint64_t len;
	const struct io_ops *ops;
	void *dev;
	const char *name;
};

struct io_bus {
	struct io_range ranges[IO_BUS_MAX_RANGES];   /* sorted by base */
	unsigned n;
};

/* Returns -1 when the range overlaps another one, is empty or the bus is full. */
int io_bus_register(struct io_bus *bus, uint64_t base, uint64_t len, const struct io_ops *ops,
		    void *dev, const char *name);

const struct io_range *io_bus_find(const struct io_bus *bus, uint64_t addr);

/* Performs the access; returns false when nothing is mapped there. Unmapped
 * reads return all ones, as on real hardware. An access that straddles the
 * end of a range is refused as unmapped. */
bool io_bus_access(const struct io_bus *bus, uint64_t addr, void *data, unsigned size, bool is_write);

#endif
