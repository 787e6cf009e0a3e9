#include <criterion/criterion.h>
#include <string.h>

#include "arch/x86/aml.h"

static uint8_t buf[8192];
static struct aml a;

static void setup(void)
{
	memset(buf, 0xee, sizeof(buf));
	aml_init(&a, buf, sizeof(buf));
}

TestSuite(aml, .init = setup);

Test(aml, integers_use_the_shortest_encoding)
{
	aml_integer(&a, 0);
	aml_integer(&a, 1);
	aml_integer(&a, 0x42);
	aml_integer(&a, 0x1234);
	aml_integer(&a, 0x12345678);
	aml_integer(&a, 0x1122334455667788ull);
	const uint8_t want[] = { 0x00, 0x01, 0x0a, 0x42, 0x0b, 0x34, 0x12, 0x0c, 0x78, 0x56, 0x34, 0x12,
				 0x0e, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11 };
	cr_assert_eq(a.len, sizeof(want));
	cr_assert_eq(memcmp(buf, want, sizeof(want)), 0);
}

Test(aml, eisaid_and_names)
{
	aml_name(&a, "_HID");
	aml_eisaid(&a, "PNP0501");
	/* 0x0105D041 is what iasl emits for EisaId("PNP0501") */
	const uint8_t want[] = { 0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x05, 0x01 };
	cr_assert_eq(a.len, sizeof(want));
	cr_assert_eq(memcmp(buf, want, sizeof(want)), 0);
	aml_name(&a, "S5");
	cr_assert_eq(memcmp(buf + sizeof(want), "\x08S5__", 5), 0, "short names padded with _");
}

Test(aml, short_package_length)
{
	size_t m = aml_package_open(&a, 2);
	aml_integer(&a, 5);
	aml_integer(&a, 0);
	aml_close(&a, m);
	const uint8_t want[] = { 0x12, 0x05, 0x02, 0x0a, 0x05, 0x00 };
	cr_assert_eq(a.len, sizeof(want));
	cr_assert_eq(memcmp(buf, want, sizeof(want)), 0);
}

Test(aml, long_package_length_two_bytes)
{
	size_t m = aml_scope_open(&a, "\\_SB_");
	for (int i = 0; i < 100; i++)
		aml_integer(&a, 1);
	aml_close(&a, m);
	/* body = 5 (name) + 100; total with a 2-byte PkgLength = 107 = 0x6b */
	cr_assert_eq(buf[0], 0x10);
	cr_assert_eq(buf[1], 0x40 | 0xb, "lead byte: one extra byte, low nibble");
	cr_assert_eq(buf[2], 0x6, "next byte: length >> 4");
	cr_assert_eq(buf[3], '\\');
	cr_assert_eq(a.len, 1 + 107);
}

Test(aml, nested_packages_close_inside_out)
{
	size_t outer = aml_scope_open(&a, "\\_SB_");
	size_t dev = aml_device_open(&a, "COM1");
	aml_name(&a, "_UID");
	aml_integer(&a, 1);
	aml_close(&a, dev);
	aml_close(&a, outer);
	const uint8_t want[] = { 0x10, 0x13, '\\', '_', 'S', 'B', '_', 0x5b, 0x82, 0x0b, 'C', 'O', 'M', '1',
				 0x08, '_', 'U', 'I', 'D', 0x01 };
	cr_assert_eq(a.len, sizeof(want));
	cr_assert_eq(memcmp(buf, want, sizeof(want)), 0);
}

Test(aml, resource_template)
{
	struct aml_res r = { .len = 0 };
	aml_res_io(&r, 0x3f8, 8);
	aml_res_irq(&r, 4);
	aml_resource_template(&a, &r);
	const uint8_t want[] = { 0x11, 0x10, 0x0a, 0x0d, 0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08,
				 0x22, 0x10, 0x00, 0x79, 0x00 };
	cr_assert_eq(a.len, sizeof(want));
	cr_assert_eq(memcmp(buf, want, sizeof(want)), 0);
}

Test(aml, overflow_is_reported_not_written_past)
{
	uint8_t small[8];
	memset(small, 0, sizeof(small));
	aml_init(&a, small, 6);
	aml_string(&a, "too long for six");
	cr_assert(a.overflow);
	cr_assert_leq(a.len, 6);
	cr_assert_eq(small[6], 0, "nothing written past the capacity");
}
