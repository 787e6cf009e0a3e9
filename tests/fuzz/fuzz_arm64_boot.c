/* libFuzzer target for the arm64 boot path a user's files reach
 * (arch/arm64/boot.c, fdt.c): the Image header parser, the placement of
 * kernel, initrd and device tree in RAM, and the device tree built from a
 * configuration with a hostile command line, CPU count and device list.
 * Pure code with libfdt: it builds and runs on x86. Build and run:
 * tests/fuzz/run.sh.
 *
 * Checked: a refusal comes with one non-empty line; an accepted Image is
 * placed inside RAM (2 MiB-aligned base + text_offset), the initrd and the
 * tree inside RAM, below 32 GiB from the kernel and overlapping nothing;
 * a built tree passes libfdt's full check and holds the command line as
 * given. ASan/UBSan catch the rest.
 *
 * Input:
 *   0  u8  RAM size: 2^(20 + n % 16) bytes (1 MiB .. 32 GiB)
 *   1  u8  initrd size: 0, or 2^(n % 36) bytes
 *   2  u8  vCPUs (n % 300), 3 u8 virtio-mmio devices (n % 40)
 *   4  u8  flags: bit 0 ITS, 1 PCI, 2 initrd placed by the plan
 *   5  u8  command line length (n * 16, at most 4096 with the tail)
 *   6  the command line, then the Image (header at its start)
 * FUZZ_ARM64_BOOT_WRITE_SEEDS=DIR writes seed inputs there and exits. */
#include <libfdt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/arm64/boot.h"
#include "arch/arm64/fdt.h"
#include "arch/arm64/layout.h"
#include "fuzz_check.h"

#define HDR 6
#define RAM_BASE 0x40000000ull
#define FDT_BUF 0x10000u

static void check_err(const char *err, size_t len)
{
	size_t n = strnlen(err, len);
	CHECK(n > 0 && n < len && !memchr(err, '\n', n));
}

static bool overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return alen && blen && a < b + blen && b < a + alen;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < HDR)
		return 0;
	uint64_t ram_size = 1ull << (20 + data[0] % 16);
	uint64_t initrd_size = data[1] ? 1ull << (data[1] % 36) : 0;
	unsigned n_cpus = data[2] % 300, n_mmio = data[3] % 40;
	uint8_t flags = data[4];
	size_t cmd_len = (size_t)data[5] * 16;
	if (cmd_len > size - HDR)
		cmd_len = size - HDR;
	char *cmdline = malloc(cmd_len + 1);   /* exactly as long: ASan sees a read past it */
	CHECK(cmdline);
	memcpy(cmdline, data + HDR, cmd_len);
	cmdline[cmd_len] = 0;
	const uint8_t *img = data + HDR + cmd_len;
	size_t img_len = size - HDR - cmd_len;

	char err[256];
	struct arm64_image k;
	memset(err, 0, sizeof(err));
	/* The Image on its own heap block: a read past its end is caught. */
	uint8_t *copy = malloc(img_len ? img_len : 1);
	CHECK(copy);
	memcpy(copy, img, img_len);
	struct arm64_boot_plan plan = { 0 };
	bool placed = false;
	if (arm64_parse_image(copy, img_len, &k, err, sizeof(err))) {
		check_err(err, sizeof(err));
	} else {
		CHECK(k.file_size <= img_len && k.file_size <= k.image_size);
		memset(err, 0, sizeof(err));
		if (arm64_plan_boot(&k, RAM_BASE, ram_size, initrd_size, &plan, err, sizeof(err))) {
			check_err(err, sizeof(err));
		} else {
			uint64_t ram_end = RAM_BASE + ram_size;
			CHECK(plan.kernel_gpa >= RAM_BASE && plan.kernel_end <= ram_end);
			CHECK(plan.kernel_end - plan.kernel_gpa == k.image_size);
			CHECK((plan.kernel_gpa - k.text_offset) % 0x200000 == 0);
			CHECK(plan.fdt_gpa >= RAM_BASE && plan.fdt_gpa + ARM64_FDT_MAX_SIZE <= ram_end);
			CHECK(!overlap(plan.kernel_gpa, k.image_size, plan.fdt_gpa, ARM64_FDT_MAX_SIZE));
			if (initrd_size) {
				CHECK(plan.initrd_gpa >= RAM_BASE && plan.initrd_gpa + initrd_size <= ram_end);
				CHECK(!overlap(plan.initrd_gpa, initrd_size, plan.kernel_gpa, k.image_size));
				CHECK(!overlap(plan.initrd_gpa, initrd_size, plan.fdt_gpa, ARM64_FDT_MAX_SIZE));
				CHECK(plan.initrd_gpa + initrd_size - RAM_BASE <= 32ull << 30);
			}
			placed = true;
		}
	}
	free(copy);

	/* The device tree, for this configuration (hostile or not). */
	uint64_t *mpidr = calloc(n_cpus ? n_cpus : 1, sizeof(*mpidr));
	struct arm64_fdt_mmio_dev *mmio = calloc(n_mmio ? n_mmio : 1, sizeof(*mmio));
	CHECK(mpidr && mmio);
	for (unsigned i = 0; i < n_cpus; i++)
		mpidr[i] = arm64_mpidr_of_index(i);
	for (unsigned i = 0; i < n_mmio; i++)
		mmio[i] = (struct arm64_fdt_mmio_dev){ 0x0a000000ull + 0x200ull * i, 0x200, 16 + i };
	struct arm64_fdt_config c = {
		.ram = { RAM_BASE, ram_size },
		.n_cpus = n_cpus,
		.mpidr = mpidr,
		.cmdline = cmdline,
		.initrd_gpa = placed && (flags & 4) ? plan.initrd_gpa : 0,
		.initrd_size = placed && (flags & 4) ? initrd_size : 0,
		.gicd = { 0x08000000, 0x10000 },
		.gicr = { 0x080a0000, 0x20000ull * (n_cpus ? n_cpus : 1) },
		.has_its = flags & 1,
		.its = { 0x08080000, 0x20000 },
		.uart = { 0x09000000, 0x1000 },
		.uart_spi = 1,
		.uart_clock_hz = 1843200,
		.guest_port = { 0x09010000, 0x1000 },
		.mmio = mmio,
		.n_mmio = n_mmio,
		.has_pci = flags & 2,
		.pci_ecam = { 0x4010000000ull, 0x10000000 },
		.pci_mmio = { 0x10000000, 0x2eff0000 },
	};
	void *fdt = malloc(FDT_BUF);
	CHECK(fdt);
	memset(err, 0, sizeof(err));
	if (arm64_fdt_build(fdt, FDT_BUF, &c, err, sizeof(err))) {
		check_err(err, sizeof(err));
	} else {
		CHECK(fdt_check_full(fdt, FDT_BUF) == 0);
		CHECK(fdt_totalsize(fdt) <= FDT_BUF);
		int chosen = fdt_path_offset(fdt, "/chosen");
		CHECK(chosen >= 0);
		int len = 0;
		const char *args = fdt_getprop(fdt, chosen, "bootargs", &len);
		CHECK(args && len >= 1 && args[len - 1] == 0);
		/* A command line with a NUL in it ends there, as a C string. */
		CHECK(strcmp(args, cmdline) == 0);
		CHECK(n_cpus >= 1);
	}
	free(fdt);
	free(mpidr);
	free(mmio);
	free(cmdline);
	return 0;
}

/* Seeds: a minimal valid Image header (64 bytes + a page), with and without
 * an initrd and PCI. */
__attribute__((constructor)) static void maybe_write_seeds(void)
{
	const char *dir = getenv("FUZZ_ARM64_BOOT_WRITE_SEEDS");
	if (!dir)
		return;
	static const char cmd[] = "console=ttyS0 panic=-1 quiet mvtest=marker"; /* 43 bytes: 3 x 16 with the pad */
	for (int v = 0; v < 3; v++) {
		uint8_t in[HDR + 48 + 4096];
		memset(in, 0, sizeof(in));
		in[0] = 8;                   /* 256 MiB */
		in[1] = v ? 24 : 0;          /* 16 MiB initrd */
		in[2] = v == 2 ? 4 : 1;
		in[3] = 4;
		in[4] = v == 2 ? 7 : 4;
		in[5] = 3;
		memcpy(in + HDR, cmd, sizeof(cmd) - 1);
		uint8_t *img = in + HDR + 48;
		uint64_t text_offset = 0, image_size = 0x20000;
		memcpy(img + 8, &text_offset, 8);
		memcpy(img + 16, &image_size, 8);
		uint64_t flags = 0x2;        /* 4 KiB pages */
		memcpy(img + 24, &flags, 8);
		uint32_t magic = ARM64_IMAGE_MAGIC;
		memcpy(img + 56, &magic, 4);
		char name[16];
		snprintf(name, sizeof(name), "image-%d", v);
		fuzz_write_seed(dir, name, in, sizeof(in));
	}
	exit(0);
}
