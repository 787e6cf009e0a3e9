/* minivmm: boot a Linux kernel directly under KVM. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>

#include "vmm/arch.h"
#include "vmm/base/file_util.h"
#include "vmm/base/log.h"
#include "vmm/ctl.h"
#include "vmm/options.h"
#include "vmm/snapshot.h"
#include "vmm/vm.h"

#define MAX_KERNEL_SIZE (512ull << 20)

static int open_boot_files(const struct vmm_options *o, struct boot_files *f)
{
	f->initrd_fd = -1;
	if (read_input_file("--kernel", o->kernel, MAX_KERNEL_SIZE, &f->kernel, &f->kernel_len))
		return -1;
	if (o->initrd) {
		f->initrd_fd = open_input_file("--initrd", o->initrd, &f->initrd_size);
		if (f->initrd_fd < 0)
			return -1;
		if (f->initrd_size >= (o->mem_mib << 20)) {
			log_error("--initrd %s: %llu MiB does not fit in --mem %llu", o->initrd,
				  (unsigned long long)(f->initrd_size >> 20), (unsigned long long)o->mem_mib);
			return -1;
		}
	}
	return 0;
}

static void close_boot_files(struct boot_files *f)
{
	free(f->kernel);
	f->kernel = NULL;
	if (f->initrd_fd >= 0)
		close(f->initrd_fd);
	f->initrd_fd = -1;
}

/* --restore DIR: the snapshot read and checked before anything is made;
 * the VM gets its vCPUs and memory, the devices from the command line. */
static int restore_main(struct vmm_options *opts, const struct sandbox_ids *ids)
{
	static struct snapshot snap;   /* large: keep it off the stack */
	struct vm_restore rs = { .snap = &snap, .mem_fd = -1, .copy = opts->restore_mem_copy };
	if (snapshot_open(opts->restore_dir, &snap, &rs.mem_fd)) {
		if (rs.mem_fd >= 0)
			close(rs.mem_fd);
		snapshot_free(&snap);
		return 1;
	}
	opts->cpus = snap.n_vcpus;
	opts->mem_mib = snap.mem_bytes >> 20;
	struct vm *vm = malloc(sizeof(*vm));
	int status = 1;
	if (!vm)
		log_error("out of memory");
	else if (vm_create(vm, opts, &rs) == 0 && vm_add_devices(vm, opts) == 0 &&
		 snapshot_restore_machine(vm, &snap) == 0) {
		close(rs.mem_fd);   /* the mappings keep the file */
		rs.mem_fd = -1;
		if (vm_sandbox(vm, opts, ids) == 0)
			status = vm_run(vm);
	}
	if (vm) {
		vm_destroy(vm);
		free(vm);
	}
	if (rs.mem_fd >= 0)
		close(rs.mem_fd);
	snapshot_free(&snap);
	return status;
}

int main(int argc, char **argv)
{
	static struct vmm_options opts;   /* large (disk paths): keep it off the stack */
	char err[512];

	/* A console or log whose reader went away (minivmm ... | tee log, tee
	 * gone), or a console file at its size limit, must not kill the VM and
	 * its unflushed disk writes: the write fails instead, and output is
	 * dropped (console_output). */
	signal(SIGPIPE, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN);

	/* The control socket's client: minivmm ctl PATH CMD. */
	if (argc > 1 && !strcmp(argv[1], "ctl"))
		return ctl_main(argc, argv);

	if (options_parse(argc, argv, &opts, err, sizeof(err))) {
		log_error("%s", err);
		return 1;
	}
	if (opts.help) {
		fputs(options_usage, stdout);
		return 0;
	}
	if (opts.version) {
		printf("minivmm %s\n", MINIVMM_VERSION);
		return 0;
	}

	/* --user/--group/--chroot are checked before anything is opened. */
	struct sandbox_ids ids = { .chroot_dir = opts.chroot_dir };
	if (sandbox_resolve_ids(opts.user, opts.group, geteuid(), &ids.uid, &ids.gid, &ids.has_uid, &ids.has_gid, err,
				sizeof(err))) {
		log_error("%s", err);
		return 1;
	}
	if (ids.has_uid && ids.uid == 0)
		log_warn("--user %s: minivmm keeps uid 0 once devices are open (no capabilities, but root's files "
			 "stay writable if a filter is off or bypassed)", opts.user);
	struct stat st;
	if (opts.chroot_dir) {
		int bad = stat(opts.chroot_dir, &st) ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
		if (bad) {
			log_error("--chroot %s: %s", opts.chroot_dir, strerror(bad));
			return 1;
		}
	}

	if (opts.restore_dir)
		return restore_main(&opts, &ids);

	struct boot_files files = { .initrd_fd = -1 };
	if (open_boot_files(&opts, &files)) {
		close_boot_files(&files);
		return 1;
	}
	bool is_linux;
	if (arch_probe_kernel(files.kernel, files.kernel_len, &is_linux, err, sizeof(err))) {
		log_error("--kernel %s: %s", opts.kernel, err);
		close_boot_files(&files);
		return 1;
	}
	/* A PVM host cannot run Linux: say so now rather than after a long hang. */
	const char *allow = getenv("MINIVMM_ALLOW_PVM");
	if (is_linux && kvm_host_is_pvm() && !(allow && *allow == '1')) {
		log_error("host KVM is PVM (kvm_pvm): unmodified Linux guests cannot run here; "
			  "see README, 'Hosts without hardware virtualization' (MINIVMM_ALLOW_PVM=1 to try anyway)");
		close_boot_files(&files);
		return 1;
	}

	struct vm *vm = malloc(sizeof(*vm));
	if (!vm) {
		log_error("out of memory");
		close_boot_files(&files);
		return 1;
	}
	int status = 1;
	if (vm_create(vm, &opts, NULL) == 0 && vm_add_devices(vm, &opts) == 0 && vm_load(vm, &opts, &files) == 0) {
		close_boot_files(&files);   /* the guest has its copy; drop ours before running */
		if (vm_sandbox(vm, &opts, &ids) == 0)
			status = vm_run(vm);
	}
	close_boot_files(&files);
	vm_destroy(vm);
	free(vm);
	return status;
}
