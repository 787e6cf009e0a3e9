/* Fake guest RAM for the fuzz targets that put the guest's rings and
 * buffers in it: the input's bytes from at on, zero after, as one region at
 * guest address 0. */
#ifndef MINIVMM_FUZZ_RAM_H
#define MINIVMM_FUZZ_RAM_H

#include <stdint.h>
#include <string.h>

#include "fuzz_check.h"
#include "vmm/base/guest_mem.h"

static inline void fuzz_ram_load(struct guest_mem *mem, uint8_t *ram, size_t ram_size, const uint8_t *data,
				 size_t size, size_t at)
{
	memset(ram, 0, ram_size);
	if (size > at)
		memcpy(ram, data + at, size - at < ram_size ? size - at : ram_size);
	memset(mem, 0, sizeof(*mem));
	CHECK(guest_mem_add_region(mem, 0, ram_size, ram) == 0);
}

#endif
