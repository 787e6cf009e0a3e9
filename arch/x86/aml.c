#include "arch/x86/aml.h"

#include <string.h>

#define AML_ZERO 0x00
#define AML_ONE 0x01
#define AML_NAME_OP 0x08
#define AML_BYTE_PREFIX 0x0a
#define AML_WORD_PREFIX 0x0b
#define AML_DWORD_PREFIX 0x0c
#define AML_STRING_PREFIX 0x0d
#define AML_QWORD_PREFIX 0x0e
#define AML_SCOPE_OP 0x10
#define AML_BUFFER_OP 0x11
#define AML_PACKAGE_OP 0x12
#define AML_EXT_OP 0x5b
#define AML_DEVICE_OP 0x82
#define AML_PKGLEN_RESERVED 4

void aml_init(struct aml *a, uint8_t *buf, size_t cap)
{
	a->buf = buf;
	a->len = 0;
	a->cap = cap;
	a->overflow = false;
}

static void put(struct aml *a, const void *p, size_t n)
{
	if (a->overflow || n > a->cap - a->len) {
		a->overflow = true;
		return;
	}
	memcpy(a->buf + a->len, p, n);
	a->len += n;
}

static void put8(struct aml *a, uint8_t v)
{
	put(a, &v, 1);
}

void aml_integer(struct aml *a, uint64_t v)
{
	if (v == 0) {
		put8(a, AML_ZERO);
	} else if (v == 1) {
		put8(a, AML_ONE);
	} else if (v <= 0xff) {
		put8(a, AML_BYTE_PREFIX);
		put8(a, (uint8_t)v);
	} else if (v <= 0xffff) {
		uint16_t w = (uint16_t)v;
		put8(a, AML_WORD_PREFIX);
		put(a, &w, 2);
	} else if (v <= 0xffffffff) {
		uint32_t d = (uint32_t)v;
		put8(a, AML_DWORD_PREFIX);
		put(a, &d, 4);
	} else {
		put8(a, AML_QWORD_PREFIX);
		put(a, &v, 8);
	}
}

void aml_string(struct aml *a, const char *s)
{
	put8(a, AML_STRING_PREFIX);
	put(a, s, strlen(s) + 1);
}

static uint8_t hexval(char c)
{
	return (uint8_t)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
}

/* EISA IDs: three letters packed 5 bits each, then four hex digits, stored
 * big-endian inside a DWord. */
void aml_eisaid(struct aml *a, const char *id)
{
	uint16_t letters = (uint16_t)(((id[0] - '@') & 0x1f) << 10 | ((id[1] - '@') & 0x1f) << 5 |
				      ((id[2] - '@') & 0x1f));
	uint8_t b[4] = {
		(uint8_t)(letters >> 8), (uint8_t)letters,
		(uint8_t)(hexval(id[3]) << 4 | hexval(id[4])), (uint8_t)(hexval(id[5]) << 4 | hexval(id[6])),
	};
	put8(a, AML_DWORD_PREFIX);
	put(a, b, 4);
}

/* NameString: optional root prefix, then 4-character segments padded with '_'. */
static void name_string(struct aml *a, const char *name)
{
	if (*name == '\\')
		put8(a, *name++);
	char seg[4] = { '_', '_', '_', '_' };
	for (int i = 0; i < 4 && name[i]; i++)
		seg[i] = name[i];
	put(a, seg, 4);
}

void aml_name(struct aml *a, const char *name)
{
	put8(a, AML_NAME_OP);
	name_string(a, name);
}

/* A package's length is known only at its end: reserve the longest PkgLength
 * encoding now and shrink it in aml_close. */
static size_t open_pkglen(struct aml *a)
{
	size_t mark = a->len;
	static const uint8_t zeros[AML_PKGLEN_RESERVED];
	put(a, zeros, sizeof(zeros));
	return mark;
}

void aml_close(struct aml *a, size_t mark)
{
	if (a->overflow)
		return;
	size_t body = a->len - mark - AML_PKGLEN_RESERVED;
	unsigned n = body + 1 < 0x40 ? 1 : body + 2 < 0x1000 ? 2 : body + 3 < 0x100000 ? 3 : 4;
	size_t total = body + n;
	uint8_t enc[4];
	if (n == 1) {
		enc[0] = (uint8_t)total;
	} else {
		enc[0] = (uint8_t)(((n - 1) << 6) | (total & 0xf));
		for (unsigned i = 1; i < n; i++)
			enc[i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
	}
	memmove(a->buf + mark + n, a->buf + mark + AML_PKGLEN_RESERVED, body);
	memcpy(a->buf + mark, enc, n);
	a->len = mark + n + body;
}

size_t aml_package_open(struct aml *a, uint8_t n_elements)
{
	put8(a, AML_PACKAGE_OP);
	size_t mark = open_pkglen(a);
	put8(a, n_elements);
	return mark;
}

size_t aml_scope_open(struct aml *a, const char *name)
{
	put8(a, AML_SCOPE_OP);
	size_t mark = open_pkglen(a);
	name_string(a, name);
	return mark;
}

size_t aml_device_open(struct aml *a, const char *name)
{
	put8(a, AML_EXT_OP);
	put8(a, AML_DEVICE_OP);
	size_t mark = open_pkglen(a);
	name_string(a, name);
	return mark;
}

static void res_put(struct aml_res *r, const uint8_t *p, size_t n)
{
	if (r->overflow || n > sizeof(r->b) - r->len) {
		r->overflow = true;
		return;
	}
	memcpy(r->b + r->len, p, n);
	r->len += n;
}

void aml_res_io(struct aml_res *r, uint16_t port, uint8_t len)
{
	const uint8_t d[8] = { 0x47, 0x01, (uint8_t)port, (uint8_t)(port >> 8),
			       (uint8_t)port, (uint8_t)(port >> 8), 0x01, len };
	res_put(r, d, sizeof(d));
}

void aml_res_irq(struct aml_res *r, unsigned irq)
{
	uint16_t mask = (uint16_t)(1u << irq);
	const uint8_t d[3] = { 0x22, (uint8_t)mask, (uint8_t)(mask >> 8) };
	res_put(r, d, sizeof(d));
}

void aml_res_mem32(struct aml_res *r, uint32_t base, uint32_t len)
{
	uint8_t d[12] = { 0x86, 9, 0, 0x01 /* read-write */ };
	memcpy(d + 4, &base, 4);
	memcpy(d + 8, &len, 4);
	res_put(r, d, sizeof(d));
}

void aml_res_ext_irq(struct aml_res *r, uint32_t gsi, bool level)
{
	/* consumer, edge/level, active high, exclusive; one interrupt */
	uint8_t d[9] = { 0x89, 6, 0, (uint8_t)(0x01 | (level ? 0 : 0x02)), 1 };
	memcpy(d + 5, &gsi, 4);
	res_put(r, d, sizeof(d));
}

void aml_resource_template(struct aml *a, const struct aml_res *r)
{
	if (r->overflow) {
		a->overflow = true;
		return;
	}
	put8(a, AML_BUFFER_OP);
	size_t mark = open_pkglen(a);
	aml_integer(a, r->len + 2);
	put(a, r->b, r->len);
	const uint8_t end[2] = { 0x79, 0x00 };   /* end tag, checksum 0 = "ignore" */
	put(a, end, 2);
	aml_close(a, mark);
}

/* Word Address Space Descriptor (ACPI 6.4, 6.4.3.5.3) of a host bridge
 * window: ResourceProducer, MinFixed, MaxFixed, PosDecode; granularity and
 * translation 0. type: 1 I/O, 2 bus number. */
static void res_word_space(struct aml_res *r, uint8_t type, uint8_t type_flags, uint16_t min, uint16_t max)
{
	uint16_t len = (uint16_t)(max - min + 1);
	uint8_t d[16] = { 0x88, 13, 0, type, 0x0c, type_flags };
	memcpy(d + 8, &min, 2);
	memcpy(d + 10, &max, 2);
	memcpy(d + 14, &len, 2);
	res_put(r, d, sizeof(d));
}

void aml_res_word_bus(struct aml_res *r, uint16_t min, uint16_t max)
{
	res_word_space(r, 2, 0, min, max);
}

void aml_res_word_io(struct aml_res *r, uint16_t min, uint16_t max)
{
	res_word_space(r, 1, 0x03 /* EntireRange */, min, max);
}

/* DWord Address Space Descriptor (6.4.3.5.2), memory: ResourceProducer,
 * PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite. */
void aml_res_dword_mem(struct aml_res *r, uint32_t min, uint32_t max)
{
	uint32_t len = max - min + 1;
	uint8_t d[26] = { 0x87, 23, 0, 0, 0x0c, 0x01 };
	memcpy(d + 10, &min, 4);
	memcpy(d + 14, &max, 4);
	memcpy(d + 22, &len, 4);
	res_put(r, d, sizeof(d));
}
