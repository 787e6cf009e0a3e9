/* mvagent: the function runner's guest agent (issue 16).
 *
 * Runs in the guest as /init's main job: listens on vsock port
 * RUNNER_AGENT_PORT and serves each connection in a forked child, so that it
 * keeps listening (a snapshot's clones each take their own connection). One
 * connection is one job, as runner/proto.h describes: HELLO/READY; SEED (set
 * the clock, reseed the kernel's CRNG so clones of one snapshot diverge);
 * ARG, ENV, CWD, FILE + FILE_DATA; RUN; then the command's stdin from the
 * host and its stdout/stderr to the host, byte for byte, until EXIT.
 *
 * The host is trusted (it made the VM) but may be buggy: every frame is
 * checked with proto.c, and a broken one gets one ERROR line and the end of
 * the stream. Memory per connection is fixed apart from the command line and
 * the file names: stdin is streamed through a bounded buffer (the socket is
 * not read while it is full), output goes out in 64 KiB frames as the socket
 * takes them. The command runs in a session of its own; when the job ends
 * (EXIT) or the host goes away, whatever is left of its process group is
 * killed.
 *
 * Built static for the guest image (guest-images/build.sh:
 * gcc -static -O2 -I runner runner/agent/mvagent.c runner/proto.c) and on
 * the host by CMake for -Werror, the sanitizers and tests/unit/test_mvagent.c,
 * which drives one connection through the test mode `mvagent --serve-fd N`. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/random.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
/* After sys/socket.h: it needs sa_family_t. */
#include <linux/vm_sockets.h>

#include "proto.h"

#ifndef RNDRESEEDCRNG
#define RNDRESEEDCRNG _IO('R', 0x07) /* Linux 4.17 */
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434 /* Linux 5.3, the same number on every arch */
#endif

/* One read of the command's stdout or stderr, sent as one frame. */
#define OUT_CHUNK (64 * 1024)
/* Room always kept free in the output buffer for the last frame (EXIT or
 * ERROR), so it can be queued behind whatever output is still waiting. */
#define OUT_RESERVE (RUNNER_FRAME_HDR + RUNNER_ERROR_MAX)
#define OUT_CAP (8 * (RUNNER_FRAME_HDR + OUT_CHUNK) + OUT_RESERVE)
/* The largest frame fits whole, so its payload can be handled in place. */
#define IN_CAP (RUNNER_FRAME_HDR + RUNNER_FRAME_MAX)
/* Stdin the command has not taken yet: two frames' worth. */
#define STDIN_CAP (2 * RUNNER_FRAME_MAX)
/* How long a last READY/ERROR may wait for the host to read it. */
#define FLUSH_MS 10000
/* After the last frame: how long to wait for the host to close its side. */
#define LINGER_MS 1000
#define DEFAULT_PATH "PATH=/usr/sbin:/usr/bin:/sbin:/bin"

/* ---- the connection: buffered frames in, buffered frames out ---- */

struct conn {
	int fd; /* non-blocking */
	bool in_eof;
	size_t in_start, in_end;   /* unread bytes: in[in_start, in_end) */
	size_t out_start, out_end; /* unsent bytes: out[out_start, out_end) */
	char err[RUNNER_ERROR_MAX + 1]; /* the ERROR line to send */
	uint8_t in[IN_CAP];
	uint8_t out[OUT_CAP];
};

__attribute__((format(printf, 2, 3)))
static int conn_fail(struct conn *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	return -1;
}

static size_t out_pending(const struct conn *c)
{
	return c->out_end - c->out_start;
}

/* Makes `need` contiguous bytes free at the end of the output buffer, moving
 * the unsent bytes to its start if that is what it takes. */
static bool out_room(struct conn *c, size_t need)
{
	if (OUT_CAP - c->out_end >= need)
		return true;
	memmove(c->out, c->out + c->out_start, out_pending(c));
	c->out_end -= c->out_start;
	c->out_start = 0;
	return OUT_CAP - c->out_end >= need;
}

static void out_frame(struct conn *c, uint8_t type, const void *payload, size_t len)
{
	if (!out_room(c, RUNNER_FRAME_HDR + len)) {
		/* Cannot happen: see OUT_RESERVE. */
		fprintf(stderr, "mvagent: no room for a %s frame\n", runner_type_name(type));
		return;
	}
	runner_hdr_encode(c->out + c->out_end, type, (uint32_t)len);
	if (len)
		memcpy(c->out + c->out_end + RUNNER_FRAME_HDR, payload, len);
	c->out_end += RUNNER_FRAME_HDR + len;
}

/* Sends what the socket takes now. 0, or -1 when the host is gone. */
static int out_send(struct conn *c)
{
	while (out_pending(c)) {
		ssize_t n = write(c->fd, c->out + c->out_start, out_pending(c));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : -1;
		}
		c->out_start += (size_t)n;
	}
	c->out_start = c->out_end = 0;
	return 0;
}

/* Sends everything queued, waiting at most ms for the host to take it. */
static int out_flush(struct conn *c, int ms)
{
	for (;;) {
		if (out_send(c))
			return -1;
		if (!out_pending(c))
			return 0;
		struct pollfd p = { .fd = c->fd, .events = POLLOUT };
		int n = poll(&p, 1, ms);
		if (n == 0 || (n < 0 && errno != EINTR))
			return -1;
	}
}

/* Reads what the socket has: >0 bytes, 0 at the end of the stream, -1 when
 * there is nothing yet, -2 when the connection broke. */
static ssize_t in_fill(struct conn *c)
{
	if (c->in_start == c->in_end) {
		c->in_start = c->in_end = 0;
	} else if (c->in_start && IN_CAP - c->in_end < OUT_CHUNK) {
		/* Keep the partial frame whole: it may be up to IN_CAP long. */
		memmove(c->in, c->in + c->in_start, c->in_end - c->in_start);
		c->in_end -= c->in_start;
		c->in_start = 0;
	}
	if (c->in_end == IN_CAP)
		return -1; /* a whole frame is waiting: the caller takes it first */
	for (;;) {
		ssize_t n = read(c->fd, c->in + c->in_end, IN_CAP - c->in_end);
		if (n > 0)
			c->in_end += (size_t)n;
		else if (n == 0)
			c->in_eof = true;
		else if (errno == EINTR)
			continue;
		else if (errno == EAGAIN)
			return -1;
		else
			return -2;
		return n;
	}
}

/* The next frame if it is all in the buffer: 1 (hdr, payload set), 0 (not
 * yet), -1 (a header no frame from the host may have; c->err says why).
 * The header is checked as soon as it is in, before its payload. */
static int in_peek(struct conn *c, struct runner_frame_hdr *h, const uint8_t **payload)
{
	size_t have = c->in_end - c->in_start;
	if (have < RUNNER_FRAME_HDR)
		return 0;
	if (runner_hdr_decode(c->in + c->in_start, h, c->err, sizeof(c->err)))
		return -1;
	if (!runner_type_from_host(h->type))
		return conn_fail(c, "%s frame from the host (only the agent sends it)", runner_type_name(h->type));
	if (have < RUNNER_FRAME_HDR + h->len)
		return 0;
	*payload = c->in + c->in_start + RUNNER_FRAME_HDR;
	return 1;
}

static void in_drop(struct conn *c, const struct runner_frame_hdr *h)
{
	c->in_start += RUNNER_FRAME_HDR + h->len;
}

/* What the host did at the end of the stream: nothing more, or a frame cut
 * short (a protocol error). */
static int in_check_eof(struct conn *c)
{
	if (c->in_end == c->in_start)
		return 0;
	uint8_t type = c->in[c->in_start];
	return conn_fail(c, "the stream ended inside a %s frame", runner_type_name(type));
}

enum { FR_FRAME, FR_EOF, FR_BAD, FR_GONE };

/* Waits for the next whole frame (before RUN, when nothing else is going
 * on). FR_EOF: the host closed the stream between frames. */
static int read_frame(struct conn *c, struct runner_frame_hdr *h, const uint8_t **payload)
{
	for (;;) {
		int r = in_peek(c, h, payload);
		if (r)
			return r > 0 ? FR_FRAME : FR_BAD;
		if (c->in_eof)
			return in_check_eof(c) ? FR_BAD : FR_EOF;
		ssize_t n = in_fill(c);
		if (n == -2)
			return FR_GONE;
		if (n == -1) {
			struct pollfd p = { .fd = c->fd, .events = POLLIN };
			if (poll(&p, 1, -1) < 0 && errno != EINTR)
				return FR_GONE;
		}
	}
}

/* Says what went wrong in one ERROR frame (best effort: the host may be
 * gone) and on the console. Returns 1, the connection's failed status. */
static int send_error(struct conn *c)
{
	size_t len = strlen(c->err);
	if (len == 0)
		len = (size_t)snprintf(c->err, sizeof(c->err), "error");
	/* One line, whatever bytes a path or name brought into it. */
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)c->err[i] < 0x20 || c->err[i] == 0x7f)
			c->err[i] = '?';
	fprintf(stderr, "mvagent: %s\n", c->err);
	out_frame(c, RF_ERROR, c->err, len);
	out_flush(c, FLUSH_MS);
	return 1;
}

/* ---- the job as the host describes it ---- */

/* A NULL-terminated string vector, as execve wants it. */
struct strv {
	char **v;
	size_t n, cap;
};

/* The file whose FILE_DATA is coming (fd -1: none). Written under a
 * temporary name beside it and renamed when complete, so a job never sees
 * half a file. */
struct incoming_file {
	int fd;
	char *path, *tmp;
	uint32_t mode;
	uint64_t size, left;
};

struct job {
	struct strv argv, envp;
	size_t string_bytes; /* ARG and ENV, each with its NUL */
	char *cwd;
	struct incoming_file file;
};

static int strv_push(struct strv *s, const char *p, size_t len)
{
	if (s->n + 2 > s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 16;
		char **v = realloc(s->v, cap * sizeof(*v));
		if (!v)
			return -1;
		s->v = v;
		s->cap = cap;
	}
	char *str = strndup(p, len);
	if (!str)
		return -1;
	s->v[s->n++] = str;
	s->v[s->n] = NULL;
	return 0;
}

static void strv_free(struct strv *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
}

static void file_abort(struct incoming_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	if (f->tmp)
		unlink(f->tmp);
	free(f->tmp);
	free(f->path);
	*f = (struct incoming_file){ .fd = -1 };
}

static void job_free(struct job *j)
{
	strv_free(&j->argv);
	strv_free(&j->envp);
	free(j->cwd);
	file_abort(&j->file);
}

/* ARG and ENV: a copy in argv or envp, within the limits of proto.h. */
static int add_string(struct conn *c, struct job *j, uint8_t type, const uint8_t *p, uint32_t len)
{
	struct strv *s = type == RF_ARG ? &j->argv : &j->envp;
	const char *name = runner_type_name(type);
	if (runner_string_check(type, p, len, c->err, sizeof(c->err)))
		return -1;
	if (s->n >= RUNNER_MAX_ARGS)
		return conn_fail(c, "more than %u %s frames", RUNNER_MAX_ARGS, name);
	if (j->string_bytes + len + 1 > RUNNER_MAX_ARGV_BYTES)
		return conn_fail(c, "ARG and ENV strings over %u bytes", RUNNER_MAX_ARGV_BYTES);
	if (strv_push(s, (const char *)p, len))
		return conn_fail(c, "%s frame: out of memory", name);
	j->string_bytes += len + 1;
	return 0;
}

static int set_cwd(struct conn *c, struct job *j, const uint8_t *p, uint32_t len)
{
	if (runner_string_check(RF_CWD, p, len, c->err, sizeof(c->err)))
		return -1;
	if (j->cwd)
		return conn_fail(c, "a second CWD frame");
	j->cwd = strndup((const char *)p, len);
	return j->cwd ? 0 : conn_fail(c, "CWD frame: out of memory");
}

/* mkdir -p of the directories above path (mode 0755). */
static int make_parents(struct conn *c, char *path)
{
	for (char *s = strchr(path + 1, '/'); s; s = strchr(s + 1, '/')) {
		*s = '\0';
		int rc = mkdir(path, 0755), e = errno;
		*s = '/';
		if (rc && e != EEXIST)
			return conn_fail(c, "FILE %s: cannot make its directories: %s", path, strerror(e));
	}
	return 0;
}

static int file_end(struct conn *c, struct incoming_file *f)
{
	/* fchmod, not the creation mode: the umask must not take bits away. */
	int rc = fchmod(f->fd, f->mode), e = errno;
	if (close(f->fd) && !rc) {
		rc = -1;
		e = errno;
	}
	f->fd = -1;
	if (rc) {
		conn_fail(c, "FILE %s: %s", f->path, strerror(e));
		file_abort(f);
		return -1;
	}
	if (rename(f->tmp, f->path)) {
		conn_fail(c, "FILE %s: %s", f->path, strerror(errno));
		file_abort(f);
		return -1;
	}
	free(f->tmp);
	f->tmp = NULL;
	file_abort(f); /* frees the path; the file stays */
	return 0;
}

static int file_begin(struct conn *c, struct incoming_file *f, const uint8_t *p, uint32_t len)
{
	struct runner_file rf;
	if (runner_file_decode(p, len, &rf, c->err, sizeof(c->err)))
		return -1;
	if (rf.path[rf.path_len - 1] == '/')
		return conn_fail(c, "FILE %.*s: a directory, not a file name", (int)rf.path_len, rf.path);
	f->path = strndup(rf.path, rf.path_len);
	if (!f->path)
		return conn_fail(c, "FILE frame: out of memory");
	const char *slash = strrchr(f->path, '/');
	size_t dirlen = slash ? (size_t)(slash - f->path) + 1 : 0;
	static const char tmpl[] = ".mvagent-XXXXXX";
	f->tmp = malloc(dirlen + sizeof(tmpl));
	if (!f->tmp) {
		file_abort(f);
		return conn_fail(c, "FILE frame: out of memory");
	}
	memcpy(f->tmp, f->path, dirlen);
	memcpy(f->tmp + dirlen, tmpl, sizeof(tmpl));
	if (make_parents(c, f->path)) {
		free(f->tmp);
		f->tmp = NULL;
		file_abort(f);
		return -1;
	}
	f->fd = mkostemp(f->tmp, O_CLOEXEC);
	if (f->fd < 0) {
		conn_fail(c, "FILE %s: cannot create %s: %s", f->path, f->tmp, strerror(errno));
		free(f->tmp);
		f->tmp = NULL;
		file_abort(f);
		return -1;
	}
	f->mode = rf.mode;
	f->size = f->left = rf.size;
	return f->left ? 0 : file_end(c, f);
}

static int file_data(struct conn *c, struct incoming_file *f, const uint8_t *p, uint32_t len)
{
	if (f->fd < 0)
		return conn_fail(c, "FILE_DATA frame without a FILE before it");
	if (len > f->left)
		return conn_fail(c, "FILE %s: a FILE_DATA frame of %" PRIu32 " bytes with %" PRIu64 " due", f->path, len,
				 f->left);
	for (uint32_t done = 0; done < len;) {
		ssize_t n = write(f->fd, p + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			conn_fail(c, "FILE %s: %s", f->path, n < 0 ? strerror(errno) : "write wrote nothing");
			file_abort(f);
			return -1;
		}
		done += (uint32_t)n;
	}
	f->left -= len;
	return f->left ? 0 : file_end(c, f);
}

/* Sets the clock and reseeds the kernel's CRNG: a VM restored from a
 * snapshot wakes with the snapshot's time and the snapshot's random state,
 * which every clone of it shares. */
static int apply_seed(struct conn *c, const struct runner_seed *s)
{
	if (s->sec > INT64_MAX)
		return conn_fail(c, "SEED: time %" PRIu64 " s out of range", s->sec);
	struct timespec ts = { .tv_sec = (time_t)s->sec, .tv_nsec = (long)s->nsec };
	if (clock_settime(CLOCK_REALTIME, &ts))
		return conn_fail(c, "SEED: clock_settime: %s", strerror(errno));
	int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return conn_fail(c, "SEED: /dev/urandom: %s", strerror(errno));
	int rc = 0;
	if (s->entropy_len) {
		struct rand_pool_info *info = malloc(sizeof(*info) + s->entropy_len);
		if (!info) {
			close(fd);
			return conn_fail(c, "SEED: out of memory");
		}
		info->entropy_count = (int)(s->entropy_len * 8);
		info->buf_size = (int)s->entropy_len;
		memcpy(info->buf, s->entropy, s->entropy_len);
		if (ioctl(fd, RNDADDENTROPY, info))
			rc = conn_fail(c, "SEED: RNDADDENTROPY: %s", strerror(errno));
		free(info);
	}
	/* Mixing entropy in does not change the CRNG's key until its next
	 * scheduled reseed; this makes it now, before the job reads a byte. */
	if (!rc && ioctl(fd, RNDRESEEDCRNG))
		rc = conn_fail(c, "SEED: RNDRESEEDCRNG: %s", strerror(errno));
	close(fd);
	return rc;
}

/* One frame between SEED and RUN. 0: go on; 1: RUN; -1: c->err. */
static int setup_frame(struct conn *c, struct job *j, const struct runner_frame_hdr *h, const uint8_t *p)
{
	struct incoming_file *f = &j->file;
	if (f->fd >= 0 && h->type != RF_FILE_DATA)
		return conn_fail(c, "FILE %s: %" PRIu64 " of its %" PRIu64 " bytes missing before a %s frame", f->path,
				 f->left, f->size, runner_type_name(h->type));
	switch (h->type) {
	case RF_ARG:
	case RF_ENV:
		return add_string(c, j, h->type, p, h->len);
	case RF_CWD:
		return set_cwd(c, j, p, h->len);
	case RF_FILE:
		return file_begin(c, f, p, h->len);
	case RF_FILE_DATA:
		return file_data(c, f, p, h->len);
	case RF_RUN:
		return j->argv.n ? 1 : conn_fail(c, "RUN frame without an ARG frame before it");
	case RF_STDIN:
	case RF_STDIN_EOF:
		return conn_fail(c, "%s frame before RUN", runner_type_name(h->type));
	default: /* HELLO, SEED */
		return conn_fail(c, "a second %s frame", runner_type_name(h->type));
	}
}

/* ---- the command ---- */

struct run {
	pid_t pid;   /* also its process group and session; -1 once reaped */
	int pidfd;   /* readable once it exited; -1 without pidfd_open */
	int in_fd, out_fd, err_fd; /* our pipe ends; -1 once closed */
	bool exited;     /* it exited (a zombie until we reap it) */
	bool stdin_eof;  /* the host sent STDIN_EOF */
	bool stdin_full; /* the next STDIN frame waits for room in stdin_buf */
	bool exit_queued;
	size_t stdin_start, stdin_end;
	uint8_t *stdin_buf; /* STDIN_CAP bytes */
};

__attribute__((noreturn))
static void child_fail(const char *what, int e)
{
	char msg[4096];
	int n = snprintf(msg, sizeof(msg), "mvagent: %.3000s: %s\n", what, strerror(e));
	ssize_t w = write(STDERR_FILENO, msg, (size_t)n);
	(void)w;
	/* As a shell says it: 127 not found, 126 found but not runnable. */
	_exit(e == ENOENT ? 127 : 126);
}

/* /proc/self/oom_score_adj; failing quietly (no /proc, a test run on the
 * host as non-root) costs only the protection. */
static void write_oom_score_adj(const char *value)
{
	int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (write(fd, value, strlen(value)) < 0) {
		/* nothing to do */
	}
	close(fd);
}

/* In the forked child: becomes the job's command (execvp, with the PATH of
 * the job's own environment). */
__attribute__((noreturn))
static void exec_child(struct job *j, int in, int out, int err)
{
	/* The agent ignores SIGPIPE; a command must not inherit that. */
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigaction(SIGPIPE, &dfl, NULL);
	sigaction(SIGCHLD, &dfl, NULL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* Its own session and process group: the agent kills the whole group
	 * when the host goes away or the job is over. */
	setsid();
	/* The agent is out of the OOM killer's reach; a command that fills
	 * the memory must be what it kills, and its result then reported. */
	write_oom_score_adj("0");
	if (dup2(in, STDIN_FILENO) < 0 || dup2(out, STDOUT_FILENO) < 0 || dup2(err, STDERR_FILENO) < 0)
		_exit(126);
	const char *dir = j->cwd ? j->cwd : "/";
	if (chdir(dir)) {
		int e = errno;
		char what[3100];
		snprintf(what, sizeof(what), "chdir %.3000s", dir);
		child_fail(what, e);
	}
	/* execvp looks the name up in the PATH of environ: the job's. */
	environ = j->envp.v;
	execvp(j->argv.v[0], j->argv.v);
	child_fail(j->argv.v[0], errno);
}

static bool has_path(const struct strv *env)
{
	for (size_t i = 0; i < env->n; i++)
		if (strncmp(env->v[i], "PATH=", 5) == 0)
			return true;
	return false;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static int spawn(struct conn *c, struct job *j, struct run *r)
{
	if (!has_path(&j->envp) && strv_push(&j->envp, DEFAULT_PATH, strlen(DEFAULT_PATH)))
		return conn_fail(c, "RUN: out of memory");
	r->stdin_buf = malloc(STDIN_CAP);
	if (!r->stdin_buf)
		return conn_fail(c, "RUN: out of memory");
	int pin[2] = { -1, -1 }, pout[2] = { -1, -1 }, perr[2] = { -1, -1 };
	if (pipe2(pin, O_CLOEXEC) || pipe2(pout, O_CLOEXEC) || pipe2(perr, O_CLOEXEC)) {
		conn_fail(c, "RUN: pipe: %s", strerror(errno));
		goto fail;
	}
	pid_t pid = fork();
	if (pid < 0) {
		conn_fail(c, "RUN: fork: %s", strerror(errno));
		goto fail;
	}
	if (pid == 0)
		exec_child(j, pin[0], pout[1], perr[1]);
	close(pin[0]);
	close(pout[1]);
	close(perr[1]);
	r->pid = pid;
	r->in_fd = pin[1];
	r->out_fd = pout[0];
	r->err_fd = perr[0];
	set_nonblock(r->in_fd);
	set_nonblock(r->out_fd);
	set_nonblock(r->err_fd);
	/* Wakes poll when the command exits; without it (before Linux 5.3)
	 * the loop checks every 100 ms. */
	r->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	return 0;
fail:
	for (int i = 0; i < 2; i++) {
		if (pin[i] >= 0)
			close(pin[i]);
		if (pout[i] >= 0)
			close(pout[i]);
		if (perr[i] >= 0)
			close(perr[i]);
	}
	return -1;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* The command's stdin is closed (after STDIN_EOF) or gone (it closed its
 * end): what is still buffered is dropped, and so is any later STDIN. */
static void stdin_close(struct run *r)
{
	close_fd(&r->in_fd);
	r->stdin_start = r->stdin_end = 0;
}

/* Hands buffered stdin to the pipe, as much as it takes now. */
static void stdin_write(struct run *r)
{
	while (r->in_fd >= 0 && r->stdin_start < r->stdin_end) {
		ssize_t n = write(r->in_fd, r->stdin_buf + r->stdin_start, r->stdin_end - r->stdin_start);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) { /* EPIPE: the command does not read its stdin any more */
			stdin_close(r);
			return;
		}
		r->stdin_start += (size_t)n;
	}
	r->stdin_start = r->stdin_end = 0;
	if (r->stdin_eof)
		close_fd(&r->in_fd);
}

/* A STDIN frame into the stdin buffer. false: no room yet (it stays in the
 * socket buffer, and the socket is not read until the pipe takes some). */
static bool stdin_take(struct run *r, const uint8_t *p, uint32_t len)
{
	if (r->in_fd < 0)
		return true; /* dropped */
	if (r->stdin_end + len > STDIN_CAP) {
		memmove(r->stdin_buf, r->stdin_buf + r->stdin_start, r->stdin_end - r->stdin_start);
		r->stdin_end -= r->stdin_start;
		r->stdin_start = 0;
		if (r->stdin_end + len > STDIN_CAP)
			return false;
	}
	memcpy(r->stdin_buf + r->stdin_end, p, len);
	r->stdin_end += len;
	return true;
}

enum { LOOP_RUNNING, LOOP_DONE, LOOP_ERROR, LOOP_GONE };

/* Takes the host's frames that are in: STDIN and STDIN_EOF are all it may
 * send now. LOOP_RUNNING, LOOP_ERROR (c->err) or LOOP_GONE. */
static int take_input(struct conn *c, struct run *r)
{
	struct runner_frame_hdr h;
	const uint8_t *p = NULL;
	int k;
	r->stdin_full = false;
	while ((k = in_peek(c, &h, &p)) == 1) {
		if (h.type == RF_STDIN) {
			if (r->stdin_eof)
				return conn_fail(c, "STDIN frame after STDIN_EOF"), LOOP_ERROR;
			if (!stdin_take(r, p, h.len)) {
				r->stdin_full = true;
				return LOOP_RUNNING;
			}
		} else if (h.type == RF_STDIN_EOF) {
			if (r->stdin_eof)
				return conn_fail(c, "a second STDIN_EOF frame"), LOOP_ERROR;
			r->stdin_eof = true;
			if (r->stdin_start == r->stdin_end)
				close_fd(&r->in_fd);
		} else {
			return conn_fail(c, "%s frame after RUN", runner_type_name(h.type)), LOOP_ERROR;
		}
		in_drop(c, &h);
	}
	if (k < 0)
		return LOOP_ERROR;
	if (c->in_eof) {
		if (in_check_eof(c))
			return LOOP_ERROR;
		/* A host that closes before STDIN_EOF is gone, not done. */
		if (!r->stdin_eof)
			return LOOP_GONE;
	}
	return LOOP_RUNNING;
}

/* One read of stdout or stderr, queued as one frame; EOF closes the pipe. */
static void pump_output(struct conn *c, int *fd, uint8_t type)
{
	out_room(c, RUNNER_FRAME_HDR + OUT_CHUNK);
	ssize_t n;
	do
		n = read(*fd, c->out + c->out_end + RUNNER_FRAME_HDR, OUT_CHUNK);
	while (n < 0 && errno == EINTR);
	if (n > 0) {
		runner_hdr_encode(c->out + c->out_end, type, (uint32_t)n);
		c->out_end += RUNNER_FRAME_HDR + (size_t)n;
	} else if (n == 0 || errno != EAGAIN) {
		close_fd(fd);
	}
}

/* Whether a whole chunk of output fits, with OUT_RESERVE still free. */
static bool output_room(const struct conn *c)
{
	return OUT_CAP - out_pending(c) >= RUNNER_FRAME_HDR + OUT_CHUNK + OUT_RESERVE;
}

static void check_exited(struct run *r)
{
	if (r->exited)
		return;
	/* WNOWAIT: the zombie keeps its pid, so its process group cannot be
	 * reused by another job before we kill what is left of it. */
	siginfo_t si = { 0 };
	if (waitid(P_PID, (id_t)r->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == r->pid)
		r->exited = true;
}

/* Kills the command's process group (what it left running too) and reaps
 * the command; returns its wait status. */
static int kill_and_reap(struct run *r)
{
	int status = 0;
	if (r->pid < 0)
		return 0;
	kill(-r->pid, SIGKILL);
	kill(r->pid, SIGKILL); /* in case setsid failed */
	while (waitpid(r->pid, &status, 0) < 0 && errno == EINTR)
		;
	r->pid = -1;
	return status;
}

/* The command exited and its stdout and stderr are at EOF: the job is over. */
static void queue_exit(struct conn *c, struct run *r)
{
	int status = kill_and_reap(r);
	struct runner_exit e = { .kind = RUNNER_EXITED, .code = (uint8_t)WEXITSTATUS(status) };
	if (WIFSIGNALED(status))
		e = (struct runner_exit){ .kind = RUNNER_SIGNALED, .code = (uint8_t)WTERMSIG(status) };
	uint8_t b[16];
	out_frame(c, RF_EXIT, b, runner_exit_encode(b, &e));
	stdin_close(r);
	r->exit_queued = true;
}

enum { PFD_SOCK, PFD_STDIN, PFD_STDOUT, PFD_STDERR, PFD_PID, PFD_N };

/* The command runs: stdin in, stdout and stderr out, all at once, until
 * EXIT is sent (LOOP_DONE), the host breaks the protocol (LOOP_ERROR) or
 * goes away (LOOP_GONE). */
static int run_loop(struct conn *c, struct run *r)
{
	for (;;) {
		if (!r->exit_queued) {
			int k = take_input(c, r);
			if (k != LOOP_RUNNING)
				return k;
			check_exited(r);
			if (r->exited && r->out_fd < 0 && r->err_fd < 0)
				queue_exit(c, r);
		}
		if (out_pending(c) && out_send(c))
			return LOOP_GONE;
		if (r->exit_queued && !out_pending(c))
			return LOOP_DONE;

		bool want_in = !r->exit_queued && !c->in_eof && !r->stdin_full;
		bool room = output_room(c);
		struct pollfd p[PFD_N] = {
			[PFD_SOCK] = { .fd = c->fd, .events = (short)((want_in ? POLLIN : 0) | (out_pending(c) ? POLLOUT : 0)) },
			[PFD_STDIN] = { .fd = r->stdin_start < r->stdin_end ? r->in_fd : -1, .events = POLLOUT },
			[PFD_STDOUT] = { .fd = room ? r->out_fd : -1, .events = POLLIN },
			[PFD_STDERR] = { .fd = room ? r->err_fd : -1, .events = POLLIN },
			[PFD_PID] = { .fd = r->exited ? -1 : r->pidfd, .events = POLLIN },
		};
		int timeout = r->pidfd < 0 && !r->exited ? 100 : -1;
		if (poll(p, PFD_N, timeout) < 0) {
			if (errno == EINTR)
				continue;
			return conn_fail(c, "poll: %s", strerror(errno)), LOOP_ERROR;
		}
		short sock = p[PFD_SOCK].revents;
		if (want_in && (sock & (POLLIN | POLLHUP | POLLERR))) {
			if (in_fill(c) == -2)
				return LOOP_GONE;
		} else if (sock & (POLLHUP | POLLERR)) {
			return LOOP_GONE; /* both directions closed: our output has nowhere to go */
		}
		if (p[PFD_STDIN].revents)
			stdin_write(r);
		if (p[PFD_STDOUT].revents)
			pump_output(c, &r->out_fd, RF_STDOUT);
		if (p[PFD_STDERR].revents && output_room(c))
			pump_output(c, &r->err_fd, RF_STDERR);
	}
}

static int run_job(struct conn *c, struct job *j)
{
	struct run r = { .pid = -1, .pidfd = -1, .in_fd = -1, .out_fd = -1, .err_fd = -1 };
	int rc = 0;
	if (spawn(c, j, &r)) {
		rc = send_error(c);
	} else {
		switch (run_loop(c, &r)) {
		case LOOP_DONE:
			break;
		case LOOP_ERROR:
			kill_and_reap(&r);
			rc = send_error(c);
			break;
		default:
			kill_and_reap(&r);
			fprintf(stderr, "mvagent: the host went away before EXIT; the command is killed\n");
			rc = 1;
			break;
		}
	}
	close_fd(&r.in_fd);
	close_fd(&r.out_fd);
	close_fd(&r.err_fd);
	close_fd(&r.pidfd);
	free(r.stdin_buf);
	return rc;
}

/* ---- one connection ---- */

/* HELLO, SEED, the job's description, RUN, the run. 0 when the job ran to
 * its EXIT or the host only probed; 1 when it failed (ERROR sent, or the
 * host went away). seed: set the clock and reseed (see main). */
static int serve_job(struct conn *c, struct job *j, bool seed)
{
	struct runner_frame_hdr h;
	const uint8_t *p = NULL;
	switch (read_frame(c, &h, &p)) {
	case FR_EOF:
	case FR_GONE:
		return 0; /* connected and left: nothing to answer */
	case FR_BAD:
		return send_error(c);
	}
	uint32_t version;
	if (h.type != RF_HELLO)
		return conn_fail(c, "%s frame before HELLO", runner_type_name(h.type)), send_error(c);
	if (runner_u32_decode(p, h.len, &version, c->err, sizeof(c->err)))
		return send_error(c);
	if (version != RUNNER_PROTO_VERSION)
		return conn_fail(c, "protocol version %" PRIu32 " (this agent speaks %u)", version, RUNNER_PROTO_VERSION),
		       send_error(c);
	in_drop(c, &h);
	uint8_t b[16];
	out_frame(c, RF_READY, b, runner_u32_encode(b, RUNNER_PROTO_VERSION));
	if (out_flush(c, FLUSH_MS))
		return 0; /* a probe that did not wait for the answer */

	switch (read_frame(c, &h, &p)) {
	case FR_EOF:
	case FR_GONE:
		return 0; /* the runner's probe: HELLO, READY, close */
	case FR_BAD:
		return send_error(c);
	}
	struct runner_seed s;
	if (h.type != RF_SEED)
		return conn_fail(c, "%s frame before SEED", runner_type_name(h.type)), send_error(c);
	if (runner_seed_decode(p, h.len, &s, c->err, sizeof(c->err)) || (seed && apply_seed(c, &s)))
		return send_error(c);
	in_drop(c, &h);

	for (;;) {
		switch (read_frame(c, &h, &p)) {
		case FR_EOF:
			fprintf(stderr, "mvagent: the host closed the stream before RUN\n");
			return 1;
		case FR_GONE:
			return 1;
		case FR_BAD:
			return send_error(c);
		}
		int k = setup_frame(c, j, &h, p);
		if (k < 0)
			return send_error(c);
		in_drop(c, &h);
		if (k == 1)
			return run_job(c, j);
	}
}

/* Our side is done: half-close, so the host reads everything up to an end
 * of stream, and wait a moment for it to close its side. */
static void linger(struct conn *c)
{
	shutdown(c->fd, SHUT_WR);
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		long ms = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		if (ms >= LINGER_MS || poll(&p, 1, (int)(LINGER_MS - ms)) <= 0)
			return;
		ssize_t n = read(c->fd, c->in, IN_CAP);
		if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
			return;
	}
}

/* Serves one connection on fd (a connected stream socket) and closes it. */
static int serve(int fd, bool seed)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (!c || set_nonblock(fd)) {
		fprintf(stderr, "mvagent: cannot serve a connection: %s\n", strerror(errno));
		free(c);
		close(fd);
		return 1;
	}
	c->fd = fd;
	struct job j = { .file.fd = -1 };
	int rc = serve_job(c, &j, seed);
	job_free(&j);
	linger(c);
	close(fd);
	free(c);
	return rc;
}

/* ---- the daemon ---- */

static void reap_children(int sig)
{
	(void)sig;
	int e = errno;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	errno = e;
}

static int listen_vsock(void)
{
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_vm a = { .svm_family = AF_VSOCK, .svm_port = RUNNER_AGENT_PORT, .svm_cid = VMADDR_CID_ANY };
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 64)) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static int daemon_main(void)
{
	if (chdir("/"))
		fprintf(stderr, "mvagent: chdir /: %s\n", strerror(errno));
	/* Orphans of the jobs (daemons that escaped their process group)
	 * become ours, and the SIGCHLD handler reaps them, rather than
	 * piling up as zombies under /init. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	/* A job that fills the memory must not take the agent (and with it
	 * every later answer) with it: the OOM killer passes over us. */
	write_oom_score_adj("-1000");
	struct sigaction sa = { .sa_handler = reap_children, .sa_flags = SA_RESTART | SA_NOCLDSTOP };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGCHLD, &sa, NULL);

	int l = listen_vsock();
	if (l < 0) {
		fprintf(stderr, "mvagent: cannot listen on vsock port %u: %s\n", RUNNER_AGENT_PORT, strerror(errno));
		return 1;
	}
	fprintf(stderr, "mvagent: listening on vsock port %u\n", RUNNER_AGENT_PORT);
	for (;;) {
		int fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN)
				continue;
			/* Out of fds or memory: wait for jobs to end rather than spin. */
			fprintf(stderr, "mvagent: accept: %s\n", strerror(errno));
			sleep(1);
			continue;
		}
		pid_t pid = fork();
		if (pid == 0) {
			/* The connection's child waits for its own command: the
			 * daemon's reaper must not take that exit status. */
			struct sigaction dfl = { .sa_handler = SIG_DFL };
			sigaction(SIGCHLD, &dfl, NULL);
			close(l);
			exit(serve(fd, true));
		}
		if (pid < 0)
			fprintf(stderr, "mvagent: fork: %s\n", strerror(errno));
		close(fd);
	}
}

/* Pipes must not land on fds 0-2 (dup2 onto themselves would keep their
 * close-on-exec flag): have something open there. */
static void open_std_fds(void)
{
	for (int fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) < 0) {
			int n = open("/dev/null", O_RDWR);
			if (n >= 0 && n != fd) {
				dup2(n, fd);
				close(n);
			}
		}
	}
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN); /* a closed pipe or socket is an EPIPE to handle, not our death */
	umask(022);
	open_std_fds();
	if (argc == 3 && strcmp(argv[1], "--serve-fd") == 0) {
		/* Test mode: one connection's protocol on an inherited fd (a
		 * socketpair end), no vsock, no fork. Tests on the host must not
		 * set the host's clock or feed its CRNG: SEED is checked but not
		 * applied when run as non-root or with MVAGENT_TEST_NO_SEED=1. */
		char *end;
		long fd = strtol(argv[2], &end, 10);
		if (*argv[2] == '\0' || *end || fd < 0 || fd > INT32_MAX || fcntl((int)fd, F_GETFD) < 0) {
			fprintf(stderr, "mvagent: --serve-fd %s: not an open fd\n", argv[2]);
			return 2;
		}
		fcntl((int)fd, F_SETFD, FD_CLOEXEC);
		const char *no_seed = getenv("MVAGENT_TEST_NO_SEED");
		bool seed = geteuid() == 0 && !(no_seed && strcmp(no_seed, "1") == 0);
		return serve((int)fd, seed);
	}
	if (argc != 1) {
		fprintf(stderr, "usage: mvagent   (the function runner's guest agent: serves vsock port %u)\n",
			RUNNER_AGENT_PORT);
		return 2;
	}
	return daemon_main();
}
