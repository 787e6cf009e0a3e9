/* libFuzzer target for the command-line parser (vmm/options.c): the input is
 * an argument vector, arguments separated by NUL bytes (argv[0] is added).
 * Checked: a refusal comes with exactly one non-empty line naming what is
 * wrong; an acceptance gives options inside their documented limits (cpus >= 1,
 * mem in [MIN_MEM_MIB, MAX_MEM_MIB], at most MAX_DISKS disks and MAX_NETS
 * nets, queue pairs in 1..MAX_NET_QUEUE_PAIRS, NUL-terminated names, and
 * kernel, initrd and console paths pointing into argv) or --help/--version. ASan/UBSan catch the
 * rest. Build and run: tests/fuzz/run.sh.
 * FUZZ_OPTIONS_WRITE_SEEDS=DIR writes seed inputs there and exits. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/options.h"
#include "fuzz_check.h"

#define MAX_ARGS 64

static struct vmm_options opts;

static bool points_into(const char *s, char *const argv[], int argc)
{
	if (!s)
		return true;
	for (int i = 0; i < argc; i++)
		if (s >= argv[i] && s <= argv[i] + strlen(argv[i]))
			return true;
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* one allocation per argument, each exactly as long as it is, so that
	 * ASan sees a read past any of them */
	char *argv[MAX_ARGS + 2];
	int argc = 0;
	argv[argc++] = strdup("minivmm");
	size_t start = 0;
	for (size_t i = 0; i <= size && argc <= MAX_ARGS; i++) {
		if (i == size || data[i] == 0) {
			char *a = malloc(i - start + 1);
			if (!a)
				abort();
			memcpy(a, data + start, i - start);
			a[i - start] = 0;
			argv[argc++] = a;
			start = i + 1;
		}
	}
	argv[argc] = NULL;

	char err[256];
	memset(err, 0, sizeof(err));
	if (options_parse(argc, argv, &opts, err, sizeof(err))) {
		size_t n = strnlen(err, sizeof(err));
		CHECK(n > 0 && n < sizeof(err));
		CHECK(!memchr(err, '\n', n));
	} else if (!opts.help && !opts.version) {
		/* a kernel to boot, or a snapshot to restore (and then no kernel) */
		CHECK(opts.kernel ? points_into(opts.kernel, argv, argc) && !opts.restore_dir
				  : opts.restore_dir && points_into(opts.restore_dir, argv, argc));
		CHECK(points_into(opts.initrd, argv, argc));   /* cmdline may be the built-in default */
		CHECK(opts.cpus >= 1);
		CHECK(opts.mem_mib >= MIN_MEM_MIB && opts.mem_mib <= MAX_MEM_MIB);
		CHECK(opts.n_disks <= MAX_DISKS && opts.n_nets <= MAX_NETS);
		for (unsigned i = 0; i < opts.n_disks; i++)
			CHECK(memchr(opts.disks[i].path, 0, sizeof(opts.disks[i].path)) && opts.disks[i].path[0]);
		for (unsigned i = 0; i < opts.n_nets; i++) {
			CHECK(memchr(opts.nets[i].tap, 0, sizeof(opts.nets[i].tap)) && opts.nets[i].tap[0]);
			CHECK(opts.nets[i].queue_pairs >= 1 && opts.nets[i].queue_pairs <= MAX_NET_QUEUE_PAIRS);
		}
		CHECK(opts.console != CONSOLE_FILE || points_into(opts.console_path, argv, argc));
	}
	for (int i = 0; i < argc; i++)
		free(argv[i]);
	return 0;
}

static void seed(const char *dir, const char *name, const char *args, size_t len)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f) {
		perror(path);
		exit(1);
	}
	fwrite(args, 1, len, f);
	fclose(f);
}
#define SEED(name, lit) seed(dir, name, lit, sizeof(lit) - 1)

__attribute__((constructor)) static void maybe_write_seeds(void)
{
	const char *dir = getenv("FUZZ_OPTIONS_WRITE_SEEDS");
	if (!dir)
		return;
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", dir);
	if (system(cmd))
		exit(1);
	SEED("minimal", "--kernel\0k");
	SEED("all", "--kernel\0k\0--initrd\0i\0--cmdline\0console=ttyS0\0--cpus\0004\0--mem\0001024\0"
		    "--disk\0a.img,ro,transport=mmio\0--disk\0b.img,transport=pci\0"
		    "--net\0tap0,queues=4,vhost=off,mac=52:54:00:12:34:56,transport=pci\0"
		    "--console\0none\0--seccomp\0log");
	SEED("console-file", "--kernel\0k\0--console\0/tmp/out");
	SEED("equals", "--kernel=k\0--mem=64\0--cpus=2");
	SEED("help", "--help");
	SEED("huge", "--kernel\0k\0--mem\00018446744073709551616\0--cpus\0004294967297");
	SEED("net-bad", "--kernel\0k\0--net\0tap0,queues=0,mac=zz");
	exit(0);
}
