/* What every part of the runner needs to know: where minivmm and the guest
 * are, and where to put things. */
#ifndef MINIVMM_RUNNER_RUNNER_H
#define MINIVMM_RUNNER_RUNNER_H

#include <stdbool.h>
#include <signal.h>

struct runner_cfg {
	const char *minivmm; /* the VMM binary */
	const char *kernel, *initrd;
	const char *append;   /* extra kernel command line */
	const char *work_dir; /* per-job directories are made here */
	const char *pool_dir; /* snapshots live here */
	bool keep;	      /* keep the job directories (console, VMM log) */
	bool verbose;
	/* Set by a signal handler: every job stops its VM and ends. */
	volatile sig_atomic_t *stop;
};

/* The kernel command line every VM boots with (cold boots and the pool's
 * template alike), into buf. */
void runner_cmdline(const struct runner_cfg *cfg, char *buf, size_t len);

#endif
