#include <criterion/criterion.h>
#include <string.h>

#include "vmm/base/io_bus.h"

struct rec {
	uint64_t off;
	unsigned size;
	uint32_t val;
	int writes;
};

static void rd(void *dev, uint64_t off, void *data, unsigned size)
{
	struct rec *r = dev;
	uint32_t v = 0xa0 + (uint32_t)off;
	memset(data, 0, size);
	memcpy(data, &v, size < 4 ? size : 4);
	r->off = off;
}

static void wr(void *dev, uint64_t off, const void *data, unsigned size)
{
	struct rec *r = dev;
	r->off = off;
	r->size = size;
	r->val = 0;
	memcpy(&r->val, data, size < 4 ? size : 4);
	r->writes++;
}

static const struct io_ops ops = { rd, wr };

Test(io_bus, dispatch_with_offsets)
{
	struct io_bus bus = { 0 };
	struct rec a = { 0 }, b = { 0 };
	cr_assert_eq(io_bus_register(&bus, 0x3f8, 8, &ops, &a, "a"), 0);
	cr_assert_eq(io_bus_register(&bus, 0x60, 1, &ops, &b, "b"), 0);
	uint8_t v = 0x42;
	cr_assert(io_bus_access(&bus, 0x3fb, &v, 1, true));
	cr_assert_eq(a.off, 3);
	cr_assert_eq(a.val, 0x42);
	cr_assert_eq(b.writes, 0);
	uint8_t out = 0;
	cr_assert(io_bus_access(&bus, 0x60, &out, 1, false));
	cr_assert_eq(out, 0xa0);
	cr_assert_eq(bus.ranges[0].base, 0x60, "kept sorted");
}

Test(io_bus, unmapped_reads_all_ones_and_straddling_refused)
{
	struct io_bus bus = { 0 };
	struct rec a = { 0 };
	cr_assert_eq(io_bus_register(&bus, 0x100, 4, &ops, &a, "a"), 0);
	uint32_t v = 0;
	cr_assert_not(io_bus_access(&bus, 0x200, &v, 4, false));
	cr_assert_eq(v, 0xffffffff);
	cr_assert_not(io_bus_access(&bus, 0x102, &v, 4, false), "straddles the end");
	cr_assert_not(io_bus_access(&bus, 0x103, &v, 2, true));
	cr_assert_eq(a.writes, 0);
}

Test(io_bus, overlap_and_limits)
{
	struct io_bus bus = { 0 };
	struct rec a = { 0 };
	cr_assert_eq(io_bus_register(&bus, 0x100, 0x10, &ops, &a, "a"), 0);
	cr_assert_eq(io_bus_register(&bus, 0x10f, 1, &ops, &a, "x"), -1);
	cr_assert_eq(io_bus_register(&bus, 0xf0, 0x11, &ops, &a, "x"), -1);
	cr_assert_eq(io_bus_register(&bus, 0x110, 0, &ops, &a, "x"), -1);
	cr_assert_eq(io_bus_register(&bus, UINT64_MAX, 2, &ops, &a, "x"), -1);
	for (unsigned i = 1; i < IO_BUS_MAX_RANGES; i++)
		cr_assert_eq(io_bus_register(&bus, 0x1000 + i * 0x10, 0x10, &ops, &a, "r"), 0);
	cr_assert_eq(io_bus_register(&bus, 0x9000, 1, &ops, &a, "full"), -1);
	for (unsigned i = 1; i < IO_BUS_MAX_RANGES; i++)
		cr_assert_not_null(io_bus_find(&bus, 0x1000 + i * 0x10 + 0xf));
	cr_assert_null(io_bus_find(&bus, 0x1000 + 0xf));
}
