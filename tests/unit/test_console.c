#include <criterion/criterion.h>
#include <string.h>

#include "vmm/console.h"

Test(console, plain_bytes_pass_through)
{
	struct console c = { 0 };
	cr_assert_not(console_filter_input(&c, (const uint8_t *)"ls\r", 3));
	cr_assert_eq(c.pending_len, 3);
	cr_assert_eq(memcmp(c.pending, "ls\r", 3), 0);
}

Test(console, ctrl_a_x_quits)
{
	struct console c = { 0 };
	const uint8_t in[] = { 'a', 0x01, 'x', 'b' };
	cr_assert(console_filter_input(&c, in, sizeof(in)));
	cr_assert_eq(c.pending_len, 1);
}

Test(console, ctrl_a_split_across_reads)
{
	struct console c = { 0 };
	const uint8_t a = 0x01, x = 'x';
	cr_assert_not(console_filter_input(&c, &a, 1));
	cr_assert(console_filter_input(&c, &x, 1));
}

Test(console, ctrl_a_twice_sends_one_and_other_keys_pass)
{
	struct console c = { 0 };
	const uint8_t in[] = { 0x01, 0x01, 0x01, 'c', 0x03 };
	cr_assert_not(console_filter_input(&c, in, sizeof(in)));
	const uint8_t want[] = { 0x01, 0x01, 'c', 0x03 };
	cr_assert_eq(c.pending_len, sizeof(want));
	cr_assert_eq(memcmp(c.pending, want, sizeof(want)), 0);
}
