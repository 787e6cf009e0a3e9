/* The control socket's protocol (--api-sock), without the socket: one JSON
 * object per line each way, as QMP does. A request is {"cmd":"NAME"}; a
 * reply is {"ok":true,...} or {"error":"what is wrong"}. Pure: the VM is
 * reached through struct api_ops only, so tests drive it with a fake. */
#ifndef MINIVMM_API_PROTO_H
#define MINIVMM_API_PROTO_H

#include <stdbool.h>
#include <stddef.h>

struct json_object;

/* The longest request line, newline included; a longer one is refused and
 * its connection closed. */
#define API_LINE_MAX 4096

/* What a request can do to the VM. Each returns 0, or -1 with a one-line
 * reason in err. */
struct api_ops {
	bool (*paused)(void *ctx);
	int (*pause)(void *ctx, char *err, size_t errlen);
	int (*resume)(void *ctx, char *err, size_t errlen);
	/* Adds the VM's description (vcpus, memory_mib, devices) to out. */
	void (*info)(void *ctx, struct json_object *out);
	/* Adds the devices' counters to out. */
	void (*stats)(void *ctx, struct json_object *out);
	/* Asks the VM to stop (exit status 0); the reply goes out first. */
	void (*stop)(void *ctx);
	/* Writes a snapshot of the paused VM into the two files the client
	 * passed; adds what it wrote (sizes, time) to out. */
	int (*snapshot)(void *ctx, int state_fd, int mem_fd, struct json_object *out, char *err, size_t errlen);
};

/* File descriptors that came with a request (SCM_RIGHTS): "snapshot" takes
 * two, the state file and the memory file, open for writing. The caller
 * closes them after the reply. */
#define API_MAX_FDS 2

/* Handles one request line (without its newline; len bytes, NULs are
 * refused) and returns the reply line with its newline, malloc'ed, or NULL
 * when out of memory. */
char *api_proto_handle(const struct api_ops *ops, void *ctx, const char *line, size_t len, const int *fds,
		       unsigned n_fds);

/* {"error":msg}\n, malloc'ed (NULL when out of memory). */
char *api_proto_error(const char *msg);

/* For the client: whether a reply line is an error ({"error":...}), and
 * then its message in msg. A line that is no JSON object counts as one. */
bool api_proto_reply_error(const char *line, size_t len, char *msg, size_t msglen);

#endif
