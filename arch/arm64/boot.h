/* arm64 Linux boot protocol (Documentation/arch/arm64/booting.rst): the
 * Image header, and where the Image, initrd and device tree go in RAM.
 * Pure functions (no KVM, no I/O) so they are unit-tested on any host. */
#ifndef MINIVMM_ARM64_BOOT_H
#define MINIVMM_ARM64_BOOT_H

#include <stddef.h>
#include <stdint.h>

#define ARM64_IMAGE_MAGIC 0x644d5241u   /* "ARM\x64", little endian, at offset 56 */
#define ARM64_IMAGE_HEADER_SIZE 64
#define ARM64_IMAGE_FLAG_BE 0x1ull      /* flags bit 0: kernel is big-endian */

struct arm64_image {
	uint64_t text_offset;    /* load offset above a 2 MiB-aligned base */
	uint64_t image_size;     /* bytes from the load address the kernel owns (bss included) */
	uint64_t flags;
	size_t file_size;        /* bytes to copy */
};

/* Checks img as an uncompressed, little-endian arm64 Linux Image. On error
 * err gets one line (no file name: the caller adds it) and -1 is returned.
 * A gzip file or an EFI zboot image (what distributions ship as vmlinuz)
 * is recognised and refused with the command that unpacks it. */
int arm64_parse_image(const uint8_t *img, size_t len, struct arm64_image *out, char *err, size_t errlen);

struct arm64_boot_plan {
	uint64_t kernel_gpa;     /* load address = entry point */
	uint64_t kernel_end;     /* kernel_gpa + image_size */
	uint64_t initrd_gpa;     /* 0 when there is no initrd */
	uint64_t fdt_gpa;        /* ARM64_FDT_MAX_SIZE bytes reserved here */
};

/* Places the kernel text_offset above the first 2 MiB boundary of RAM, the
 * device tree in the last 2 MiB block of RAM, and the initrd (if
 * initrd_size) page-aligned just below the device tree, inside the 32 GiB
 * window the kernel sits in. ram_base must be 2 MiB aligned. Fails with a
 * line saying what does not fit. */
int arm64_plan_boot(const struct arm64_image *k, uint64_t ram_base, uint64_t ram_size, uint64_t initrd_size,
		    struct arm64_boot_plan *out, char *err, size_t errlen);

#endif
