/* The snapshot pool: one VM booted to "agent ready" and snapshotted, per
 * (memory, vCPUs); every job's VM is a clone restored from it, its memory
 * mapped copy-on-write from the one file all clones share. Snapshots are
 * kept on disk and reused by later runs while minivmm, the kernel, the
 * initramfs and the command line stay the same. */
#ifndef MINIVMM_RUNNER_POOL_H
#define MINIVMM_RUNNER_POOL_H

#include <stddef.h>

struct runner_cfg;
struct pool;

/* Opens (creates) cfg->pool_dir. NULL with a reason in err. */
struct pool *pool_open(const struct runner_cfg *cfg, char *err, size_t errlen);
void pool_close(struct pool *pool);

/* The snapshot directory for (mem_mib, cpus) into dir, made first if there
 * is none (a cold boot, a few seconds to minutes). Thread-safe, and safe
 * between runner processes. Returns 0, or -1 with a reason in err. */
int pool_get(struct pool *pool, unsigned mem_mib, unsigned cpus, char *dir, size_t dirlen, char *err,
	     size_t errlen);

#endif
