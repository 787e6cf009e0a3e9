/* Counting this process's threads and fds from /proc, for the tests that
 * check a device leaves nothing behind. */
#ifndef MINIVMM_TESTS_PROC_CENSUS_H
#define MINIVMM_TESTS_PROC_CENSUS_H

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Threads whose name starts with prefix; "" counts all of ours. KVM attaches
 * its own worker tasks ("kvm-nx-lpage-recovery") to the process: those belong
 * to the kernel's VM object and are never counted. */
static inline unsigned census_threads_now(const char *prefix)
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
		if (strncmp(comm, "kvm-", 4) && !strncmp(comm, prefix, strlen(prefix)))
			n++;
	}
	closedir(d);
	return n;
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
