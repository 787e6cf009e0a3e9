#include "vmm/base/guest_mem.h"

#include <string.h>

int guest_mem_add_region(struct guest_mem *m, uint64_t gpa, uint64_t size, void *hva)
{
	if (m->n_regions == GUEST_MEM_MAX_REGIONS || size == 0 || gpa + size < gpa)
		return -1;
	for (unsigned i = 0; i < m->n_regions; i++) {
		const struct guest_region *r = &m->regions[i];
		if (gpa < r->gpa + r->size && r->gpa < gpa + size)
			return -1;
	}
	m->regions[m->n_regions++] = (struct guest_region){ gpa, size, hva };
	m->total += size;
	return 0;
}

void *guest_mem_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < m->n_regions; i++) {
		const struct guest_region *r = &m->regions[i];
		/* written so that no sum can overflow: offset < size, len <= size - offset */
		if (gpa < r->gpa)
			continue;
		uint64_t off = gpa - r->gpa;
		if (off >= r->size)
			continue;
		if (len > r->size - off)
			return NULL;
		return r->hva + off;
	}
	return NULL;
}

int guest_mem_write(const struct guest_mem *m, uint64_t gpa, const void *src, uint64_t len)
{
	void *p = guest_mem_ptr(m, gpa, len);
	if (!p)
		return -1;
	memcpy(p, src, len);
	return 0;
}

int guest_mem_read(const struct guest_mem *m, uint64_t gpa, void *dst, uint64_t len)
{
	const void *p = guest_mem_ptr(m, gpa, len);
	if (!p)
		return -1;
	memcpy(dst, p, len);
	return 0;
}

uint64_t guest_mem_region_end(const struct guest_mem *m, uint64_t gpa)
{
	for (unsigned i = 0; i < m->n_regions; i++) {
		const struct guest_region *r = &m->regions[i];
		if (gpa >= r->gpa && gpa - r->gpa < r->size)
			return r->gpa + r->size;
	}
	return 0;
}
