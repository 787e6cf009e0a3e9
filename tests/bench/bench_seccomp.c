/* Benchmark: what a seccomp filter adds to the system calls of a datapath
 * thread. Times writev+readv pairs on an eventfd (the shape of a net worker's
 * per-frame calls) in a thread without a filter and in a thread under the
 * main + net-worker filters (vmm/sandbox.c), alternated, and prints the
 * medians and their ratio. Run: build/tests/bench/bench_seccomp [rounds] */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vmm/sandbox.h"

#define CALLS 200000

static double ns_per_pair(int fd)
{
	uint64_t v = 1;
	struct iovec iov = { &v, sizeof(v) };
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < CALLS; i++) {
		if (writev(fd, &iov, 1) != sizeof(v) || readv(fd, &iov, 1) != sizeof(v))
			abort();
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	return ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / CALLS;
}

/* One measurement in a child process (a filter cannot be removed). */
static double measure(bool filtered)
{
	int p[2];
	if (pipe(p))
		abort();
	pid_t pid = fork();
	if (pid == 0) {
		struct sandbox sb;
		char err[256];
		int fd = eventfd(0, EFD_CLOEXEC);   /* opened before the filter, as devices are */
		if (filtered && (sandbox_init(&sb, SECCOMP_ON, NULL, err, sizeof(err)) ||
				 prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || sandbox_enter(&sb, THREAD_ROLE_CONTROL) ||
				 sandbox_enter(&sb, THREAD_ROLE_NET)))
			_exit(1);
		double ns = ns_per_pair(fd);
		if (write(p[1], &ns, sizeof(ns)) != sizeof(ns))
			_exit(1);
		_exit(0);
	}
	double ns = -1;
	close(p[1]);
	if (read(p[0], &ns, sizeof(ns)) != sizeof(ns))
		ns = -1;
	close(p[0]);
	waitpid(pid, NULL, 0);
	return ns;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 9;
	if (rounds < 1 || rounds > 1000)
		rounds = 9;
	double on[1000], off[1000];
	for (int r = 0; r < rounds; r++) {
		off[r] = measure(false);
		on[r] = measure(true);
		if (on[r] < 0 || off[r] < 0) {
			fprintf(stderr, "bench_seccomp: a measurement failed\n");
			return 1;
		}
	}
	qsort(on, (size_t)rounds, sizeof(double), cmp);
	qsort(off, (size_t)rounds, sizeof(double), cmp);
	double mon = on[rounds / 2], moff = off[rounds / 2];
	printf("writev+readv pair on an eventfd, %d rounds of %d, medians: no filter %.0f ns, "
	       "main+net-worker filters %.0f ns, ratio %.2f (+%.0f ns per pair)\n",
	       rounds, CALLS, moff, mon, mon / moff, mon - moff);
	return 0;
}
