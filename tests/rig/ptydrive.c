// SPDX-License-Identifier: MIT
/*
 * ptydrive: run a command on a new pty (as its controlling terminal), copy
 * what it prints to stdout (and optionally a log file), and drive it with a
 * tiny expect/send script.
 *
 *   ptydrive [--timeout S] [--log FILE] STEP... -- CMD [ARGS...]
 *
 *   STEP is one of
 *     --expect REGEX   wait until the output matches REGEX (POSIX extended)
 *     --send LINE      type LINE followed by a carriage return (Enter)
 *     --send-raw STR   type STR as is; \r \n \t \\ \xHH escapes are decoded
 *     --sleep S        wait S seconds (fractions allowed) before the next step
 *
 * Matching runs on the output received since the previous match, with
 * carriage returns and NUL bytes removed, REG_NEWLINE set (so ^ and $ match
 * at line boundaries and at the end of what has arrived so far).
 *
 * --timeout S (default 120) bounds the whole run: all steps plus the wait for
 * the command to exit after the last step.
 *
 * Exit status: 0 all expects matched and the command exited with status 0;
 * 1 an expect did not match (timeout, or the command ended first);
 * 3 all expects matched but the command exited non-zero or was killed;
 * 2 usage or system error. The command's status is always reported on
 * stderr ("ptydrive: command exited with status N").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <regex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

enum step_kind { STEP_EXPECT, STEP_SEND, STEP_SLEEP };

struct step {
	enum step_kind kind;
	const char *arg;   /* as given on the command line */
	char *data;        /* bytes to send (STEP_SEND) */
	size_t len;
	double seconds;    /* STEP_SLEEP */
	regex_t re;        /* STEP_EXPECT */
};

#define MATCH_MAX (256 * 1024)
#define BATCH_US 10000

static char matchbuf[MATCH_MAX + 1];
static size_t matchlen;
static FILE *logf;

static void msg(const char *fmt, ...)
{
	va_list ap;
	fflush(stdout);
	fputs("ptydrive: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (logf) {
		fputs("\n[ptydrive: ", logf);
		va_start(ap, fmt);
		vfprintf(logf, fmt, ap);
		va_end(ap);
		fputs("]\n", logf);
		fflush(logf);
	}
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void usage(void)
{
	fputs("usage: ptydrive [--timeout S] [--log FILE] "
	      "[--expect REGEX | --send LINE | --send-raw STR | --sleep S]... "
	      "-- CMD [ARGS...]\n", stderr);
	exit(2);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static void decode_escapes(struct step *s, const char *in)
{
	size_t n = strlen(in);
	char *out = malloc(n + 1);
	size_t o = 0;

	if (!out)
		exit(2);
	for (size_t i = 0; i < n; i++) {
		if (in[i] != '\\' || i + 1 == n) {
			out[o++] = in[i];
			continue;
		}
		char c = in[++i];
		switch (c) {
		case 'r': out[o++] = '\r'; break;
		case 'n': out[o++] = '\n'; break;
		case 't': out[o++] = '\t'; break;
		case '\\': out[o++] = '\\'; break;
		case 'x':
			if (i + 2 < n && hexval(in[i + 1]) >= 0 && hexval(in[i + 2]) >= 0) {
				out[o++] = (char)(hexval(in[i + 1]) * 16 + hexval(in[i + 2]));
				i += 2;
				break;
			}
			/* fall through */
		default:
			out[o++] = '\\';
			out[o++] = c;
		}
	}
	s->data = out;
	s->len = o;
}

/* Append output to the match buffer, dropping CR and NUL. Keeps the tail. */
static void match_append(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\r' || p[i] == '\0')
			continue;
		if (matchlen == MATCH_MAX) {
			memmove(matchbuf, matchbuf + MATCH_MAX / 2, MATCH_MAX / 2);
			matchlen = MATCH_MAX / 2;
		}
		matchbuf[matchlen++] = p[i];
	}
	matchbuf[matchlen] = '\0';
}

/* Try to match; on success drop everything up to the end of the match. */
static int match_try(regex_t *re)
{
	regmatch_t m;
	if (regexec(re, matchbuf, 1, &m, 0) != 0)
		return 0;
	size_t end = (size_t)m.rm_eo;
	memmove(matchbuf, matchbuf + end, matchlen - end + 1);
	matchlen -= end;
	return 1;
}

static void copy_out(const char *p, size_t n)
{
	fwrite(p, 1, n, stdout);
	fflush(stdout);
	if (logf) {
		fwrite(p, 1, n, logf);
		fflush(logf);
	}
}

static int write_all(int fd, const char *p, size_t n, double deadline)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno != EAGAIN && errno != EINTR)
			return -1;
		double left = deadline - now();
		if (left <= 0)
			return -1;
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		poll(&pfd, 1, left > 0.1 ? 100 : (int)(left * 1000) + 1);
	}
	return 0;
}

static const char *describe_status(int st, char *buf, size_t n)
{
	if (WIFEXITED(st))
		snprintf(buf, n, "exited with status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, n, "was killed by signal %d (%s)", WTERMSIG(st),
			 strsignal(WTERMSIG(st)));
	else
		snprintf(buf, n, "ended with wait status 0x%x", st);
	return buf;
}

static void kill_child(pid_t pid, int *status)
{
	/* The command leads its own session and process group. */
	kill(-pid, SIGTERM);
	kill(pid, SIGTERM);
	for (int i = 0; i < 50; i++) {
		if (waitpid(pid, status, WNOHANG) == pid)
			return;
		usleep(100000);
	}
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	waitpid(pid, status, 0);
}

int main(int argc, char **argv)
{
	double timeout = 120;
	const char *logpath = NULL;
	struct step *steps = calloc((size_t)argc, sizeof(*steps));
	int nsteps = 0;
	int i;

	if (!steps)
		return 2;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--"))
			break;
		if (i + 1 >= argc)
			usage();
		const char *v = argv[++i];
		if (!strcmp(a, "--timeout")) {
			char *end;
			timeout = strtod(v, &end);
			if (*end || timeout <= 0)
				usage();
		} else if (!strcmp(a, "--log")) {
			logpath = v;
		} else if (!strcmp(a, "--expect")) {
			struct step *s = &steps[nsteps++];
			s->kind = STEP_EXPECT;
			s->arg = v;
			int rc = regcomp(&s->re, v, REG_EXTENDED | REG_NEWLINE);
			if (rc) {
				char eb[256];
				regerror(rc, &s->re, eb, sizeof(eb));
				fprintf(stderr, "ptydrive: bad regex /%s/: %s\n", v, eb);
				return 2;
			}
		} else if (!strcmp(a, "--send") || !strcmp(a, "--send-raw")) {
			struct step *s = &steps[nsteps++];
			s->kind = STEP_SEND;
			s->arg = v;
			if (!strcmp(a, "--send")) {
				size_t n = strlen(v);
				s->data = malloc(n + 1);
				if (!s->data)
					return 2;
				memcpy(s->data, v, n);
				s->data[n] = '\r';
				s->len = n + 1;
			} else {
				decode_escapes(s, v);
			}
		} else if (!strcmp(a, "--sleep")) {
			struct step *s = &steps[nsteps++];
			char *end;
			s->kind = STEP_SLEEP;
			s->arg = v;
			s->seconds = strtod(v, &end);
			if (*end || s->seconds < 0)
				usage();
		} else {
			usage();
		}
	}
	if (i >= argc - 1)
		usage();
	char **cmd = &argv[i + 1];

	if (logpath) {
		logf = fopen(logpath, "w");
		if (!logf) {
			fprintf(stderr, "ptydrive: cannot open log %s: %s\n", logpath, strerror(errno));
			return 2;
		}
	}

	int master = posix_openpt(O_RDWR | O_NOCTTY);
	if (master < 0 || grantpt(master) || unlockpt(master)) {
		fprintf(stderr, "ptydrive: cannot allocate a pty: %s\n", strerror(errno));
		return 2;
	}
	char *slavename = ptsname(master);
	if (!slavename) {
		fprintf(stderr, "ptydrive: ptsname: %s\n", strerror(errno));
		return 2;
	}
	struct winsize ws = { .ws_row = 24, .ws_col = 80 };
	ioctl(master, TIOCSWINSZ, &ws);

	signal(SIGPIPE, SIG_IGN);
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "ptydrive: fork: %s\n", strerror(errno));
		return 2;
	}
	if (pid == 0) {
		setsid();
		int s = open(slavename, O_RDWR);
		if (s < 0) {
			fprintf(stderr, "ptydrive: open %s: %s\n", slavename, strerror(errno));
			_exit(127);
		}
		ioctl(s, TIOCSCTTY, 0);
		dup2(s, 0);
		dup2(s, 1);
		dup2(s, 2);
		if (s > 2)
			close(s);
		close(master);
		if (logf)
			fclose(logf);
		execvp(cmd[0], cmd);
		fprintf(stderr, "ptydrive: cannot run %s: %s\n", cmd[0], strerror(errno));
		_exit(127);
	}
	fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);

	double start = now();
	double deadline = start + timeout;
	double not_before = 0;
	int cur = 0;
	int status = 0;
	int exited = 0;      /* child reaped */
	int eof = 0;         /* master returned EIO/EOF: no more output */
	int failed = 0;
	char buf[65536];

	for (;;) {
		/* Run steps that do not wait for output. */
		while (cur < nsteps && !failed) {
			struct step *s = &steps[cur];
			if (now() < not_before)
				break;
			if (s->kind == STEP_SLEEP) {
				not_before = now() + s->seconds;
				cur++;
			} else if (s->kind == STEP_SEND) {
				if (eof || exited) {
					msg("command ended before step %d (send \"%s\")", cur + 1, s->arg);
					failed = 1;
					break;
				}
				msg("send \"%s\"", s->arg);
				if (write_all(master, s->data, s->len, deadline)) {
					msg("write to pty failed at step %d: %s", cur + 1, strerror(errno));
					failed = 1;
					break;
				}
				cur++;
			} else {
				if (!match_try(&s->re))
					break;
				msg("matched /%s/ after %.1f s", s->arg, now() - start);
				cur++;
			}
		}
		if (failed)
			break;
		if (cur == nsteps && exited && eof)
			break;

		double t = now();
		if (t >= deadline) {
			if (cur < nsteps)
				msg("timeout after %.0f s at step %d: waiting for /%s/", timeout,
				    cur + 1, steps[cur].arg);
			else
				msg("timeout after %.0f s waiting for the command to exit", timeout);
			failed = 1;
			break;
		}

		if (!eof) {
			double wait = deadline - t;
			if (not_before > t && not_before - t < wait)
				wait = not_before - t;
			if (wait > 0.1)
				wait = 0.1;   /* also poll for the child's exit */
			struct pollfd pfd = { .fd = master, .events = POLLIN };
			int pr = poll(&pfd, 1, (int)(wait * 1000) + 1);
			if (pr > 0) {
				ssize_t r = read(master, buf, sizeof(buf));
				if (r > 0) {
					copy_out(buf, (size_t)r);
					match_append(buf, (size_t)r);
					/*
					 * A serial console arrives a byte per write(); let it
					 * gather for a moment instead of waking up per byte,
					 * which costs the VM under test real CPU time when
					 * everything runs on an emulated CPU.
					 */
					if ((size_t)r < sizeof(buf) / 2)
						usleep(BATCH_US);
				} else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
					eof = 1;  /* EIO: every slave fd is closed */
				}
			}
		} else if (!exited) {
			usleep(20000);
		}

		if (!exited && waitpid(pid, &status, WNOHANG) == pid) {
			exited = 1;
			/* Drain what the command left in the pty, then stop reading. */
			for (;;) {
				ssize_t r = read(master, buf, sizeof(buf));
				if (r <= 0)
					break;
				copy_out(buf, (size_t)r);
				match_append(buf, (size_t)r);
			}
			eof = 1;
		}
		if (exited && cur < nsteps) {
			/* Give the remaining output a chance to satisfy the steps. */
			while (cur < nsteps && steps[cur].kind == STEP_EXPECT &&
			       match_try(&steps[cur].re)) {
				msg("matched /%s/ after %.1f s", steps[cur].arg, now() - start);
				cur++;
			}
			if (cur < nsteps) {
				if (steps[cur].kind == STEP_EXPECT)
					msg("command ended before /%s/ matched (step %d)",
					    steps[cur].arg, cur + 1);
				else
					msg("command ended before step %d", cur + 1);
				failed = 1;
				break;
			}
		}
	}

	if (!exited) {
		msg("stopping the command (pid %d)", (int)pid);
		kill_child(pid, &status);
	}
	char sb[128];
	msg("command %s", describe_status(status, sb, sizeof(sb)));
	if (failed)
		return 1;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return 3;
	return 0;
}
