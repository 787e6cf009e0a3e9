#include "vmm/base/snap_format.h"

#include <endian.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef MINIVMM_VERSION
#define MINIVMM_VERSION "0"
#endif

/* CRC-32C (Castagnoli), bitwise: state files are a few hundred KiB, read
 * and written once per snapshot or restore. */
uint32_t snap_crc32c(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	crc = ~crc;
	while (len--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1)));
	}
	return ~crc;
}

/* ---- writer ---- */

static uint8_t *reserve(struct snap_writer *w, size_t n)
{
	if (w->err)
		return NULL;
	if (w->cap - w->len < n) {
		size_t cap = w->cap ? w->cap : 4096;
		while (cap - w->len < n) {
			if (cap > SNAP_MAX_PAYLOAD) {
				w->err = true;
				return NULL;
			}
			cap *= 2;
		}
		uint8_t *b = realloc(w->buf, cap);
		if (!b) {
			w->err = true;
			return NULL;
		}
		w->buf = b;
		w->cap = cap;
	}
	uint8_t *p = w->buf + w->len;
	w->len += n;
	return p;
}

void snap_put_bytes(struct snap_writer *w, const void *src, size_t len)
{
	uint8_t *p = reserve(w, len);
	if (p && len)
		memcpy(p, src, len);
}

void snap_put_u8(struct snap_writer *w, uint8_t v)
{
	snap_put_bytes(w, &v, 1);
}

void snap_put_u16(struct snap_writer *w, uint16_t v)
{
	v = htole16(v);
	snap_put_bytes(w, &v, 2);
}

void snap_put_u32(struct snap_writer *w, uint32_t v)
{
	v = htole32(v);
	snap_put_bytes(w, &v, 4);
}

void snap_put_u64(struct snap_writer *w, uint64_t v)
{
	v = htole64(v);
	snap_put_bytes(w, &v, 8);
}

size_t snap_begin(struct snap_writer *w, uint32_t tag)
{
	snap_put_u32(w, tag);
	size_t at = w->len;
	snap_put_u32(w, 0);
	return at;
}

void snap_end(struct snap_writer *w, size_t at)
{
	if (w->err)
		return;
	uint32_t len = htole32((uint32_t)(w->len - at - 4));
	memcpy(w->buf + at, &len, 4);
}

void snap_writer_free(struct snap_writer *w)
{
	free(w->buf);
	memset(w, 0, sizeof(*w));
}

static void put_le32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static void put_le64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

static uint32_t get_le32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return le32toh(v);
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return le64toh(v);
}

/* Header field offsets. */
enum { H_MAGIC = 0, H_FORMAT = 8, H_VERSION = 12, H_ARCH = 44, H_FP = 48, H_LEN = 56, H_PCRC = 64, H_HCRC = 68 };
_Static_assert(H_HCRC + 4 == SNAP_HEADER_SIZE, "header layout");

void snap_header_encode(uint8_t out[SNAP_HEADER_SIZE], uint32_t arch, uint64_t fingerprint, const uint8_t *payload,
			size_t payload_len)
{
	memset(out, 0, SNAP_HEADER_SIZE);
	memcpy(out + H_MAGIC, SNAP_MAGIC, 8);
	put_le32(out + H_FORMAT, SNAP_FORMAT_VERSION);
	strncpy((char *)out + H_VERSION, MINIVMM_VERSION, SNAP_VERSION_LEN);
	put_le32(out + H_ARCH, arch);
	put_le64(out + H_FP, fingerprint);
	put_le64(out + H_LEN, payload_len);
	put_le32(out + H_PCRC, snap_crc32c(0, payload, payload_len));
	put_le32(out + H_HCRC, snap_crc32c(0, out, H_HCRC));
}

static const char *arch_name(uint32_t arch)
{
	return arch == SNAP_ARCH_X86_64 ? "x86_64" : arch == SNAP_ARCH_ARM64 ? "arm64" : "unknown";
}

int snap_header_decode(const uint8_t *file, size_t len, uint32_t want_arch, struct snap_header *h, char *err,
		       size_t errlen)
{
	memset(h, 0, sizeof(*h));
	if (len < SNAP_HEADER_SIZE) {
		snprintf(err, errlen, "truncated: %zu bytes, shorter than the %u-byte header", len, SNAP_HEADER_SIZE);
		return -1;
	}
	if (memcmp(file + H_MAGIC, SNAP_MAGIC, 8)) {
		snprintf(err, errlen, "not a minivmm snapshot state file (bad magic)");
		return -1;
	}
	if (get_le32(file + H_HCRC) != snap_crc32c(0, file, H_HCRC)) {
		snprintf(err, errlen, "corrupted: the header's checksum does not match");
		return -1;
	}
	h->format_version = get_le32(file + H_FORMAT);
	memcpy(h->minivmm_version, file + H_VERSION, SNAP_VERSION_LEN);
	h->minivmm_version[SNAP_VERSION_LEN] = 0;
	for (char *c = h->minivmm_version; *c; c++)
		if (*c < 0x20 || *c > 0x7e)
			*c = '?';
	h->arch = get_le32(file + H_ARCH);
	h->cpu_fingerprint = get_le64(file + H_FP);
	h->payload_len = get_le64(file + H_LEN);
	h->payload_crc = get_le32(file + H_PCRC);
	if (h->format_version != SNAP_FORMAT_VERSION) {
		snprintf(err, errlen, "format version %u (written by minivmm %s); this minivmm %s reads version %u",
			 h->format_version, h->minivmm_version, MINIVMM_VERSION, SNAP_FORMAT_VERSION);
		return -1;
	}
	if (h->arch != want_arch) {
		snprintf(err, errlen, "a snapshot of an %s VM (architecture %u); this minivmm runs %s VMs",
			 arch_name(h->arch), h->arch, arch_name(want_arch));
		return -1;
	}
	if (h->payload_len != len - SNAP_HEADER_SIZE) {
		snprintf(err, errlen, "%s: the header says %llu bytes of state, the file has %zu",
			 h->payload_len > len - SNAP_HEADER_SIZE ? "truncated" : "corrupted",
			 (unsigned long long)h->payload_len, len - SNAP_HEADER_SIZE);
		return -1;
	}
	if (h->payload_crc != snap_crc32c(0, file + SNAP_HEADER_SIZE, len - SNAP_HEADER_SIZE)) {
		snprintf(err, errlen, "corrupted: the state's checksum does not match");
		return -1;
	}
	return 0;
}

/* ---- reader ---- */

void snap_reader_init(struct snap_reader *r, const uint8_t *p, size_t len, char *err, size_t errlen)
{
	memset(r, 0, sizeof(*r));
	r->p = p;
	r->len = len;
	r->err = err;
	r->errlen = errlen;
	r->where = "state";
	if (errlen)
		err[0] = 0;
}

bool snap_failed(const struct snap_reader *r)
{
	return r->off > r->len || (r->errlen && r->err[0]);
}

void snap_fail(struct snap_reader *r, const char *fmt, ...)
{
	if (r->errlen && !r->err[0]) {
		int n = snprintf(r->err, r->errlen, "%s: ", r->where);
		if (n > 0 && (size_t)n < r->errlen) {
			va_list ap;
			va_start(ap, fmt);
			vsnprintf(r->err + n, r->errlen - (size_t)n, fmt, ap);
			va_end(ap);
		}
	}
	r->off = r->len + 1;   /* every later get fails */
}

void snap_get_bytes(struct snap_reader *r, void *dst, size_t len)
{
	if (snap_failed(r) || r->len - r->off < len) {
		if (!snap_failed(r))
			snap_fail(r, "ends early (%zu bytes wanted, %zu left)", len, r->len - r->off);
		memset(dst, 0, len);
		return;
	}
	memcpy(dst, r->p + r->off, len);
	r->off += len;
}

uint8_t snap_get_u8(struct snap_reader *r)
{
	uint8_t v;
	snap_get_bytes(r, &v, 1);
	return v;
}

uint16_t snap_get_u16(struct snap_reader *r)
{
	uint16_t v;
	snap_get_bytes(r, &v, 2);
	return le16toh(v);
}

uint32_t snap_get_u32(struct snap_reader *r)
{
	uint32_t v;
	snap_get_bytes(r, &v, 4);
	return le32toh(v);
}

uint64_t snap_get_u64(struct snap_reader *r)
{
	uint64_t v;
	snap_get_bytes(r, &v, 8);
	return le64toh(v);
}

uint32_t snap_get_bounded(struct snap_reader *r, uint32_t max, const char *what)
{
	uint32_t v = snap_get_u32(r);
	if (!snap_failed(r) && v > max) {
		snap_fail(r, "%s %u is over its limit %u", what, v, max);
		return 0;
	}
	return v;
}

static void tag_text(uint32_t tag, char out[5])
{
	for (int i = 0; i < 4; i++) {
		char c = (char)(tag >> (8 * i));
		out[i] = c >= 0x20 && c <= 0x7e ? c : '?';
	}
	out[4] = 0;
}

int snap_section(struct snap_reader *r, uint32_t tag, const char *name, struct snap_reader *sub)
{
	uint32_t got = snap_get_u32(r);
	uint32_t len = snap_get_u32(r);
	memset(sub, 0, sizeof(*sub));
	sub->err = r->err;
	sub->errlen = r->errlen;
	sub->where = name;
	if (snap_failed(r)) {
		sub->off = 1;   /* failed, with len 0 */
		return -1;
	}
	if (got != tag) {
		char want[5], have[5];
		tag_text(tag, want);
		tag_text(got, have);
		snap_fail(r, "section '%s' expected (%s), found '%s'", want, name, have);
		sub->off = 1;
		return -1;
	}
	if (len > r->len - r->off) {
		snap_fail(r, "section %s says %u bytes, %zu are left", name, len, r->len - r->off);
		sub->off = 1;
		return -1;
	}
	sub->p = r->p + r->off;
	sub->len = len;
	r->off += len;
	return 0;
}

int snap_section_done(struct snap_reader *sub)
{
	if (!snap_failed(sub) && sub->off != sub->len)
		snap_fail(sub, "%zu bytes more than expected", sub->len - sub->off);
	return snap_failed(sub) ? -1 : 0;
}
