/* The client side of serve (minivmm-runner submit --socket PATH). */
#ifndef MINIVMM_RUNNER_SUBMIT_H
#define MINIVMM_RUNNER_SUBMIT_H

/* Sends stdin's job lines, prints the results; returns the exit status. */
int submit_run(const char *socket_path);

#endif
