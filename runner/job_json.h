/* A job and its result as JSON objects (the server's lines). */
#ifndef MINIVMM_RUNNER_JOB_JSON_H
#define MINIVMM_RUNNER_JOB_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "job.h"

struct json_object;

/* A job request and the memory it owns. */
struct job_request {
	struct job_spec spec;
	struct json_object *id; /* a reference of its own, or NULL */
	/* everything spec points into */
	char **argv, **env;
	char *cwd;
	uint8_t *stdin_buf;
	struct job_file *files;
	size_t n_files;
};

/* Fills req from one JSON line; defaults gives what the line does not say.
 * Returns 0, or -1 with a one-line reason naming the field (req->id is set
 * if the line had one, so that the error can be answered with it). */
int job_request_parse(const char *line, size_t len, const struct job_spec *defaults, struct job_request *req,
		      char *err, size_t errlen);
void job_request_free(struct job_request *req);

/* The result line (with its newline), malloc'ed; NULL when out of memory.
 * out and err are the captured output. */
char *job_result_line(struct json_object *id, const struct job_result *res, const uint8_t *out, size_t out_len,
		      const uint8_t *err, size_t err_len);
/* {"id":..,"outcome":"error","error":msg}\n */
char *job_error_line(struct json_object *id, const char *msg);

#endif
