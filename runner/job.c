/* One job, start to end: start the VM (restored from the pool's snapshot or
 * booted cold), join the agent's vsock port through the device's Unix
 * socket, send the job, stream stdin in and stdout/stderr out, take the exit
 * status, stop the VM. Everything the agent sends is checked: a broken or
 * lying agent ends its own job with an error, never the runner. */
#define _GNU_SOURCE
#include "job.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agent_conn.h"
#include "frame_io.h"
#include "pool.h"
#include "proto.h"
#include "runner.h"
#include "vm_proc.h"
#include "work_dir.h"

/* Bytes of stdin or file per frame. */
#define JOB_CHUNK (64u * 1024)
/* The outgoing queue: a few chunks, so a big stdin is streamed, not held. */
#define JOB_OUT_CAP (RUNNER_FRAME_MAX + 4 * RUNNER_FRAME_HDR + 4 * JOB_CHUNK)
/* Without a job timeout, how long the VM may take to have its agent ready. */
#define JOB_READY_LIMIT_MS (300 * 1000)
/* How long minivmm gets to stop by itself after SIGTERM. */
#define JOB_STOP_GRACE_MS 1000

enum feed_state { FEED_SETUP, FEED_FILES, FEED_RUN, FEED_STDIN, FEED_DONE };

struct job_ctx {
	const struct runner_cfg *cfg;
	const struct job_spec *spec;
	const struct job_sink *sink;
	struct job_result *res;
	char dir[200]; /* short: the vsock socket's path is in it */
	char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct vm_proc vm;
	bool vm_started;
	int sock;
	struct frame_in in;
	struct frame_out out;
	double t0, deadline; /* ms; deadline 0: none */
	enum feed_state feed;
	size_t file_idx;
	uint64_t file_sent;
	bool file_announced;
	bool stdin_readable; /* poll said the stdin fd has something */
	bool done;
};


const char *job_outcome_name(enum job_outcome o)
{
	switch (o) {
	case JOB_OK:
		return "ok";
	case JOB_TIMEOUT:
		return "timeout";
	case JOB_OUTPUT_LIMIT:
		return "output_limit";
	case JOB_ERROR:
		return "error";
	}
	return "error";
}

__attribute__((format(printf, 3, 4))) static void job_end(struct job_ctx *j, enum job_outcome o,
							  const char *fmt, ...)
{
	if (j->done)
		return;
	j->done = true;
	j->res->outcome = o;
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(j->res->error, sizeof(j->res->error), fmt, ap);
		va_end(ap);
	}
}

/* The VM ended before the job did: say how, with minivmm's last words. */
static void job_end_vm_gone(struct job_ctx *j, const char *when)
{
	char how[600];
	vm_proc_wait(&j->vm, 2000);
	vm_proc_explain(&j->vm, how, sizeof(how));
	job_end(j, JOB_ERROR, "the VM ended %s (minivmm %s)", when, how);
}

static long remaining_ms(double limit)
{
	double left = limit - runner_now_ms();
	return left < 0 ? 0 : (long)left + 1;
}

static bool stop_requested(const struct job_ctx *j)
{
	return j->cfg->stop && *j->cfg->stop;
}

/* ---- starting the VM ---- */

static int job_start_vm(struct job_ctx *j, struct pool *pool)
{
	const struct job_spec *s = j->spec;
	char cpus[16], mem[16], vsock[PATH_MAX + 32], console[PATH_MAX], log[PATH_MAX], cmdline[2048];
	char snap[PATH_MAX], err[512];
	snprintf(cpus, sizeof(cpus), "%u", s->cpus);
	snprintf(mem, sizeof(mem), "%u", s->mem_mib);
	snprintf(vsock, sizeof(vsock), "cid=3,uds=%s", j->sock_path);
	snprintf(console, sizeof(console), "%s/console", j->dir);
	snprintf(log, sizeof(log), "%s/vmm.log", j->dir);

	const char *argv[24];
	int n = 0;
	argv[n++] = j->cfg->minivmm;
	if (pool && !s->cold) {
		if (pool_get(pool, s->mem_mib, s->cpus, snap, sizeof(snap), err, sizeof(err)) < 0) {
			job_end(j, JOB_ERROR, "snapshot pool: %s", err);
			return -1;
		}
		argv[n++] = "--restore";
		argv[n++] = snap;
	} else {
		runner_cmdline(j->cfg, cmdline, sizeof(cmdline));
		argv[n++] = "--kernel";
		argv[n++] = j->cfg->kernel;
		argv[n++] = "--initrd";
		argv[n++] = j->cfg->initrd;
		argv[n++] = "--cmdline";
		argv[n++] = cmdline;
		argv[n++] = "--cpus";
		argv[n++] = cpus;
		argv[n++] = "--mem";
		argv[n++] = mem;
	}
	/* Entropy from the host from the first boot on (and in the
	 * snapshot's device list, which a restore must match). */
	argv[n++] = "--rng";
	argv[n++] = "--vsock";
	argv[n++] = vsock;
	argv[n++] = "--console";
	argv[n++] = console;
	argv[n] = NULL;
	if (vm_proc_start(&j->vm, (char *const *)argv, log, err, sizeof(err)) < 0) {
		job_end(j, JOB_ERROR, "starting the VM: %s", err);
		return -1;
	}
	j->vm_started = true;
	return 0;
}

/* ---- joining the agent ---- */

/* Connects and does HELLO/READY, within the job's deadline (or
 * JOB_READY_LIMIT_MS without one). */
static int job_join_agent(struct job_ctx *j)
{
	char err[400];
	double limit = j->deadline ? j->deadline : j->t0 + JOB_READY_LIMIT_MS;
	int fd = agent_connect(j->sock_path, &j->vm, limit, j->cfg->stop, err, sizeof(err));
	if (fd == AGENT_CONN_TIMEOUT && j->deadline) {
		job_end(j, JOB_TIMEOUT, "timed out after %u s, before the agent answered", j->spec->timeout_s);
		return -1;
	}
	if (fd < 0) {
		job_end(j, JOB_ERROR, "%s", err);
		return -1;
	}
	j->sock = fd;
	if (agent_hello(fd, limit, j->cfg->stop, err, sizeof(err)) < 0) {
		if (stop_requested(j))
			job_end(j, JOB_ERROR, "stopped by a signal");
		else if (!vm_proc_running(&j->vm))
			job_end_vm_gone(j, "before its agent answered");
		else if (j->deadline && runner_now_ms() >= j->deadline)
			job_end(j, JOB_TIMEOUT, "timed out after %u s, before the agent answered", j->spec->timeout_s);
		else
			job_end(j, JOB_ERROR, "%s", err);
		return -1;
	}
	j->res->ms_ready = runner_now_ms() - j->t0;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return 0;
}

/* ---- what goes to the agent ---- */

/* Reads up to max bytes of a source at offset off (memory) or from its fd. */
static ssize_t source_read(const struct job_source *src, uint64_t off, uint8_t *buf, size_t max)
{
	if (src->fd < 0) {
		if (off >= src->mem_len)
			return 0;
		size_t n = src->mem_len - off < max ? src->mem_len - off : max;
		memcpy(buf, src->mem + off, n);
		return (ssize_t)n;
	}
	ssize_t n;
	do
		n = read(src->fd, buf, max);
	while (n < 0 && errno == EINTR);
	return n;
}

static int feed_setup(struct job_ctx *j)
{
	uint8_t seed[RUNNER_SEED_TIME_LEN + RUNNER_SEED_ENTROPY];
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	runner_seed_time_encode(seed, (uint64_t)ts.tv_sec, (uint32_t)ts.tv_nsec);
	if (getrandom(seed + RUNNER_SEED_TIME_LEN, RUNNER_SEED_ENTROPY, 0) != RUNNER_SEED_ENTROPY) {
		job_end(j, JOB_ERROR, "getrandom: %s", strerror(errno));
		return -1;
	}
	if (frame_out_add(&j->out, RF_SEED, seed, sizeof(seed)) < 0)
		return 0;
	j->feed = FEED_FILES;
	return 0;
}

/* Args, environment and working directory go in one pass: each fits a frame
 * and the queue takes at least one frame; the rest wait for room. */
struct strings_cursor {
	size_t arg, env;
	bool cwd_sent;
};

static int feed_strings(struct job_ctx *j, struct strings_cursor *c)
{
	const struct job_spec *s = j->spec;
	for (; s->argv[c->arg]; c->arg++)
		if (frame_out_add(&j->out, RF_ARG, s->argv[c->arg], strlen(s->argv[c->arg])) < 0)
			return 0;
	for (; s->env && s->env[c->env]; c->env++)
		if (frame_out_add(&j->out, RF_ENV, s->env[c->env], strlen(s->env[c->env])) < 0)
			return 0;
	if (!c->cwd_sent && s->cwd) {
		if (frame_out_add(&j->out, RF_CWD, s->cwd, strlen(s->cwd)) < 0)
			return 0;
	}
	c->cwd_sent = true;
	return 1;
}

static int feed_files(struct job_ctx *j)
{
	const struct job_spec *s = j->spec;
	uint8_t buf[JOB_CHUNK];
	while (j->file_idx < s->n_files) {
		const struct job_file *f = &s->files[j->file_idx];
		if (!j->file_announced) {
			uint8_t hdr[RUNNER_FILE_HDR_LEN];
			runner_file_hdr_encode(hdr, f->mode, f->size);
			if (frame_out_add2(&j->out, RF_FILE, hdr, sizeof(hdr), f->guest_path, strlen(f->guest_path)) < 0)
				return 0;
			j->file_announced = true;
			j->file_sent = 0;
		}
		while (j->file_sent < f->size) {
			if (frame_out_room(&j->out) < RUNNER_FRAME_HDR + JOB_CHUNK)
				return 0;
			size_t want = f->size - j->file_sent < JOB_CHUNK ? (size_t)(f->size - j->file_sent) : JOB_CHUNK;
			ssize_t n = source_read(&f->data, j->file_sent, buf, want);
			if (n <= 0) {
				job_end(j, JOB_ERROR, "file %s: %s", f->guest_path,
					n < 0 ? strerror(errno) : "shorter than its announced size");
				return -1;
			}
			frame_out_add(&j->out, RF_FILE_DATA, buf, (size_t)n);
			j->file_sent += (uint64_t)n;
		}
		j->file_idx++;
		j->file_announced = false;
	}
	return 1;
}

static void feed_stdin(struct job_ctx *j, uint64_t *off)
{
	const struct job_source *src = &j->spec->stdin_src;
	uint8_t buf[JOB_CHUNK];
	for (;;) {
		if (frame_out_room(&j->out) < RUNNER_FRAME_HDR + JOB_CHUNK)
			return;
		bool empty = src->fd < 0 && (!src->mem || *off >= src->mem_len);
		if (src->fd >= 0 && !j->stdin_readable)
			return;
		ssize_t n = empty ? 0 : source_read(src, *off, buf, sizeof(buf));
		j->stdin_readable = false;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			/* EOF, or a read error: the command sees the end. */
			frame_out_add(&j->out, RF_STDIN_EOF, NULL, 0);
			j->feed = FEED_DONE;
			return;
		}
		frame_out_add(&j->out, RF_STDIN, buf, (size_t)n);
		*off += (uint64_t)n;
		if (src->fd >= 0)
			return; /* poll again before the next read: it may block */
	}
}

/* Queues what comes next, as far as the queue has room. */
static void job_feed(struct job_ctx *j, struct strings_cursor *c, uint64_t *stdin_pos)
{
	if (j->feed == FEED_SETUP && feed_setup(j) < 0)
		return;
	if (j->feed == FEED_FILES) {
		if (feed_strings(j, c) <= 0)
			return;
		int r = feed_files(j);
		if (r <= 0)
			return;
		j->feed = FEED_RUN;
	}
	if (j->feed == FEED_RUN) {
		if (frame_out_add(&j->out, RF_RUN, NULL, 0) < 0)
			return;
		j->feed = FEED_STDIN;
	}
	if (j->feed == FEED_STDIN)
		feed_stdin(j, stdin_pos);
}

/* ---- what comes back ---- */

static void job_take_frame(struct job_ctx *j, const struct runner_frame_hdr *h, const uint8_t *p)
{
	char err[256];
	switch (h->type) {
	case RF_STDOUT:
	case RF_STDERR: {
		uint64_t *count = h->type == RF_STDOUT ? &j->res->out_bytes : &j->res->err_bytes;
		*count += h->len;
		if (j->spec->max_output && j->res->out_bytes + j->res->err_bytes > j->spec->max_output) {
			job_end(j, JOB_OUTPUT_LIMIT, "more than %llu bytes of output",
				(unsigned long long)j->spec->max_output);
			return;
		}
		if (h->len && j->sink->write(j->sink->ctx, h->type == RF_STDOUT ? 1 : 2, p, h->len) != 0)
			job_end(j, JOB_ERROR, "writing the job's output: %s", strerror(errno));
		return;
	}
	case RF_EXIT: {
		struct runner_exit e;
		if (runner_exit_decode(p, h->len, &e, err, sizeof(err)) < 0) {
			job_end(j, JOB_ERROR, "the agent: %s", err);
			return;
		}
		j->res->signaled = e.kind == RUNNER_SIGNALED;
		j->res->code = e.code;
		job_end(j, JOB_OK, NULL);
		return;
	}
	case RF_ERROR:
		job_end(j, JOB_ERROR, "the agent: %.*s", (int)h->len, (const char *)p);
		return;
	default:
		job_end(j, JOB_ERROR, "the agent sent a %s frame", runner_type_name(h->type));
	}
}

/* ---- the loop ---- */

static void job_loop(struct job_ctx *j)
{
	struct strings_cursor cur = { 0 };
	uint64_t stdin_pos = 0;
	const struct job_source *src = &j->spec->stdin_src;
	while (!j->done) {
		job_feed(j, &cur, &stdin_pos);
		if (j->done)
			break;
		if (frame_out_flush(&j->out, j->sock) < 0) {
			job_end_vm_gone(j, "while the job was sent");
			break;
		}
		struct pollfd p[2] = { { .fd = j->sock, .events = POLLIN }, { .fd = -1 } };
		if (frame_out_pending(&j->out))
			p[0].events |= POLLOUT;
		bool want_stdin = j->feed == FEED_STDIN && src->fd >= 0 && !j->stdin_readable &&
				  frame_out_room(&j->out) >= RUNNER_FRAME_HDR + JOB_CHUNK;
		if (want_stdin)
			p[1] = (struct pollfd){ .fd = src->fd, .events = POLLIN };
		long wait = 200; /* to see a stop request */
		if (j->deadline) {
			long left = remaining_ms(j->deadline);
			if (left <= 1) {
				job_end(j, JOB_TIMEOUT, "timed out after %u s", j->spec->timeout_s);
				break;
			}
			if (left < wait)
				wait = left;
		}
		if (stop_requested(j)) {
			job_end(j, JOB_ERROR, "stopped by a signal");
			break;
		}
		int r = poll(p, 2, (int)wait);
		if (r < 0 && errno != EINTR) {
			job_end(j, JOB_ERROR, "poll: %s", strerror(errno));
			break;
		}
		if (r <= 0)
			continue;
		if (p[1].revents)
			j->stdin_readable = true;
		if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		int f = frame_in_fill(&j->in, j->sock);
		struct runner_frame_hdr h;
		const uint8_t *payload;
		char err[256];
		int got;
		while (!j->done && (got = frame_in_next(&j->in, &h, &payload, err, sizeof(err))) != 0) {
			if (got < 0) {
				job_end(j, JOB_ERROR, "the agent sent a bad frame: %s", err);
				break;
			}
			job_take_frame(j, &h, payload);
		}
		if (!j->done && f <= 0)
			job_end_vm_gone(j, "before the job did");
	}
}

/* Each string travels in one frame: one that cannot would never be sent
 * (Linux takes no argument over 128 KiB anyway). */
static int job_check_sizes(struct job_ctx *j)
{
	const struct job_spec *s = j->spec;
	for (size_t i = 0; s->argv[i]; i++)
		if (strlen(s->argv[i]) > RUNNER_FRAME_MAX) {
			job_end(j, JOB_ERROR, "argument %zu is longer than %u bytes", i, RUNNER_FRAME_MAX);
			return -1;
		}
	for (size_t i = 0; s->env && s->env[i]; i++)
		if (strlen(s->env[i]) > RUNNER_FRAME_MAX) {
			job_end(j, JOB_ERROR, "environment string %zu is longer than %u bytes", i, RUNNER_FRAME_MAX);
			return -1;
		}
	if (s->cwd && strlen(s->cwd) > RUNNER_FRAME_MAX) {
		job_end(j, JOB_ERROR, "the working directory is longer than %u bytes", RUNNER_FRAME_MAX);
		return -1;
	}
	for (size_t i = 0; i < s->n_files; i++)
		if (strlen(s->files[i].guest_path) + RUNNER_FILE_HDR_LEN > RUNNER_FRAME_MAX) {
			job_end(j, JOB_ERROR, "file %zu: its path is too long", i);
			return -1;
		}
	return 0;
}

void job_run(const struct runner_cfg *cfg, struct pool *pool, const struct job_spec *spec,
	     const struct job_sink *sink, struct job_result *res)
{
	memset(res, 0, sizeof(*res));
	struct job_ctx j = { .cfg = cfg, .spec = spec, .sink = sink, .res = res, .sock = -1 };
	j.t0 = runner_now_ms();
	if (spec->timeout_s)
		j.deadline = j.t0 + spec->timeout_s * 1000.0;
	if (frame_in_init(&j.in) < 0 || frame_out_init(&j.out, JOB_OUT_CAP) < 0) {
		job_end(&j, JOB_ERROR, "out of memory");
		goto out;
	}
	if ((size_t)snprintf(j.dir, sizeof(j.dir), "%s/job.XXXXXX", cfg->work_dir) >= sizeof(j.dir)) {
		job_end(&j, JOB_ERROR, "work directory %s: too long a path for a Unix socket in it", cfg->work_dir);
		j.dir[0] = '\0';
		goto out;
	}
	if (!mkdtemp(j.dir)) {
		job_end(&j, JOB_ERROR, "%s: %s", j.dir, strerror(errno));
		goto out;
	}
	if ((size_t)snprintf(j.sock_path, sizeof(j.sock_path), "%s/vsock", j.dir) >= sizeof(j.sock_path)) {
		job_end(&j, JOB_ERROR, "work directory %s: too long a path for a Unix socket", cfg->work_dir);
		goto out;
	}
	if (job_check_sizes(&j) == 0 && job_start_vm(&j, pool) == 0 && job_join_agent(&j) == 0)
		job_loop(&j);
out:
	if (j.sock >= 0)
		close(j.sock);
	if (j.vm_started)
		vm_proc_stop(&j.vm, JOB_STOP_GRACE_MS);
	if (j.dir[0] && !strstr(j.dir, "XXXXXX")) {
		if (cfg->keep || (cfg->verbose && res->outcome == JOB_ERROR))
			fprintf(stderr, "minivmm-runner: job directory kept: %s\n", j.dir);
		else
			work_dir_remove(j.dir);
	}
	frame_in_free(&j.in);
	frame_out_free(&j.out);
	res->ms_total = runner_now_ms() - j.t0;
}
