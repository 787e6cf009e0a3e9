/* The synthetic guest driver of the datapath benchmarks (bench_net_datapath,
 * bench_blk_datapath): split virtqueues on fake guest memory, driven the way
 * Linux drives them with EVENT_IDX (buffers published in batches, a kick only
 * when avail_event asks, interrupts re-armed through used_event), and the
 * clocks the benchmarks report: wall, process CPU, host CPU, and the CPU of
 * the device's own threads.
 *
 * Header-only and without state of its own: every call is given the guest
 * memory and the queue it works on. One struct dq per queue, used by one
 * driver thread at a time. Not for the unit tests: a bug of the benchmark
 * exits (tests/unit/virtq_driver.h is the tests' driver). */
#ifndef MINIVMM_BENCH_DRIVER_H
#define MINIVMM_BENCH_DRIVER_H

#include <dirent.h>
#include <endian.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "devices/virtio/virtio.h"
#include "vmm/base/guest_mem.h"

/* Ring layout from a queue's ring address: descriptor table there, the
 * available ring at +0x1000, the used ring at +0x2000 (a page each holds a
 * queue of up to 256 entries). */
#define BENCH_AVAIL_OFF  0x1000ull
#define BENCH_USED_OFF   0x2000ull
#define BENCH_RING_BYTES 0x3000ull
#define BENCH_MAX_QSIZE  256u

/* ---- clocks ---- */

static inline double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* CPU seconds (user + system) of the whole process, threads gone included. */
static inline double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

/* CPU seconds all processes of the host spent busy (/proc/stat: everything
 * but idle and iowait), to tell how much of the machine others used. */
static inline double host_busy_s(void)
{
	unsigned long long v[10] = { 0 };
	FILE *f = fopen("/proc/stat", "re");
	if (!f || fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
			 &v[6], &v[7]) != 8) {
		if (f)
			fclose(f);
		return 0;
	}
	fclose(f);
	return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)sysconf(_SC_CLK_TCK);
}

/* ---- the CPU of the device's threads ----
 *
 * A device's threads are told by name ("blk0-q1", "net0-qp2": the prefix
 * given), and so are the io_uring workers the kernel starts for them
 * ("iou-wrk-TID", TID one of theirs: the image I/O that could not be done
 * inline). The benchmark's own threads (driver, injector, main) never match.
 * Read from /proc/self/task/TID/stat (utime + stime, in clock ticks). */

#define BENCH_MAX_THREADS 64

struct thread_cpu {
	unsigned n;
	int tid[BENCH_MAX_THREADS];
	unsigned long long ticks[BENCH_MAX_THREADS];
};

/* utime + stime of thread tid, and its name (comm) in name[16]; false when
 * it is gone. */
static inline bool task_stat(int tid, char name[16], unsigned long long *ticks)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	/* "tid (comm) state ...": comm may hold spaces and parentheses, so
	 * it ends at the last ')'; utime and stime are fields 14 and 15. */
	char *comm = strchr(buf, '('), *comm_end = strrchr(buf, ')');
	if (!comm || !comm_end || comm_end < comm)
		return false;
	size_t len = (size_t)(comm_end - comm - 1) < 15 ? (size_t)(comm_end - comm - 1) : 15;
	memcpy(name, comm + 1, len);
	name[len] = 0;
	unsigned long long ut, st;
	if (sscanf(comm_end + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return false;
	*ticks = ut + st;
	return true;
}

/* The device threads (names starting with prefix) and their io_uring
 * workers, as they are now. */
static inline void device_threads_cpu(struct thread_cpu *out, const char *prefix)
{
	struct {
		int tid;
		char name[16];
		unsigned long long ticks;
	} all[BENCH_MAX_THREADS * 2];
	unsigned n = 0;
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	while (d && (e = readdir(d)) && n < sizeof(all) / sizeof(all[0])) {
		int tid = atoi(e->d_name);
		if (tid > 0 && task_stat(tid, all[n].name, &all[n].ticks))
			all[n++].tid = tid;
	}
	if (d)
		closedir(d);
	out->n = 0;
	size_t plen = strlen(prefix);
	for (unsigned i = 0; i < n && out->n < BENCH_MAX_THREADS; i++) {
		bool dev = !strncmp(all[i].name, prefix, plen);
		if (!dev && !strncmp(all[i].name, "iou-wrk-", 8)) {
			int owner = atoi(all[i].name + 8);
			for (unsigned k = 0; k < n && !dev; k++)
				dev = all[k].tid == owner && !strncmp(all[k].name, prefix, plen);
		}
		if (dev) {
			out->tid[out->n] = all[i].tid;
			out->ticks[out->n++] = all[i].ticks;
		}
	}
}

/* CPU seconds the device threads used from t0 to t1: per thread, so that
 * one started meanwhile counts whole; one gone meanwhile (an idle io_uring
 * worker) takes what it used since t0 with it. */
static inline double thread_cpu_between(const struct thread_cpu *t0, const struct thread_cpu *t1)
{
	unsigned long long sum = 0;
	for (unsigned i = 0; i < t1->n; i++) {
		unsigned long long before = 0;
		for (unsigned k = 0; k < t0->n; k++)
			if (t0->tid[k] == t1->tid[i])
				before = t0->ticks[k];
		sum += t1->ticks[i] > before ? t1->ticks[i] - before : 0;
	}
	return (double)sum / (double)sysconf(_SC_CLK_TCK);
}

/* One measured interval: the caller's counters are read around
 * bench_window_sleep(), which notes time, the process's CPU, the host's
 * busy CPU and the device threads' CPU at both ends. */
struct bench_window {
	double t0, cpu0, host0, t1, cpu1, host1;
	struct thread_cpu dev0, dev1;
};

static inline void bench_window_sleep(struct bench_window *w, const char *dev_prefix, double secs)
{
	device_threads_cpu(&w->dev0, dev_prefix);
	w->t0 = now_s(), w->cpu0 = cpu_s(), w->host0 = host_busy_s();
	usleep((useconds_t)(secs * 1e6));
	w->t1 = now_s(), w->cpu1 = cpu_s(), w->host1 = host_busy_s();
	device_threads_cpu(&w->dev1, dev_prefix);
}

/* Cores used over the window: the process, the host, the device threads. */
static inline void bench_window_cores(const struct bench_window *w, double *cores, double *host_cores,
				      double *dev_cores)
{
	double dt = w->t1 - w->t0;
	*cores = (w->cpu1 - w->cpu0) / dt;
	*host_cores = (w->host1 - w->host0) / dt;
	*dev_cores = thread_cpu_between(&w->dev0, &w->dev1) / dt;
}

/* ---- the driver of one queue ---- */

/* Host address of guest address a; not RAM is a bug of the benchmark. */
static inline void *bench_gpa(const struct guest_mem *mem, uint64_t a)
{
	void *p = guest_mem_ptr(mem, a, 1);
	if (!p) {
		fprintf(stderr, "bench bug: 0x%llx\n", (unsigned long long)a);
		exit(1);
	}
	return p;
}

struct dq {
	struct virtio_queue *queue;   /* the transport's side: its kick eventfd */
	uint16_t size;
	struct virtq_desc *desc;
	struct virtq_avail *avail;
	struct virtq_used *used;
	uint16_t avail_idx, used_seen;
	_Atomic uint64_t kicks;       /* kick eventfd writes (EVENT_IDX asked for them) */
};

/* What the driver and then the transport do up to DRIVER_OK: zeroed rings
 * at ring_gpa, queue q configured and ready on them, with EVENT_IDX. */
static inline void dq_init(struct dq *d, const struct guest_mem *mem, struct virtio_queue *q, uint16_t size,
			   uint64_t ring_gpa)
{
	if (size > BENCH_MAX_QSIZE || !guest_mem_ptr(mem, ring_gpa, BENCH_RING_BYTES)) {
		fprintf(stderr, "bench bug: queue of %u at 0x%llx\n", size, (unsigned long long)ring_gpa);
		exit(1);
	}
	memset(bench_gpa(mem, ring_gpa), 0, BENCH_RING_BYTES);
	d->queue = q;
	d->size = size;
	d->desc = bench_gpa(mem, ring_gpa);
	d->avail = bench_gpa(mem, ring_gpa + BENCH_AVAIL_OFF);
	d->used = bench_gpa(mem, ring_gpa + BENCH_USED_OFF);
	d->avail_idx = d->used_seen = 0;
	atomic_store(&d->kicks, 0);
	q->size = size;
	q->desc = ring_gpa;
	q->avail = ring_gpa + BENCH_AVAIL_OFF;
	q->used = ring_gpa + BENCH_USED_OFF;
	q->ready = true;
	if (virtq_init(&q->vq, mem, size, q->desc, q->avail, q->used, true, false)) {
		fprintf(stderr, "virtq_init failed\n");
		exit(1);
	}
}

/* Makes head available (not yet published). */
static inline void dq_add(struct dq *d, uint16_t head)
{
	d->avail->ring[d->avail_idx % d->size] = htole16(head);
	d->avail_idx++;
}

/* Publishes what was added since old and kicks if the device asked for it
 * (EVENT_IDX: avail_event). */
static inline void dq_publish(struct dq *d, uint16_t old)
{
	if (d->avail_idx == old)
		return;
	__atomic_store_n(&d->avail->idx, htole16(d->avail_idx), __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	uint16_t ev = le16toh(__atomic_load_n((uint16_t *)&d->used->ring[d->size], __ATOMIC_RELAXED));
	if (virtq_need_event(ev, d->avail_idx, old)) {
		uint64_t one = 1;
		if (write(d->queue->kick_fd, &one, sizeof(one)) < 0) {
			/* full: pending anyway */
		}
		atomic_fetch_add_explicit(&d->kicks, 1, memory_order_relaxed);
	}
}

/* Takes the next used element (id and len in host order); false: none. */
static inline bool dq_used(struct dq *d, struct virtq_used_elem *e)
{
	uint16_t idx = le16toh(__atomic_load_n(&d->used->idx, __ATOMIC_ACQUIRE));
	if (idx == d->used_seen)
		return false;
	*e = d->used->ring[d->used_seen % d->size];
	e->id = le32toh(e->id);
	e->len = le32toh(e->len);
	d->used_seen++;
	return true;
}

/* Asks for an interrupt at the next used buffer; true if one came meanwhile. */
static inline bool dq_arm(struct dq *d)
{
	__atomic_store_n(&d->avail->ring[d->size], htole16(d->used_seen), __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return le16toh(__atomic_load_n(&d->used->idx, __ATOMIC_ACQUIRE)) != d->used_seen;
}

#endif
