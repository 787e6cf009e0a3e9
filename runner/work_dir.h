/* The runner's own directories (a job's, the pool's template's). */
#ifndef MINIVMM_RUNNER_WORK_DIR_H
#define MINIVMM_RUNNER_WORK_DIR_H

/* Removes dir and everything in it (best effort: what is left stays). */
void work_dir_remove(const char *dir);

#endif
