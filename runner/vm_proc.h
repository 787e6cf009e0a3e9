/* One minivmm process per job: started with its output in a file, stopped
 * and reaped by the job that started it. */
#ifndef MINIVMM_RUNNER_VM_PROC_H
#define MINIVMM_RUNNER_VM_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct vm_proc {
	pid_t pid;	 /* 0 once reaped */
	int status;	 /* waitpid status, once reaped */
	char log[4096];	 /* minivmm's stdout and stderr go here */
};

/* Starts argv[0] with argv (NULL-terminated), stdin /dev/null, stdout and
 * stderr appended to log_path. Returns 0, or -1 with a reason in err. */
int vm_proc_start(struct vm_proc *vm, char *const argv[], const char *log_path, char *err, size_t errlen);

/* Whether it is still running (reaps it if it has ended). */
bool vm_proc_running(struct vm_proc *vm);

/* Stops it: SIGTERM (minivmm stops the guest and exits), SIGKILL after
 * grace_ms, then reaps it. Safe to call twice. */
void vm_proc_stop(struct vm_proc *vm, int grace_ms);

/* Waits up to timeout_ms for it to end by itself; returns whether it did. */
bool vm_proc_wait(struct vm_proc *vm, int timeout_ms);

/* Whether it has ended with exit status 0. */
bool vm_proc_succeeded(const struct vm_proc *vm);

/* How it ended, with its last words, for error messages: "exited with
 * status N: <the last nonempty line of its log>" ("killed by signal N",
 * "running"; no ": ..." when the log is empty), into buf. */
void vm_proc_explain(const struct vm_proc *vm, char *buf, size_t len);

#endif
