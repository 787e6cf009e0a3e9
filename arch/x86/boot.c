#include "arch/x86/boot.h"

#include <asm/bootparam.h>
#include <elf.h>
#include <stdio.h>
#include <string.h>

#include "arch/x86/layout.h"
#include "vmm/base/log.h"

#define SETUP_HDR_OFFSET 0x1f1
#define BOOT_FLAG_MAGIC 0xaa55
#define HDRS_MAGIC 0x53726448        /* "HdrS" */
#define MIN_BOOT_PROTOCOL 0x20c      /* 2.12: xloadflags and the 64-bit entry */
#define XLF_KERNEL_64_FLAG 0x1
#define E820_RAM 1
#define E820_RESERVED 2

static int probe_bzimage(const uint8_t *img, size_t len, struct x86_kernel *k, char *err, size_t errlen)
{
	struct setup_header h;
	if (len < SETUP_HDR_OFFSET + sizeof(h))
		return err_set(err, errlen, "truncated bzImage (%zu bytes)", len);
	memcpy(&h, img + SETUP_HDR_OFFSET, sizeof(h));
	if (h.version < MIN_BOOT_PROTOCOL)
		return err_set(err, errlen, "boot protocol %u.%02u is too old (need 2.12, Linux 3.8+)",
			    h.version >> 8, h.version & 0xff);
	if (!(h.xloadflags & XLF_KERNEL_64_FLAG))
		return err_set(err, errlen, "bzImage has no 64-bit entry point (not an x86_64 kernel?)");

	unsigned sects = h.setup_sects ? h.setup_sects : 4;
	k->kind = X86_KERNEL_BZIMAGE;
	k->version = h.version;
	k->setup_size = (size_t)(sects + 1) * 512;
	if (k->setup_size >= len)
		return err_set(err, errlen, "truncated bzImage: setup claims %zu bytes, file has %zu",
			    k->setup_size, len);
	/* syssize counts 16-byte paragraphs of protected-mode code. */
	uint64_t pm_size = (uint64_t)h.syssize * 16;
	if (pm_size == 0 || k->setup_size + pm_size > len)
		return err_set(err, errlen, "truncated bzImage: kernel needs %llu bytes, file has %zu",
			    (unsigned long long)(k->setup_size + pm_size), len);
	k->code_size = (size_t)pm_size;
	k->init_size = h.init_size;
	if (k->init_size < pm_size)
		k->init_size = (uint32_t)pm_size;
	k->cmdline_max = h.cmdline_size ? h.cmdline_size : 255;
	k->initrd_addr_max = h.initrd_addr_max ? h.initrd_addr_max : 0x37ffffff;
	return 0;
}

static int probe_elf(const uint8_t *img, size_t len, struct x86_kernel *k, char *err, size_t errlen)
{
	Elf64_Ehdr eh;
	if (len < sizeof(eh))
		return err_set(err, errlen, "truncated ELF header");
	memcpy(&eh, img, sizeof(eh));
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_machine != EM_X86_64)
		return err_set(err, errlen, "ELF file is not a 64-bit x86 image");
	if (eh.e_type != ET_EXEC)
		return err_set(err, errlen, "ELF file is not an executable");
	if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 ||
	    eh.e_phoff > len || (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > len - eh.e_phoff)
		return err_set(err, errlen, "truncated or bad ELF program headers");
	unsigned loads = 0;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		memcpy(&ph, img + eh.e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD)
			continue;
		loads++;
		if (ph.p_offset > len || ph.p_filesz > len - ph.p_offset)
			return err_set(err, errlen, "truncated ELF: segment %u lies past the end of the file", i);
		if (ph.p_filesz > ph.p_memsz)
			return err_set(err, errlen, "bad ELF: segment %u has filesz > memsz", i);
	}
	if (!loads)
		return err_set(err, errlen, "ELF file has no loadable segment");
	k->kind = X86_KERNEL_ELF;
	k->elf_entry = eh.e_entry;
	k->cmdline_max = 2047;          /* Linux's COMMAND_LINE_SIZE - 1 */
	k->initrd_addr_max = 0x7fffffff;
	return 0;
}

int x86_probe_kernel(const uint8_t *img, size_t len, struct x86_kernel *k, char *err, size_t errlen)
{
	memset(k, 0, sizeof(*k));
	k->data = img;
	k->len = len;
	if (len >= 4 && !memcmp(img, ELFMAG, SELFMAG))
		return probe_elf(img, len, k, err, errlen);
	if (len >= 0x206) {
		uint16_t flag;
		uint32_t magic;
		memcpy(&flag, img + 0x1fe, 2);
		memcpy(&magic, img + 0x202, 4);
		if (flag == BOOT_FLAG_MAGIC && magic == HDRS_MAGIC)
			return probe_bzimage(img, len, k, err, errlen);
	}
	return err_set(err, errlen, "not a kernel: neither a bzImage nor an ELF vmlinux");
}

int x86_load_kernel(const struct guest_mem *m, const struct x86_kernel *k, uint64_t *entry,
		    uint64_t *kernel_end, char *err, size_t errlen)
{
	if (k->kind == X86_KERNEL_BZIMAGE) {
		/* The decompressor works in place: it needs init_size bytes
		 * (>= code_size). Only the code the header declares is loaded:
		 * bytes a file has past it (padding, a signature, junk) are not
		 * the kernel's, and could reach past init_size or past RAM. */
		if (!guest_mem_ptr(m, X86_KERNEL_GPA, k->init_size))
			return err_set(err, errlen, "kernel needs %u MiB from 1 MiB up: guest memory too small",
				    (unsigned)(k->init_size >> 20) + 1);
		if (guest_mem_write(m, X86_KERNEL_GPA, k->data + k->setup_size, k->code_size))
			return err_set(err, errlen, "internal: kernel code does not fit its own init_size");
		*entry = X86_KERNEL_GPA + 0x200;   /* startup_64 in the 64-bit boot protocol */
		*kernel_end = X86_KERNEL_GPA + k->init_size;
		return 0;
	}

	Elf64_Ehdr eh;
	memcpy(&eh, k->data, sizeof(eh));
	uint64_t end = 0;
	bool entry_ok = false;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		memcpy(&ph, k->data + eh.e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD)
			continue;
		uint8_t *dst = guest_mem_ptr(m, ph.p_paddr, ph.p_memsz);
		if (!dst)
			return err_set(err, errlen, "ELF segment %u at 0x%llx (+0x%llx) is outside guest memory",
				    i, (unsigned long long)ph.p_paddr, (unsigned long long)ph.p_memsz);
		memcpy(dst, k->data + ph.p_offset, ph.p_filesz);
		memset(dst + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz);
		if (ph.p_paddr + ph.p_memsz > end)
			end = ph.p_paddr + ph.p_memsz;
		if (k->elf_entry >= ph.p_paddr && k->elf_entry - ph.p_paddr < ph.p_memsz)
			entry_ok = true;
	}
	if (!entry_ok)
		return err_set(err, errlen, "ELF entry point 0x%llx is not inside a loaded segment "
			    "(minivmm needs a physical 64-bit entry, as vmlinux has)",
			    (unsigned long long)k->elf_entry);
	*entry = k->elf_entry;
	*kernel_end = end;
	return 0;
}

int x86_place_initrd(const struct guest_mem *m, const struct x86_kernel *k, uint64_t kernel_end,
		     uint64_t size, uint64_t *gpa, char *err, size_t errlen)
{
	uint64_t limit = guest_mem_region_end(m, X86_KERNEL_GPA);
	if ((uint64_t)k->initrd_addr_max + 1 < limit)
		limit = (uint64_t)k->initrd_addr_max + 1;
	uint64_t start = (limit > size) ? ((limit - size) & ~0xfffull) : 0;
	if (size >= limit || start < kernel_end)
		return err_set(err, errlen, "initrd of %llu MiB does not fit in guest memory above the kernel "
			    "(give the guest more memory)", (unsigned long long)(size >> 20) + 1);
	*gpa = start;
	return 0;
}

static void add_e820(struct boot_params *bp, uint64_t addr, uint64_t size, uint32_t type)
{
	if (bp->e820_entries >= E820_MAX_ENTRIES_ZEROPAGE || size == 0)
		return;
	struct boot_e820_entry *e = &bp->e820_table[bp->e820_entries++];
	e->addr = addr;
	e->size = size;
	e->type = type;
}

static void fill_e820(struct boot_params *bp, const struct guest_mem *m)
{
	add_e820(bp, 0, X86_EBDA_START, E820_RAM);
	add_e820(bp, X86_EBDA_START, 0xa0000 - X86_EBDA_START, E820_RESERVED);
	add_e820(bp, X86_ACPI_GPA, 0x100000 - X86_ACPI_GPA, E820_RESERVED);
	for (unsigned i = 0; i < m->n_regions; i++) {
		const struct guest_region *r = &m->regions[i];
		uint64_t start = r->gpa < 0x100000 ? 0x100000 : r->gpa;
		if (r->gpa + r->size > start)
			add_e820(bp, start, r->gpa + r->size - start, E820_RAM);
	}
}

int x86_check_cmdline(const struct x86_kernel *k, const char *cmdline, char *err, size_t errlen)
{
	size_t cmdlen = strlen(cmdline);
	uint64_t max = k->cmdline_max < X86_CMDLINE_MAX - 1 ? k->cmdline_max : X86_CMDLINE_MAX - 1;
	if (cmdlen > max)
		return err_set(err, errlen, "%zu bytes; this kernel accepts at most %llu", cmdlen,
			       (unsigned long long)max);
	return 0;
}

int x86_write_boot_params(const struct guest_mem *m, const struct x86_kernel *k,
			  const struct x86_boot_config *cfg, char *err, size_t errlen)
{
	struct boot_params bp;
	memset(&bp, 0, sizeof(bp));

	size_t cmdlen = strlen(cfg->cmdline);
	if (guest_mem_write(m, X86_CMDLINE_GPA, cfg->cmdline, cmdlen + 1))
		return err_set(err, errlen, "guest memory too small for the command line");

	if (k->kind == X86_KERNEL_BZIMAGE) {
		/* Copy the image's own setup header, as the protocol asks. */
		size_t hdr_end = 0x202 + k->data[0x201];
		size_t max_end = SETUP_HDR_OFFSET + sizeof(bp.hdr);
		if (hdr_end > max_end)
			hdr_end = max_end;
		memcpy(&bp.hdr, k->data + SETUP_HDR_OFFSET, hdr_end - SETUP_HDR_OFFSET);
		bp.hdr.code32_start = X86_KERNEL_GPA;
	} else {
		/* vmlinux has no header: fill the fields Linux reads. */
		bp.hdr.boot_flag = BOOT_FLAG_MAGIC;
		bp.hdr.header = HDRS_MAGIC;
		bp.hdr.version = MIN_BOOT_PROTOCOL;
		bp.hdr.kernel_alignment = 0x1000000;
	}
	bp.hdr.type_of_loader = 0xff;                 /* undefined loader */
	bp.hdr.loadflags |= CAN_USE_HEAP | LOADED_HIGH;
	bp.hdr.heap_end_ptr = 0xfe00;
	bp.hdr.vid_mode = 0xffff;                     /* "normal" */
	bp.hdr.cmd_line_ptr = (uint32_t)X86_CMDLINE_GPA;
	bp.hdr.cmdline_size = (uint32_t)(cmdlen + 1);
	if (cfg->initrd_size) {
		bp.hdr.ramdisk_image = (uint32_t)cfg->initrd_gpa;
		bp.hdr.ramdisk_size = (uint32_t)cfg->initrd_size;
		bp.ext_ramdisk_image = (uint32_t)(cfg->initrd_gpa >> 32);
		bp.ext_ramdisk_size = (uint32_t)(cfg->initrd_size >> 32);
	}
	bp.acpi_rsdp_addr = cfg->rsdp_gpa;            /* protocol 2.14; also found by scanning */
	fill_e820(&bp, m);

	if (guest_mem_write(m, X86_ZERO_PAGE_GPA, &bp, sizeof(bp)))
		return err_set(err, errlen, "guest memory too small for boot_params");
	return 0;
}

int x86_write_reset_vector(const struct guest_mem *m)
{
	static const uint8_t stub[] = {
		0xb0, 0xfe,     /* mov al, 0xfe */
		0xe6, 0x64,     /* out 0x64, al: i8042 pulse reset -> minivmm stops */
		0xf4,           /* hlt */
		0xeb, 0xfd,     /* jmp back to hlt */
	};
	return guest_mem_write(m, X86_RESET_VECTOR_GPA, stub, sizeof(stub));
}

int x86_write_boot_page_tables(const struct guest_mem *m)
{
	static const uint64_t gdt[] = {
		0,
		0,
		0x00af9b000000ffffull,   /* 0x10: __BOOT_CS, 64-bit code */
		0x00cf93000000ffffull,   /* 0x18: __BOOT_DS, flat data */
		0x00808b0000000000ull,   /* 0x20: TSS (busy), limit 0: KVM wants a valid TR */
	};
	if (guest_mem_write(m, X86_GDT_GPA, gdt, sizeof(gdt)))
		return -1;

	uint64_t pml4 = X86_PDPT_GPA | 0x3;  /* present, writable */
	uint64_t pdpt[4], pd[512];
	for (unsigned i = 0; i < 4; i++)
		pdpt[i] = (X86_PD_GPA + i * 0x1000) | 0x3;
	if (guest_mem_write(m, X86_PML4_GPA, &pml4, sizeof(pml4)) ||
	    guest_mem_write(m, X86_PDPT_GPA, pdpt, sizeof(pdpt)))
		return -1;
	for (unsigned g = 0; g < 4; g++) {
		for (unsigned i = 0; i < 512; i++)
			pd[i] = ((uint64_t)g << 30) + ((uint64_t)i << 21) + 0x83;  /* 2 MiB page */
		if (guest_mem_write(m, X86_PD_GPA + g * 0x1000, pd, sizeof(pd)))
			return -1;
	}
	return 0;
}
