/* x86 direct boot: bzImage (64-bit boot protocol) and ELF (64-bit entry
 * point, as Linux's vmlinux declares it). Pure functions over guest memory,
 * unit-tested without KVM. */
#ifndef MINIVMM_X86_BOOT_H
#define MINIVMM_X86_BOOT_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/base/guest_mem.h"

enum x86_kernel_kind { X86_KERNEL_BZIMAGE, X86_KERNEL_ELF };

struct x86_kernel {
	enum x86_kernel_kind kind;
	const uint8_t *data;
	size_t len;
	/* bzImage header fields */
	uint16_t version;
	size_t setup_size;          /* bytes of real-mode setup to skip */
	size_t code_size;           /* protected-mode code after it (syssize; the file may hold more) */
	uint32_t init_size;         /* memory the kernel needs from its load address */
	uint32_t cmdline_max;       /* longest command line, without the NUL */
	uint32_t initrd_addr_max;   /* highest address an initrd byte may occupy */
	/* ELF */
	uint64_t elf_entry;
};

/* Recognises the image and checks it is complete. Errors name what is wrong
 * with it, without the file name (the caller prefixes it). */
int x86_probe_kernel(const uint8_t *img, size_t len, struct x86_kernel *k, char *err, size_t errlen);

/* Copies the kernel into guest memory; returns the entry point and the first
 * byte past the memory the kernel will use. */
int x86_load_kernel(const struct guest_mem *m, const struct x86_kernel *k, uint64_t *entry,
		    uint64_t *kernel_end, char *err, size_t errlen);

/* Chooses where an initrd of size bytes goes: as high as the kernel allows,
 * page aligned, above kernel_end. */
int x86_place_initrd(const struct guest_mem *m, const struct x86_kernel *k, uint64_t kernel_end,
		     uint64_t size, uint64_t *gpa, char *err, size_t errlen);

struct x86_boot_config {
	const char *cmdline;
	uint64_t initrd_gpa, initrd_size;
	uint64_t rsdp_gpa;
};

/* Checks the kernel command line fits what this kernel and the layout
 * take; the error is about the command line, without naming it. */
int x86_check_cmdline(const struct x86_kernel *k, const char *cmdline, char *err, size_t errlen);

/* Writes boot_params (zero page), the command line (which must pass
 * x86_check_cmdline) and the e820 map. */
int x86_write_boot_params(const struct guest_mem *m, const struct x86_kernel *k,
			  const struct x86_boot_config *cfg, char *err, size_t errlen);

/* A stand-in for the BIOS reset code at 0xFFFF0. Linux on hardware-reduced
 * ACPI without EFI reboots by jumping there in real mode (its BOOT_EFI
 * then BOOT_BIOS path); with no firmware that would run zeroes forever. The
 * stub pulses the keyboard controller's reset line instead. */
int x86_write_reset_vector(const struct guest_mem *m);

/* Boot GDT and identity-mapped page tables for a 64-bit entry. */
int x86_write_boot_page_tables(const struct guest_mem *m);

#endif
