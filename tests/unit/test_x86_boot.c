#include <asm/bootparam.h>
#include <criterion/criterion.h>
#include <elf.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/boot.h"
#include "arch/x86/layout.h"

#define RAM_SIZE (64u << 20)
static uint8_t *ram;
static struct guest_mem m;
static char err[256];

static void setup(void)
{
	ram = calloc(1, RAM_SIZE);
	memset(&m, 0, sizeof(m));
	guest_mem_add_region(&m, 0, RAM_SIZE, ram);
}

static void teardown(void)
{
	free(ram);
}

TestSuite(x86_boot, .init = setup, .fini = teardown);

/* A synthetic bzImage: 2 setup sectors + boot sector, then pm_len bytes. */
static uint8_t *make_bzimage(size_t pm_len, uint16_t version, size_t *len)
{
	size_t setup = 3 * 512;
	*len = setup + pm_len;
	uint8_t *img = calloc(1, *len);
	struct setup_header h;
	memset(&h, 0, sizeof(h));
	h.setup_sects = 2;
	h.syssize = (uint32_t)(pm_len / 16);
	h.boot_flag = 0xaa55;
	h.jump = 0x6aeb;               /* jmp over a 0x6a-byte header */
	h.header = 0x53726448;
	h.version = version;
	h.initrd_addr_max = 0x7fffffff;
	h.cmdline_size = 2047;
	h.xloadflags = 1;
	h.init_size = 8u << 20;
	memcpy(img + 0x1f1, &h, sizeof(h));
	memset(img + setup, 0xcc, pm_len);
	return img;
}

Test(x86_boot, bzimage_probe_load_and_boot_params)
{
	size_t len;
	uint8_t *img = make_bzimage(0x4000, 0x20f, &len);
	struct x86_kernel k;
	cr_assert_eq(x86_probe_kernel(img, len, &k, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(k.kind, X86_KERNEL_BZIMAGE);
	cr_assert_eq(k.setup_size, 1536);

	uint64_t entry, end;
	cr_assert_eq(x86_load_kernel(&m, &k, &entry, &end, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(entry, X86_KERNEL_GPA + 0x200, "64-bit entry");
	cr_assert_eq(end, X86_KERNEL_GPA + (8u << 20));
	cr_assert_eq(ram[X86_KERNEL_GPA], 0xcc);
	cr_assert_eq(ram[X86_KERNEL_GPA + 0x3fff], 0xcc);

	uint64_t initrd;
	cr_assert_eq(x86_place_initrd(&m, &k, end, 5000, &initrd, err, sizeof(err)), 0);
	cr_assert_eq(initrd & 0xfff, 0, "page aligned");
	cr_assert_leq(initrd + 5000, RAM_SIZE);
	cr_assert_geq(initrd, end);

	struct x86_boot_config cfg = { "console=ttyS0 quiet", initrd, 5000, X86_ACPI_GPA };
	cr_assert_eq(x86_write_boot_params(&m, &k, &cfg, err, sizeof(err)), 0, "%s", err);
	struct boot_params bp;
	memcpy(&bp, ram + X86_ZERO_PAGE_GPA, sizeof(bp));
	cr_assert_eq(bp.hdr.header, 0x53726448, "setup header copied");
	cr_assert_eq(bp.hdr.type_of_loader, 0xff);
	cr_assert_eq(bp.hdr.cmd_line_ptr, X86_CMDLINE_GPA);
	cr_assert_str_eq((char *)ram + X86_CMDLINE_GPA, "console=ttyS0 quiet");
	cr_assert_eq(bp.hdr.ramdisk_image, initrd);
	cr_assert_eq(bp.hdr.ramdisk_size, 5000);
	cr_assert(bp.hdr.loadflags & CAN_USE_HEAP);
	cr_assert_eq(bp.acpi_rsdp_addr, X86_ACPI_GPA);

	/* e820: low RAM, two reserved holes, RAM from 1 MiB to the end. */
	cr_assert_eq(bp.e820_entries, 4);
	cr_assert_eq(bp.e820_table[0].addr, 0);
	cr_assert_eq(bp.e820_table[0].size, X86_EBDA_START);
	cr_assert_eq(bp.e820_table[0].type, 1);
	cr_assert_eq(bp.e820_table[2].type, 2);
	cr_assert_eq(bp.e820_table[3].addr, 0x100000);
	cr_assert_eq(bp.e820_table[3].size, RAM_SIZE - 0x100000);
	free(img);
}

Test(x86_boot, rejects_bad_bzimages)
{
	size_t len;
	uint8_t *img = make_bzimage(0x4000, 0x20f, &len);
	struct x86_kernel k;

	cr_assert_eq(x86_probe_kernel(img, len - 1, &k, err, sizeof(err)), -1, "truncated");
	cr_assert(strstr(err, "truncated"), "%s", err);
	cr_assert_eq(x86_probe_kernel(img, 0x300, &k, err, sizeof(err)), -1, "truncated setup");

	uint8_t *old = make_bzimage(0x4000, 0x20a, &len);
	cr_assert_eq(x86_probe_kernel(old, len, &k, err, sizeof(err)), -1);
	cr_assert(strstr(err, "too old"), "%s", err);

	img[0x1f1 + offsetof(struct setup_header, xloadflags)] = 0;
	cr_assert_eq(x86_probe_kernel(img, len, &k, err, sizeof(err)), -1);
	cr_assert(strstr(err, "64-bit"), "%s", err);

	const char text[] = "#!/bin/sh\necho not a kernel\n";
	cr_assert_eq(x86_probe_kernel((const uint8_t *)text, sizeof(text), &k, err, sizeof(err)), -1);
	cr_assert(strstr(err, "not a kernel"), "%s", err);
	free(img);
	free(old);
}

/* Bytes after the code the header declares (syssize) are not loaded: with
 * them the copy could run past init_size, or past the end of a small guest
 * RAM and fail unnoticed (found by tests/fuzz/fuzz_kernel). */
Test(x86_boot, bzimage_trailing_bytes_are_not_loaded)
{
	size_t len;
	uint8_t *img = make_bzimage(0x4000, 0x20f, &len);
	size_t big = len + (RAM_SIZE);   /* far more than guest RAM */
	img = realloc(img, big);
	memset(img + len, 0xee, big - len);
	struct setup_header h;
	memcpy(&h, img + 0x1f1, sizeof(h));
	h.init_size = 0x4000;             /* exactly the declared code */
	memcpy(img + 0x1f1, &h, sizeof(h));
	struct x86_kernel k;
	uint64_t entry, end;
	cr_assert_eq(x86_probe_kernel(img, big, &k, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(k.code_size, 0x4000);
	cr_assert_eq(x86_load_kernel(&m, &k, &entry, &end, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(end, 0x100000 + 0x4000);
	cr_assert_eq(ram[0x100000], 0xcc);
	cr_assert_eq(ram[0x100000 + 0x3fff], 0xcc);
	cr_assert_eq(ram[0x100000 + 0x4000], 0, "a trailing byte was loaded past the kernel");
	free(img);
}

Test(x86_boot, kernel_too_big_for_memory_and_cmdline_too_long)
{
	size_t len;
	uint8_t *img = make_bzimage(0x4000, 0x20f, &len);
	struct setup_header h;
	memcpy(&h, img + 0x1f1, sizeof(h));
	h.init_size = 100u << 20;
	memcpy(img + 0x1f1, &h, sizeof(h));
	struct x86_kernel k;
	uint64_t entry, end;
	cr_assert_eq(x86_probe_kernel(img, len, &k, err, sizeof(err)), 0);
	cr_assert_eq(x86_load_kernel(&m, &k, &entry, &end, err, sizeof(err)), -1);
	cr_assert(strstr(err, "guest memory too small"), "%s", err);

	char *longline = malloc(3000);
	memset(longline, 'a', 2999);
	longline[2999] = 0;
	cr_assert_eq(x86_check_cmdline(&k, longline, err, sizeof(err)), -1);
	cr_assert(strstr(err, "2999 bytes; this kernel accepts at most"), "%s", err);
	cr_assert_eq(x86_check_cmdline(&k, "console=ttyS0", err, sizeof(err)), 0);
	free(longline);
	free(img);
}

Test(x86_boot, initrd_that_does_not_fit)
{
	size_t len;
	uint8_t *img = make_bzimage(0x4000, 0x20f, &len);
	struct x86_kernel k;
	uint64_t gpa;
	x86_probe_kernel(img, len, &k, err, sizeof(err));
	cr_assert_eq(x86_place_initrd(&m, &k, 9u << 20, 60u << 20, &gpa, err, sizeof(err)), -1);
	cr_assert(strstr(err, "does not fit"), "%s", err);
	cr_assert_eq(x86_place_initrd(&m, &k, 9u << 20, UINT64_MAX, &gpa, err, sizeof(err)), -1);
	free(img);
}

static uint8_t *make_elf(uint64_t paddr, uint64_t entry, size_t filesz, size_t memsz, size_t *len)
{
	*len = sizeof(Elf64_Ehdr) + sizeof(Elf64_Phdr) + filesz;
	uint8_t *img = calloc(1, *len);
	Elf64_Ehdr eh = { 0 };
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_type = ET_EXEC;
	eh.e_machine = EM_X86_64;
	eh.e_entry = entry;
	eh.e_phoff = sizeof(eh);
	eh.e_phentsize = sizeof(Elf64_Phdr);
	eh.e_phnum = 1;
	Elf64_Phdr ph = { 0 };
	ph.p_type = PT_LOAD;
	ph.p_offset = sizeof(eh) + sizeof(ph);
	ph.p_paddr = paddr;
	ph.p_filesz = filesz;
	ph.p_memsz = memsz;
	memcpy(img, &eh, sizeof(eh));
	memcpy(img + sizeof(eh), &ph, sizeof(ph));
	memset(img + ph.p_offset, 0x90, filesz);
	return img;
}

Test(x86_boot, elf_loads_segments_and_zeroes_bss)
{
	size_t len;
	uint8_t *img = make_elf(0x200000, 0x200010, 0x100, 0x200, &len);
	memset(ram + 0x200100, 0xee, 0x100);
	struct x86_kernel k;
	uint64_t entry, end;
	cr_assert_eq(x86_probe_kernel(img, len, &k, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(k.kind, X86_KERNEL_ELF);
	cr_assert_eq(x86_load_kernel(&m, &k, &entry, &end, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(entry, 0x200010);
	cr_assert_eq(end, 0x200200);
	cr_assert_eq(ram[0x2000ff], 0x90);
	cr_assert_eq(ram[0x200100], 0, "bss zeroed");
	struct x86_boot_config cfg = { "exit=3", 0, 0, 0 };
	cr_assert_eq(x86_write_boot_params(&m, &k, &cfg, err, sizeof(err)), 0);
	struct boot_params bp;
	memcpy(&bp, ram + X86_ZERO_PAGE_GPA, sizeof(bp));
	cr_assert_eq(bp.hdr.boot_flag, 0xaa55);
	cr_assert_eq(bp.hdr.kernel_alignment, 0x1000000);
	free(img);
}

Test(x86_boot, hostile_elfs_refused)
{
	size_t len;
	struct x86_kernel k;
	uint64_t entry, end;

	uint8_t *outside = make_elf(RAM_SIZE - 0x100, RAM_SIZE - 0x100, 0x10, 0x1000, &len);
	cr_assert_eq(x86_probe_kernel(outside, len, &k, err, sizeof(err)), 0);
	cr_assert_eq(x86_load_kernel(&m, &k, &entry, &end, err, sizeof(err)), -1);
	cr_assert(strstr(err, "outside guest memory"), "%s", err);

	uint8_t *wrap = make_elf(UINT64_MAX - 0x10, 0, 0x10, 0x100, &len);
	cr_assert_eq(x86_probe_kernel(wrap, len, &k, err, sizeof(err)), 0);
	cr_assert_eq(x86_load_kernel(&m, &k, &entry, &end, err, sizeof(err)), -1);

	uint8_t *badentry = make_elf(0x200000, 0x900000, 0x10, 0x10, &len);
	x86_probe_kernel(badentry, len, &k, err, sizeof(err));
	cr_assert_eq(x86_load_kernel(&m, &k, &entry, &end, err, sizeof(err)), -1);
	cr_assert(strstr(err, "entry point"), "%s", err);

	uint8_t *trunc = make_elf(0x200000, 0x200000, 0x100, 0x100, &len);
	cr_assert_eq(x86_probe_kernel(trunc, len - 1, &k, err, sizeof(err)), -1);
	cr_assert(strstr(err, "truncated"), "%s", err);

	uint8_t *fs = make_elf(0x200000, 0x200000, 0x100, 0x10, &len);
	cr_assert_eq(x86_probe_kernel(fs, len, &k, err, sizeof(err)), -1);

	Elf64_Ehdr eh;
	memcpy(&eh, trunc, sizeof(eh));
	eh.e_phnum = 0xffff;
	memcpy(trunc, &eh, sizeof(eh));
	cr_assert_eq(x86_probe_kernel(trunc, len, &k, err, sizeof(err)), -1);
	free(outside);
	free(wrap);
	free(badentry);
	free(trunc);
	free(fs);
}

Test(x86_boot, page_tables_identity_map_4g)
{
	cr_assert_eq(x86_write_boot_page_tables(&m), 0);
	uint64_t pml4, pdpt3, pd;
	memcpy(&pml4, ram + X86_PML4_GPA, 8);
	cr_assert_eq(pml4 & ~0xfffull, X86_PDPT_GPA);
	cr_assert(pml4 & 1);
	memcpy(&pdpt3, ram + X86_PDPT_GPA + 3 * 8, 8);
	cr_assert_eq(pdpt3 & ~0xfffull, X86_PD_GPA + 3 * 0x1000);
	/* 0xfee00000: PD 3, entry (0xfee00000 - 3G) / 2M */
	unsigned idx = (unsigned)((0xfee00000ull - (3ull << 30)) >> 21);
	memcpy(&pd, ram + X86_PD_GPA + 3 * 0x1000 + idx * 8, 8);
	cr_assert_eq(pd & ~0xfffull, 0xfee00000ull);
	cr_assert_eq(pd & 0x83, 0x83, "present, writable, 2M page");
	uint64_t code;
	memcpy(&code, ram + X86_GDT_GPA + 0x10, 8);
	cr_assert_eq(code, 0x00af9b000000ffffull, "__BOOT_CS is 64-bit code");
}

Test(x86_boot, reset_vector_pulses_the_i8042_reset)
{
	cr_assert_eq(x86_write_reset_vector(&m), 0);
	const uint8_t *p = ram + X86_RESET_VECTOR_GPA;
	cr_assert_eq(p[0], 0xb0);
	cr_assert_eq(p[1], 0xfe, "value: pulse reset");
	cr_assert_eq(p[2], 0xe6);
	cr_assert_eq(p[3], 0x64, "port: i8042 command");
	cr_assert_leq(X86_ACPI_GPA + X86_ACPI_SIZE, X86_RESET_VECTOR_GPA, "ACPI tables end before it");
}
