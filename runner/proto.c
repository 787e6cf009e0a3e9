/* The function runner's wire protocol (proto.h): frame headers and the
 * fixed-layout payloads, encoded and checked. Little-endian byte by byte, so
 * the host and the guest agent agree whatever they run on; no I/O and no
 * allocation, so the agent, the runner, the unit tests and the fuzzer all
 * share exactly this code. */
#include "proto.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

__attribute__((format(printf, 3, 4)))
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static void put_le(uint8_t *out, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		out[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

const char *runner_type_name(uint8_t type)
{
	switch (type) {
	case RF_HELLO: return "HELLO";
	case RF_SEED: return "SEED";
	case RF_ARG: return "ARG";
	case RF_ENV: return "ENV";
	case RF_CWD: return "CWD";
	case RF_FILE: return "FILE";
	case RF_FILE_DATA: return "FILE_DATA";
	case RF_RUN: return "RUN";
	case RF_STDIN: return "STDIN";
	case RF_STDIN_EOF: return "STDIN_EOF";
	case RF_READY: return "READY";
	case RF_STDOUT: return "STDOUT";
	case RF_STDERR: return "STDERR";
	case RF_EXIT: return "EXIT";
	case RF_ERROR: return "ERROR";
	}
	return "unknown";
}

bool runner_type_from_host(uint8_t type)
{
	return type >= RF_HELLO && type <= RF_STDIN_EOF;
}

void runner_hdr_encode(uint8_t out[RUNNER_FRAME_HDR], uint8_t type, uint32_t len)
{
	out[0] = type;
	out[1] = out[2] = out[3] = 0;
	put_le(out + 4, len, 4);
}

/* The payload lengths a type allows, as [min, max]. */
static void len_bounds(uint8_t type, uint32_t *min, uint32_t *max)
{
	*min = 0;
	*max = RUNNER_FRAME_MAX;
	switch (type) {
	case RF_HELLO:
	case RF_READY:
		*min = *max = 4;
		break;
	case RF_EXIT:
		*min = *max = 2;
		break;
	case RF_RUN:
	case RF_STDIN_EOF:
		*max = 0;
		break;
	case RF_SEED:
		*min = RUNNER_SEED_TIME_LEN;
		*max = RUNNER_SEED_TIME_LEN + RUNNER_SEED_ENTROPY_MAX;
		break;
	case RF_FILE:
		*min = RUNNER_FILE_HDR_LEN + 1;
		break;
	case RF_ENV:
	case RF_CWD:
		*min = 1;
		break;
	case RF_ERROR:
		*min = 1;
		*max = RUNNER_ERROR_MAX;
		break;
	default: /* ARG (may be empty), FILE_DATA and the byte streams */
		break;
	}
}

int runner_hdr_decode(const uint8_t in[RUNNER_FRAME_HDR], struct runner_frame_hdr *hdr, char *err, size_t errlen)
{
	uint8_t type = in[0];
	uint32_t len = (uint32_t)get_le(in + 4, 4);
	const char *name = runner_type_name(type);
	if (strcmp(name, "unknown") == 0)
		return fail(err, errlen, "unknown frame type 0x%02x", type);
	if (in[1] || in[2] || in[3])
		return fail(err, errlen, "%s frame with nonzero pad bytes %02x %02x %02x", name, in[1], in[2], in[3]);
	if (len > RUNNER_FRAME_MAX)
		return fail(err, errlen, "%s frame of %u bytes (at most %u)", name, len, RUNNER_FRAME_MAX);
	uint32_t min, max;
	len_bounds(type, &min, &max);
	if (len < min || len > max) {
		if (min == max)
			return fail(err, errlen, "%s frame of %u bytes (must be %u)", name, len, min);
		if (max == RUNNER_FRAME_MAX)
			return fail(err, errlen, "%s frame of %u bytes (must be at least %u)", name, len, min);
		return fail(err, errlen, "%s frame of %u bytes (must be %u to %u)", name, len, min, max);
	}
	hdr->type = type;
	hdr->len = len;
	return 0;
}

size_t runner_u32_encode(uint8_t *out, uint32_t v)
{
	put_le(out, v, 4);
	return 4;
}

int runner_u32_decode(const uint8_t *p, size_t len, uint32_t *v, char *err, size_t errlen)
{
	if (len != 4)
		return fail(err, errlen, "u32 payload of %zu bytes (must be 4)", len);
	*v = (uint32_t)get_le(p, 4);
	return 0;
}

size_t runner_exit_encode(uint8_t *out, const struct runner_exit *e)
{
	out[0] = e->kind;
	out[1] = e->code;
	return 2;
}

int runner_exit_decode(const uint8_t *p, size_t len, struct runner_exit *e, char *err, size_t errlen)
{
	if (len != 2)
		return fail(err, errlen, "EXIT frame of %zu bytes (must be 2)", len);
	if (p[0] > RUNNER_SIGNALED)
		return fail(err, errlen, "EXIT frame of kind %u (must be 0, exited, or 1, signaled)", p[0]);
	if (p[0] == RUNNER_SIGNALED && (p[1] == 0 || p[1] > 64))
		return fail(err, errlen, "EXIT frame with signal %u (must be 1 to 64)", p[1]);
	e->kind = p[0];
	e->code = p[1];
	return 0;
}

size_t runner_seed_time_encode(uint8_t *out, uint64_t sec, uint32_t nsec)
{
	put_le(out, sec, 8);
	put_le(out + 8, nsec, 4);
	return RUNNER_SEED_TIME_LEN;
}

int runner_seed_decode(const uint8_t *p, size_t len, struct runner_seed *s, char *err, size_t errlen)
{
	if (len < RUNNER_SEED_TIME_LEN || len > RUNNER_SEED_TIME_LEN + RUNNER_SEED_ENTROPY_MAX)
		return fail(err, errlen, "SEED frame of %zu bytes (must be %u to %u)", len, RUNNER_SEED_TIME_LEN,
			    RUNNER_SEED_TIME_LEN + RUNNER_SEED_ENTROPY_MAX);
	uint32_t nsec = (uint32_t)get_le(p + 8, 4);
	if (nsec >= 1000000000u)
		return fail(err, errlen, "SEED frame with %u nanoseconds (must be below 1000000000)", nsec);
	s->sec = get_le(p, 8);
	s->nsec = nsec;
	s->entropy = p + RUNNER_SEED_TIME_LEN;
	s->entropy_len = len - RUNNER_SEED_TIME_LEN;
	return 0;
}

size_t runner_file_hdr_encode(uint8_t *out, uint32_t mode, uint64_t size)
{
	put_le(out, mode, 4);
	put_le(out + 4, size, 8);
	return RUNNER_FILE_HDR_LEN;
}

int runner_file_decode(const uint8_t *p, size_t len, struct runner_file *f, char *err, size_t errlen)
{
	if (len < RUNNER_FILE_HDR_LEN)
		return fail(err, errlen, "FILE frame of %zu bytes (must be at least %u)", len, RUNNER_FILE_HDR_LEN + 1);
	uint32_t mode = (uint32_t)get_le(p, 4);
	if (mode & ~07777u)
		return fail(err, errlen, "FILE frame with mode %#o (bits outside 07777)", mode);
	if (runner_string_check(RF_FILE, p + RUNNER_FILE_HDR_LEN, len - RUNNER_FILE_HDR_LEN, err, errlen))
		return -1;
	f->mode = mode;
	f->size = get_le(p + 4, 8);
	f->path = (const char *)p + RUNNER_FILE_HDR_LEN;
	f->path_len = len - RUNNER_FILE_HDR_LEN;
	return 0;
}

int runner_string_check(uint8_t type, const uint8_t *p, size_t len, char *err, size_t errlen)
{
	const char *name = runner_type_name(type);
	if (type != RF_ARG && type != RF_ENV && type != RF_CWD && type != RF_FILE)
		return fail(err, errlen, "%s frame has no string payload", name);
	const uint8_t *nul = len ? memchr(p, 0, len) : NULL;
	if (nul)
		return fail(err, errlen, "%s frame with a NUL byte at offset %zu", name, (size_t)(nul - p));
	if (type == RF_ENV) {
		const uint8_t *eq = len ? memchr(p, '=', len) : NULL;
		if (!eq)
			return fail(err, errlen, "ENV frame without '=' (must be NAME=VALUE)");
		if (eq == p)
			return fail(err, errlen, "ENV frame with an empty name");
	}
	if ((type == RF_CWD || type == RF_FILE) && len == 0)
		return fail(err, errlen, "%s frame with an empty path", name);
	return 0;
}
