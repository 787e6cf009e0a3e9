/* arm64 Image header parsing and boot placement (arch/arm64/boot.c) with
 * good, hostile and compressed images. Pure functions: runs on any host. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "arch/arm64/boot.h"
#include "arch/arm64/layout.h"

static char err[512];

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* A header as Linux 5.x+ writes it: text_offset 0, LE, 4K pages. */
static uint8_t *make_image(size_t len, uint64_t text_offset, uint64_t image_size, uint64_t flags)
{
	uint8_t *img = calloc(1, len < 64 ? 64 : len);
	img[0] = 0x4d;   /* "MZ" of the EFI stub, as real Images have */
	img[1] = 0x5a;
	put64(img + 8, text_offset);
	put64(img + 16, image_size);
	put64(img + 24, flags);
	memcpy(img + 56, "ARM\x64", 4);
	return img;
}

Test(arm64_boot, good_image)
{
	uint8_t *img = make_image(0x10000, 0, 0x40000, 0xa);
	struct arm64_image k;
	cr_assert_eq(arm64_parse_image(img, 0x10000, &k, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(k.text_offset, 0);
	cr_assert_eq(k.image_size, 0x40000);
	cr_assert_eq(k.flags, 0xa);
	cr_assert_eq(k.file_size, 0x10000);
	/* an old-style text_offset of 512 KiB is fine too */
	put64(img + 8, 0x80000);
	cr_assert_eq(arm64_parse_image(img, 0x10000, &k, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(k.text_offset, 0x80000);
	free(img);
}

Test(arm64_boot, bad_magic_says_what_it_is)
{
	uint8_t *img = make_image(0x1000, 0, 0x1000, 0);
	struct arm64_image k;
	img[56] = 'X';
	cr_assert_eq(arm64_parse_image(img, 0x1000, &k, err, sizeof(err)), -1);
	cr_assert(strstr(err, "not an arm64 Linux Image"), "%s", err);
	cr_assert(strstr(err, "offset 56"), "%s", err);
	memcpy(img + 0x202, "HdrS", 4);
	cr_assert_eq(arm64_parse_image(img, 0x1000, &k, err, sizeof(err)), -1);
	cr_assert(strstr(err, "x86 bzImage"), "%s", err);
	memcpy(img, "\177ELF", 4);
	memset(img + 0x202, 0, 4);
	cr_assert_eq(arm64_parse_image(img, 0x1000, &k, err, sizeof(err)), -1);
	cr_assert(strstr(err, "ELF"), "%s", err);
	cr_assert_null(strchr(err, '\n'));
	free(img);
}

Test(arm64_boot, truncated)
{
	uint8_t *img = make_image(64, 0, 0x1000, 0);
	struct arm64_image k;
	for (size_t len = 0; len < 64; len++) {
		cr_assert_eq(arm64_parse_image(img, len, &k, err, sizeof(err)), -1, "%zu bytes", len);
		cr_assert(strstr(err, "truncated"), "%zu bytes: %s", len, err);
	}
	cr_assert_eq(arm64_parse_image(img, 64, &k, err, sizeof(err)), 0, "a bare header parses: %s", err);
	free(img);
}

Test(arm64_boot, header_rules)
{
	uint8_t *img = make_image(0x1000, 0, 0x1000, 0);
	struct arm64_image k;
	put64(img + 24, 1);   /* big-endian */
	cr_assert_eq(arm64_parse_image(img, 0x1000, &k, err, sizeof(err)), -1);
	cr_assert(strstr(err, "big-endian"), "%s", err);
	put64(img + 24, 0);
	put64(img + 16, 0);   /* pre-3.17 kernel */
	cr_assert_eq(arm64_parse_image(img, 0x1000, &k, err, sizeof(err)), -1);
	cr_assert(strstr(err, "image_size 0"), "%s", err);
	put64(img + 16, 0x1000);
	const uint64_t bad_offsets[] = { 0x800, 0x200000, 0x7ff001, ~0ull };
	for (unsigned i = 0; i < 4; i++) {
		put64(img + 8, bad_offsets[i]);
		cr_assert_eq(arm64_parse_image(img, 0x1000, &k, err, sizeof(err)), -1, "text_offset 0x%llx",
			     (unsigned long long)bad_offsets[i]);
		cr_assert(strstr(err, "text_offset"), "%s", err);
	}
	put64(img + 8, 0x1ff000);
	cr_assert_eq(arm64_parse_image(img, 0x1000, &k, err, sizeof(err)), 0, "largest valid text_offset: %s", err);
	free(img);
}

/* Bytes past image_size (a signature appended to a signed Image) are not
 * copied: the kernel owns only image_size bytes from its load address. */
Test(arm64_boot, file_longer_than_image_size)
{
	uint8_t *img = make_image(0x3000, 0, 0x2000, 0);
	struct arm64_image k;
	cr_assert_eq(arm64_parse_image(img, 0x3000, &k, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(k.file_size, 0x2000);
	free(img);
}

Test(arm64_boot, compressed_kernels_are_named)
{
	struct arm64_image k;
	uint8_t gz[64] = { 0x1f, 0x8b, 8, 0 };
	cr_assert_eq(arm64_parse_image(gz, sizeof(gz), &k, err, sizeof(err)), -1);
	cr_assert(strstr(err, "gzip"), "%s", err);
	cr_assert(strstr(err, "zcat"), "%s", err);
	cr_assert_eq(arm64_parse_image(gz, 2, &k, err, sizeof(err)), -1, "even when tiny");
	cr_assert(strstr(err, "gzip"), "%s", err);

	uint8_t zboot[128] = { 'M', 'Z', 0, 0, 'z', 'i', 'm', 'g' };
	zboot[8] = 0x00, zboot[9] = 0x10;                 /* payload offset 0x1000 */
	zboot[12] = 0x34, zboot[13] = 0x12, zboot[14] = 1; /* payload size 0x11234 */
	memcpy(zboot + 24, "gzip", 4);
	cr_assert_eq(arm64_parse_image(zboot, sizeof(zboot), &k, err, sizeof(err)), -1);
	cr_assert(strstr(err, "EFI zboot"), "%s", err);
	cr_assert(strstr(err, "gzip payload of 70196 bytes at offset 4096"), "%s", err);
	cr_assert(strstr(err, "extract-image.sh"), "%s", err);
	memcpy(zboot + 24, "\x01\x02zstd", 6);   /* junk name: not printed raw */
	cr_assert_eq(arm64_parse_image(zboot, sizeof(zboot), &k, err, sizeof(err)), -1);
	cr_assert(strstr(err, "unknown payload"), "%s", err);
}

static struct arm64_image image(uint64_t text_offset, uint64_t image_size)
{
	return (struct arm64_image){ .text_offset = text_offset, .image_size = image_size, .file_size = 4096 };
}

Test(arm64_boot, plan_places_kernel_initrd_fdt)
{
	struct arm64_image k = image(0, 40ull << 20);
	struct arm64_boot_plan p;
	uint64_t ram = 512ull << 20, end = ARM64_RAM_BASE + ram;
	cr_assert_eq(arm64_plan_boot(&k, ARM64_RAM_BASE, ram, 30ull << 20, &p, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(p.kernel_gpa, ARM64_RAM_BASE);
	cr_assert_eq(p.kernel_end, ARM64_RAM_BASE + (40ull << 20));
	cr_assert_eq(p.fdt_gpa, end - ARM64_FDT_MAX_SIZE, "last 2 MiB block");
	cr_assert_eq(p.fdt_gpa % ARM64_FDT_MAX_SIZE, 0);
	cr_assert_eq(p.initrd_gpa % 4096, 0);
	cr_assert_geq(p.initrd_gpa, p.kernel_end);
	cr_assert_leq(p.initrd_gpa + (30ull << 20), p.fdt_gpa);

	k = image(0x80000, 40ull << 20);
	cr_assert_eq(arm64_plan_boot(&k, ARM64_RAM_BASE, ram, 0, &p, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(p.kernel_gpa, ARM64_RAM_BASE + 0x80000, "text_offset above the 2 MiB base");
	cr_assert_eq(p.initrd_gpa, 0);

	/* RAM that is not a whole number of 2 MiB blocks: fdt in the last whole one */
	cr_assert_eq(arm64_plan_boot(&k, ARM64_RAM_BASE, 17ull << 20, 0, &p, err, sizeof(err)), -1,
		     "40 MiB kernel in 17 MiB");
	k = image(0, 1 << 20);
	cr_assert_eq(arm64_plan_boot(&k, ARM64_RAM_BASE, 17ull << 20, 0, &p, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(p.fdt_gpa, ARM64_RAM_BASE + (14ull << 20));
}

Test(arm64_boot, plan_refuses_what_does_not_fit)
{
	struct arm64_boot_plan p;
	struct arm64_image k = image(0, ~0ull - 0x1000);   /* would wrap around */
	cr_assert_eq(arm64_plan_boot(&k, ARM64_RAM_BASE, 512ull << 20, 0, &p, err, sizeof(err)), -1);
	cr_assert(strstr(err, "image_size"), "%s", err);
	k = image(0, 511ull << 20);   /* fits RAM, not RAM minus the fdt block */
	cr_assert_eq(arm64_plan_boot(&k, ARM64_RAM_BASE, 512ull << 20, 0, &p, err, sizeof(err)), -1);
	cr_assert(strstr(err, "512 MiB"), "%s", err);
	k = image(0, 510ull << 20);
	cr_assert_eq(arm64_plan_boot(&k, ARM64_RAM_BASE, 512ull << 20, 0, &p, err, sizeof(err)), 0, "exactly fits: %s",
		     err);
	cr_assert_eq(arm64_plan_boot(&k, ARM64_RAM_BASE, 512ull << 20, 1, &p, err, sizeof(err)), -1,
		     "no byte left for an initrd");
	cr_assert(strstr(err, "initrd"), "%s", err);
	k = image(0, 40ull << 20);
	cr_assert_eq(arm64_plan_boot(&k, ARM64_RAM_BASE, 512ull << 20, 500ull << 20, &p, err, sizeof(err)), -1);
	cr_assert(strstr(err, "initrd of 500 MiB"), "%s", err);
	cr_assert_null(strchr(err, '\n'));
}

/* With more than 32 GiB of RAM the initrd stays in the 32 GiB window of
 * the kernel (booting.rst), not at the top of RAM. */
Test(arm64_boot, plan_initrd_in_the_kernel_window)
{
	struct arm64_boot_plan p;
	struct arm64_image k = image(0, 40ull << 20);
	uint64_t ram = 64ull << 30;
	cr_assert_eq(arm64_plan_boot(&k, ARM64_RAM_BASE, ram, 100ull << 20, &p, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(p.fdt_gpa, ARM64_RAM_BASE + ram - ARM64_FDT_MAX_SIZE);
	cr_assert_leq(p.initrd_gpa + (100ull << 20), ARM64_RAM_BASE + ARM64_INITRD_WINDOW);
	cr_assert_geq(p.initrd_gpa, ARM64_RAM_BASE + ARM64_INITRD_WINDOW - (101ull << 20));
}
