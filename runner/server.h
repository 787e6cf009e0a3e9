/* The runner's server mode: jobs as JSON lines on a Unix socket, results as
 * JSON lines back, for a scheduler (CI system, Kubernetes Job, Nomad task)
 * to drive one runner per host. */
#ifndef MINIVMM_RUNNER_SERVER_H
#define MINIVMM_RUNNER_SERVER_H

struct runner_cfg;
struct job_spec;

/* Serves until a signal sets *cfg->stop; defaults gives what a job does not
 * say (memory, vCPUs, timeout, cold). Returns the exit status. */
int server_run(const struct runner_cfg *cfg, const struct job_spec *defaults, const char *socket_path,
	       unsigned max_jobs);

#endif
