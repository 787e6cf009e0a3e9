#define _GNU_SOURCE
#include "vm_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int vm_proc_start(struct vm_proc *vm, char *const argv[], const char *log_path, char *err, size_t errlen)
{
	memset(vm, 0, sizeof(*vm));
	snprintf(vm->log, sizeof(vm->log), "%s", log_path);
	int logfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (logfd < 0) {
		snprintf(err, errlen, "%s: %s", log_path, strerror(errno));
		return -1;
	}
	int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (nullfd < 0) {
		snprintf(err, errlen, "/dev/null: %s", strerror(errno));
		close(logfd);
		return -1;
	}
	/* The exec error travels back through a close-on-exec pipe: nothing
	 * arrives when the exec worked. */
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		close(logfd);
		close(nullfd);
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(logfd);
		close(nullfd);
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		/* The runner's own signal set-up must not leak into the VMM. */
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		/* Its own process group: a Ctrl-C at the runner's terminal
		 * reaches the runner, which stops its VMs itself. */
		setpgid(0, 0);
		if (dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
			_exit(127);
		execv(argv[0], argv);
		int e = errno;
		if (write(pfd[1], &e, sizeof(e)) < 0)
			_exit(127);
		_exit(127);
	}
	close(logfd);
	close(nullfd);
	close(pfd[1]);
	int e = 0;
	ssize_t n;
	do
		n = read(pfd[0], &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	close(pfd[0]);
	vm->pid = pid;
	if (n == (ssize_t)sizeof(e)) {
		snprintf(err, errlen, "%s: %s", argv[0], strerror(e));
		vm_proc_stop(vm, 0);
		return -1;
	}
	return 0;
}

static bool reap(struct vm_proc *vm, int flags)
{
	if (!vm->pid)
		return true;
	pid_t r;
	do
		r = waitpid(vm->pid, &vm->status, flags);
	while (r < 0 && errno == EINTR);
	if (r == vm->pid || (r < 0 && errno == ECHILD)) {
		vm->pid = 0;
		return true;
	}
	return false;
}

bool vm_proc_running(struct vm_proc *vm)
{
	return !reap(vm, WNOHANG);
}

bool vm_proc_wait(struct vm_proc *vm, int timeout_ms)
{
	for (int waited = 0;; waited += 5) {
		if (reap(vm, WNOHANG))
			return true;
		if (waited >= timeout_ms)
			return false;
		nanosleep(&(struct timespec){ .tv_nsec = 5 * 1000 * 1000 }, NULL);
	}
}

void vm_proc_stop(struct vm_proc *vm, int grace_ms)
{
	if (!vm->pid)
		return;
	if (grace_ms > 0) {
		kill(vm->pid, SIGTERM);
		if (vm_proc_wait(vm, grace_ms))
			return;
	}
	kill(vm->pid, SIGKILL);
	reap(vm, 0);
}

static void vm_proc_describe(const struct vm_proc *vm, char *buf, size_t len)
{
	if (vm->pid)
		snprintf(buf, len, "running");
	else if (WIFEXITED(vm->status))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(vm->status));
	else if (WIFSIGNALED(vm->status))
		snprintf(buf, len, "killed by signal %d", WTERMSIG(vm->status));
	else
		snprintf(buf, len, "ended");
}

static void vm_proc_last_line(const struct vm_proc *vm, char *buf, size_t len)
{
	buf[0] = '\0';
	FILE *f = fopen(vm->log, "re");
	if (!f)
		return;
	/* Only the tail matters: skip to the last 4 KiB. */
	if (fseek(f, -4096, SEEK_END) < 0)
		rewind(f);
	char line[512];
	while (fgets(line, sizeof(line), f)) {
		size_t l = strcspn(line, "\r\n");
		line[l] = '\0';
		if (l)
			snprintf(buf, len, "%s", line);
	}
	fclose(f);
}

bool vm_proc_succeeded(const struct vm_proc *vm)
{
	return !vm->pid && WIFEXITED(vm->status) && WEXITSTATUS(vm->status) == 0;
}

void vm_proc_explain(const struct vm_proc *vm, char *buf, size_t len)
{
	char how[64], last[512];
	vm_proc_describe(vm, how, sizeof(how));
	vm_proc_last_line(vm, last, sizeof(last));
	snprintf(buf, len, "%s%s%s", how, last[0] ? ": " : "", last);
}
