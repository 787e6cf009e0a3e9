/* libFuzzer target for the function runner's wire protocol (runner/proto.c):
 * the input read as a stream of frames, as the agent and the runner read
 * each other, every header through runner_hdr_decode and every payload
 * through all the payload decoders and string checks; the whole input is
 * also given to each decoder as one payload. Build and run:
 * tests/fuzz/run.sh.
 *
 * Checked: a header accepted has a known type, zero pad bytes, a length its
 * type allows (within RUNNER_FRAME_MAX) and encodes back to the same 8
 * bytes, and a refused one breaks one of those rules; each payload decoder
 * accepts exactly what a reference check written here accepts, and what it
 * accepts encodes back to the same bytes; the string checks agree with a
 * reference too. ASan/UBSan catch the rest.
 *
 * FUZZ_RUNNER_PROTO_WRITE_SEEDS=DIR writes seed inputs there and exits. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "runner/proto.h"

static uint64_t get_le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static bool known(uint8_t t)
{
	return (t >= RF_HELLO && t <= RF_STDIN_EOF) || (t >= RF_READY && t <= RF_ERROR);
}

/* The length rule of proto.h, written out again. */
static bool len_allowed(uint8_t t, uint32_t len)
{
	if (len > RUNNER_FRAME_MAX)
		return false;
	switch (t) {
	case RF_HELLO:
	case RF_READY:
		return len == 4;
	case RF_EXIT:
		return len == 2;
	case RF_RUN:
	case RF_STDIN_EOF:
		return len == 0;
	case RF_SEED:
		return len >= 12 && len <= 12 + 256;
	case RF_FILE:
		return len >= 13;
	case RF_ENV:
	case RF_CWD:
		return len >= 1;
	case RF_ERROR:
		return len >= 1 && len <= 1024;
	default:
		return true;
	}
}

static void check_header(const uint8_t *in)
{
	struct runner_frame_hdr h;
	char err[256];
	bool want = known(in[0]) && !in[1] && !in[2] && !in[3] && len_allowed(in[0], (uint32_t)get_le(in + 4, 4));
	int rc = runner_hdr_decode(in, &h, err, sizeof(err));
	CHECK((rc == 0) == want);
	if (rc == 0) {
		uint8_t back[RUNNER_FRAME_HDR];
		runner_hdr_encode(back, h.type, h.len);
		CHECK(memcmp(back, in, RUNNER_FRAME_HDR) == 0);
		CHECK(runner_type_from_host(h.type) == (h.type <= RF_STDIN_EOF));
		CHECK(strcmp(runner_type_name(h.type), "unknown") != 0);
	} else {
		CHECK(err[0] != '\0' && !memchr(err, '\n', strlen(err)));
	}
}

static bool has_nul(const uint8_t *p, size_t len)
{
	return len && memchr(p, 0, len);
}

static void check_strings(const uint8_t *p, size_t len)
{
	char err[256];
	CHECK((runner_string_check(RF_ARG, p, len, err, sizeof(err)) == 0) == !has_nul(p, len));
	const uint8_t *eq = len ? memchr(p, '=', len) : NULL;
	CHECK((runner_string_check(RF_ENV, p, len, err, sizeof(err)) == 0) == (!has_nul(p, len) && eq && eq != p));
	CHECK((runner_string_check(RF_CWD, p, len, err, sizeof(err)) == 0) == (len && !has_nul(p, len)));
	CHECK((runner_string_check(RF_FILE, p, len, err, sizeof(err)) == 0) == (len && !has_nul(p, len)));
	CHECK(runner_string_check(RF_STDIN, p, len, err, sizeof(err)) == -1);
}

/* Every payload decoder on p, against what each must accept. */
static void check_payload(const uint8_t *p, size_t len)
{
	char err[256];
	uint8_t back[16];

	uint32_t v;
	int rc = runner_u32_decode(p, len, &v, err, sizeof(err));
	CHECK((rc == 0) == (len == 4));
	if (rc == 0)
		CHECK(runner_u32_encode(back, v) == 4 && memcmp(back, p, 4) == 0);

	struct runner_exit e;
	rc = runner_exit_decode(p, len, &e, err, sizeof(err));
	CHECK((rc == 0) == (len == 2 && (p[0] == 0 || (p[0] == 1 && p[1] >= 1 && p[1] <= 64))));
	if (rc == 0)
		CHECK(runner_exit_encode(back, &e) == 2 && memcmp(back, p, 2) == 0);

	struct runner_seed s;
	rc = runner_seed_decode(p, len, &s, err, sizeof(err));
	CHECK((rc == 0) == (len >= 12 && len <= 12 + RUNNER_SEED_ENTROPY_MAX && get_le(p + 8, 4) < 1000000000u));
	if (rc == 0) {
		CHECK(runner_seed_time_encode(back, s.sec, s.nsec) == 12 && memcmp(back, p, 12) == 0);
		CHECK(s.entropy == p + 12 && s.entropy_len == len - 12);
	}

	struct runner_file f;
	rc = runner_file_decode(p, len, &f, err, sizeof(err));
	CHECK((rc == 0) == (len >= 13 && !(get_le(p, 4) & ~07777ull) && !has_nul(p + 12, len - 12)));
	if (rc == 0) {
		CHECK(runner_file_hdr_encode(back, f.mode, f.size) == 12 && memcmp(back, p, 12) == 0);
		CHECK((const uint8_t *)f.path == p + 12 && f.path_len == len - 12);
	}
	check_strings(p, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_payload(data, size);
	/* Frames one after the other; after a bad header, resynchronise one
	 * byte on (the peers drop the stream; this just covers more headers). */
	size_t at = 0;
	while (size - at >= RUNNER_FRAME_HDR) {
		check_header(data + at);
		struct runner_frame_hdr h;
		if (runner_hdr_decode(data + at, &h, NULL, 0)) {
			at++;
			continue;
		}
		at += RUNNER_FRAME_HDR;
		size_t n = h.len < size - at ? h.len : size - at;
		check_payload(data + at, n);
		at += n;
	}
	return 0;
}

/* ---- seeds ---- */

static size_t put_frame(uint8_t *out, uint8_t type, const void *payload, size_t len)
{
	runner_hdr_encode(out, type, (uint32_t)len);
	if (len)
		memcpy(out + RUNNER_FRAME_HDR, payload, len);
	return RUNNER_FRAME_HDR + len;
}

__attribute__((constructor)) static void maybe_write_seeds(void)
{
	const char *dir = getenv("FUZZ_RUNNER_PROTO_WRITE_SEEDS");
	if (!dir)
		return;
	static uint8_t in[4096];
	uint8_t b[300];
	size_t n = 0;
	/* A whole job from the host. */
	n += put_frame(in + n, RF_HELLO, b, runner_u32_encode(b, RUNNER_PROTO_VERSION));
	size_t k = runner_seed_time_encode(b, 1700000000, 123456789);
	for (unsigned i = 0; i < RUNNER_SEED_ENTROPY; i++)
		b[k++] = (uint8_t)(i * 37);
	n += put_frame(in + n, RF_SEED, b, k);
	n += put_frame(in + n, RF_ARG, "sh", 2);
	n += put_frame(in + n, RF_ARG, "", 0);
	n += put_frame(in + n, RF_ENV, "HOME=/root", 10);
	n += put_frame(in + n, RF_CWD, "/tmp", 4);
	k = runner_file_hdr_encode(b, 0755, 5);
	memcpy(b + k, "/tmp/job.sh", 11);
	n += put_frame(in + n, RF_FILE, b, k + 11);
	n += put_frame(in + n, RF_FILE_DATA, "echo\n", 5);
	n += put_frame(in + n, RF_RUN, NULL, 0);
	n += put_frame(in + n, RF_STDIN, "input", 5);
	n += put_frame(in + n, RF_STDIN_EOF, NULL, 0);
	fuzz_write_seed(dir, "host-job", in, n);
	/* The agent's answers. */
	n = 0;
	n += put_frame(in + n, RF_READY, b, runner_u32_encode(b, RUNNER_PROTO_VERSION));
	n += put_frame(in + n, RF_STDOUT, "out\n", 4);
	n += put_frame(in + n, RF_STDERR, "\xff\x00", 2);
	struct runner_exit e = { RUNNER_SIGNALED, 9 };
	n += put_frame(in + n, RF_EXIT, b, runner_exit_encode(b, &e));
	n += put_frame(in + n, RF_ERROR, "bad frame", 9);
	fuzz_write_seed(dir, "agent-answers", in, n);
	exit(0);
}
