/* runner/agent/mvagent.c on the host, without a VM: the built agent runs one
 * connection's protocol on a socketpair end (`mvagent --serve-fd N`, SEED
 * checked but not applied: MVAGENT_TEST_NO_SEED=1), and these tests are the
 * host: the probe, output and exit status, signals, stdin streamed both ways
 * (1 MiB through cat, 64 MiB of output while 1 MiB of stdin waits), missing
 * and unrunnable commands, FILE, ENV, CWD, protocol errors, and a host that
 * goes away mid-job. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"

#ifndef MVAGENT_BIN
#error "MVAGENT_BIN: the path of the built mvagent (tests/unit/CMakeLists.txt)"
#endif

struct agent {
	pid_t pid;
	int fd; /* our end */
};

static struct agent agent_start(void)
{
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int fd = dup(sv[1]); /* without close-on-exec */
		char arg[16];
		snprintf(arg, sizeof(arg), "%d", fd);
		setenv("MVAGENT_TEST_NO_SEED", "1", 1);
		execl(MVAGENT_BIN, "mvagent", "--serve-fd", arg, (char *)NULL);
		_exit(99);
	}
	close(sv[1]);
	return (struct agent){ .pid = pid, .fd = sv[0] };
}

/* Closes our end and returns the agent's exit status (-1: not a normal exit). */
static int agent_wait(struct agent *a)
{
	if (a->fd >= 0)
		close(a->fd);
	a->fd = -1;
	int status;
	cr_assert_eq(waitpid(a->pid, &status, 0), a->pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int write_all(int fd, const void *p, size_t len)
{
	const uint8_t *b = p;
	while (len) {
		ssize_t n = send(fd, b, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

static int send_frame(int fd, uint8_t type, const void *payload, size_t len)
{
	uint8_t h[RUNNER_FRAME_HDR];
	runner_hdr_encode(h, type, (uint32_t)len);
	return write_all(fd, h, sizeof(h)) || write_all(fd, payload, len) ? -1 : 0;
}

static void send_str(int fd, uint8_t type, const char *s)
{
	cr_assert_eq(send_frame(fd, type, s, strlen(s)), 0);
}

static int read_all(int fd, void *p, size_t len)
{
	uint8_t *b = p;
	size_t got = 0;
	while (got < len) {
		ssize_t n = read(fd, b + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return got ? -1 : 0;
		got += (size_t)n;
	}
	return 1;
}

/* The agent's next frame: 1 (payload malloc'd into *buf), 0 at the end of
 * the stream. The header must be a valid one the agent may send. */
static int recv_frame(int fd, uint8_t *type, uint8_t **buf, uint32_t *len)
{
	uint8_t h[RUNNER_FRAME_HDR];
	int r = read_all(fd, h, sizeof(h));
	cr_assert_geq(r, 0, "the stream ended inside a frame header");
	if (r == 0)
		return 0;
	struct runner_frame_hdr hdr;
	char err[256];
	cr_assert_eq(runner_hdr_decode(h, &hdr, err, sizeof(err)), 0, "bad frame from the agent: %s", err);
	cr_assert(!runner_type_from_host(hdr.type), "the agent sent %s", runner_type_name(hdr.type));
	*type = hdr.type;
	*len = hdr.len;
	*buf = malloc(hdr.len + 1);
	cr_assert(*buf);
	cr_assert_eq(read_all(fd, *buf, hdr.len), hdr.len ? 1 : 0, "the stream ended inside a %s frame",
		     runner_type_name(hdr.type));
	(*buf)[hdr.len] = 0;
	return 1;
}

/* HELLO, READY, SEED: the start of every job. */
static void job_begin(int fd)
{
	uint8_t b[16];
	cr_assert_eq(send_frame(fd, RF_HELLO, b, runner_u32_encode(b, RUNNER_PROTO_VERSION)), 0);
	uint8_t type, *p;
	uint32_t len, v;
	cr_assert_eq(recv_frame(fd, &type, &p, &len), 1);
	cr_assert_eq(type, RF_READY);
	cr_assert_eq(runner_u32_decode(p, len, &v, NULL, 0), 0);
	cr_assert_eq(v, RUNNER_PROTO_VERSION);
	free(p);
	uint8_t seed[RUNNER_SEED_TIME_LEN + RUNNER_SEED_ENTROPY];
	runner_seed_time_encode(seed, (uint64_t)time(NULL), 123);
	for (size_t i = 0; i < RUNNER_SEED_ENTROPY; i++)
		seed[RUNNER_SEED_TIME_LEN + i] = (uint8_t)rand();
	cr_assert_eq(send_frame(fd, RF_SEED, seed, sizeof(seed)), 0);
}

static void send_args(int fd, const char *const *argv)
{
	for (; *argv; argv++)
		send_str(fd, RF_ARG, *argv);
}

static void send_file(int fd, const char *path, uint32_t mode, const uint8_t *data, size_t len, size_t chunk)
{
	uint8_t b[RUNNER_FILE_HDR_LEN + PATH_MAX];
	size_t n = runner_file_hdr_encode(b, mode, len);
	memcpy(b + n, path, strlen(path));
	cr_assert_eq(send_frame(fd, RF_FILE, b, n + strlen(path)), 0);
	for (size_t off = 0; off < len; off += chunk)
		cr_assert_eq(send_frame(fd, RF_FILE_DATA, data + off, len - off < chunk ? len - off : chunk), 0);
}

struct buf {
	uint8_t *p;
	size_t len, cap;
};

static void buf_add(struct buf *b, const uint8_t *p, size_t len)
{
	if (b->len + len + 1 > b->cap) {
		b->cap = (b->len + len + 1) * 2;
		b->p = realloc(b->p, b->cap);
		cr_assert(b->p);
	}
	memcpy(b->p + b->len, p, len);
	b->len += len;
	b->p[b->len] = 0;
}

struct result {
	struct buf out, err;
	bool got_exit;
	struct runner_exit exit;
	char error[RUNNER_ERROR_MAX + 1]; /* an ERROR frame's text */
};

/* Reads the agent's frames to the end of the stream. Nothing may follow
 * EXIT or ERROR. */
static void collect(int fd, struct result *r)
{
	memset(r, 0, sizeof(*r));
	buf_add(&r->out, (const uint8_t *)"", 0);
	buf_add(&r->err, (const uint8_t *)"", 0);
	uint8_t type, *p;
	uint32_t len;
	while (recv_frame(fd, &type, &p, &len)) {
		cr_assert(!r->got_exit && !r->error[0], "%s frame after the end", runner_type_name(type));
		switch (type) {
		case RF_STDOUT:
			buf_add(&r->out, p, len);
			break;
		case RF_STDERR:
			buf_add(&r->err, p, len);
			break;
		case RF_EXIT: {
			char err[256];
			cr_assert_eq(runner_exit_decode(p, len, &r->exit, err, sizeof(err)), 0, "%s", err);
			r->got_exit = true;
			break;
		}
		case RF_ERROR:
			memcpy(r->error, p, len);
			r->error[len] = 0;
			break;
		default:
			cr_assert_fail("unexpected %s frame", runner_type_name(type));
		}
		free(p);
	}
}

static void result_free(struct result *r)
{
	free(r->out.p);
	free(r->err.p);
}

static void assert_exit(const struct result *r, uint8_t kind, uint8_t code)
{
	cr_assert(r->got_exit, "no EXIT (ERROR: \"%s\"; stderr: \"%s\")", r->error, (char *)r->err.p);
	cr_assert_eq(r->exit.kind, kind, "exit kind %u code %u", r->exit.kind, r->exit.code);
	cr_assert_eq(r->exit.code, code, "exit kind %u code %u (stderr: %s)", r->exit.kind, r->exit.code,
		     (char *)r->err.p);
}

/* A whole job without stdin: argv, RUN, STDIN_EOF, the result. */
static int run_simple(const char *const *argv, struct result *r)
{
	struct agent a = agent_start();
	job_begin(a.fd);
	send_args(a.fd, argv);
	send_str(a.fd, RF_RUN, "");
	send_str(a.fd, RF_STDIN_EOF, "");
	collect(a.fd, r);
	return agent_wait(&a);
}

/* Sends stdin (in frames of `chunk` bytes, then STDIN_EOF) from a thread,
 * while the test reads the output: a host must do both at once. */
struct feeder {
	pthread_t thread;
	int fd;
	const uint8_t *data;
	size_t len, chunk;
};

static void *feed(void *arg)
{
	struct feeder *f = arg;
	for (size_t off = 0; off < f->len; off += f->chunk) {
		size_t n = f->len - off < f->chunk ? f->len - off : f->chunk;
		if (send_frame(f->fd, RF_STDIN, f->data + off, n))
			return NULL; /* the agent is done with us */
	}
	send_frame(f->fd, RF_STDIN_EOF, NULL, 0);
	return NULL;
}

static void feeder_start(struct feeder *f, int fd, const uint8_t *data, size_t len, size_t chunk)
{
	*f = (struct feeder){ .fd = fd, .data = data, .len = len, .chunk = chunk };
	cr_assert_eq(pthread_create(&f->thread, NULL, feed, f), 0);
}

static uint8_t *random_bytes(size_t len)
{
	uint8_t *p = malloc(len);
	cr_assert(p);
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(rand() >> 7);
	return p;
}

static char *make_tmpdir(void)
{
	char tmpl[] = "/tmp/test_mvagent.XXXXXX";
	cr_assert(mkdtemp(tmpl));
	char *real = realpath(tmpl, NULL);
	cr_assert(real);
	return real;
}

static void rm_rf(const char *dir)
{
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

/* Whether pid runs (a zombie does not). */
static bool process_alive(pid_t pid)
{
	char path[64], line[512] = "";
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	size_t n = fread(line, 1, sizeof(line) - 1, f);
	fclose(f);
	line[n] = 0;
	const char *end = strrchr(line, ')'); /* "pid (comm) S ..." */
	return end && end[1] == ' ' && end[2] != 'Z' && end[2] != 'X';
}

TestSuite(mvagent, .timeout = 120);

Test(mvagent, probe_gets_ready)
{
	struct agent a = agent_start();
	uint8_t b[16];
	cr_assert_eq(send_frame(a.fd, RF_HELLO, b, runner_u32_encode(b, RUNNER_PROTO_VERSION)), 0);
	uint8_t type, *p;
	uint32_t len, v;
	cr_assert_eq(recv_frame(a.fd, &type, &p, &len), 1);
	cr_assert_eq(type, RF_READY);
	cr_assert_eq(runner_u32_decode(p, len, &v, NULL, 0), 0);
	cr_assert_eq(v, RUNNER_PROTO_VERSION);
	free(p);
	cr_assert_eq(agent_wait(&a), 0, "a probe is not a failure");
}

Test(mvagent, stdout_stderr_and_exit_status)
{
	struct result r;
	const char *argv[] = { "sh", "-c", "echo out; echo err >&2; exit 7", NULL };
	cr_assert_eq(run_simple(argv, &r), 0);
	cr_assert_str_eq((char *)r.out.p, "out\n");
	cr_assert_str_eq((char *)r.err.p, "err\n");
	assert_exit(&r, RUNNER_EXITED, 7);
	result_free(&r);
}

Test(mvagent, killed_by_a_signal)
{
	struct result r;
	const char *argv[] = { "sh", "-c", "kill -9 $$", NULL };
	cr_assert_eq(run_simple(argv, &r), 0);
	assert_exit(&r, RUNNER_SIGNALED, 9);
	result_free(&r);
}

Test(mvagent, empty_argument_and_binary_output)
{
	struct result r;
	const char *argv[] = { "sh", "-c", "printf '[%s][%s]' \"$1\" \"$2\"; printf '\\000\\377\\r\\n\\200' >&2", "x", "",
			       "two words", NULL };
	cr_assert_eq(run_simple(argv, &r), 0);
	cr_assert_str_eq((char *)r.out.p, "[][two words]");
	cr_assert_eq(r.err.len, 5);
	cr_assert_eq(memcmp(r.err.p, "\0\377\r\n\200", 5), 0);
	assert_exit(&r, RUNNER_EXITED, 0);
	result_free(&r);
}

Test(mvagent, one_mib_of_stdin_through_cat)
{
	const size_t len = 1 << 20;
	uint8_t *data = random_bytes(len);
	struct agent a = agent_start();
	job_begin(a.fd);
	send_str(a.fd, RF_ARG, "cat");
	send_str(a.fd, RF_RUN, "");
	struct feeder f;
	feeder_start(&f, a.fd, data, len, 100003); /* frames that do not line up with pipe pages */
	struct result r;
	collect(a.fd, &r);
	pthread_join(f.thread, NULL);
	assert_exit(&r, RUNNER_EXITED, 0);
	cr_assert_eq(r.out.len, len);
	cr_assert(memcmp(r.out.p, data, len) == 0, "stdout is not stdin");
	cr_assert_eq(r.err.len, 0);
	cr_assert_eq(agent_wait(&a), 0);
	result_free(&r);
	free(data);
}

/* The command writes 64 MiB before it reads its stdin: the agent must keep
 * sending output while the host's stdin waits, bounded, in the socket. */
Test(mvagent, sixty_four_mib_out_while_stdin_waits)
{
	const size_t in_len = 1 << 20, out_len = 64u << 20;
	uint8_t *data = random_bytes(in_len);
	struct agent a = agent_start();
	job_begin(a.fd);
	const char *argv[] = { "sh", "-c", "head -c 67108864 /dev/zero; cat", NULL };
	send_args(a.fd, argv);
	send_str(a.fd, RF_RUN, "");
	struct feeder f;
	feeder_start(&f, a.fd, data, in_len, RUNNER_FRAME_MAX);
	struct result r;
	collect(a.fd, &r);
	pthread_join(f.thread, NULL);
	assert_exit(&r, RUNNER_EXITED, 0);
	cr_assert_eq(r.out.len, out_len + in_len);
	for (size_t i = 0; i < out_len; i++)
		if (r.out.p[i])
			cr_assert_fail("byte %zu of the zeros is %u", i, r.out.p[i]);
	cr_assert(memcmp(r.out.p + out_len, data, in_len) == 0, "the stdin echoed after the zeros differs");
	cr_assert_eq(agent_wait(&a), 0);
	result_free(&r);
	free(data);
}

/* A command that stops reading its stdin: the rest is dropped, the agent
 * lives on (no SIGPIPE), the job ends normally. */
Test(mvagent, stdin_closed_early)
{
	const size_t len = 1 << 20;
	uint8_t *data = random_bytes(len);
	struct agent a = agent_start();
	job_begin(a.fd);
	send_str(a.fd, RF_ARG, "head");
	send_str(a.fd, RF_ARG, "-c");
	send_str(a.fd, RF_ARG, "3");
	send_str(a.fd, RF_RUN, "");
	struct feeder f;
	feeder_start(&f, a.fd, data, len, 65536);
	struct result r;
	collect(a.fd, &r);
	pthread_join(f.thread, NULL);
	assert_exit(&r, RUNNER_EXITED, 0);
	cr_assert_eq(r.out.len, 3);
	cr_assert_eq(memcmp(r.out.p, data, 3), 0);
	cr_assert_eq(agent_wait(&a), 0);
	result_free(&r);
	free(data);
}

Test(mvagent, missing_command_is_127)
{
	struct result r;
	const char *argv[] = { "no-such-command-mvagent-test", NULL };
	cr_assert_eq(run_simple(argv, &r), 0);
	assert_exit(&r, RUNNER_EXITED, 127);
	cr_assert_str_eq((char *)r.err.p, "mvagent: no-such-command-mvagent-test: No such file or directory\n");
	cr_assert_eq(r.out.len, 0);
	result_free(&r);
}

Test(mvagent, file_with_mode_and_content)
{
	char *dir = make_tmpdir();
	char path[PATH_MAX], script[PATH_MAX], empty[PATH_MAX], noexec[PATH_MAX];
	snprintf(path, sizeof(path), "%s/sub/deeper/data.bin", dir);
	snprintf(script, sizeof(script), "%s/sub/run.sh", dir);
	snprintf(empty, sizeof(empty), "%s/empty", dir);
	snprintf(noexec, sizeof(noexec), "%s/noexec", dir);
	const size_t len = 300000;
	uint8_t *data = random_bytes(len);
	const char *sh = "#!/bin/sh\ncat \"$1\"\n";

	struct agent a = agent_start();
	job_begin(a.fd);
	send_file(a.fd, path, 0640, data, len, 100000);
	send_file(a.fd, script, 04755, (const uint8_t *)sh, strlen(sh), 7);
	send_file(a.fd, empty, 0600, NULL, 0, 1);
	send_file(a.fd, noexec, 0644, (const uint8_t *)sh, strlen(sh), 4096);
	send_str(a.fd, RF_ARG, script);
	send_str(a.fd, RF_ARG, path);
	send_str(a.fd, RF_RUN, "");
	send_str(a.fd, RF_STDIN_EOF, "");
	struct result r;
	collect(a.fd, &r);
	assert_exit(&r, RUNNER_EXITED, 0);
	cr_assert_eq(r.out.len, len);
	cr_assert(memcmp(r.out.p, data, len) == 0, "the file read back differs");
	cr_assert_eq(agent_wait(&a), 0);

	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode, S_IFREG | 0640, "mode %o", st.st_mode);
	cr_assert_eq((size_t)st.st_size, len);
	cr_assert_eq(stat(script, &st), 0);
	cr_assert_eq(st.st_mode, S_IFREG | 04755, "mode %o", st.st_mode);
	cr_assert_eq(stat(empty, &st), 0);
	cr_assert_eq(st.st_mode, S_IFREG | 0600, "mode %o", st.st_mode);
	cr_assert_eq(st.st_size, 0);
	char sub[PATH_MAX + 16];
	snprintf(sub, sizeof(sub), "%s/sub/deeper", dir);
	cr_assert_eq(stat(sub, &st), 0);
	cr_assert_eq(st.st_mode, S_IFDIR | 0755, "mode %o", st.st_mode);
	/* No temporary file left behind. */
	DIR *d = opendir(sub);
	cr_assert(d);
	struct dirent *e;
	int n = 0;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' || strncmp(e->d_name, ".mvagent", 8) == 0)
			n++;
	closedir(d);
	cr_assert_eq(n, 1);
	result_free(&r);

	/* A file that is there but not executable: 126. */
	const char *argv[] = { noexec, NULL };
	cr_assert_eq(run_simple(argv, &r), 0);
	assert_exit(&r, RUNNER_EXITED, 126);
	cr_assert(strstr((char *)r.err.p, "Permission denied"), "%s", (char *)r.err.p);
	result_free(&r);
	free(data);
	rm_rf(dir);
	free(dir);
}

Test(mvagent, env_is_exactly_what_was_sent)
{
	struct agent a = agent_start();
	job_begin(a.fd);
	send_str(a.fd, RF_ENV, "FOO=bar baz");
	send_str(a.fd, RF_ARG, "env");
	send_str(a.fd, RF_ENV, "EMPTY=");
	send_str(a.fd, RF_RUN, "");
	send_str(a.fd, RF_STDIN_EOF, "");
	struct result r;
	collect(a.fd, &r);
	assert_exit(&r, RUNNER_EXITED, 0);
	cr_assert_str_eq((char *)r.out.p, "FOO=bar baz\nEMPTY=\nPATH=/usr/sbin:/usr/bin:/sbin:/bin\n");
	cr_assert_eq(agent_wait(&a), 0);
	result_free(&r);

	/* The job's own PATH is the one execvp searches. */
	a = agent_start();
	job_begin(a.fd);
	send_str(a.fd, RF_ENV, "PATH=/nonexistent");
	send_str(a.fd, RF_ARG, "sh");
	send_str(a.fd, RF_RUN, "");
	send_str(a.fd, RF_STDIN_EOF, "");
	collect(a.fd, &r);
	assert_exit(&r, RUNNER_EXITED, 127);
	cr_assert_eq(agent_wait(&a), 0);
	result_free(&r);
}

Test(mvagent, cwd)
{
	char *dir = make_tmpdir();
	struct agent a = agent_start();
	job_begin(a.fd);
	send_str(a.fd, RF_CWD, dir);
	send_str(a.fd, RF_ARG, "pwd");
	send_str(a.fd, RF_RUN, "");
	send_str(a.fd, RF_STDIN_EOF, "");
	struct result r;
	collect(a.fd, &r);
	assert_exit(&r, RUNNER_EXITED, 0);
	char want[PATH_MAX + 2];
	snprintf(want, sizeof(want), "%s\n", dir);
	cr_assert_str_eq((char *)r.out.p, want);
	cr_assert_eq(agent_wait(&a), 0);
	result_free(&r);

	/* Default: / */
	const char *argv[] = { "pwd", NULL };
	cr_assert_eq(run_simple(argv, &r), 0);
	cr_assert_str_eq((char *)r.out.p, "/\n");
	result_free(&r);

	/* A CWD that is not there: the command does not run. */
	a = agent_start();
	job_begin(a.fd);
	send_str(a.fd, RF_CWD, "/nonexistent/dir");
	send_str(a.fd, RF_ARG, "pwd");
	send_str(a.fd, RF_RUN, "");
	send_str(a.fd, RF_STDIN_EOF, "");
	collect(a.fd, &r);
	assert_exit(&r, RUNNER_EXITED, 127);
	cr_assert_str_eq((char *)r.err.p, "mvagent: chdir /nonexistent/dir: No such file or directory\n");
	cr_assert_eq(agent_wait(&a), 0);
	result_free(&r);
	rm_rf(dir);
	free(dir);
}

/* Raw bytes as the host sends them, then the ERROR the agent must answer
 * with (a substring of it) and the end of the stream. */
static void assert_protocol_error(const uint8_t *bytes, size_t len, bool begin, const char *want)
{
	struct agent a = agent_start();
	if (begin)
		job_begin(a.fd);
	cr_assert_eq(write_all(a.fd, bytes, len), 0);
	struct result r;
	collect(a.fd, &r);
	cr_assert(!r.got_exit);
	cr_assert(strstr(r.error, want), "ERROR \"%s\", wanted \"%s\"", r.error, want);
	cr_assert_eq(agent_wait(&a), 1);
	result_free(&r);
}

Test(mvagent, unknown_frame_type_gets_error)
{
	const uint8_t bad[] = { 0x42, 0, 0, 0, 0, 0, 0, 0 };
	assert_protocol_error(bad, sizeof(bad), true, "unknown frame type 0x42");
}

Test(mvagent, protocol_errors)
{
	uint8_t b[64];
	/* Before READY. */
	runner_hdr_encode(b, RF_HELLO, 4);
	runner_u32_encode(b + 8, 2);
	assert_protocol_error(b, 12, false, "protocol version 2");
	runner_hdr_encode(b, RF_ARG, 1);
	b[8] = 'x';
	assert_protocol_error(b, 9, false, "ARG frame before HELLO");
	runner_hdr_encode(b, RF_HELLO, 4);
	b[1] = 1;
	assert_protocol_error(b, 12, false, "HELLO frame with nonzero pad bytes");

	/* After SEED. */
	runner_hdr_encode(b, RF_RUN, 0);
	assert_protocol_error(b, 8, true, "RUN frame without an ARG frame");
	runner_hdr_encode(b, RF_STDIN, 1);
	assert_protocol_error(b, 9, true, "STDIN frame before RUN");
	runner_hdr_encode(b, RF_READY, 4);
	assert_protocol_error(b, 12, true, "READY frame from the host");
	runner_hdr_encode(b, RF_SEED, 12);
	memset(b + 8, 0, 12);
	assert_protocol_error(b, 20, true, "a second SEED frame");
	runner_hdr_encode(b, RF_EXIT, 3);
	assert_protocol_error(b, 8, true, "EXIT frame of 3 bytes (must be 2)");
	runner_hdr_encode(b, RF_ENV, 3);
	memcpy(b + 8, "=ab", 3);
	assert_protocol_error(b, 11, true, "ENV frame with an empty name");
	runner_hdr_encode(b, RF_FILE_DATA, 2);
	assert_protocol_error(b, 10, true, "FILE_DATA frame without a FILE");

	/* FILE: fewer or more bytes than announced; nothing is left of it. */
	char *dir = make_tmpdir();
	char path[PATH_MAX], want[PATH_MAX + 128];
	snprintf(path, sizeof(path), "%s/cut", dir);
	size_t plen = strlen(path), n = 0;
	uint8_t f[PATH_MAX + 64];
	runner_hdr_encode(f, RF_FILE, (uint32_t)(RUNNER_FILE_HDR_LEN + plen));
	n += RUNNER_FRAME_HDR;
	n += runner_file_hdr_encode(f + n, 0644, 10);
	memcpy(f + n, path, plen);
	n += plen;
	runner_hdr_encode(f + n, RF_FILE_DATA, 4);
	n += RUNNER_FRAME_HDR + 4;
	size_t at_run = n;
	runner_hdr_encode(f + n, RF_RUN, 0);
	n += RUNNER_FRAME_HDR;
	snprintf(want, sizeof(want), "FILE %s: 6 of its 10 bytes missing before a RUN frame", path);
	assert_protocol_error(f, n, true, want);
	cr_assert(access(path, F_OK) == -1 && errno == ENOENT, "a FILE cut short must not appear");
	runner_hdr_encode(f + at_run, RF_FILE_DATA, 7);
	snprintf(want, sizeof(want), "FILE %s: a FILE_DATA frame of 7 bytes with 6 due", path);
	assert_protocol_error(f, at_run + RUNNER_FRAME_HDR + 7, true, want);
	cr_assert(access(path, F_OK) == -1 && errno == ENOENT, "a FILE cut short must not appear");
	/* No temporary file left beside it either. */
	DIR *d = opendir(dir);
	cr_assert(d);
	struct dirent *e;
	while ((e = readdir(d)))
		cr_assert(strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0, "%s left in %s", e->d_name, dir);
	closedir(d);
	rm_rf(dir);
	free(dir);
}

Test(mvagent, frames_after_run)
{
	uint8_t b[64];
	struct agent a = agent_start();
	job_begin(a.fd);
	send_str(a.fd, RF_ARG, "cat");
	send_str(a.fd, RF_RUN, "");
	runner_hdr_encode(b, RF_ARG, 1);
	b[8] = 'x';
	cr_assert_eq(write_all(a.fd, b, 9), 0);
	struct result r;
	collect(a.fd, &r);
	cr_assert(!r.got_exit);
	cr_assert_str_eq(r.error, "ARG frame after RUN");
	cr_assert_eq(agent_wait(&a), 1);
	result_free(&r);

	/* A command that outlives its stdin: with cat, the agent could see
	 * cat exit and send EXIT before it read the late frame. */
	a = agent_start();
	job_begin(a.fd);
	send_str(a.fd, RF_ARG, "sleep");
	send_str(a.fd, RF_ARG, "1000");
	send_str(a.fd, RF_RUN, "");
	send_str(a.fd, RF_STDIN_EOF, "");
	send_str(a.fd, RF_STDIN, "late");
	collect(a.fd, &r);
	cr_assert_str_eq(r.error, "STDIN frame after STDIN_EOF");
	cr_assert_eq(agent_wait(&a), 1);
	result_free(&r);
}

/* The host goes away mid-job: the command's whole process group dies. */
Test(mvagent, host_gone_kills_the_command)
{
	struct agent a = agent_start();
	job_begin(a.fd);
	const char *argv[] = { "sh", "-c", "sleep 1000 & echo $!; exec sleep 1000", NULL };
	send_args(a.fd, argv);
	send_str(a.fd, RF_RUN, "");
	uint8_t type, *p;
	uint32_t len;
	cr_assert_eq(recv_frame(a.fd, &type, &p, &len), 1);
	cr_assert_eq(type, RF_STDOUT);
	pid_t bg = (pid_t)atoi((char *)p);
	free(p);
	cr_assert_gt(bg, 1);
	cr_assert(process_alive(bg), "the background sleep runs");
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(agent_wait(&a), 1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	cr_assert_lt(t1.tv_sec - t0.tv_sec, 10, "the agent took %ld s to notice", (long)(t1.tv_sec - t0.tv_sec));
	/* The background sleep is orphaned to init when killed, and stays a
	 * zombie until init reaps it: dead either way. */
	bool dead = false;
	for (int i = 0; i < 100 && !dead; i++) {
		dead = !process_alive(bg);
		if (!dead)
			usleep(20000);
	}
	cr_assert(dead, "the background sleep %d survived", (int)bg);
}
