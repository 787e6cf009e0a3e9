/* One job: a command run by the guest agent in a VM of its own, which is
 * stopped when the job ends and never reused. */
#ifndef MINIVMM_RUNNER_JOB_H
#define MINIVMM_RUNNER_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes that come either from memory or from a file descriptor. */
struct job_source {
	const uint8_t *mem;
	size_t mem_len;
	int fd; /* -1 when mem is used; read to its EOF, not closed */
};

struct job_file {
	char *guest_path;
	uint32_t mode;
	struct job_source data;
	uint64_t size; /* must be the source's length */
};

struct job_spec {
	char **argv; /* NULL-terminated, at least one */
	char **env;  /* "NAME=VALUE", NULL-terminated; NULL: none */
	const char *cwd; /* NULL: "/" */
	struct job_file *files;
	size_t n_files;
	struct job_source stdin_src; /* mem NULL and fd -1: empty */
	unsigned timeout_s;	     /* 0: none */
	unsigned mem_mib, cpus;
	bool cold;
	uint64_t max_output; /* stdout + stderr bytes; 0: no limit */
};

enum job_outcome {
	JOB_OK,		   /* the command ran and ended: see exit */
	JOB_TIMEOUT,	   /* the VM was killed at the timeout */
	JOB_OUTPUT_LIMIT,  /* the VM was killed: more output than max_output */
	JOB_ERROR,	   /* no result: see error */
};

struct job_result {
	enum job_outcome outcome;
	bool signaled;
	int code; /* exit status, or the signal's number */
	char error[512];
	double ms_ready; /* from the start to the agent's READY */
	double ms_total;
	uint64_t out_bytes, err_bytes;
};

/* Where the command's output goes, as it arrives. stream is 1 or 2. A
 * nonzero return stops the job with JOB_ERROR (the sink's reason). */
struct job_sink {
	int (*write)(void *ctx, int stream, const uint8_t *buf, size_t len);
	void *ctx;
};

struct runner_cfg;
struct pool;

/* Runs spec to its end; the result says how it ended. pool may be NULL
 * (every job boots cold). Thread-safe: jobs may run at once. */
void job_run(const struct runner_cfg *cfg, struct pool *pool, const struct job_spec *spec,
	     const struct job_sink *sink, struct job_result *res);

const char *job_outcome_name(enum job_outcome o);

#endif
