/* runner/proto.c: the function runner's frame headers (every type's length
 * rule, the pad bytes, unknown types), the fixed payloads (u32, EXIT, SEED,
 * FILE) and the string checks, each round trip and each rejection with its
 * message. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "proto.h"

static const uint8_t HOST_TYPES[] = { RF_HELLO, RF_SEED, RF_ARG, RF_ENV, RF_CWD, RF_FILE, RF_FILE_DATA, RF_RUN,
				      RF_STDIN, RF_STDIN_EOF };
static const uint8_t AGENT_TYPES[] = { RF_READY, RF_STDOUT, RF_STDERR, RF_EXIT, RF_ERROR };

/* Decodes a header for (type, len) built by hand, as a peer would send it. */
static int decode(uint8_t type, uint32_t len, struct runner_frame_hdr *h, char *err, size_t errlen)
{
	uint8_t b[RUNNER_FRAME_HDR] = { type, 0, 0, 0, (uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16),
					(uint8_t)(len >> 24) };
	return runner_hdr_decode(b, h, err, errlen);
}

static void assert_len_ok(uint8_t type, uint32_t len)
{
	struct runner_frame_hdr h = { 0 };
	char err[256] = "";
	cr_assert_eq(decode(type, len, &h, err, sizeof(err)), 0, "%s of %u: %s", runner_type_name(type), len, err);
	cr_assert_eq(h.type, type);
	cr_assert_eq(h.len, len);
}

static void assert_len_bad(uint8_t type, uint32_t len, const char *want)
{
	struct runner_frame_hdr h = { 0 };
	char err[256] = "";
	cr_assert_eq(decode(type, len, &h, err, sizeof(err)), -1, "%s of %u accepted", runner_type_name(type), len);
	if (want)
		cr_assert_str_eq(err, want);
	else
		cr_assert(strncmp(err, runner_type_name(type), strlen(runner_type_name(type))) == 0, "%s", err);
}

Test(runner_proto, header_encoding_is_little_endian)
{
	uint8_t b[RUNNER_FRAME_HDR];
	memset(b, 0xaa, sizeof(b));
	runner_hdr_encode(b, RF_STDOUT, 0x00030201u);
	const uint8_t want[] = { RF_STDOUT, 0, 0, 0, 0x01, 0x02, 0x03, 0x00 };
	cr_assert_arr_eq(b, want, sizeof(want));
	struct runner_frame_hdr h;
	cr_assert_eq(runner_hdr_decode(b, &h, NULL, 0), 0);
	cr_assert_eq(h.type, RF_STDOUT);
	cr_assert_eq(h.len, 0x00030201u);
}

Test(runner_proto, header_round_trip_every_type)
{
	const struct {
		uint8_t type;
		uint32_t len;
	} cases[] = {
		{ RF_HELLO, 4 }, { RF_SEED, 12 + 64 }, { RF_ARG, 5 }, { RF_ENV, 7 }, { RF_CWD, 1 }, { RF_FILE, 20 },
		{ RF_FILE_DATA, 65536 }, { RF_RUN, 0 }, { RF_STDIN, 100 }, { RF_STDIN_EOF, 0 }, { RF_READY, 4 },
		{ RF_STDOUT, RUNNER_FRAME_MAX }, { RF_STDERR, 1 }, { RF_EXIT, 2 }, { RF_ERROR, 30 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t b[RUNNER_FRAME_HDR];
		runner_hdr_encode(b, cases[i].type, cases[i].len);
		struct runner_frame_hdr h = { 0 };
		char err[128] = "";
		cr_assert_eq(runner_hdr_decode(b, &h, err, sizeof(err)), 0, "%s", err);
		cr_assert_eq(h.type, cases[i].type);
		cr_assert_eq(h.len, cases[i].len);
	}
}

Test(runner_proto, unknown_types_are_refused)
{
	const uint8_t bad[] = { 0, 11, 12, 0x7f, 0x80, 0x86, 0xff };
	for (size_t i = 0; i < sizeof(bad); i++) {
		char err[64], want[64];
		struct runner_frame_hdr h;
		snprintf(want, sizeof(want), "unknown frame type 0x%02x", bad[i]);
		cr_assert_eq(decode(bad[i], 0, &h, err, sizeof(err)), -1);
		cr_assert_str_eq(err, want);
	}
	/* Every other byte value is a known type. */
	unsigned known = 0;
	for (unsigned t = 0; t < 256; t++) {
		uint8_t b[RUNNER_FRAME_HDR] = { (uint8_t)t };
		struct runner_frame_hdr h;
		char err[64];
		if (runner_hdr_decode(b, &h, err, sizeof(err)) == 0 || strncmp(err, "unknown", 7) != 0)
			known++;
	}
	cr_assert_eq(known, sizeof(HOST_TYPES) + sizeof(AGENT_TYPES));
}

Test(runner_proto, pad_bytes_must_be_zero)
{
	for (int i = 1; i < 4; i++) {
		uint8_t b[RUNNER_FRAME_HDR];
		runner_hdr_encode(b, RF_RUN, 0);
		b[i] = 0x10;
		struct runner_frame_hdr h;
		char err[128];
		cr_assert_eq(runner_hdr_decode(b, &h, err, sizeof(err)), -1);
		cr_assert(strstr(err, "RUN frame with nonzero pad bytes"), "%s", err);
	}
}

Test(runner_proto, length_over_the_maximum)
{
	const uint8_t streams[] = { RF_FILE_DATA, RF_STDIN, RF_STDOUT, RF_STDERR, RF_ARG, RF_ENV, RF_CWD, RF_FILE };
	for (size_t i = 0; i < sizeof(streams); i++) {
		assert_len_ok(streams[i], RUNNER_FRAME_MAX);
		assert_len_bad(streams[i], RUNNER_FRAME_MAX + 1, NULL);
		assert_len_bad(streams[i], UINT32_MAX, NULL);
	}
	assert_len_bad(RF_STDOUT, RUNNER_FRAME_MAX + 1, "STDOUT frame of 262145 bytes (at most 262144)");
}

Test(runner_proto, fixed_lengths)
{
	assert_len_ok(RF_HELLO, 4);
	assert_len_bad(RF_HELLO, 3, "HELLO frame of 3 bytes (must be 4)");
	assert_len_bad(RF_HELLO, 5, "HELLO frame of 5 bytes (must be 4)");
	assert_len_ok(RF_READY, 4);
	assert_len_bad(RF_READY, 0, "READY frame of 0 bytes (must be 4)");
	assert_len_ok(RF_EXIT, 2);
	assert_len_bad(RF_EXIT, 3, "EXIT frame of 3 bytes (must be 2)");
	assert_len_bad(RF_EXIT, 1, "EXIT frame of 1 bytes (must be 2)");
	assert_len_ok(RF_RUN, 0);
	assert_len_bad(RF_RUN, 1, "RUN frame of 1 bytes (must be 0)");
	assert_len_ok(RF_STDIN_EOF, 0);
	assert_len_bad(RF_STDIN_EOF, 8, "STDIN_EOF frame of 8 bytes (must be 0)");
}

Test(runner_proto, ranged_lengths)
{
	assert_len_bad(RF_SEED, 11, "SEED frame of 11 bytes (must be 12 to 268)");
	assert_len_ok(RF_SEED, 12);
	assert_len_ok(RF_SEED, 12 + RUNNER_SEED_ENTROPY);
	assert_len_ok(RF_SEED, 268);
	assert_len_bad(RF_SEED, 269, "SEED frame of 269 bytes (must be 12 to 268)");
	assert_len_bad(RF_FILE, 0, NULL);
	assert_len_bad(RF_FILE, 12, "FILE frame of 12 bytes (must be at least 13)");
	assert_len_ok(RF_FILE, 13);
	assert_len_ok(RF_ARG, 0); /* an empty argument is legal */
	assert_len_bad(RF_ENV, 0, "ENV frame of 0 bytes (must be at least 1)");
	assert_len_ok(RF_ENV, 1);
	assert_len_bad(RF_CWD, 0, "CWD frame of 0 bytes (must be at least 1)");
	assert_len_ok(RF_CWD, 1);
	assert_len_bad(RF_ERROR, 0, "ERROR frame of 0 bytes (must be 1 to 1024)");
	assert_len_ok(RF_ERROR, 1);
	assert_len_ok(RF_ERROR, 1024);
	assert_len_bad(RF_ERROR, 1025, "ERROR frame of 1025 bytes (must be 1 to 1024)");
	const uint8_t any[] = { RF_FILE_DATA, RF_STDIN, RF_STDOUT, RF_STDERR };
	for (size_t i = 0; i < sizeof(any); i++) {
		assert_len_ok(any[i], 0);
		assert_len_ok(any[i], 1);
	}
}

Test(runner_proto, errors_without_a_buffer)
{
	struct runner_frame_hdr h;
	cr_assert_eq(decode(0x42, 0, &h, NULL, 0), -1);
	char one[1] = { 'x' };
	cr_assert_eq(decode(RF_EXIT, 3, &h, one, sizeof(one)), -1);
	cr_assert_eq(one[0], '\0');
	char small[8];
	cr_assert_eq(decode(RF_EXIT, 3, &h, small, sizeof(small)), -1);
	cr_assert_str_eq(small, "EXIT fr");
}

Test(runner_proto, direction_and_names)
{
	for (size_t i = 0; i < sizeof(HOST_TYPES); i++)
		cr_assert(runner_type_from_host(HOST_TYPES[i]));
	for (size_t i = 0; i < sizeof(AGENT_TYPES); i++)
		cr_assert(!runner_type_from_host(AGENT_TYPES[i]));
	cr_assert(!runner_type_from_host(0));
	cr_assert(!runner_type_from_host(11));
	cr_assert(!runner_type_from_host(0xff));
	cr_assert_str_eq(runner_type_name(RF_HELLO), "HELLO");
	cr_assert_str_eq(runner_type_name(RF_FILE_DATA), "FILE_DATA");
	cr_assert_str_eq(runner_type_name(RF_STDIN_EOF), "STDIN_EOF");
	cr_assert_str_eq(runner_type_name(RF_EXIT), "EXIT");
	cr_assert_str_eq(runner_type_name(RF_ERROR), "ERROR");
	cr_assert_str_eq(runner_type_name(0x42), "unknown");
}

Test(runner_proto, u32_payload)
{
	uint8_t b[16];
	cr_assert_eq(runner_u32_encode(b, 0x04030201u), 4);
	const uint8_t want[] = { 1, 2, 3, 4 };
	cr_assert_arr_eq(b, want, 4);
	uint32_t v = 0;
	cr_assert_eq(runner_u32_decode(b, 4, &v, NULL, 0), 0);
	cr_assert_eq(v, 0x04030201u);
	char err[128];
	cr_assert_eq(runner_u32_decode(b, 3, &v, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "u32 payload of 3 bytes (must be 4)");
	cr_assert_eq(runner_u32_decode(b, 5, &v, err, sizeof(err)), -1);
}

Test(runner_proto, exit_payload)
{
	const struct runner_exit ok[] = { { RUNNER_EXITED, 0 }, { RUNNER_EXITED, 7 }, { RUNNER_EXITED, 255 },
					  { RUNNER_SIGNALED, 1 }, { RUNNER_SIGNALED, 9 }, { RUNNER_SIGNALED, 64 } };
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		uint8_t b[16];
		cr_assert_eq(runner_exit_encode(b, &ok[i]), 2);
		cr_assert_eq(b[0], ok[i].kind);
		cr_assert_eq(b[1], ok[i].code);
		struct runner_exit e = { 0xee, 0xee };
		char err[128] = "";
		cr_assert_eq(runner_exit_decode(b, 2, &e, err, sizeof(err)), 0, "%s", err);
		cr_assert_eq(e.kind, ok[i].kind);
		cr_assert_eq(e.code, ok[i].code);
	}
	struct runner_exit e;
	char err[128];
	cr_assert_eq(runner_exit_decode((const uint8_t[]){ 2, 0 }, 2, &e, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "EXIT frame of kind 2 (must be 0, exited, or 1, signaled)");
	cr_assert_eq(runner_exit_decode((const uint8_t[]){ 1, 0 }, 2, &e, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "EXIT frame with signal 0 (must be 1 to 64)");
	cr_assert_eq(runner_exit_decode((const uint8_t[]){ 1, 65 }, 2, &e, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "EXIT frame with signal 65 (must be 1 to 64)");
	cr_assert_eq(runner_exit_decode((const uint8_t[]){ 0, 0, 0 }, 3, &e, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "EXIT frame of 3 bytes (must be 2)");
	cr_assert_eq(runner_exit_decode((const uint8_t[]){ 0 }, 1, &e, err, sizeof(err)), -1);
}

Test(runner_proto, seed_payload)
{
	uint8_t b[RUNNER_SEED_TIME_LEN + RUNNER_SEED_ENTROPY_MAX];
	cr_assert_eq(runner_seed_time_encode(b, 0x0807060504030201ull, 999999999u), RUNNER_SEED_TIME_LEN);
	const uint8_t want[] = { 1, 2, 3, 4, 5, 6, 7, 8, 0xff, 0xc9, 0x9a, 0x3b };
	cr_assert_arr_eq(b, want, sizeof(want));
	for (size_t i = 0; i < RUNNER_SEED_ENTROPY_MAX; i++)
		b[RUNNER_SEED_TIME_LEN + i] = (uint8_t)(i * 7);
	size_t lens[] = { 0, 1, RUNNER_SEED_ENTROPY, RUNNER_SEED_ENTROPY_MAX };
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		struct runner_seed s;
		char err[128] = "";
		cr_assert_eq(runner_seed_decode(b, RUNNER_SEED_TIME_LEN + lens[i], &s, err, sizeof(err)), 0, "%s", err);
		cr_assert_eq(s.sec, 0x0807060504030201ull);
		cr_assert_eq(s.nsec, 999999999u);
		cr_assert_eq(s.entropy, b + RUNNER_SEED_TIME_LEN);
		cr_assert_eq(s.entropy_len, lens[i]);
	}
	struct runner_seed s;
	char err[128];
	cr_assert_eq(runner_seed_decode(b, 11, &s, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "SEED frame of 11 bytes (must be 12 to 268)");
	cr_assert_eq(runner_seed_decode(b, 269, &s, err, sizeof(err)), -1);
	runner_seed_time_encode(b, 1, 1000000000u);
	cr_assert_eq(runner_seed_decode(b, 12, &s, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "SEED frame with 1000000000 nanoseconds (must be below 1000000000)");
	runner_seed_time_encode(b, UINT64_MAX, UINT32_MAX);
	cr_assert_eq(runner_seed_decode(b, 12, &s, err, sizeof(err)), -1);
	runner_seed_time_encode(b, UINT64_MAX, 0);
	cr_assert_eq(runner_seed_decode(b, 12, &s, err, sizeof(err)), 0);
	cr_assert_eq(s.sec, UINT64_MAX);
}

/* A FILE payload: mode, size, then the path. */
static size_t file_payload(uint8_t *b, uint32_t mode, uint64_t size, const void *path, size_t path_len)
{
	size_t n = runner_file_hdr_encode(b, mode, size);
	memcpy(b + n, path, path_len);
	return n + path_len;
}

Test(runner_proto, file_payload)
{
	uint8_t b[64];
	cr_assert_eq(runner_file_hdr_encode(b, 0x0644, 0x0102030405060708ull), RUNNER_FILE_HDR_LEN);
	const uint8_t want[] = { 0x44, 0x06, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1 };
	cr_assert_arr_eq(b, want, sizeof(want));

	size_t n = file_payload(b, 0755, UINT64_MAX, "/usr/bin/job", 12);
	struct runner_file f;
	char err[128] = "";
	cr_assert_eq(runner_file_decode(b, n, &f, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(f.mode, 0755);
	cr_assert_eq(f.size, UINT64_MAX);
	cr_assert_eq(f.path_len, 12);
	cr_assert_eq(memcmp(f.path, "/usr/bin/job", 12), 0);
	cr_assert_eq((const uint8_t *)f.path, b + RUNNER_FILE_HDR_LEN);

	n = file_payload(b, 07777, 0, "x", 1);
	cr_assert_eq(runner_file_decode(b, n, &f, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(f.mode, 07777);
	cr_assert_eq(f.size, 0);

	n = file_payload(b, 010000, 1, "x", 1);
	cr_assert_eq(runner_file_decode(b, n, &f, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "FILE frame with mode 010000 (bits outside 07777)");
	n = file_payload(b, 0x80000000u, 1, "x", 1);
	cr_assert_eq(runner_file_decode(b, n, &f, err, sizeof(err)), -1);

	n = file_payload(b, 0644, 1, "", 0);
	cr_assert_eq(runner_file_decode(b, n, &f, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "FILE frame with an empty path");
	cr_assert_eq(runner_file_decode(b, 5, &f, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "FILE frame of 5 bytes (must be at least 13)");

	n = file_payload(b, 0644, 1, "/tmp/a\0b", 8);
	cr_assert_eq(runner_file_decode(b, n, &f, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "FILE frame with a NUL byte at offset 6");
}

Test(runner_proto, string_checks)
{
	char err[128];
	/* ARG: anything but a NUL, empty included. */
	cr_assert_eq(runner_string_check(RF_ARG, (const uint8_t *)"", 0, err, sizeof(err)), 0);
	cr_assert_eq(runner_string_check(RF_ARG, (const uint8_t *)"a b=c\n\xff", 7, err, sizeof(err)), 0);
	cr_assert_eq(runner_string_check(RF_ARG, (const uint8_t *)"ab\0", 3, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "ARG frame with a NUL byte at offset 2");
	/* ENV: NAME=VALUE with a name. */
	cr_assert_eq(runner_string_check(RF_ENV, (const uint8_t *)"A=", 2, err, sizeof(err)), 0);
	cr_assert_eq(runner_string_check(RF_ENV, (const uint8_t *)"PATH=/bin:/usr/bin=x", 20, err, sizeof(err)), 0);
	cr_assert_eq(runner_string_check(RF_ENV, (const uint8_t *)"=x", 2, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "ENV frame with an empty name");
	cr_assert_eq(runner_string_check(RF_ENV, (const uint8_t *)"NOVALUE", 7, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "ENV frame without '=' (must be NAME=VALUE)");
	cr_assert_eq(runner_string_check(RF_ENV, (const uint8_t *)"", 0, err, sizeof(err)), -1);
	cr_assert_eq(runner_string_check(RF_ENV, (const uint8_t *)"A=\0", 3, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "ENV frame with a NUL byte at offset 2");
	/* CWD and FILE paths: not empty, no NUL. */
	cr_assert_eq(runner_string_check(RF_CWD, (const uint8_t *)"/tmp", 4, err, sizeof(err)), 0);
	cr_assert_eq(runner_string_check(RF_CWD, (const uint8_t *)"", 0, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "CWD frame with an empty path");
	cr_assert_eq(runner_string_check(RF_CWD, (const uint8_t *)"\0", 1, err, sizeof(err)), -1);
	cr_assert_eq(runner_string_check(RF_FILE, (const uint8_t *)"f", 1, err, sizeof(err)), 0);
	cr_assert_eq(runner_string_check(RF_FILE, (const uint8_t *)"", 0, err, sizeof(err)), -1);
	/* Not a string frame. */
	cr_assert_eq(runner_string_check(RF_STDIN, (const uint8_t *)"x", 1, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "STDIN frame has no string payload");
}
