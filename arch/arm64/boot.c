#include "arch/arm64/boot.h"

#include <string.h>

#include "arch/arm64/layout.h"
#include "vmm/base/log.h"

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* What distributions ship as vmlinuz is compressed: say how to unpack it
 * instead of "bad magic". Returns -1 with err set when img is one of those. */
static int refuse_compressed(const uint8_t *img, size_t len, char *err, size_t errlen)
{
	if (len >= 2 && img[0] == 0x1f && img[1] == 0x8b)
		return err_set(err, errlen, "gzip-compressed kernel; minivmm boots an uncompressed arm64 Image: "
				   "unpack it with 'zcat' (or arch/arm64/extract-image.sh)");
	/* EFI zboot (Linux 6.1+, CONFIG_EFI_ZBOOT): "MZ", "zimg", payload
	 * offset and size, compression name at 24. */
	if (len >= 32 && img[0] == 'M' && img[1] == 'Z' && memcmp(img + 4, "zimg", 4) == 0) {
		char comp[9] = { 0 };
		for (unsigned i = 0; i < 8 && img[24 + i] >= 0x21 && img[24 + i] <= 0x7e; i++)
			comp[i] = (char)img[24 + i];
		return err_set(err, errlen, "EFI zboot image (%s payload of %u bytes at offset %u); minivmm boots "
				   "the uncompressed arm64 Image inside: extract it with arch/arm64/extract-image.sh",
			       comp[0] ? comp : "unknown", le32(img + 12), le32(img + 8));
	}
	return 0;
}

int arm64_parse_image(const uint8_t *img, size_t len, struct arm64_image *out, char *err, size_t errlen)
{
	if (refuse_compressed(img, len, err, errlen))
		return -1;
	if (len < ARM64_IMAGE_HEADER_SIZE)
		return err_set(err, errlen, "truncated: %zu bytes, less than the %d-byte arm64 Image header", len,
			       ARM64_IMAGE_HEADER_SIZE);
	if (le32(img + 56) != ARM64_IMAGE_MAGIC) {
		const char *hint = "";
		if (len > 0x206 && memcmp(img + 0x202, "HdrS", 4) == 0)
			hint = " (it is an x86 bzImage)";
		else if (memcmp(img, "\177ELF", 4) == 0)
			hint = " (it is an ELF file; arm64 boots the Image, not vmlinux)";
		return err_set(err, errlen, "not an arm64 Linux Image: no \"ARM\\x64\" magic at offset 56%s", hint);
	}
	uint64_t text_offset = le64(img + 8), image_size = le64(img + 16), flags = le64(img + 24);
	if (flags & ARM64_IMAGE_FLAG_BE)
		return err_set(err, errlen, "big-endian arm64 kernel; minivmm boots little-endian ones");
	if (image_size == 0)
		return err_set(err, errlen, "Image header has image_size 0 (a kernel older than 3.17); "
				   "minivmm needs the size the kernel declares");
	/* The kernel itself required these (head.S, before text_offset became 0). */
	if (text_offset % 4096 || text_offset >= ARM64_KERNEL_ALIGN)
		return err_set(err, errlen, "Image header has text_offset 0x%llx; it must be 4 KiB aligned and "
				   "below 2 MiB", (unsigned long long)text_offset);
	out->text_offset = text_offset;
	out->image_size = image_size;
	out->flags = flags;
	/* Bytes past image_size (e.g. a PE signature appended to a signed
	 * Image) are not part of what the kernel occupies: EFI would not load
	 * them either. */
	out->file_size = (uint64_t)len > image_size ? (size_t)image_size : len;
	return 0;
}

int arm64_plan_boot(const struct arm64_image *k, uint64_t ram_base, uint64_t ram_size, uint64_t initrd_size,
		    struct arm64_boot_plan *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	uint64_t ram_end = ram_base + ram_size;
	if (ram_base % ARM64_KERNEL_ALIGN || ram_end < ram_base || ram_size < 2 * ARM64_FDT_MAX_SIZE)
		return err_set(err, errlen, "internal: bad RAM range 0x%llx+0x%llx", (unsigned long long)ram_base,
			       (unsigned long long)ram_size);
	out->fdt_gpa = (ram_end & ~(ARM64_FDT_MAX_SIZE - 1)) - ARM64_FDT_MAX_SIZE;
	out->kernel_gpa = ram_base + k->text_offset;
	if (out->fdt_gpa <= out->kernel_gpa || k->image_size > out->fdt_gpa - out->kernel_gpa)
		return err_set(err, errlen, "kernel needs %llu MiB (its image_size) and the device tree 2 MiB: "
				   "more than %llu MiB of guest memory", (unsigned long long)(k->image_size >> 20),
			       (unsigned long long)(ram_size >> 20));
	out->kernel_end = out->kernel_gpa + k->image_size;
	if (!initrd_size)
		return 0;

	uint64_t top = out->fdt_gpa;
	uint64_t window_end = (out->kernel_gpa & ~((1ull << 30) - 1)) + ARM64_INITRD_WINDOW;
	if (window_end < top)
		top = window_end;
	uint64_t bottom = (out->kernel_end + 4095) & ~4095ull;
	if (bottom >= top || initrd_size > top - bottom)
		return err_set(err, errlen, "initrd of %llu MiB does not fit in guest memory between the kernel and "
				   "the device tree (%llu MiB free)", (unsigned long long)(initrd_size >> 20),
			       (unsigned long long)(bottom < top ? (top - bottom) >> 20 : 0));
	out->initrd_gpa = (top - initrd_size) & ~4095ull;
	return 0;
}
