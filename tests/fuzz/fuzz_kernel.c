/* libFuzzer target for the x86 kernel image probe and loader
 * (arch/x86/boot.c): the input is a kernel file a user handed to --kernel,
 * bzImage or ELF, plus the guest's RAM size and an initrd size. It runs
 * what arch_load_kernel runs, on a fake guest RAM: probe, load, place the
 * initrd, write boot_params and the page tables. Checked: a refusal comes
 * with exactly one non-empty line of message; a loaded bzImage's declared
 * code is in guest RAM at 1 MiB byte for byte, below kernel_end; an ELF entry point lies in guest RAM;
 * the initrd lies wholly in RAM, above the kernel, below initrd_addr_max.
 * ASan/UBSan catch reads past the image or writes past guest RAM.
 * Build and run: tests/fuzz/run.sh.
 *
 * Input layout (little-endian), missing bytes read as zero:
 *   0   u8   guest RAM = (b % 32 + 1) MiB   (the loader needs 1 MiB + the kernel)
 *   1   u8   initrd size = u24 at 1..3, in 256-byte units (up to 4 GiB)
 *   4   ...  the kernel image
 * FUZZ_KERNEL_WRITE_SEEDS=DIR writes seed inputs there and exits: a small
 * valid bzImage and ELF, and header variants of each.
 */
#include <elf.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/boot.h"
#include "arch/x86/layout.h"
#include "vmm/base/guest_mem.h"
#include "fuzz_check.h"

#define HDR 4
#define RAM_MAX (32u << 20)

static uint8_t *ram;

/* One line, non-empty, NUL-terminated inside the buffer. */
static void check_err(const char *err, size_t size)
{
	size_t n = strnlen(err, size);
	CHECK(n > 0 && n < size);
	CHECK(!memchr(err, '\n', n));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!ram && !(ram = malloc(RAM_MAX)))
		abort();
	uint8_t hdr[HDR] = { 0 };
	memcpy(hdr, data, size < HDR ? size : HDR);
	uint64_t ram_size = (uint64_t)(hdr[0] % 32 + 1) << 20;
	uint64_t initrd_size = (uint64_t)(hdr[1] | hdr[2] << 8 | hdr[3] << 16) << 8;
	/* The image in its own allocation, exactly as long as the input: ASan
	 * then sees any read past its end. */
	size_t len = size > HDR ? size - HDR : 0;
	uint8_t *img = malloc(len ? len : 1);
	if (!img)
		abort();
	memcpy(img, data + (size > HDR ? HDR : size), len);

	struct guest_mem mem = { 0 };
	CHECK(guest_mem_add_region(&mem, 0, ram_size, ram) == 0);
	char err[256];
	struct x86_kernel k;
	uint64_t entry, kernel_end, initrd_gpa;

	memset(err, 0, sizeof(err));
	if (x86_probe_kernel(img, len, &k, err, sizeof(err))) {
		check_err(err, sizeof(err));
		goto out;
	}
	CHECK(k.data == img && k.len == len);
	if (x86_load_kernel(&mem, &k, &entry, &kernel_end, err, sizeof(err))) {
		check_err(err, sizeof(err));
		goto out;
	}
	if (k.kind == X86_KERNEL_BZIMAGE) {
		CHECK(k.setup_size < len);
		CHECK(entry == X86_KERNEL_GPA + 0x200);
		CHECK(kernel_end <= ram_size);
		/* the code the header declares is what the guest gets, and it
		 * lies below kernel_end (where the initrd may start) */
		CHECK(k.code_size > 0 && k.setup_size + k.code_size <= len);
		CHECK(X86_KERNEL_GPA + k.code_size <= kernel_end);
		CHECK(!memcmp(ram + X86_KERNEL_GPA, img + k.setup_size, k.code_size));
	} else {
		CHECK(entry < ram_size && kernel_end <= ram_size);
	}
	if (x86_place_initrd(&mem, &k, kernel_end, initrd_size, &initrd_gpa, err, sizeof(err))) {
		check_err(err, sizeof(err));
	} else {
		CHECK(initrd_gpa >= kernel_end);
		CHECK(initrd_gpa + initrd_size <= ram_size);
		CHECK(initrd_size == 0 || initrd_gpa + initrd_size - 1 <= k.initrd_addr_max);
		CHECK(initrd_gpa % 4096 == 0);
	}
	struct x86_boot_config cfg = { .cmdline = "console=ttyS0 panic=-1", .initrd_gpa = initrd_gpa,
				       .initrd_size = initrd_size };
	memset(err, 0, sizeof(err));
	if (x86_check_cmdline(&k, cfg.cmdline, err, sizeof(err)))
		check_err(err, sizeof(err));
	else if (x86_write_boot_params(&mem, &k, &cfg, err, sizeof(err)))
		check_err(err, sizeof(err));
	CHECK(x86_write_boot_page_tables(&mem) == 0);
out:
	free(img);
	return 0;
}

/* ---- seeds ---- */

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)v); put16(p + 2, (uint16_t)(v >> 16)); }

static void write_seed(const char *dir, const char *name, uint8_t ram_mib, uint32_t initrd_units,
		       const uint8_t *img, size_t len)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f) {
		perror(path);
		exit(1);
	}
	uint8_t h[HDR] = { (uint8_t)(ram_mib - 1), (uint8_t)initrd_units, (uint8_t)(initrd_units >> 8),
			   (uint8_t)(initrd_units >> 16) };
	fwrite(h, 1, HDR, f);
	fwrite(img, 1, len, f);
	fclose(f);
}

/* A bzImage of 4 setup sectors and 1 KiB of "code". */
static size_t make_bzimage(uint8_t *img, uint16_t version, uint16_t xlf, uint32_t init_size)
{
	size_t len = 5 * 512 + 1024;
	memset(img, 0, len);
	img[0x1f1] = 4;
	put32(img + 0x1f4, 1024 / 16);
	put16(img + 0x1fe, 0xaa55);
	memcpy(img + 0x202, "HdrS", 4);
	put16(img + 0x206, version);
	put32(img + 0x22c, 0x37ffffff);    /* initrd_addr_max */
	put32(img + 0x238, 2047);          /* cmdline_size */
	put16(img + 0x236, xlf);
	put32(img + 0x260, init_size);
	for (size_t i = 5 * 512; i < len; i++)
		img[i] = (uint8_t)i;
	return len;
}

static size_t make_elf(uint8_t *img, uint64_t paddr, uint64_t entry, uint64_t filesz, uint64_t memsz)
{
	Elf64_Ehdr eh = { .e_type = ET_EXEC, .e_machine = EM_X86_64, .e_version = EV_CURRENT,
			  .e_entry = entry, .e_phoff = sizeof(Elf64_Ehdr), .e_ehsize = sizeof(Elf64_Ehdr),
			  .e_phentsize = sizeof(Elf64_Phdr), .e_phnum = 1 };
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	Elf64_Phdr ph = { .p_type = PT_LOAD, .p_offset = 0x100, .p_paddr = paddr, .p_vaddr = paddr,
			  .p_filesz = filesz, .p_memsz = memsz, .p_flags = PF_R | PF_X };
	memset(img, 0, 0x100 + 256);
	memcpy(img, &eh, sizeof(eh));
	memcpy(img + sizeof(eh), &ph, sizeof(ph));
	for (unsigned i = 0; i < 256; i++)
		img[0x100 + i] = (uint8_t)i;
	return 0x100 + 256;
}

__attribute__((constructor)) static void maybe_write_seeds(void)
{
	const char *dir = getenv("FUZZ_KERNEL_WRITE_SEEDS");
	if (!dir)
		return;
	static uint8_t img[8192];
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", dir);
	if (system(cmd))
		exit(1);
	size_t n = make_bzimage(img, 0x20f, 1, 0x10000);
	write_seed(dir, "bz-ok", 16, 0x1000, img, n);
	write_seed(dir, "bz-initrd-too-big", 4, 0xffffff, img, n);
	write_seed(dir, "bz-truncated", 16, 0, img, 0x300);
	n = make_bzimage(img, 0x20f, 1, 0xfff00000u);
	write_seed(dir, "bz-init-size-huge", 16, 0, img, n);
	n = make_bzimage(img, 0x20b, 1, 0x10000);
	write_seed(dir, "bz-old-protocol", 16, 0, img, n);
	n = make_bzimage(img, 0x20f, 0, 0x10000);
	write_seed(dir, "bz-32-bit", 16, 0, img, n);
	n = make_elf(img, 0x200000, 0x200000, 256, 4096);
	write_seed(dir, "elf-ok", 8, 0x100, img, n);
	n = make_elf(img, 0x200000, 0x900000, 256, 4096);
	write_seed(dir, "elf-entry-outside", 8, 0, img, n);
	n = make_elf(img, 0xfffffffffffff000ull, 0, 256, 0x2000);
	write_seed(dir, "elf-paddr-wraps", 8, 0, img, n);
	n = make_elf(img, 0x200000, 0x200000, 0x10000, 0x10000);
	write_seed(dir, "elf-filesz-past-end", 8, 0, img, n);
	write_seed(dir, "empty", 1, 0, img, 0);
	exit(0);
}
