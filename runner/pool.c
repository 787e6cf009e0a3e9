#define _GNU_SOURCE
#include "pool.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent_conn.h"
#include "runner.h"
#include "vm_proc.h"
#include "work_dir.h"

/* How long the template VM may take to boot to its agent. */
#define POOL_BOOT_LIMIT_MS (300 * 1000)
#define POOL_CTL_LIMIT_MS (120 * 1000)

struct pool {
	const struct runner_cfg *cfg;
	/* One snapshot is made at a time; jobs wanting one that exists do
	 * not wait (they check before taking the lock). */
	pthread_mutex_t lock;
};

struct pool *pool_open(const struct runner_cfg *cfg, char *err, size_t errlen)
{
	if (mkdir(cfg->pool_dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", cfg->pool_dir, strerror(errno));
		return NULL;
	}
	struct pool *p = calloc(1, sizeof(*p));
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	p->cfg = cfg;
	pthread_mutex_init(&p->lock, NULL);
	return p;
}

void pool_close(struct pool *pool)
{
	if (!pool)
		return;
	pthread_mutex_destroy(&pool->lock);
	free(pool);
}

static uint64_t fnv1a(uint64_t h, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

/* A file's identity for the key: its real path, size and modification time
 * (a rebuilt kernel or minivmm makes a new snapshot). */
static int hash_file(uint64_t *h, const char *what, const char *path, char *err, size_t errlen)
{
	char real[PATH_MAX];
	struct stat st;
	if (!realpath(path, real) || stat(real, &st) < 0) {
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
		return -1;
	}
	*h = fnv1a(*h, real, strlen(real) + 1);
	*h = fnv1a(*h, &st.st_size, sizeof(st.st_size));
	*h = fnv1a(*h, &st.st_mtim, sizeof(st.st_mtim));
	return 0;
}

static int pool_key(const struct pool *pool, unsigned mem, unsigned cpus, char *key, size_t len, char *err,
		    size_t errlen)
{
	const struct runner_cfg *cfg = pool->cfg;
	uint64_t h = 0xcbf29ce484222325ull;
	char cmdline[2048];
	if (hash_file(&h, "minivmm", cfg->minivmm, err, errlen) < 0 ||
	    hash_file(&h, "kernel", cfg->kernel, err, errlen) < 0 ||
	    hash_file(&h, "initrd", cfg->initrd, err, errlen) < 0)
		return -1;
	runner_cmdline(cfg, cmdline, sizeof(cmdline));
	h = fnv1a(h, cmdline, strlen(cmdline) + 1);
	snprintf(key, len, "m%u-c%u-%016llx", mem, cpus, (unsigned long long)h);
	return 0;
}

/* Runs `minivmm ctl SOCK ARGS...` to its end. */
static int pool_ctl(const struct pool *pool, const char *tmp, const char *sock, const char *cmd, const char *arg,
		    char *err, size_t errlen)
{
	char log[PATH_MAX + 16];
	snprintf(log, sizeof(log), "%s/ctl.log", tmp);
	const char *argv[] = { pool->cfg->minivmm, "ctl", sock, cmd, arg, NULL };
	struct vm_proc ctl;
	if (vm_proc_start(&ctl, (char *const *)argv, log, err, errlen) < 0)
		return -1;
	if (!vm_proc_wait(&ctl, POOL_CTL_LIMIT_MS)) {
		vm_proc_stop(&ctl, 0);
		snprintf(err, errlen, "minivmm ctl %s: no answer in %d s", cmd, POOL_CTL_LIMIT_MS / 1000);
		return -1;
	}
	if (!vm_proc_succeeded(&ctl)) {
		char how[600];
		vm_proc_explain(&ctl, how, sizeof(how));
		snprintf(err, errlen, "minivmm ctl %s: %s", cmd, how);
		return -1;
	}
	return 0;
}

/* Boots the template VM to "agent ready", snapshots it into tmp/snap and
 * stops it. */
static int pool_make(const struct pool *pool, unsigned mem, unsigned cpus, const char *tmp, char *err,
		     size_t errlen)
{
	const struct runner_cfg *cfg = pool->cfg;
	char cmdline[2048], cpus_s[16], mem_s[16], vsock[PATH_MAX + 64], console[PATH_MAX + 16], log[PATH_MAX + 16];
	char api[PATH_MAX + 16], sock[PATH_MAX + 16], snap[PATH_MAX + 16];
	runner_cmdline(cfg, cmdline, sizeof(cmdline));
	snprintf(cpus_s, sizeof(cpus_s), "%u", cpus);
	snprintf(mem_s, sizeof(mem_s), "%u", mem);
	snprintf(sock, sizeof(sock), "%s/vsock", tmp);
	snprintf(vsock, sizeof(vsock), "cid=3,uds=%s", sock);
	snprintf(console, sizeof(console), "%s/console", tmp);
	snprintf(log, sizeof(log), "%s/vmm.log", tmp);
	snprintf(api, sizeof(api), "%s/api.sock", tmp);
	snprintf(snap, sizeof(snap), "%s/snap", tmp);
	const char *argv[] = { cfg->minivmm, "--kernel", cfg->kernel, "--initrd", cfg->initrd, "--cmdline",
			       cmdline, "--cpus", cpus_s, "--mem", mem_s, "--rng", "--vsock", vsock, "--console", console,
			       "--api-sock", api, NULL };
	struct vm_proc vm;
	if (vm_proc_start(&vm, (char *const *)argv, log, err, errlen) < 0)
		return -1;
	int rc = -1;
	int fd = agent_connect(sock, &vm, runner_now_ms() + POOL_BOOT_LIMIT_MS, cfg->stop, err, errlen);
	if (fd >= 0) {
		int hello = agent_hello(fd, runner_now_ms() + POOL_BOOT_LIMIT_MS, cfg->stop, err, errlen);
		/* The probe's connection must be gone before the snapshot: its
		 * clones would each inherit it, half-open. */
		close(fd);
		if (hello == 0 && pool_ctl(pool, tmp, api, "pause", NULL, err, errlen) == 0 &&
		    pool_ctl(pool, tmp, api, "snapshot", snap, err, errlen) == 0)
			rc = 0;
	}
	vm_proc_stop(&vm, 2000);
	return rc;
}

int pool_get(struct pool *pool, unsigned mem_mib, unsigned cpus, char *dir, size_t dirlen, char *err,
	     size_t errlen)
{
	const struct runner_cfg *cfg = pool->cfg;
	char key[64];
	if (pool_key(pool, mem_mib, cpus, key, sizeof(key), err, errlen) < 0)
		return -1;
	if ((size_t)snprintf(dir, dirlen, "%s/%s", cfg->pool_dir, key) >= dirlen) {
		snprintf(err, errlen, "pool directory %s: path too long", cfg->pool_dir);
		return -1;
	}
	char state[PATH_MAX + 8];
	snprintf(state, sizeof(state), "%s/state", dir);
	if (access(state, R_OK) == 0)
		return 0;

	pthread_mutex_lock(&pool->lock);
	/* Another runner process may be making the same one: flock. */
	char lockpath[PATH_MAX + 16];
	snprintf(lockpath, sizeof(lockpath), "%s/.%s.lock", cfg->pool_dir, key);
	int lock = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	int rc = -1;
	if (lock < 0 || flock(lock, LOCK_EX) < 0) {
		snprintf(err, errlen, "%s: %s", lockpath, strerror(errno));
		goto out;
	}
	if (access(state, R_OK) == 0) {
		rc = 0;
		goto out;
	}
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s/.make.XXXXXX", cfg->pool_dir);
	if (!mkdtemp(tmp)) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	if (cfg->verbose)
		fprintf(stderr, "minivmm-runner: making the snapshot for %u MiB, %u vCPUs in %s\n", mem_mib, cpus,
			dir);
	double t0 = runner_now_ms();
	char snap[PATH_MAX + 8];
	snprintf(snap, sizeof(snap), "%s/snap", tmp);
	if (pool_make(pool, mem_mib, cpus, tmp, err, errlen) == 0) {
		work_dir_remove(dir); /* a leftover without state */
		if (rename(snap, dir) < 0)
			snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		else
			rc = 0;
	}
	if (rc == 0 && cfg->verbose)
		fprintf(stderr, "minivmm-runner: snapshot made in %.1f s\n", (runner_now_ms() - t0) / 1e3);
	if (rc < 0 && cfg->keep)
		fprintf(stderr, "minivmm-runner: the template VM's directory kept: %s\n", tmp);
	else
		work_dir_remove(tmp);
out:
	if (lock >= 0)
		close(lock);
	pthread_mutex_unlock(&pool->lock);
	return rc;
}
