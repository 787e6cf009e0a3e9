/* serve: one thread per client connection reads its job lines; each job
 * runs on a thread of its own, at most max_jobs at once across clients (a
 * client's reader waits for a free slot before it reads on, so a flood of
 * lines is held by the socket, not by the runner). Results go back on the
 * job's connection as they end, in any order: the "id" ties them. */
#define _GNU_SOURCE
#include "server.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "job_json.h"
#include "pool.h"
#include "runner.h"

/* A line may carry stdin and files in base64. */
#define SERVER_LINE_MAX (256u << 20)
#define SERVER_MAX_OUTPUT_DEFAULT (128ull << 20)

struct server {
	const struct runner_cfg *cfg;
	const struct job_spec *defaults;
	struct pool *pool;
	sem_t slots;
};

struct client {
	struct server *srv;
	int fd;
	pthread_mutex_t write_lock;
	pthread_t thread;
	_Atomic bool ended; /* its thread is done: join it */
	struct client *next;
};

struct job_thread {
	struct client *cl;
	struct job_request req;
	pthread_t thread;
	struct job_thread *next;
	/* captured output */
	uint8_t *buf[2];
	size_t len[2], cap[2];
};

static void client_send(struct client *cl, const char *line)
{
	if (!line)
		return;
	pthread_mutex_lock(&cl->write_lock);
	size_t len = strlen(line), off = 0;
	while (off < len) {
		ssize_t n = send(cl->fd, line + off, len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* the client went away: its results are lost to it */
		off += (size_t)n;
	}
	pthread_mutex_unlock(&cl->write_lock);
}

static int capture(void *ctx, int stream, const uint8_t *data, size_t n)
{
	struct job_thread *jt = ctx;
	int i = stream == 1 ? 0 : 1;
	if (jt->len[i] + n > jt->cap[i]) {
		size_t cap = jt->cap[i] ? jt->cap[i] : 65536;
		while (cap < jt->len[i] + n)
			cap *= 2;
		uint8_t *b = realloc(jt->buf[i], cap);
		if (!b) {
			errno = ENOMEM;
			return -1;
		}
		jt->buf[i] = b;
		jt->cap[i] = cap;
	}
	memcpy(jt->buf[i] + jt->len[i], data, n);
	jt->len[i] += n;
	return 0;
}

static void *job_thread_main(void *arg)
{
	struct job_thread *jt = arg;
	struct server *srv = jt->cl->srv;
	struct job_sink sink = { .write = capture, .ctx = jt };
	struct job_result res;
	job_run(srv->cfg, srv->pool, &jt->req.spec, &sink, &res);
	char *line = job_result_line(jt->req.id, &res, jt->buf[0], jt->len[0], jt->buf[1], jt->len[1]);
	if (!line)
		line = job_error_line(jt->req.id, "out of memory for the result");
	client_send(jt->cl, line);
	free(line);
	free(jt->buf[0]);
	free(jt->buf[1]);
	jt->buf[0] = jt->buf[1] = NULL;
	job_request_free(&jt->req);
	sem_post(&srv->slots);
	return NULL;
}

/* Waits for a free slot, or the stop. */
static bool take_slot(struct server *srv)
{
	while (!*srv->cfg->stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 200 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		if (sem_timedwait(&srv->slots, &ts) == 0)
			return true;
	}
	return false;
}

static void start_job(struct client *cl, const char *line, size_t len, struct job_thread **jobs)
{
	struct server *srv = cl->srv;
	char err[512];
	struct job_thread *jt = calloc(1, sizeof(*jt));
	if (!jt) {
		char *l = job_error_line(NULL, "out of memory");
		client_send(cl, l);
		free(l);
		return;
	}
	jt->cl = cl;
	if (job_request_parse(line, len, srv->defaults, &jt->req, err, sizeof(err)) < 0) {
		char *l = job_error_line(jt->req.id, err);
		client_send(cl, l);
		free(l);
		job_request_free(&jt->req);
		free(jt);
		return;
	}
	if (!take_slot(srv)) {
		job_request_free(&jt->req);
		free(jt);
		return;
	}
	if (pthread_create(&jt->thread, NULL, job_thread_main, jt) != 0) {
		char *l = job_error_line(jt->req.id, "cannot start a thread for the job");
		client_send(cl, l);
		free(l);
		sem_post(&srv->slots);
		job_request_free(&jt->req);
		free(jt);
		return;
	}
	jt->next = *jobs;
	*jobs = jt;
}

/* Reads lines until EOF or the stop, then waits for its jobs. */
static void *client_main(void *arg)
{
	struct client *cl = arg;
	struct job_thread *jobs = NULL;
	size_t cap = 65536, have = 0;
	char *buf = malloc(cap);
	bool skipping = false; /* inside a line that was too long */
	while (buf && !*cl->srv->cfg->stop) {
		struct pollfd p = { .fd = cl->fd, .events = POLLIN };
		if (poll(&p, 1, 200) <= 0)
			continue;
		if (have == cap) {
			char *b = cap * 2 <= SERVER_LINE_MAX ? realloc(buf, cap * 2) : NULL;
			if (!b) {
				char *l = job_error_line(NULL, "a job line longer than 256 MiB: refused");
				client_send(cl, l);
				free(l);
				skipping = true;
				have = 0;
			} else {
				buf = b;
				cap *= 2;
			}
		}
		ssize_t n = read(cl->fd, buf + have, cap - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		have += (size_t)n;
		char *start = buf, *nl;
		while ((nl = memchr(start, '\n', have - (size_t)(start - buf)))) {
			size_t len = (size_t)(nl - start);
			if (!skipping && len)
				start_job(cl, start, len, &jobs);
			skipping = false;
			start = nl + 1;
		}
		have -= (size_t)(start - buf);
		memmove(buf, start, have);
	}
	free(buf);
	while (jobs) {
		struct job_thread *next = jobs->next;
		pthread_join(jobs->thread, NULL);
		free(jobs);
		jobs = next;
	}
	cl->ended = true;
	return NULL;
}

static int listen_on(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "minivmm-runner: --socket %s: too long for a Unix socket\n", path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct stat st;
	if (lstat(path, &st) == 0) {
		/* A socket nobody listens on is a leftover; anything else is
		 * not ours to remove. */
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		bool alive = S_ISSOCK(st.st_mode) && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		close(probe);
		if (!S_ISSOCK(st.st_mode) || alive) {
			fprintf(stderr, "minivmm-runner: --socket %s: %s\n", path,
				alive ? "another runner listens there" : "exists and is not a socket");
			close(fd);
			return -1;
		}
		unlink(path);
	}
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0) {
		fprintf(stderr, "minivmm-runner: --socket %s: %s\n", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Joins the client threads that have ended (all of them, when all). */
static void reap_clients(struct client **list, bool all)
{
	for (struct client **pp = list; *pp;) {
		struct client *cl = *pp;
		if (!all && !cl->ended) {
			pp = &cl->next;
			continue;
		}
		pthread_join(cl->thread, NULL);
		close(cl->fd);
		pthread_mutex_destroy(&cl->write_lock);
		*pp = cl->next;
		free(cl);
	}
}

int server_run(const struct runner_cfg *cfg, const struct job_spec *defaults, const char *socket_path,
	       unsigned max_jobs)
{
	struct job_spec defs = *defaults;
	if (!defs.max_output)
		defs.max_output = SERVER_MAX_OUTPUT_DEFAULT;
	struct server srv = { .cfg = cfg, .defaults = &defs };
	char err[256];
	if (!defs.cold && !(srv.pool = pool_open(cfg, err, sizeof(err)))) {
		fprintf(stderr, "minivmm-runner: %s\n", err);
		return 125;
	}
	if (srv.pool) {
		/* The default-sized snapshot is made before the first job comes,
		 * so that no job waits for a boot. */
		char dir[4096];
		if (pool_get(srv.pool, defs.mem_mib, defs.cpus, dir, sizeof(dir), err, sizeof(err)) < 0) {
			fprintf(stderr, "minivmm-runner: snapshot pool: %s\n", err);
			pool_close(srv.pool);
			return 125;
		}
		if (cfg->verbose)
			fprintf(stderr, "minivmm-runner: snapshot ready: %s\n", dir);
	}
	int lfd = listen_on(socket_path);
	if (lfd < 0) {
		pool_close(srv.pool);
		return 125;
	}
	sem_init(&srv.slots, 0, max_jobs);
	fprintf(stderr, "minivmm-runner: serving on %s, at most %u jobs at once\n", socket_path, max_jobs);
	struct client *clients = NULL;
	while (!*cfg->stop) {
		reap_clients(&clients, false);
		struct pollfd p = { .fd = lfd, .events = POLLIN };
		if (poll(&p, 1, 200) <= 0)
			continue;
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		struct client *cl = calloc(1, sizeof(*cl));
		if (!cl) {
			close(fd);
			continue;
		}
		cl->srv = &srv;
		cl->fd = fd;
		pthread_mutex_init(&cl->write_lock, NULL);
		if (pthread_create(&cl->thread, NULL, client_main, cl) != 0) {
			close(fd);
			free(cl);
			continue;
		}
		cl->next = clients;
		clients = cl;
	}
	/* Stopping: every job sees the flag and stops its VM; the client
	 * threads then end. */
	close(lfd);
	unlink(socket_path);
	reap_clients(&clients, true);
	sem_destroy(&srv.slots);
	pool_close(srv.pool);
	fprintf(stderr, "minivmm-runner: stopped\n");
	return 0;
}
