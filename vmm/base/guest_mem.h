/* Guest physical memory: a few contiguous regions, each backed by one host
 * mapping and one KVM memslot. Every guest-physical access from the VMM goes
 * through guest_mem_ptr(), which refuses any range not wholly inside one
 * region: a hostile address or length can never reach outside guest RAM. */
#ifndef MINIVMM_GUEST_MEM_H
#define MINIVMM_GUEST_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GUEST_MEM_MAX_REGIONS 4

struct guest_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *hva;
};

struct guest_mem {
	struct guest_region regions[GUEST_MEM_MAX_REGIONS];
	unsigned n_regions;
	uint64_t total;
};

/* Adds a region backed by hva; regions must not overlap. Returns 0 or -1. */
int guest_mem_add_region(struct guest_mem *m, uint64_t gpa, uint64_t size, void *hva);

/* Host pointer for [gpa, gpa+len), or NULL when any byte of it lies outside
 * a single region (including arithmetic overflow). len 0 is a valid range. */
void *guest_mem_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len);

int guest_mem_write(const struct guest_mem *m, uint64_t gpa, const void *src, uint64_t len);
int guest_mem_read(const struct guest_mem *m, uint64_t gpa, void *dst, uint64_t len);

/* End of the region containing gpa (exclusive), or 0 when gpa is not RAM. */
uint64_t guest_mem_region_end(const struct guest_mem *m, uint64_t gpa);

#endif
