#include <criterion/criterion.h>
#include <string.h>
#include <criterion/redirect.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* Issue 13, item 8: a --console file grew for as long as the guest printed. */
Test(console, file_stops_at_console_max, .init = cr_redirect_stderr)
{
	char path[] = "/tmp/minivmm-console-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	close(fd);
	unlink(path);   /* console_open creates it: O_CREAT | O_NOFOLLOW */
	struct vmm_options o = { .console = CONSOLE_FILE, .console_path = path, .console_max_mib = 1 };
	struct console c;
	cr_assert_eq(console_open(&c, &o), 0);
	static uint8_t chunk[4000];
	memset(chunk, 'x', sizeof(chunk));
	for (int i = 0; i < 1000; i++)   /* ~3.8 MiB */
		console_output(&c, chunk, sizeof(chunk));
	console_close(&c);
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_size, 1 << 20, "the file holds exactly --console-max: %lld", (long long)st.st_size);
	unlink(path);
	fflush(stderr);
	char log[512] = "";
	FILE *f = cr_get_redirected_stderr();
	size_t n = fread(log, 1, sizeof(log) - 1, f);
	log[n] = 0;
	cr_assert(strstr(log, "console: /tmp/minivmm-console-"), "%s", log);
	cr_assert(strstr(log, " reached --console-max 1 MiB; guest output dropped from now on\n"), "%s", log);
	cr_assert_eq(strchr(log, '\n'), log + strlen(log) - 1, "one line: %s", log);
}

Test(console, file_without_limit)
{
	char path[] = "/tmp/minivmm-console-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	close(fd);
	unlink(path);
	struct vmm_options o = { .console = CONSOLE_FILE, .console_path = path, .console_max_mib = 0 };
	struct console c;
	cr_assert_eq(console_open(&c, &o), 0);
	static uint8_t chunk[4096];
	for (int i = 0; i < 300; i++)
		console_output(&c, chunk, sizeof(chunk));
	console_close(&c);
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_size, 300 * 4096);
	unlink(path);
}
