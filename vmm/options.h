/* Command-line contract (see README "Command line"). Parsing is pure: no I/O,
 * no exit(), so it is unit-tested directly. */
#ifndef MINIVMM_OPTIONS_H
#define MINIVMM_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MAX_DISKS 16
#define MAX_NETS 8
#define MAX_NET_QUEUE_PAIRS 16
#define MAX_DISK_QUEUES 64          /* VIRTIO_MAX_QUEUES */
#define DEFAULT_MEM_MIB 256
#define DEFAULT_CONSOLE_MAX_MIB 64   /* --console-max */
#define MIN_MEM_MIB 16
#define MAX_MEM_MIB (1024u * 1024u)   /* 1 TiB; the host RAM check comes later */
#define DEFAULT_RNG_BYTES_PER_S (1024u * 1024u)   /* --rng bw= */

enum transport { TRANSPORT_DEFAULT, TRANSPORT_MMIO, TRANSPORT_PCI };
enum vhost_mode { VHOST_AUTO, VHOST_ON, VHOST_OFF };
/* SYNC is the default (0): io_uring is asked for, until the rig's L1 wedges
 * under io_uring load are explained (docs/rig-failure-rates.md). */
enum disk_engine { DISK_ENGINE_SYNC, DISK_ENGINE_AUTO, DISK_ENGINE_URING };
enum console_kind { CONSOLE_STDIO, CONSOLE_NONE, CONSOLE_FILE };
enum seccomp_mode { SECCOMP_ON, SECCOMP_LOG, SECCOMP_OFF };

#define OPT_PATH_MAX 1024

#define DISK_POLL_US_MAX 1000   /* devices/virtio/blk.h's VIRTIO_BLK_POLL_US_MAX */
#define DISK_POLL_US_AUTO 50   /* poll=auto (the default): the looks, when the tuner polls */
#define NET_TX_IRQ_DELAY_MAX_US 100000
#define NET_TX_IRQ_DELAY_DEFAULT_US 0

struct disk_opt {
	char path[OPT_PATH_MAX];
	bool readonly;
	unsigned queues;           /* 0: one per vCPU */
	enum transport transport;
	char serial[21];           /* serial=: GET_ID's answer (1-20 printable ASCII); "": the default */
	uint64_t bytes_per_sec;    /* bw=: rate limit of the disk; 0: none */
	uint64_t ops_per_sec;      /* iops= */
	enum disk_engine engine;   /* engine=: io_uring or synchronous I/O; auto: io_uring where the kernel allows it */
	unsigned poll_us;          /* poll=: microseconds a queue keeps polling after a batch (virtio_blk_params.poll_us) */
	bool poll_auto;            /* poll=auto: polls or not as the queue measures (virtio_blk_params.poll_auto) */
};

struct net_opt {
	char tap[16];              /* IFNAMSIZ */
	unsigned queue_pairs;
	enum vhost_mode vhost;
	bool has_mac;
	uint8_t mac[6];
	enum transport transport;
	uint64_t bytes_per_sec;    /* bw=: rate limit of each direction; 0: none */
	uint64_t packets_per_sec;  /* pps= */
	unsigned tx_irq_delay_us;  /* tx_irq_delay=: µs a TX interrupt is held back (worker backend) */
	bool tx_irq_delay_set;     /* given: an error with vhost=on */
};

struct vsock_opt {
	bool enabled;
	uint64_t cid;              /* the guest's CID, 3..2^32-2 */
	char uds[OPT_PATH_MAX];    /* the host side's Unix socket */
	enum transport transport;
};

struct rng_opt {
	bool enabled;
	uint64_t bytes_per_sec;    /* the rate limit; 0: none */
	enum transport transport;
};

struct vmm_options {
	const char *kernel;
	const char *initrd;
	const char *cmdline;
	unsigned cpus;
	uint64_t mem_mib;
	enum console_kind console;
	const char *console_path;
	uint64_t console_max_mib;  /* --console-max: cap of a --console file; 0: none */
	enum seccomp_mode seccomp;
	const char *user;          /* --user: name or uid; NULL keeps ours */
	const char *group;         /* --group */
	const char *chroot_dir;    /* --chroot */
	const char *api_sock;      /* --api-sock: the control socket's path */
	const char *restore_dir;   /* --restore: a snapshot's directory */
	bool restore_mem_copy;     /* --restore-mem copy */
	struct disk_opt disks[MAX_DISKS];
	unsigned n_disks;
	struct net_opt nets[MAX_NETS];
	unsigned n_nets;
	struct vsock_opt vsock;           /* --vsock: one per VM */
	struct rng_opt rng;               /* --rng: one per VM */
	bool guest_exit;                  /* --guest-exit: the guest port's status is minivmm's */
	bool help;
	bool version;
};

/* Returns 0 on success; on failure writes a one-line message naming the
 * culprit into err and returns -1. Strings in opts point into argv. */
int options_parse(int argc, char *const argv[], struct vmm_options *opts,
		  char *err, size_t errlen);

/* Parsers for one option value, exposed for tests. */
int options_parse_disk(const char *spec, struct disk_opt *d, char *err, size_t errlen);
int options_parse_net(const char *spec, struct net_opt *n, char *err, size_t errlen);
int options_parse_vsock(const char *spec, struct vsock_opt *v, char *err, size_t errlen);
int options_parse_rng(const char *spec, struct rng_opt *r, char *err, size_t errlen);
int options_parse_mac(const char *s, uint8_t mac[6]);

extern const char options_usage[];

#endif
