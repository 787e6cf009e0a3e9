/* The VM object on a real KVM, with the bare test guest spinning: vCPU
 * threads start, pause (guest makes no progress), resume, stop; and
 * vm_destroy leaves no thread and no fd behind. Skipped, with the reason
 * printed, where /dev/kvm is missing. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "vmm/arch.h"
#include "vmm/base/file_util.h"
#include "vmm/vm.h"
#include "proc_census.h"

struct runner {
	struct vm *vm;
	int status;
};

static void *run_vm(void *arg)
{
	struct runner *r = arg;
	r->status = vm_run(r->vm);
	return NULL;
}

static volatile uint64_t *counter(struct vm *vm)
{
	return guest_mem_ptr(&vm->mem, 0x6000, 8);
}

static uint64_t settle_read(struct vm *vm)
{
	usleep(50 * 1000);
	return *counter(vm);
}

Test(vm_lifecycle, start_pause_resume_stop_leaves_nothing)
{
	const char *tiny = getenv("TINY_GUEST");
	if (access("/dev/kvm", R_OK | W_OK) != 0 || !tiny) {
		cr_skip_test("no usable /dev/kvm (or TINY_GUEST unset): lifecycle test needs KVM");
	}
	unsigned fds_before = census_fds();
	unsigned threads_before = census_threads_now("");

	char *argv[] = { "minivmm", "--kernel", (char *)tiny, "--cmdline", "hang", "--cpus", "2",
			 "--console", "none", NULL };
	static struct vmm_options opts;
	char err[256];
	cr_assert_eq(options_parse(9, argv, &opts, err, sizeof(err)), 0, "%s", err);
	struct boot_files files = { .initrd_fd = -1 };
	cr_assert_eq(read_input_file("--kernel", tiny, 1 << 20, &files.kernel, &files.kernel_len), 0);

	struct vm *vm = calloc(1, sizeof(*vm));
	cr_assert_eq(vm_create(vm, &opts, NULL), 0);
	cr_assert_eq(vm_load(vm, &opts, &files), 0);
	free(files.kernel);

	struct runner r = { vm, -1 };
	pthread_t t;
	pthread_create(&t, NULL, run_vm, &r);

	/* Running: the guest's counter moves. */
	for (int i = 0; i < 200 && *counter(vm) == 0; i++)
		usleep(10 * 1000);
	uint64_t a = *counter(vm);
	cr_assert_gt(settle_read(vm), a, "guest makes progress while running");
	unsigned threads_running = census_threads("", threads_before + 1 + 1 + 2);
	cr_assert_eq(threads_running, threads_before + 1 + 1 + 2, "runner + control + 2 vCPU threads: %u before, %u now",
		     threads_before, threads_running);

	vm_pause(vm);
	cr_assert_eq(vm->n_paused, 2, "both vCPUs parked");
	uint64_t p1 = *counter(vm);
	cr_assert_eq(settle_read(vm), p1, "no guest progress while paused");

	vm_resume(vm);
	cr_assert_gt(settle_read(vm), p1, "progress again after resume");

	vm_request_stop(vm, STOP_SIGNAL, 15);
	pthread_join(t, NULL);
	cr_assert_eq(r.status, 128 + 15);
	vm_destroy(vm);
	free(vm);

	cr_assert_eq(census_threads("", threads_before), threads_before, "no stray threads");
	cr_assert_eq(census_fds(), fds_before, "no stray fds");
}
