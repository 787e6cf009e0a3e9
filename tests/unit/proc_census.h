/* Counting this process's threads (and the CPU time they used) and fds
 * from /proc, for the tests that check a device leaves nothing behind, or
 * that its threads sleep rather than spin. */
#ifndef MINIVMM_TESTS_PROC_CENSUS_H
#define MINIVMM_TESTS_PROC_CENSUS_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* This process's threads whose name starts with prefix ("" matches all of
 * ours): returns how many (~0u when /proc cannot be read) and, with cpu_ns
 * given, adds the CPU time they used to it, in ns (the kernel's per-thread
 * CPU clock, as pthread_getcpuclockid makes it). KVM attaches its own worker
 * tasks ("kvm-nx-lpage-recovery") to the process: those belong to the
 * kernel's VM object and never match. */
static inline unsigned census_threads_scan(const char *prefix, uint64_t *cpu_ns)
{
	unsigned n = 0;
	DIR *d = opendir("/proc/self/task");
	if (!d)
		return ~0u;
	for (struct dirent *e; (e = readdir(d));) {
		char path[300], comm[32] = "";
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		FILE *f = fopen(path, "re");
		if (!f)
			continue;   /* thread just went */
		if (!fgets(comm, sizeof(comm), f))
			comm[0] = 0;
		fclose(f);
		if (!strncmp(comm, "kvm-", 4) || strncmp(comm, prefix, strlen(prefix)))
			continue;
		n++;
		if (!cpu_ns)
			continue;
		unsigned tid = (unsigned)atoi(e->d_name);
		clockid_t clk = (clockid_t)((~tid << 3) | 6u);   /* CPUCLOCK_SCHED | CPUCLOCK_PERTHREAD_MASK */
		struct timespec ts;
		if (clock_gettime(clk, &ts) == 0)
			*cpu_ns += (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	}
	closedir(d);
	return n;
}

static inline unsigned census_threads_now(const char *prefix)
{
	return census_threads_scan(prefix, NULL);
}

/* The CPU time of the threads whose name starts with prefix, in ns. */
static inline uint64_t census_threads_cpu_ns(const char *prefix)
{
	uint64_t ns = 0;
	census_threads_scan(prefix, &ns);
	return ns;
}

/* pthread_join returns when the kernel clears the thread's tid, which is
 * before the task leaves /proc/self/task: a joined thread can still be listed
 * for a moment. So wait (up to 2 s) for the count to reach what the test
 * expects, and return what it is then; a leaked thread never goes away. */
static inline unsigned census_threads(const char *prefix, unsigned expect)
{
	unsigned n = census_threads_now(prefix);
	for (int i = 0; i < 200 && n != expect; i++) {
		nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
		n = census_threads_now(prefix);
	}
	return n;
}

static inline unsigned census_fds(void)
{
	unsigned n = 0;
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return ~0u;
	for (struct dirent *e; (e = readdir(d));)
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1;   /* the directory's own fd */
}

#endif
