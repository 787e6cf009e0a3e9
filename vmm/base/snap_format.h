/* The snapshot state file's format, without the VM: a header, then a
 * payload of nested sections, each component writing and reading its own.
 *
 * Header (all integers little-endian):
 *   magic "MVMMSNAP", u32 format version, char[32] minivmm version (NUL
 *   padded), u32 architecture, u64 CPU fingerprint, u64 payload length,
 *   u32 CRC-32C of the payload, u32 CRC-32C of the header before it.
 * Payload: sections, each u32 tag, u32 length, then length bytes. Sections
 * come in a fixed order, so a reader asks for the tag it expects next.
 *
 * The reader is hostile-input safe: every get is bounds-checked, a short or
 * wrong read sets r->err (the first message wins) and returns zeros, so
 * callers check once at the end of a section. No allocation, no recursion
 * limit needed (sections nest only as deep as the code that reads them). */
#ifndef MINIVMM_SNAP_FORMAT_H
#define MINIVMM_SNAP_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SNAP_MAGIC "MVMMSNAP"
#define SNAP_FORMAT_VERSION 1u
#define SNAP_HEADER_SIZE 72u
#define SNAP_VERSION_LEN 32u
/* The largest state file read: 64 vCPUs of ~16 KiB and the devices fit well. */
#define SNAP_MAX_PAYLOAD (16u << 20)

enum snap_arch { SNAP_ARCH_X86_64 = 1, SNAP_ARCH_ARM64 = 2 };

/* Section tags: four characters, readable in a hex dump. */
#define SNAP_TAG(a, b, c, d) ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)

struct snap_header {
	uint32_t format_version;
	char minivmm_version[SNAP_VERSION_LEN + 1];
	uint32_t arch;
	uint64_t cpu_fingerprint;
	uint64_t payload_len;
	uint32_t payload_crc;
};

uint32_t snap_crc32c(uint32_t crc, const void *buf, size_t len);

/* ---- writing: a growing buffer; an allocation failure sticks in .err ---- */
struct snap_writer {
	uint8_t *buf;
	size_t len, cap;
	bool err;
};

void snap_put_u8(struct snap_writer *w, uint8_t v);
void snap_put_u16(struct snap_writer *w, uint16_t v);
void snap_put_u32(struct snap_writer *w, uint32_t v);
void snap_put_u64(struct snap_writer *w, uint64_t v);
void snap_put_bytes(struct snap_writer *w, const void *p, size_t len);
/* Opens a section; returns where its length goes, for snap_end. */
size_t snap_begin(struct snap_writer *w, uint32_t tag);
void snap_end(struct snap_writer *w, size_t at);
void snap_writer_free(struct snap_writer *w);
/* Fills the SNAP_HEADER_SIZE bytes of out for this payload. */
void snap_header_encode(uint8_t out[SNAP_HEADER_SIZE], uint32_t arch, uint64_t fingerprint, const uint8_t *payload,
			size_t payload_len);

/* ---- reading ---- */
struct snap_reader {
	const uint8_t *p;
	size_t len, off;
	char *err;          /* shared by nested readers: the first problem */
	size_t errlen;
	const char *where;  /* the section being read, for the message */
};

/* Checks the header of a whole state file (magic, both checksums,
 * version, architecture, payload length against len) and fills h.
 * Returns 0, or -1 with one line in err saying what is wrong. */
int snap_header_decode(const uint8_t *file, size_t len, uint32_t want_arch, struct snap_header *h, char *err,
		       size_t errlen);
/* A reader over the payload of a file snap_header_decode accepted. */
void snap_reader_init(struct snap_reader *r, const uint8_t *p, size_t len, char *err, size_t errlen);

bool snap_failed(const struct snap_reader *r);
/* Sets the error (the first one wins) and makes every later get fail. */
void snap_fail(struct snap_reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
uint8_t snap_get_u8(struct snap_reader *r);
uint16_t snap_get_u16(struct snap_reader *r);
uint32_t snap_get_u32(struct snap_reader *r);
uint64_t snap_get_u64(struct snap_reader *r);
/* Copies exactly len bytes (zeros on failure). */
void snap_get_bytes(struct snap_reader *r, void *dst, size_t len);
/* A u32 that must be at most max; what names it in the message. */
uint32_t snap_get_bounded(struct snap_reader *r, uint32_t max, const char *what);
/* The next section, which must have this tag; *sub reads its body. */
int snap_section(struct snap_reader *r, uint32_t tag, const char *name, struct snap_reader *sub);
/* A section's reader must be used up: extra bytes are corruption too. */
int snap_section_done(struct snap_reader *sub);

#endif
