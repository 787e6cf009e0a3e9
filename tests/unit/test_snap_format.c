/* The snapshot state file's format: round trip of every field type and of
 * nested sections, and every corruption refused (any flipped byte, any
 * truncation, another version or architecture, a wrong section, a section
 * longer than its parent, leftovers). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/base/snap_format.h"

#define TAG_A SNAP_TAG('A', 'A', 'A', 'A')
#define TAG_B SNAP_TAG('B', 'B', 'B', 'B')

/* A payload: section A { u8, u16, u32, u64, bytes, section B { u32 } }. */
static struct snap_writer sample(void)
{
	struct snap_writer w = { 0 };
	size_t a = snap_begin(&w, TAG_A);
	snap_put_u8(&w, 0x12);
	snap_put_u16(&w, 0x3456);
	snap_put_u32(&w, 0x789abcde);
	snap_put_u64(&w, 0x0123456789abcdefull);
	snap_put_bytes(&w, "hello", 5);
	size_t b = snap_begin(&w, TAG_B);
	snap_put_u32(&w, 7);
	snap_end(&w, b);
	snap_end(&w, a);
	cr_assert_not(w.err);
	return w;
}

/* Header + payload, as a state file. */
static uint8_t *file_of(const struct snap_writer *w, size_t *len)
{
	*len = SNAP_HEADER_SIZE + w->len;
	uint8_t *f = malloc(*len);
	snap_header_encode(f, SNAP_ARCH_X86_64, 0xfeed, w->buf, w->len);
	memcpy(f + SNAP_HEADER_SIZE, w->buf, w->len);
	return f;
}

Test(snap_format, round_trip)
{
	struct snap_writer w = sample();
	size_t len;
	uint8_t *f = file_of(&w, &len);
	struct snap_header h;
	char err[256];
	cr_assert_eq(snap_header_decode(f, len, SNAP_ARCH_X86_64, &h, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(h.format_version, SNAP_FORMAT_VERSION);
	cr_assert_eq(h.cpu_fingerprint, 0xfeed);
	cr_assert_str_eq(h.minivmm_version, MINIVMM_VERSION);

	struct snap_reader r, a, b;
	snap_reader_init(&r, f + SNAP_HEADER_SIZE, len - SNAP_HEADER_SIZE, err, sizeof(err));
	cr_assert_eq(snap_section(&r, TAG_A, "a", &a), 0);
	cr_assert_eq(snap_get_u8(&a), 0x12);
	cr_assert_eq(snap_get_u16(&a), 0x3456);
	cr_assert_eq(snap_get_u32(&a), 0x789abcde);
	cr_assert_eq(snap_get_u64(&a), 0x0123456789abcdefull);
	char hello[5];
	snap_get_bytes(&a, hello, 5);
	cr_assert_eq(memcmp(hello, "hello", 5), 0);
	cr_assert_eq(snap_section(&a, TAG_B, "b", &b), 0);
	cr_assert_eq(snap_get_bounded(&b, 7, "seven"), 7);
	cr_assert_eq(snap_section_done(&b), 0);
	cr_assert_eq(snap_section_done(&a), 0);
	cr_assert_eq(r.off, r.len);
	cr_assert_eq(err[0], 0);
	free(f);
	snap_writer_free(&w);
}

Test(snap_format, every_flipped_byte_is_refused)
{
	struct snap_writer w = sample();
	size_t len;
	uint8_t *f = file_of(&w, &len);
	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			f[i] ^= (uint8_t)(1u << bit);
			struct snap_header h;
			char err[256] = "";
			cr_assert_eq(snap_header_decode(f, len, SNAP_ARCH_X86_64, &h, err, sizeof(err)), -1,
				     "byte %zu bit %d flipped, accepted", i, bit);
			cr_assert(err[0]);
			f[i] ^= (uint8_t)(1u << bit);
		}
	}
	free(f);
	snap_writer_free(&w);
}

Test(snap_format, every_truncation_is_refused)
{
	struct snap_writer w = sample();
	size_t len;
	uint8_t *f = file_of(&w, &len);
	for (size_t n = 0; n < len; n++) {
		struct snap_header h;
		char err[256] = "";
		cr_assert_eq(snap_header_decode(f, n, SNAP_ARCH_X86_64, &h, err, sizeof(err)), -1, "%zu bytes", n);
		cr_assert(strstr(err, "truncated") || strstr(err, "corrupted"), "%zu: %s", n, err);
	}
	free(f);
	snap_writer_free(&w);
}

Test(snap_format, another_architecture_or_version)
{
	struct snap_writer w = sample();
	size_t len;
	uint8_t *f = file_of(&w, &len);
	struct snap_header h;
	char err[256];
	cr_assert_eq(snap_header_decode(f, len, SNAP_ARCH_ARM64, &h, err, sizeof(err)), -1);
	cr_assert(strstr(err, "a snapshot of an x86_64 VM"), "%s", err);
	/* version 2 with the header's checksum made right again */
	f[8] = 2;
	uint32_t crc = snap_crc32c(0, f, 68);
	memcpy(f + 68, &crc, 4);
	cr_assert_eq(snap_header_decode(f, len, SNAP_ARCH_X86_64, &h, err, sizeof(err)), -1);
	cr_assert(strstr(err, "format version 2"), "%s", err);
	free(f);
	snap_writer_free(&w);
}

Test(snap_format, crc32c_known_value)
{
	/* The standard check value of CRC-32C. */
	cr_assert_eq(snap_crc32c(0, "123456789", 9), 0xe3069283u);
}

Test(snap_format, reader_refuses_what_does_not_fit)
{
	struct snap_writer w = sample();
	char err[256];
	struct snap_reader r, a, b;

	/* the wrong tag */
	snap_reader_init(&r, w.buf, w.len, err, sizeof(err));
	cr_assert_eq(snap_section(&r, TAG_B, "b", &b), -1);
	cr_assert(strstr(err, "section 'BBBB' expected (b), found 'AAAA'"), "%s", err);
	cr_assert(snap_failed(&r));
	cr_assert_eq(snap_get_u32(&r), 0, "a failed reader gives zeros");

	/* a section longer than what is left */
	uint8_t *copy = malloc(w.len);
	memcpy(copy, w.buf, w.len);
	uint32_t huge = 0x7fffffff;
	memcpy(copy + 4, &huge, 4);
	snap_reader_init(&r, copy, w.len, err, sizeof(err));
	cr_assert_eq(snap_section(&r, TAG_A, "a", &a), -1);
	cr_assert(strstr(err, "says 2147483647 bytes"), "%s", err);

	/* reading past a section's end, a bound, and leftovers */
	snap_reader_init(&r, w.buf, w.len, err, sizeof(err));
	cr_assert_eq(snap_section(&r, TAG_A, "a", &a), 0);
	snap_get_u8(&a);
	cr_assert_eq(snap_get_bounded(&a, 0x10, "count"), 0);
	cr_assert(strstr(err, "a: count 3168678998 is over its limit 16"), "%s", err);

	snap_reader_init(&r, w.buf, w.len, err, sizeof(err));
	cr_assert_eq(snap_section(&r, TAG_A, "a", &a), 0);
	snap_get_u8(&a);
	cr_assert_eq(snap_section_done(&a), -1);
	cr_assert(strstr(err, "bytes more than expected"), "%s", err);

	snap_reader_init(&r, w.buf, 10, err, sizeof(err));
	cr_assert_eq(snap_section(&r, TAG_A, "a", &a), -1);
	uint8_t big[64];
	snap_reader_init(&r, w.buf, 8, err, sizeof(err));
	snap_get_bytes(&r, big, sizeof(big));
	cr_assert(strstr(err, "ends early (64 bytes wanted, 8 left)"), "%s", err);
	free(copy);
	snap_writer_free(&w);
}
