#include "vmm/options.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/base/log.h"

const char options_usage[] =
"usage: minivmm --kernel PATH [options]\n"
"       minivmm --restore DIR [--disk ...] [--net ...] [--vsock ...] [--rng ...] [options]\n"
"       minivmm ctl SOCKET pause|resume|info|stats|stop|snapshot DIR\n"
"\n"
"Boot a Linux kernel directly under KVM.\n"
"\n"
"  --kernel PATH         kernel to boot (required): x86_64 bzImage or 64-bit ELF;\n"
"                        arm64 Image (uncompressed)\n"
"  --initrd PATH         initial ramdisk\n"
"  --cmdline \"STR\"       kernel command line (default \"console=ttyS0\")\n"
"  --cpus N              number of vCPUs (default 1)\n"
"  --mem MiB             guest RAM in MiB (default 256)\n"
"  --disk PATH[,ro][,queues=N][,serial=STR][,bw=BYTES][,iops=N][,engine=uring|sync|auto][,poll=auto|US]\n"
"        [,transport=mmio|pci]\n"
"                        virtio-blk disk (repeatable); queues: one per vCPU by default;\n"
"                        serial: its ID for the guest (1-20 printable ASCII\n"
"                        characters; default minivmm-blkN); bw, iops: at most\n"
"                        BYTES and N requests per second (0: no limit), after a\n"
"                        one-time burst of one second's worth; engine: io_uring\n"
"                        or synchronous I/O (the default; auto: io_uring where\n"
"                        the kernel allows it); poll: after a batch a queue\n"
"                        looks for more every US microseconds while it finds\n"
"                        some, kicks off (sync engine; 0: off; auto, the\n"
"                        default: each queue polls or not, whichever serves\n"
"                        more requests per second)\n"
"  --net TAP[,queues=N][,vhost=on|off|auto][,bw=BYTES][,pps=N][,tx_irq_delay=US]\n"
"        [,mac=XX:XX:XX:XX:XX:XX][,transport=mmio|pci]\n"
"                        virtio-net on a tap device (repeatable); bw, pps: at\n"
"                        most BYTES and N frames per second each way (0: no\n"
"                        limit); tx_irq_delay: the interrupt for sent frames\n"
"                        waits US µs, none if the guest took them back meanwhile\n"
"                        (0: at once); bw, pps, tx_irq_delay: worker threads\n"
"                        only (not with vhost=on)\n"
"  --vsock cid=N,uds=PATH[,transport=mmio|pci]\n"
"                        virtio-vsock with guest CID N (3 and up): the host end\n"
"                        is the Unix socket PATH (connect, write \"CONNECT PORT\\n\",\n"
"                        read \"OK ...\\n\"); the guest's connections to host port P\n"
"                        go to PATH_P\n"
"  --rng [bw=BYTES][,transport=mmio|pci]\n"
"                        virtio-rng (the value may be left out): the guest's\n"
"                        entropy from the host's getrandom, at most BYTES per\n"
"                        second (default 1048576, bursts of 64 KiB; 0: no limit)\n"
"  --console stdio|none|PATH\n"
"                        where the serial console goes (default stdio)\n"
"  --console-max MiB     largest --console file; the rest of the guest's output\n"
"                        is dropped (default 64, 0: no limit)\n"
"  --seccomp on|log|off  system call filter per thread (default on; a violation\n"
"                        stops minivmm with status 159 and names the call)\n"
"  --user USER           run as this user (name or uid) once devices are open\n"
"                        (started as root: default 65534, nobody)\n"
"  --group GROUP         run as this group (default: the user's own, or\n"
"                        65534, nogroup, for a numeric --user)\n"
"  --chroot DIR          change root to DIR once devices are open\n"
"  --api-sock PATH       control socket (mode 0600): one JSON object per line,\n"
"                        {\"cmd\":\"pause\"|\"resume\"|\"info\"|\"stats\"|\"stop\"};\n"
"                        \"minivmm ctl PATH CMD\" sends one and prints the reply\n"
"  --restore DIR         start from the snapshot in DIR (made with \"minivmm ctl\n"
"                        SOCKET snapshot DIR\" of a paused VM) instead of booting:\n"
"                        the same --disk, --net, --vsock and --rng devices\n"
"                        in order (paths and taps may differ); not with\n"
"                        --kernel, --initrd, --cmdline, --cpus, --mem\n"
"  --restore-mem map|copy\n"
"                        guest memory mapped copy-on-write from the snapshot's\n"
"                        file, shared by every VM restored from it (default),\n"
"                        or read in whole\n"
"  --guest-exit          exit with the status the guest writes to the guest port\n"
"                        (without it only 0 is taken: a guest cannot fake\n"
"                        minivmm's own statuses)\n"
"  --help                print this help and exit\n"
"  --version             print the version and exit\n"
"\n"
"On an interactive console, type Ctrl-A x to stop the guest.\n"
"minivmm ctl exits 0 on a reply, 1 on an error reply or when it cannot connect.\n"
"Exit status: 0 when the guest powers off, 1 on error, 128+N when stopped by\n"
"signal N, 159 when a seccomp filter stopped it; with --guest-exit, the\n"
"guest's status when it reports one (the last line on stderr tells which).\n";

/* Strict unsigned decimal: no sign, no trailing junk, no overflow. */
static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	if (!s || !isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

static int parse_transport(const char *v, enum transport *t)
{
	if (!strcmp(v, "mmio"))
		*t = TRANSPORT_MMIO;
	else if (!strcmp(v, "pci"))
		*t = TRANSPORT_PCI;
	else
		return -1;
	return 0;
}

int options_parse_mac(const char *s, uint8_t mac[6])
{
	unsigned b[6];
	char tail;
	if (strlen(s) != 17 ||
	    sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &tail) != 6)
		return -1;
	for (int i = 0; i < 6; i++) {
		/* each group must be exactly two hex digits */
		if (!isxdigit((unsigned char)s[i * 3]) || !isxdigit((unsigned char)s[i * 3 + 1]))
			return -1;
		if (i < 5 && s[i * 3 + 2] != ':')
			return -1;
		mac[i] = (uint8_t)b[i];
	}
	if (mac[0] & 1)  /* multicast bit: not a valid station address */
		return -1;
	return 0;
}

/* Split "first,k=v,flag" into the first item and key/value items. The
 * callback sees each item after the first; with first NULL there is no
 * leading item ("k=v,k=v"): it sees them all. */
typedef int (*item_fn)(const char *key, const char *val, void *ctx, char *err, size_t errlen);

static int for_each_item(const char *opt, const char *spec, char *first, size_t firstlen,
			 item_fn fn, void *ctx, char *err, size_t errlen)
{
	char buf[OPT_PATH_MAX];
	if (strlen(spec) >= sizeof(buf))
		return err_set(err, errlen, "%s: value too long", opt);
	strcpy(buf, spec);
	char *save = NULL;
	char *tok = strtok_r(buf, ",", &save);
	if (first) {
		if (!tok || buf[0] == ',')
			return err_set(err, errlen, "%s '%s': missing %s", opt, spec,
				       !strcmp(opt, "--net") ? "tap name" : "path");
		if (strlen(tok) >= firstlen)
			return err_set(err, errlen, "%s '%s': name too long", opt, tok);
		strcpy(first, tok);
		tok = strtok_r(NULL, ",", &save);
	}
	for (; tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		const char *val = NULL;
		if (eq) {
			*eq = '\0';
			val = eq + 1;
		}
		if (fn(tok, val, ctx, err, errlen))
			return -1;
	}
	return 0;
}

static int disk_item(const char *key, const char *val, void *ctx, char *err, size_t errlen)
{
	struct disk_opt *d = ctx;
	if (!strcmp(key, "ro") && !val) {
		d->readonly = true;
		return 0;
	}
	if (!strcmp(key, "transport") && val) {
		if (parse_transport(val, &d->transport))
			return err_set(err, errlen, "--disk: transport '%s' is not mmio or pci", val);
		return 0;
	}
	if (!strcmp(key, "queues") && val) {
		uint64_t q;
		if (parse_u64(val, &q) || q < 1 || q > MAX_DISK_QUEUES)
			return err_set(err, errlen, "--disk: queues=%s is not a number from 1 to %d", val,
				       MAX_DISK_QUEUES);
		d->queues = (unsigned)q;
		return 0;
	}
	if (!strcmp(key, "serial") && val) {
		/* GET_ID's 20 bytes, NUL padded: printable ASCII, as the guest
		 * shows it in /sys/block/vdX/serial. */
		for (const char *c = val; *c; c++)
			if (*c < 0x20 || *c > 0x7e)
				return err_set(err, errlen, "--disk: serial= takes printable ASCII only (byte 0x%02x)",
					       (unsigned char)*c);
		if (!*val || strlen(val) >= sizeof(d->serial))
			return err_set(err, errlen, "--disk: serial=%s is not 1 to %zu characters", val,
				       sizeof(d->serial) - 1);
		strcpy(d->serial, val);
		return 0;
	}
	if ((!strcmp(key, "bw") || !strcmp(key, "iops")) && val) {
		uint64_t v;
		bool bytes = !strcmp(key, "bw");
		/* A limit past 2^40 a second is no limit anyway. */
		if (parse_u64(val, &v) || v > (1ull << 40))
			return err_set(err, errlen, "--disk: %s=%s is not a number of %s per second from 0 (no limit) to %llu",
				       key, val, bytes ? "bytes" : "requests", 1ull << 40);
		*(bytes ? &d->bytes_per_sec : &d->ops_per_sec) = v;
		return 0;
	}
	if (!strcmp(key, "poll") && val) {
		uint64_t us;
		if (!strcmp(val, "auto")) {
			d->poll_auto = true;
			d->poll_us = DISK_POLL_US_AUTO;
			return 0;
		}
		if (parse_u64(val, &us) || us > DISK_POLL_US_MAX)
			return err_set(err, errlen, "--disk: poll=%s is not auto or a number of microseconds from 0 (off) to %u", val,
				       DISK_POLL_US_MAX);
		d->poll_us = (unsigned)us;
		d->poll_auto = false;
		return 0;
	}
	if (!strcmp(key, "engine") && val) {
		if (!strcmp(val, "uring"))
			d->engine = DISK_ENGINE_URING;
		else if (!strcmp(val, "sync"))
			d->engine = DISK_ENGINE_SYNC;
		else if (!strcmp(val, "auto"))
			d->engine = DISK_ENGINE_AUTO;
		else
			return err_set(err, errlen, "--disk: engine=%s is not uring, sync or auto", val);
		return 0;
	}
	if (!val && (!strcmp(key, "serial") || !strcmp(key, "bw") || !strcmp(key, "iops") || !strcmp(key, "queues") ||
		     !strcmp(key, "transport") || !strcmp(key, "engine") || !strcmp(key, "poll")))
		return err_set(err, errlen, "--disk: setting '%s' needs a value (%s=...)", key, key);
	return err_set(err, errlen, "--disk: unknown setting '%s'", key);
}

int options_parse_disk(const char *spec, struct disk_opt *d, char *err, size_t errlen)
{
	memset(d, 0, sizeof(*d));
	d->poll_us = DISK_POLL_US_AUTO;
	d->poll_auto = true;
	return for_each_item("--disk", spec, d->path, sizeof(d->path), disk_item, d, err, errlen);
}

static int net_item(const char *key, const char *val, void *ctx, char *err, size_t errlen)
{
	struct net_opt *n = ctx;
	if (!val)
		return err_set(err, errlen, "--net: setting '%s' needs a value (%s=...)", key, key);
	if (!strcmp(key, "queues")) {
		uint64_t q;
		if (parse_u64(val, &q) || q < 1 || q > MAX_NET_QUEUE_PAIRS)
			return err_set(err, errlen, "--net: queues=%s is not a number from 1 to %d",
				    val, MAX_NET_QUEUE_PAIRS);
		n->queue_pairs = (unsigned)q;
	} else if (!strcmp(key, "vhost")) {
		if (!strcmp(val, "on"))
			n->vhost = VHOST_ON;
		else if (!strcmp(val, "off"))
			n->vhost = VHOST_OFF;
		else if (!strcmp(val, "auto"))
			n->vhost = VHOST_AUTO;
		else
			return err_set(err, errlen, "--net: vhost=%s is not on, off or auto", val);
	} else if (!strcmp(key, "mac")) {
		if (options_parse_mac(val, n->mac))
			return err_set(err, errlen, "--net: mac=%s is not a unicast XX:XX:XX:XX:XX:XX address", val);
		n->has_mac = true;
	} else if (!strcmp(key, "transport")) {
		if (parse_transport(val, &n->transport))
			return err_set(err, errlen, "--net: transport '%s' is not mmio or pci", val);
	} else if (!strcmp(key, "bw") || !strcmp(key, "pps")) {
		uint64_t v;
		bool bytes = !strcmp(key, "bw");
		/* A limit past 2^40 a second is no limit anyway. */
		if (parse_u64(val, &v) || v > (1ull << 40))
			return err_set(err, errlen, "--net: %s=%s is not a number of %s per second from 0 (no limit) to %llu",
				       key, val, bytes ? "bytes" : "packets", 1ull << 40);
		*(bytes ? &n->bytes_per_sec : &n->packets_per_sec) = v;
	} else if (!strcmp(key, "tx_irq_delay")) {
		uint64_t us;
		if (parse_u64(val, &us) || us > NET_TX_IRQ_DELAY_MAX_US)
			return err_set(err, errlen, "--net: tx_irq_delay=%s is not a number of microseconds from 0 to %u",
				       val, NET_TX_IRQ_DELAY_MAX_US);
		n->tx_irq_delay_us = (unsigned)us;
		n->tx_irq_delay_set = true;
	} else {
		return err_set(err, errlen, "--net: unknown setting '%s'", key);
	}
	return 0;
}

int options_parse_net(const char *spec, struct net_opt *n, char *err, size_t errlen)
{
	memset(n, 0, sizeof(*n));
	n->queue_pairs = 1;
	n->vhost = VHOST_AUTO;
	n->tx_irq_delay_us = NET_TX_IRQ_DELAY_DEFAULT_US;
	if (for_each_item("--net", spec, n->tap, sizeof(n->tap), net_item, n, err, errlen))
		return -1;
	for (const char *c = n->tap; *c; c++)
		if (*c == '/' || isspace((unsigned char)*c))
			return err_set(err, errlen, "--net: '%s' is not a valid interface name", n->tap);
	if (n->vhost == VHOST_ON && (n->bytes_per_sec || n->packets_per_sec))
		return err_set(err, errlen, "--net %s: %s with vhost=on: vhost-net moves the frames in the kernel, where "
			       "they cannot be metered (vhost=auto or off)", n->tap,
			       n->bytes_per_sec && n->packets_per_sec ? "bw= and pps=" : n->bytes_per_sec ? "bw=" : "pps=");
	if (n->vhost == VHOST_ON && n->tx_irq_delay_set)
		return err_set(err, errlen, "--net %s: tx_irq_delay= with vhost=on: vhost-net sends the interrupts from the "
			       "kernel (vhost=auto or off)", n->tap);
	return 0;
}

static int vsock_item(const char *key, const char *val, void *ctx, char *err, size_t errlen)
{
	struct vsock_opt *v = ctx;
	if (!val)
		return err_set(err, errlen, "--vsock: setting '%s' needs a value (%s=...)", key, key);
	if (!strcmp(key, "cid")) {
		uint64_t cid;
		/* 0-2 are the hypervisor's, the local and the host's; -1U is VMADDR_CID_ANY. */
		if (parse_u64(val, &cid) || cid < 3 || cid >= UINT32_MAX)
			return err_set(err, errlen, "--vsock: cid=%s is not a number from 3 to %u", val,
				       UINT32_MAX - 1);
		v->cid = cid;
	} else if (!strcmp(key, "uds")) {
		if (!*val || strlen(val) >= sizeof(v->uds))
			return err_set(err, errlen, "--vsock: uds=%s is empty or too long", val);
		strcpy(v->uds, val);
	} else if (!strcmp(key, "transport")) {
		if (parse_transport(val, &v->transport))
			return err_set(err, errlen, "--vsock: transport '%s' is not mmio or pci", val);
	} else {
		return err_set(err, errlen, "--vsock: unknown setting '%s'", key);
	}
	return 0;
}

int options_parse_vsock(const char *spec, struct vsock_opt *v, char *err, size_t errlen)
{
	memset(v, 0, sizeof(*v));
	if (for_each_item("--vsock", spec, NULL, 0, vsock_item, v, err, errlen))
		return -1;
	if (!v->cid || !v->uds[0])
		return err_set(err, errlen, "--vsock '%s': needs cid=N and uds=PATH", spec);
	v->enabled = true;
	return 0;
}

static int rng_item(const char *key, const char *val, void *ctx, char *err, size_t errlen)
{
	struct rng_opt *r = ctx;
	if (!val)
		return err_set(err, errlen, "--rng: setting '%s' needs a value (%s=...)", key, key);
	if (!strcmp(key, "bw")) {
		uint64_t bw;
		/* Bytes per second; a limit past 2^40 (1 TiB/s) is no limit anyway. */
		if (parse_u64(val, &bw) || bw > (1ull << 40))
			return err_set(err, errlen, "--rng: bw=%s is not a number of bytes per second from 0 (no limit) to %llu",
				       val, 1ull << 40);
		r->bytes_per_sec = bw;
	} else if (!strcmp(key, "transport")) {
		if (parse_transport(val, &r->transport))
			return err_set(err, errlen, "--rng: transport '%s' is not mmio or pci", val);
	} else {
		return err_set(err, errlen, "--rng: unknown setting '%s'", key);
	}
	return 0;
}

int options_parse_rng(const char *spec, struct rng_opt *r, char *err, size_t errlen)
{
	memset(r, 0, sizeof(*r));
	r->bytes_per_sec = DEFAULT_RNG_BYTES_PER_S;
	if (for_each_item("--rng", spec, NULL, 0, rng_item, r, err, errlen))
		return -1;
	r->enabled = true;
	return 0;
}

int options_parse(int argc, char *const argv[], struct vmm_options *o, char *err, size_t errlen)
{
	memset(o, 0, sizeof(*o));
	o->cpus = 1;
	o->mem_mib = DEFAULT_MEM_MIB;
	o->console_max_mib = DEFAULT_CONSOLE_MAX_MIB;
	o->console = CONSOLE_STDIO;
	o->seccomp = SECCOMP_ON;
	o->cmdline = "console=ttyS0";

	const char *boot_option = NULL;   /* the last of --kernel..--mem given */
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		char name[32];
		const char *val = NULL;

		if (strncmp(arg, "--", 2) != 0)
			return err_set(err, errlen, "unexpected argument '%s' (see --help)", arg);
		const char *eq = strchr(arg, '=');
		size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
		if (nlen >= sizeof(name))
			return err_set(err, errlen, "unknown option '%s' (see --help)", arg);
		memcpy(name, arg, nlen);
		name[nlen] = '\0';

		if (!strcmp(name, "--help")) {
			o->help = true;
			continue;
		}
		if (!strcmp(name, "--guest-exit")) {
			if (eq)
				return err_set(err, errlen, "option --guest-exit takes no value");
			o->guest_exit = true;
			continue;
		}
		if (!strcmp(name, "--version")) {
			o->version = true;
			continue;
		}
		if (!strcmp(name, "--rng")) {
			/* The one option whose value may be left out: "--rng",
			 * "--rng=SPEC" or "--rng SPEC" (an argument that is no
			 * option; a bare one is never valid otherwise). */
			if (eq)
				val = eq + 1;
			else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2))
				val = argv[++i];
			else
				val = "";
			if (o->rng.enabled)
				return err_set(err, errlen, "--rng: one per VM");
			if (options_parse_rng(val, &o->rng, err, errlen))
				return -1;
			continue;
		}

		static const char *const with_value[] = {
			"--kernel", "--initrd", "--cmdline", "--cpus", "--mem",
			"--disk", "--net", "--console", "--console-max", "--seccomp", "--user", "--group", "--chroot",
			"--api-sock", "--restore", "--restore-mem", "--vsock",
		};
		bool known = false;
		for (size_t k = 0; k < sizeof(with_value) / sizeof(with_value[0]); k++)
			known |= !strcmp(name, with_value[k]);
		if (!known)
			return err_set(err, errlen, "unknown option '%s' (see --help)", name);
		if (eq) {
			val = eq + 1;
		} else {
			if (i + 1 >= argc)
				return err_set(err, errlen, "option %s needs a value", name);
			val = argv[++i];
		}

		/* The snapshot has the machine: what would boot another is refused. */
		for (size_t k = 0; k < 5; k++)
			if (!strcmp(name, with_value[k]))
				boot_option = with_value[k];

		if (!strcmp(name, "--kernel")) {
			if (!*val)
				return err_set(err, errlen, "--kernel: empty path");
			o->kernel = val;
		} else if (!strcmp(name, "--initrd")) {
			if (!*val)
				return err_set(err, errlen, "--initrd: empty path");
			o->initrd = val;
		} else if (!strcmp(name, "--cmdline")) {
			o->cmdline = val;
		} else if (!strcmp(name, "--cpus")) {
			uint64_t n;
			if (parse_u64(val, &n) || n == 0 || n > 255)
				return err_set(err, errlen, "--cpus %s: must be a number from 1 to 255", val);
			o->cpus = (unsigned)n;
		} else if (!strcmp(name, "--mem")) {
			uint64_t m;
			if (parse_u64(val, &m))
				return err_set(err, errlen, "--mem %s: not a number of MiB", val);
			if (m < MIN_MEM_MIB || m > MAX_MEM_MIB)
				return err_set(err, errlen, "--mem %s: must be from %d to %u MiB", val,
					    MIN_MEM_MIB, MAX_MEM_MIB);
			o->mem_mib = m;
		} else if (!strcmp(name, "--disk")) {
			if (o->n_disks == MAX_DISKS)
				return err_set(err, errlen, "--disk: at most %d disks", MAX_DISKS);
			if (options_parse_disk(val, &o->disks[o->n_disks], err, errlen))
				return -1;
			o->n_disks++;
		} else if (!strcmp(name, "--net")) {
			if (o->n_nets == MAX_NETS)
				return err_set(err, errlen, "--net: at most %d network devices", MAX_NETS);
			if (options_parse_net(val, &o->nets[o->n_nets], err, errlen))
				return -1;
			o->n_nets++;
		} else if (!strcmp(name, "--vsock")) {
			if (o->vsock.enabled)
				return err_set(err, errlen, "--vsock: one per VM");
			if (options_parse_vsock(val, &o->vsock, err, errlen))
				return -1;
		} else if (!strcmp(name, "--console")) {
			if (!strcmp(val, "stdio")) {
				o->console = CONSOLE_STDIO;
			} else if (!strcmp(val, "none")) {
				o->console = CONSOLE_NONE;
			} else if (*val) {
				o->console = CONSOLE_FILE;
				o->console_path = val;
			} else {
				return err_set(err, errlen, "--console: empty value (stdio, none or a file path)");
			}
		} else if (!strcmp(name, "--console-max")) {
			uint64_t m;
			if (parse_u64(val, &m) || m > (UINT64_MAX >> 20))
				return err_set(err, errlen, "--console-max %s: not a number of MiB (0: no limit)", val);
			o->console_max_mib = m;
		} else if (!strcmp(name, "--seccomp")) {
			if (!strcmp(val, "on"))
				o->seccomp = SECCOMP_ON;
			else if (!strcmp(val, "log"))
				o->seccomp = SECCOMP_LOG;
			else if (!strcmp(val, "off"))
				o->seccomp = SECCOMP_OFF;
			else
				return err_set(err, errlen, "--seccomp %s: must be on, log or off", val);
		} else if (!strcmp(name, "--restore")) {
			if (!*val)
				return err_set(err, errlen, "--restore: empty path");
			o->restore_dir = val;
		} else if (!strcmp(name, "--restore-mem")) {
			if (strcmp(val, "map") && strcmp(val, "copy"))
				return err_set(err, errlen, "--restore-mem %s: must be map or copy", val);
			o->restore_mem_copy = !strcmp(val, "copy");
		} else if (!strcmp(name, "--api-sock")) {
			if (!*val)
				return err_set(err, errlen, "--api-sock: empty path");
			o->api_sock = val;
		} else if (!strcmp(name, "--user") || !strcmp(name, "--group") || !strcmp(name, "--chroot")) {
			if (!*val)
				return err_set(err, errlen, "%s: empty value", name);
			if (name[2] == 'u')
				o->user = val;
			else if (name[2] == 'g')
				o->group = val;
			else
				o->chroot_dir = val;
		}
	}

	if (o->restore_dir && boot_option)
		return err_set(err, errlen, "%s: not with --restore (the snapshot has the kernel, vCPUs and memory)",
			       boot_option);
	if (o->restore_mem_copy && !o->restore_dir)
		return err_set(err, errlen, "--restore-mem: only with --restore");
	if (!o->help && !o->version && !o->kernel && !o->restore_dir)
		return err_set(err, errlen, "missing --kernel PATH or --restore DIR (see --help)");
	return 0;
}
