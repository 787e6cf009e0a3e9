#include <criterion/criterion.h>
#include <stdint.h>

#include "vmm/base/guest_mem.h"

static uint8_t low[0x10000], high[0x1000];
static struct guest_mem m;

static void setup(void)
{
	memset(&m, 0, sizeof(m));
	cr_assert_eq(guest_mem_add_region(&m, 0, sizeof(low), low), 0);
	cr_assert_eq(guest_mem_add_region(&m, 0x100000000ull, sizeof(high), high), 0);
}

TestSuite(guest_mem, .init = setup);

Test(guest_mem, translation_inside_regions)
{
	cr_assert_eq(guest_mem_ptr(&m, 0, 1), low);
	cr_assert_eq(guest_mem_ptr(&m, 0x10, 0x10), low + 0x10);
	cr_assert_eq(guest_mem_ptr(&m, 0, sizeof(low)), low);
	cr_assert_eq(guest_mem_ptr(&m, 0x100000000ull + 0xfff, 1), high + 0xfff);
	cr_assert_eq(m.total, sizeof(low) + sizeof(high));
}

Test(guest_mem, refuses_ranges_leaving_a_region)
{
	cr_assert_null(guest_mem_ptr(&m, sizeof(low) - 1, 2), "straddles the end");
	cr_assert_null(guest_mem_ptr(&m, sizeof(low), 1), "just past the end");
	cr_assert_null(guest_mem_ptr(&m, 0x20000, 1), "in the hole");
	cr_assert_null(guest_mem_ptr(&m, 0xfffffffffull, 1));
	cr_assert_null(guest_mem_ptr(&m, 0x100, UINT64_MAX), "length overflow");
	cr_assert_null(guest_mem_ptr(&m, UINT64_MAX, 2), "address overflow");
	cr_assert_null(guest_mem_ptr(&m, 0x100000000ull + 0x800, 0x801));
}

Test(guest_mem, read_write_round_trip)
{
	const char msg[] = "hello";
	cr_assert_eq(guest_mem_write(&m, 0x100, msg, sizeof(msg)), 0);
	char buf[sizeof(msg)];
	cr_assert_eq(guest_mem_read(&m, 0x100, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, msg);
	cr_assert_eq(guest_mem_write(&m, sizeof(low) - 2, msg, sizeof(msg)), -1);
}

Test(guest_mem, overlapping_regions_refused)
{
	static uint8_t extra[0x1000];
	cr_assert_eq(guest_mem_add_region(&m, 0x8000, sizeof(extra), extra), -1);
	cr_assert_eq(guest_mem_add_region(&m, UINT64_MAX - 10, 0x1000, extra), -1);
	cr_assert_eq(guest_mem_add_region(&m, 0x200000, 0, extra), -1);
}

Test(guest_mem, region_end)
{
	cr_assert_eq(guest_mem_region_end(&m, 0x5000), sizeof(low));
	cr_assert_eq(guest_mem_region_end(&m, 0x50000), 0);
}
