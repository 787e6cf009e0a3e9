/* The control socket (--api-sock PATH): a Unix stream socket, mode 0600,
 * made before the sandbox, and the thread (role api) that serves it. The
 * protocol is vmm/api_proto.h; this is the socket, its clients and their
 * limits: at most API_MAX_CLIENTS at once (the next ones get an error line
 * and are closed), lines of at most API_LINE_MAX bytes, and a client silent
 * for idle_ms is closed, so no client can hold up another or the VM. */
#ifndef MINIVMM_API_H
#define MINIVMM_API_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/un.h>

#include "vmm/api_proto.h"

struct thread_starter;

#define API_MAX_CLIENTS 8
#define API_IDLE_MS 10000

struct api_client {
	int fd;              /* -1: free slot */
	uint64_t last_ns;    /* when it last sent something (or connected) */
	size_t len;
	char buf[API_LINE_MAX];
	int fds[API_MAX_FDS];   /* came with the next request (SCM_RIGHTS), closed after it */
	unsigned n_fds;
};

struct api_server {
	int listen_fd;       /* -1: no --api-sock */
	int dir_fd;          /* the socket's directory (O_PATH): removed from it at the end, chroot or not */
	int stop_efd;        /* wakes the thread to end */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];   /* for messages */
	char name[sizeof(((struct sockaddr_un *)0)->sun_path)];   /* in dir_fd */
	unsigned idle_ms;
	const struct api_ops *ops;
	void *ctx;
	pthread_t thread;
	bool started;
	struct api_client clients[API_MAX_CLIENTS];
};

/* Sets every fd to -1: api_close is safe after it. */
void api_init(struct api_server *s);
/* Makes the socket at path (mode 0600; a stale socket nobody listens on
 * is replaced, anything else there is an error). Logs one line naming the
 * path and returns -1 on failure. */
int api_open(struct api_server *s, const char *path);
/* Starts the api thread through ts (NULL: a plain thread), serving ops. */
int api_start(struct api_server *s, const struct thread_starter *ts, const struct api_ops *ops, void *ctx);
/* Ends the thread (its clients closed) and joins it. */
void api_stop(struct api_server *s);
/* api_stop, then closes the socket and removes its file. */
void api_close(struct api_server *s);

#endif
