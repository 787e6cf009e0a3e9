// SPDX-License-Identifier: MIT
/*
 * marktime: run a command and print how long it took, from just before it
 * was started, until a string first appeared in its output (or in a file it
 * writes). The rig's benchmarks time a VMM to a guest's marker with it: the
 * same clock for minivmm and QEMU, 1 ms polling, no shell in between.
 *
 *   marktime [--timeout S] [--stop] [--count N] [--watch FILE] LOG STRING -- CMD [ARGS...]
 *
 * CMD's stdout and stderr go to LOG (created or truncated); STRING (bytes,
 * not a pattern) is looked for in LOG, or in FILE with --watch (QEMU's
 * debugcon output, say). Once it appears (the Nth time with --count N: a
 * guest that repeats its marker is then not fooled by one stray write of
 * the same byte early in a boot), the milliseconds are printed on
 * stdout, one line, at once. Then marktime waits for CMD to end, or with
 * --stop sends it SIGTERM first (a VMM shuts its guest down on SIGTERM).
 *
 * --timeout S (default 300) bounds the whole run; CMD is killed (SIGKILL)
 * when it is over.
 *
 * Exit status: 0 the string appeared (CMD's own status is reported on
 * stderr when it is not 0); 1 it did not (CMD ended first, or the time ran
 * out); 2 usage or system error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void usage(void)
{
	fprintf(stderr, "usage: marktime [--timeout S] [--stop] [--count N] [--watch FILE] LOG STRING -- CMD [ARGS...]\n");
	exit(2);
}

/* The watched file as it grows: reads what is new since the last call and
 * keeps the last strlen(needle)-1 bytes, so a string split over two reads
 * is found too. */
struct watch {
	const char *path;
	int fd;
	char buf[65536];
	size_t have;
	unsigned seen;       /* occurrences so far */
};

static bool watch_found(struct watch *w, const char *needle, unsigned count)
{
	size_t nlen = strlen(needle);
	if (w->fd < 0) {
		w->fd = open(w->path, O_RDONLY | O_CLOEXEC);
		if (w->fd < 0)
			return false; /* not created yet */
	}
	for (;;) {
		ssize_t n = read(w->fd, w->buf + w->have, sizeof(w->buf) - w->have);
		if (n <= 0)
			return false;
		w->have += (size_t)n;
		const char *p = w->buf, *end = w->buf + w->have, *hit;
		while ((hit = memmem(p, (size_t)(end - p), needle, nlen))) {
			if (++w->seen >= count)
				return true;
			p = hit + nlen;
		}
		/* The kept tail is shorter than the needle: nothing counted twice. */
		size_t keep = nlen - 1 < w->have ? nlen - 1 : w->have;
		memmove(w->buf, w->buf + w->have - keep, keep);
		w->have = keep;
	}
}

static void report_status(int status)
{
	if (WIFEXITED(status) && WEXITSTATUS(status))
		fprintf(stderr, "marktime: command exited with status %d\n", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		fprintf(stderr, "marktime: command killed by signal %d\n", WTERMSIG(status));
}

int main(int argc, char **argv)
{
	double timeout_s = 300;
	unsigned count = 1;
	bool stop = false;
	const char *watch_path = NULL;
	int i = 1;

	for (; i < argc && strncmp(argv[i], "--", 2) == 0 && argv[i][2]; i++) {
		if (!strcmp(argv[i], "--stop"))
			stop = true;
		else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
			timeout_s = atof(argv[++i]);
		else if (!strcmp(argv[i], "--count") && i + 1 < argc)
			count = (unsigned)atoi(argv[++i]);
		else if (!strcmp(argv[i], "--watch") && i + 1 < argc)
			watch_path = argv[++i];
		else
			usage();
	}
	if (argc - i < 4 || strcmp(argv[i + 2], "--") || !argv[i + 1][0] || timeout_s <= 0 || count < 1)
		usage();
	const char *log = argv[i], *needle = argv[i + 1];
	char **cmd = &argv[i + 3];

	int log_fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (log_fd < 0) {
		fprintf(stderr, "marktime: %s: %s\n", log, strerror(errno));
		return 2;
	}
	if (watch_path)
		unlink(watch_path); /* a previous run's marker must not count */
	double t0 = now_ms();
	pid_t pid = fork();
	if (pid < 0) {
		perror("marktime: fork");
		return 2;
	}
	if (pid == 0) {
		dup2(log_fd, 1);
		dup2(log_fd, 2);
		int null = open("/dev/null", O_RDONLY);
		if (null >= 0)
			dup2(null, 0);
		execvp(cmd[0], cmd);
		fprintf(stderr, "marktime: %s: %s\n", cmd[0], strerror(errno));
		_exit(127);
	}
	close(log_fd);

	struct watch w = { .path = watch_path ? watch_path : log, .fd = -1 };
	bool found = false, killed = false;
	int status = 0;
	for (;;) {
		if (!found && watch_found(&w, needle, count)) {
			found = true;
			printf("%.1f\n", now_ms() - t0);
			fflush(stdout);
			if (stop)
				kill(pid, SIGTERM);
		}
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if (!killed && now_ms() - t0 > timeout_s * 1e3) {
			fprintf(stderr, "marktime: still running after %.0f s: killed\n", timeout_s);
			kill(pid, SIGKILL);
			killed = true;
		}
		usleep(1000);
	}
	if (!found && watch_found(&w, needle, count)) {
		found = true; /* it appeared just before the command ended */
		printf("%.1f\n", now_ms() - t0);
	}
	/* A command stopped by our SIGTERM may die of it or exit 128+15. */
	bool stopped = stop && found && ((WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM) ||
					 (WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGTERM));
	if (!stopped)
		report_status(status);
	if (!found) {
		fprintf(stderr, "marktime: \"%s\" never appeared in %s\n", needle, w.path);
		return 1;
	}
	return 0;
}
