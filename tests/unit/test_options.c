#include <criterion/criterion.h>
#include <string.h>

#include "vmm/options.h"

static struct vmm_options o;
static char err[256];

#define PARSE(...) ({ char *argv_[] = { "minivmm", __VA_ARGS__, NULL }; \
	options_parse((int)(sizeof(argv_) / sizeof(argv_[0])) - 1, argv_, &o, err, sizeof(err)); })

Test(options, defaults)
{
	cr_assert_eq(PARSE("--kernel", "bz"), 0, "%s", err);
	cr_assert_str_eq(o.kernel, "bz");
	cr_assert_eq(o.cpus, 1);
	cr_assert_eq(o.mem_mib, 256);
	cr_assert_eq(o.console, CONSOLE_STDIO);
	cr_assert_eq(o.seccomp, SECCOMP_ON);
	cr_assert_str_eq(o.cmdline, "console=ttyS0");
	cr_assert_null(o.initrd);
	cr_assert_not(o.guest_exit, "the guest port's status is opt-in");
}

Test(options, guest_exit)
{
	cr_assert_eq(PARSE("--kernel", "bz", "--guest-exit"), 0, "%s", err);
	cr_assert(o.guest_exit);
	cr_assert_neq(PARSE("--kernel", "bz", "--guest-exit=1"), 0);
}

Test(options, all_values_both_spellings)
{
	cr_assert_eq(PARSE("--kernel=k", "--initrd", "i", "--cmdline=a b", "--cpus", "4", "--mem=1024",
			   "--console", "/tmp/log", "--seccomp", "log"), 0, "%s", err);
	cr_assert_str_eq(o.initrd, "i");
	cr_assert_str_eq(o.cmdline, "a b");
	cr_assert_eq(o.cpus, 4);
	cr_assert_eq(o.mem_mib, 1024);
	cr_assert_eq(o.console, CONSOLE_FILE);
	cr_assert_str_eq(o.console_path, "/tmp/log");
	cr_assert_eq(o.seccomp, SECCOMP_LOG);
}

Test(options, help_and_version_need_no_kernel)
{
	cr_assert_eq(PARSE("--help"), 0);
	cr_assert(o.help);
	cr_assert_eq(PARSE("--version"), 0);
	cr_assert(o.version);
}

Test(options, bad_values_name_the_culprit)
{
	static const struct { const char *a, *b, *needle; } cases[] = {
		{ "--cpus", "0", "--cpus 0" },
		{ "--cpus", "-1", "--cpus -1" },
		{ "--cpus", "4x", "--cpus 4x" },
		{ "--cpus", "256", "--cpus 256" },
		{ "--cpus", "99999999999999999999999", "--cpus" },
		{ "--mem", "0", "--mem 0" },
		{ "--mem", "abc", "--mem abc" },
		{ "--mem", "8", "--mem 8" },
		{ "--mem", "4294967296", "--mem" },
		{ "--seccomp", "maybe", "--seccomp maybe" },
		{ "--console", "", "--console" },
		{ "--kernel", "", "--kernel" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *argv[] = { "minivmm", "--kernel", "k", (char *)cases[i].a, (char *)cases[i].b, NULL };
		cr_assert_eq(options_parse(5, argv, &o, err, sizeof(err)), -1, "case %zu accepted", i);
		cr_assert(strstr(err, cases[i].needle), "case %zu: '%s' lacks '%s'", i, err, cases[i].needle);
		cr_assert_null(strchr(err, '\n'), "one line");
	}
}

Test(options, unknown_missing_and_stray)
{
	cr_assert_eq(PARSE("--kernel", "k", "--frobnicate"), -1);
	cr_assert(strstr(err, "--frobnicate"));
	cr_assert_eq(PARSE("--kernel"), -1);
	cr_assert(strstr(err, "--kernel needs a value"), "%s", err);
	cr_assert_eq(PARSE("--cpus", "2"), -1);
	cr_assert(strstr(err, "missing --kernel"), "%s", err);
	cr_assert_eq(PARSE("--kernel", "k", "extra"), -1);
	cr_assert(strstr(err, "'extra'"), "%s", err);
	cr_assert_eq(PARSE("-k"), -1);
}

/* The error is one line whatever the culprit holds: control characters
 * (a newline, an escape sequence) become '?' (found by tests/fuzz/fuzz_options). */
Test(options, culprit_with_control_characters_stays_one_line)
{
	cr_assert_eq(PARSE("--kernel", "k", "--frob\nnicate\x1b[2J"), -1);
	cr_assert(!strchr(err, '\n') && !strchr(err, '\x1b'), "%s", err);
	cr_assert(strstr(err, "--frob?nicate?[2J"), "%s", err);
	cr_assert_eq(PARSE("--kernel", "k", "--disk", "a\n,frob"), -1);
	cr_assert(!strchr(err, '\n'), "%s", err);
}

Test(options, disk_specs)
{
	struct disk_opt d;
	cr_assert_eq(options_parse_disk("/img.raw", &d, err, sizeof(err)), 0);
	cr_assert_str_eq(d.path, "/img.raw");
	cr_assert_not(d.readonly);
	cr_assert_eq(d.transport, TRANSPORT_DEFAULT);
	cr_assert_eq(options_parse_disk("a.img,ro,transport=mmio", &d, err, sizeof(err)), 0);
	cr_assert_str_eq(d.path, "a.img");
	cr_assert(d.readonly);
	cr_assert_eq(d.transport, TRANSPORT_MMIO);
	cr_assert_eq(options_parse_disk("a.img,transport=isa", &d, err, sizeof(err)), -1);
	cr_assert(strstr(err, "isa"));
	cr_assert_eq(options_parse_disk("a.img,rw", &d, err, sizeof(err)), -1);
	cr_assert(strstr(err, "'rw'"));
	cr_assert_eq(options_parse_disk(",ro", &d, err, sizeof(err)), -1);
	cr_assert_eq(options_parse_disk("", &d, err, sizeof(err)), -1);
}

Test(options, disk_queues)
{
	struct disk_opt d;
	cr_assert_eq(options_parse_disk("a.img", &d, err, sizeof(err)), 0);
	cr_assert_eq(d.queues, 0, "default: one per vCPU, decided later");
	cr_assert_eq(options_parse_disk("a.img,queues=1,transport=pci", &d, err, sizeof(err)), 0);
	cr_assert_eq(d.queues, 1);
	cr_assert_eq(options_parse_disk("a.img,queues=64", &d, err, sizeof(err)), 0);
	cr_assert_eq(d.queues, 64);
	static const char *const bad[] = { "a.img,queues=0", "a.img,queues=65", "a.img,queues=", "a.img,queues",
					   "a.img,queues=-1", "a.img,queues=4x", "a.img,queues=99999999999999999999" };
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		cr_assert_eq(options_parse_disk(bad[i], &d, err, sizeof(err)), -1, "%s accepted", bad[i]);
		cr_assert(strstr(err, "--disk"), "%s: %s", bad[i], err);
		cr_assert_null(strchr(err, '\n'));
	}
}

/* --disk serial=: GET_ID's 20 bytes, printable ASCII; absent: the device's
 * default (minivmm-blkN), left to it. */
Test(options, disk_serial)
{
	struct disk_opt d;
	cr_assert_eq(options_parse_disk("a.img", &d, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_empty(d.serial, "no serial: the device's default");
	cr_assert_eq(options_parse_disk("a.img,serial=data-disk_01,ro", &d, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(d.serial, "data-disk_01");
	cr_assert(d.readonly);
	cr_assert_eq(options_parse_disk("a.img,serial=ABCDEFGHIJ0123456789", &d, err, sizeof(err)), 0, "20: %s", err);
	cr_assert_str_eq(d.serial, "ABCDEFGHIJ0123456789");
	cr_assert_eq(options_parse_disk("a.img,serial=x y=z~!", &d, err, sizeof(err)), 0, "spaces, '=': %s", err);
	cr_assert_str_eq(d.serial, "x y=z~!");
	const char *bad[][2] = {
		{ "a.img,serial=ABCDEFGHIJ0123456789K", "--disk: serial=ABCDEFGHIJ0123456789K is not 1 to 20 characters" },
		{ "a.img,serial=", "--disk: serial= is not 1 to 20 characters" },
		{ "a.img,serial", "--disk: setting 'serial' needs a value" },
		{ "a.img,serial=tab\there", "--disk: serial= takes printable ASCII only (byte 0x09)" },
		{ "a.img,serial=caf\xc3\xa9", "printable ASCII only (byte 0xc3)" },
		{ "a.img,serial=del\x7f", "(byte 0x7f)" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(options_parse_disk(bad[i][0], &d, err, sizeof(err)), -1, "%s", bad[i][0]);
		cr_assert(strstr(err, bad[i][1]), "%s: got '%s'", bad[i][0], err);
		cr_assert_null(strchr(err, '\n'), "one line");
	}
	cr_assert_eq(PARSE("--kernel", "k", "--disk", "a.img,serial=123456789012345678901"), -1);
	cr_assert(strstr(err, "--disk: serial=123456789012345678901"), "%s", err);
	cr_assert_eq(PARSE("--kernel", "k", "--disk", "a.img,serial=one", "--disk", "b.img"), 0, "%s", err);
	cr_assert_str_eq(o.disks[0].serial, "one");
	cr_assert_str_empty(o.disks[1].serial);
}

/* --disk bw=, iops=: the disk's limits, independent; 0 or absent: none. */
Test(options, disk_rate_limits)
{
	struct disk_opt d;
	cr_assert_eq(options_parse_disk("a.img", &d, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(d.bytes_per_sec, 0, "no limit unless asked");
	cr_assert_eq(d.ops_per_sec, 0);
	cr_assert_eq(options_parse_disk("a.img,bw=10485760,iops=500,queues=2", &d, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(d.bytes_per_sec, 10485760);
	cr_assert_eq(d.ops_per_sec, 500);
	cr_assert_eq(d.queues, 2);
	cr_assert_eq(options_parse_disk("a.img,iops=7", &d, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(d.bytes_per_sec, 0);
	cr_assert_eq(d.ops_per_sec, 7);
	cr_assert_eq(options_parse_disk("a.img,bw=0,iops=0,ro", &d, err, sizeof(err)), 0, "0 is no limit: %s", err);
	cr_assert_eq(d.bytes_per_sec + d.ops_per_sec, 0);
	cr_assert_eq(options_parse_disk("a.img,bw=1099511627776,iops=1099511627776", &d, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(d.bytes_per_sec, 1ull << 40);
	cr_assert_eq(d.ops_per_sec, 1ull << 40);
	const char *bad[][2] = {
		{ "a.img,bw=", "--disk: bw= is not a number of bytes per second from 0 (no limit) to 1099511627776" },
		{ "a.img,iops=", "--disk: iops= is not a number of requests per second" },
		{ "a.img,bw=10M", "--disk: bw=10M is not a number" },
		{ "a.img,iops=-1", "--disk: iops=-1 is not" },
		{ "a.img,iops=+5", "--disk: iops=+5 is not" },
		{ "a.img,bw=1099511627777", "--disk: bw=1099511627777 is not" },
		{ "a.img,iops=99999999999999999999999", "is not a number" },
		{ "a.img,bw", "--disk: setting 'bw' needs a value" },
		{ "a.img,iops", "--disk: setting 'iops' needs a value" },
		{ "a.img,pps=5", "--disk: unknown setting 'pps'" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(options_parse_disk(bad[i][0], &d, err, sizeof(err)), -1, "%s", bad[i][0]);
		cr_assert(strstr(err, bad[i][1]), "%s: got '%s'", bad[i][0], err);
		cr_assert_null(strchr(err, '\n'), "one line");
	}
	cr_assert_eq(PARSE("--kernel", "k", "--disk", "a.img,iops=100", "--disk", "b.img,bw=4096"), 0, "%s", err);
	cr_assert_eq(o.disks[0].ops_per_sec, 100);
	cr_assert_eq(o.disks[0].bytes_per_sec, 0);
	cr_assert_eq(o.disks[1].bytes_per_sec, 4096);
	cr_assert_eq(o.disks[1].ops_per_sec, 0);
}

/* --disk engine=: io_uring, synchronous (the default), or auto. */
Test(options, disk_engine)
{
	struct disk_opt d;
	cr_assert_eq(options_parse_disk("a.img", &d, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(d.engine, DISK_ENGINE_SYNC, "sync unless asked");
	cr_assert_eq(options_parse_disk("a.img,engine=uring,ro", &d, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(d.engine, DISK_ENGINE_URING);
	cr_assert(d.readonly);
	cr_assert_eq(options_parse_disk("a.img,engine=sync", &d, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(d.engine, DISK_ENGINE_SYNC);
	cr_assert_eq(options_parse_disk("a.img,engine=sync,engine=auto", &d, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(d.engine, DISK_ENGINE_AUTO, "the last one counts");
	const char *bad[][2] = {
		{ "a.img,engine=io_uring", "--disk: engine=io_uring is not uring, sync or auto" },
		{ "a.img,engine=", "--disk: engine= is not uring, sync or auto" },
		{ "a.img,engine=URING", "--disk: engine=URING is not" },
		{ "a.img,engine", "--disk: setting 'engine' needs a value" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(options_parse_disk(bad[i][0], &d, err, sizeof(err)), -1, "%s", bad[i][0]);
		cr_assert(strstr(err, bad[i][1]), "%s: got '%s'", bad[i][0], err);
		cr_assert_null(strchr(err, '\n'), "one line");
	}
	cr_assert_eq(PARSE("--kernel", "k", "--disk", "a.img,engine=auto", "--disk", "b.img"), 0, "%s", err);
	cr_assert_eq(o.disks[0].engine, DISK_ENGINE_AUTO);
	cr_assert_eq(o.disks[1].engine, DISK_ENGINE_SYNC);
}

/* --disk poll=: auto (the default) or microseconds, 0 (off) to
 * DISK_POLL_US_MAX; the last one given counts. */
Test(options, disk_poll)
{
	struct disk_opt d;
	cr_assert_eq(options_parse_disk("a.img", &d, err, sizeof(err)), 0, "%s", err);
	cr_assert(d.poll_auto);
	cr_assert_eq(d.poll_us, DISK_POLL_US_AUTO);
	cr_assert_eq(options_parse_disk("a.img,poll=0", &d, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(d.poll_us, 0);
	cr_assert_not(d.poll_auto);
	cr_assert_eq(options_parse_disk("a.img,poll=1000,queues=2", &d, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(d.poll_us, 1000);
	cr_assert_not(d.poll_auto);
	cr_assert_eq(options_parse_disk("a.img,poll=0,poll=auto", &d, err, sizeof(err)), 0, "%s", err);
	cr_assert(d.poll_auto);
	cr_assert_eq(d.poll_us, DISK_POLL_US_AUTO);
	const char *bad[][2] = {
		{ "a.img,poll=1001", "--disk: poll=1001 is not auto or a number of microseconds from 0 (off) to 1000" },
		{ "a.img,poll=Auto", "--disk: poll=Auto is not auto or" },
		{ "a.img,poll=-1", "--disk: poll=-1 is not" },
		{ "a.img,poll=50us", "--disk: poll=50us is not" },
		{ "a.img,poll", "--disk: setting 'poll' needs a value" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(options_parse_disk(bad[i][0], &d, err, sizeof(err)), -1, "%s", bad[i][0]);
		cr_assert(strstr(err, bad[i][1]), "%s: got '%s'", bad[i][0], err);
	}
}

Test(options, net_specs)
{
	struct net_opt n;
	cr_assert_eq(options_parse_net("tap0", &n, err, sizeof(err)), 0);
	cr_assert_str_eq(n.tap, "tap0");
	cr_assert_eq(n.queue_pairs, 1);
	cr_assert_eq(n.vhost, VHOST_AUTO);
	cr_assert_eq(options_parse_net("tap1,queues=4,vhost=off,mac=52:54:00:12:34:56,transport=pci",
				       &n, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(n.queue_pairs, 4);
	cr_assert_eq(n.vhost, VHOST_OFF);
	cr_assert(n.has_mac);
	cr_assert_eq(n.mac[5], 0x56);
	cr_assert_eq(n.transport, TRANSPORT_PCI);
	cr_assert_eq(options_parse_net("tap0,queues=0", &n, err, sizeof(err)), -1);
	cr_assert_eq(options_parse_net("tap0,queues=17", &n, err, sizeof(err)), -1);
	cr_assert_eq(options_parse_net("tap0,queues", &n, err, sizeof(err)), -1);
	cr_assert_eq(options_parse_net("tap0,vhost=yes", &n, err, sizeof(err)), -1);
	cr_assert_eq(options_parse_net("averyveryverylongtapname", &n, err, sizeof(err)), -1);
	cr_assert_eq(options_parse_net("ta/p", &n, err, sizeof(err)), -1);
}

/* --net bw=, pps=: each direction's limit, 0 or absent: none; vhost-net
 * cannot meter, so not with vhost=on (auto and off are fine). */
Test(options, net_rate_limits)
{
	struct net_opt n;
	cr_assert_eq(options_parse_net("tap0", &n, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(n.bytes_per_sec, 0, "no limit unless asked");
	cr_assert_eq(n.packets_per_sec, 0);
	cr_assert_eq(options_parse_net("tap0,bw=1250000,pps=1000,queues=2", &n, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(n.bytes_per_sec, 1250000);
	cr_assert_eq(n.packets_per_sec, 1000);
	cr_assert_eq(n.queue_pairs, 2);
	cr_assert_eq(n.vhost, VHOST_AUTO);
	cr_assert_eq(options_parse_net("tap0,pps=5,vhost=off", &n, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(n.bytes_per_sec, 0);
	cr_assert_eq(n.packets_per_sec, 5);
	cr_assert_eq(n.vhost, VHOST_OFF);
	cr_assert_eq(options_parse_net("tap0,bw=0,pps=0,vhost=on", &n, err, sizeof(err)), 0, "0 is no limit: %s", err);
	cr_assert_eq(n.vhost, VHOST_ON);
	cr_assert_eq(options_parse_net("tap0,bw=1099511627776,pps=1099511627776", &n, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(n.bytes_per_sec, 1ull << 40);
	cr_assert_eq(n.packets_per_sec, 1ull << 40);
	const char *bad[][2] = {
		{ "tap0,bw=", "--net: bw= is not a number of bytes per second from 0 (no limit) to 1099511627776" },
		{ "tap0,pps=", "--net: pps= is not a number of packets per second" },
		{ "tap0,bw=10M", "--net: bw=10M is not a number" },
		{ "tap0,pps=-1", "--net: pps=-1 is not" },
		{ "tap0,bw=1099511627777", "--net: bw=1099511627777 is not" },
		{ "tap0,pps=99999999999999999999999", "is not a number" },
		{ "tap0,bw", "--net: setting 'bw' needs a value" },
		{ "tap0,pps", "--net: setting 'pps' needs a value" },
		{ "tap0,bw=1000,vhost=on", "--net tap0: bw= with vhost=on: vhost-net moves the frames in the kernel" },
		{ "tap0,vhost=on,pps=10", "--net tap0: pps= with vhost=on" },
		{ "tap0,vhost=on,pps=10,bw=9", "--net tap0: bw= and pps= with vhost=on" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(options_parse_net(bad[i][0], &n, err, sizeof(err)), -1, "%s", bad[i][0]);
		cr_assert(strstr(err, bad[i][1]), "%s: got '%s'", bad[i][0], err);
		cr_assert_null(strchr(err, '\n'), "one line");
	}
	cr_assert_eq(PARSE("--kernel", "k", "--net", "tap0,vhost=on,bw=100"), -1);
	cr_assert(strstr(err, "cannot be metered (vhost=auto or off)"), "%s", err);
	cr_assert_eq(PARSE("--kernel", "k", "--net", "tap0,pps=100", "--net", "tap1,bw=7"), 0, "%s", err);
	cr_assert_eq(o.nets[0].packets_per_sec, 100);
	cr_assert_eq(o.nets[0].bytes_per_sec, 0);
	cr_assert_eq(o.nets[1].bytes_per_sec, 7);
}

/* --net tx_irq_delay=US: worker backend only, 0 to NET_TX_IRQ_DELAY_MAX_US. */
Test(options, net_tx_irq_delay)
{
	struct net_opt n;
	cr_assert_eq(options_parse_net("tap0", &n, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(n.tx_irq_delay_us, NET_TX_IRQ_DELAY_DEFAULT_US);
	cr_assert_eq(options_parse_net("tap0,vhost=on", &n, err, sizeof(err)), 0, "the default goes with vhost: %s", err);
	cr_assert_eq(options_parse_net("tap0,tx_irq_delay=0,vhost=off", &n, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(n.tx_irq_delay_us, 0);
	cr_assert_eq(options_parse_net("tap0,tx_irq_delay=100000", &n, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(n.tx_irq_delay_us, 100000);
	const char *bad[][2] = {
		{ "tap0,tx_irq_delay=100001", "--net: tx_irq_delay=100001 is not a number of microseconds from 0 to 100000" },
		{ "tap0,tx_irq_delay=1ms", "--net: tx_irq_delay=1ms is not" },
		{ "tap0,tx_irq_delay=", "--net: tx_irq_delay= is not" },
		{ "tap0,tx_irq_delay", "--net: setting 'tx_irq_delay' needs a value" },
		{ "tap0,vhost=on,tx_irq_delay=50", "--net tap0: tx_irq_delay= with vhost=on" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(options_parse_net(bad[i][0], &n, err, sizeof(err)), -1, "%s", bad[i][0]);
		cr_assert(strstr(err, bad[i][1]), "%s: got '%s'", bad[i][0], err);
		cr_assert_null(strchr(err, '\n'), "one line");
	}
}

Test(options, vsock_specs)
{
	struct vsock_opt v;
	cr_assert_eq(options_parse_vsock("cid=3,uds=/tmp/v.sock", &v, err, sizeof(err)), 0, "%s", err);
	cr_assert(v.enabled);
	cr_assert_eq(v.cid, 3);
	cr_assert_str_eq(v.uds, "/tmp/v.sock");
	cr_assert_eq(v.transport, TRANSPORT_DEFAULT);
	cr_assert_eq(options_parse_vsock("uds=/x,transport=pci,cid=4294967294", &v, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(v.cid, 4294967294u);
	cr_assert_eq(v.transport, TRANSPORT_PCI);
	const char *bad[][2] = {
		{ "cid=2,uds=/x", "cid=2 is not a number from 3" },
		{ "cid=4294967295,uds=/x", "cid=4294967295 is not" },
		{ "cid=-3,uds=/x", "cid=-3 is not" },
		{ "cid=3", "needs cid=N and uds=PATH" },
		{ "uds=/x", "needs cid=N and uds=PATH" },
		{ "cid=3,uds=", "uds= is empty" },
		{ "cid=3,uds=/x,port=1", "unknown setting 'port'" },
		{ "cid=3,uds=/x,transport=usb", "transport 'usb'" },
		{ "cid,uds=/x", "setting 'cid' needs a value" },
		{ "", "needs cid=N and uds=PATH" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(options_parse_vsock(bad[i][0], &v, err, sizeof(err)), -1, "%s", bad[i][0]);
		cr_assert(strstr(err, bad[i][1]), "%s: got '%s'", bad[i][0], err);
	}
	cr_assert_eq(PARSE("--kernel", "k", "--vsock", "cid=3,uds=/a", "--vsock", "cid=4,uds=/b"), -1);
	cr_assert(strstr(err, "one per VM"), "%s", err);
	cr_assert_eq(PARSE("--kernel", "k", "--vsock=cid=5,uds=/a"), 0, "%s", err);
	cr_assert_eq(o.vsock.cid, 5);
}

/* --rng takes a value or none: "--rng", "--rng=SPEC", "--rng SPEC". */
Test(options, rng_specs)
{
	struct rng_opt r;
	cr_assert_eq(options_parse_rng("", &r, err, sizeof(err)), 0, "%s", err);
	cr_assert(r.enabled);
	cr_assert_eq(r.bytes_per_sec, DEFAULT_RNG_BYTES_PER_S);
	cr_assert_eq(DEFAULT_RNG_BYTES_PER_S, 1048576);
	cr_assert_eq(r.transport, TRANSPORT_DEFAULT);
	cr_assert_eq(options_parse_rng("transport=mmio", &r, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(r.transport, TRANSPORT_MMIO);
	cr_assert_eq(r.bytes_per_sec, DEFAULT_RNG_BYTES_PER_S);
	cr_assert_eq(options_parse_rng("bw=0,transport=pci", &r, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(r.bytes_per_sec, 0, "0: no limit");
	cr_assert_eq(r.transport, TRANSPORT_PCI);
	cr_assert_eq(options_parse_rng("bw=1099511627776", &r, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(r.bytes_per_sec, 1ull << 40);
	const char *bad[][2] = {
		{ "bw=", "--rng: bw= is not a number of bytes per second" },
		{ "bw=1k", "--rng: bw=1k is not a number" },
		{ "bw=-1", "--rng: bw=-1 is not" },
		{ "bw=1099511627777", "--rng: bw=1099511627777 is not" },
		{ "bw=99999999999999999999999", "is not a number" },
		{ "bw", "--rng: setting 'bw' needs a value" },
		{ "transport=usb", "--rng: transport 'usb' is not mmio or pci" },
		{ "rate=5", "--rng: unknown setting 'rate'" },
		{ "/dev/urandom", "--rng: setting '/dev/urandom' needs a value" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(options_parse_rng(bad[i][0], &r, err, sizeof(err)), -1, "%s", bad[i][0]);
		cr_assert(strstr(err, bad[i][1]), "%s: got '%s'", bad[i][0], err);
	}
	cr_assert_eq(PARSE("--kernel", "k"), 0, "%s", err);
	cr_assert_not(o.rng.enabled, "no rng unless asked");
	cr_assert_eq(PARSE("--kernel", "k", "--rng"), 0, "%s", err);
	cr_assert(o.rng.enabled);
	cr_assert_eq(o.rng.bytes_per_sec, DEFAULT_RNG_BYTES_PER_S);
	cr_assert_eq(PARSE("--rng", "--kernel", "k"), 0, "the next option is not its value: %s", err);
	cr_assert(o.rng.enabled);
	cr_assert_str_eq(o.kernel, "k");
	cr_assert_eq(PARSE("--kernel", "k", "--rng", "bw=4096,transport=mmio", "--cpus", "2"), 0, "%s", err);
	cr_assert_eq(o.rng.bytes_per_sec, 4096);
	cr_assert_eq(o.rng.transport, TRANSPORT_MMIO);
	cr_assert_eq(o.cpus, 2);
	cr_assert_eq(PARSE("--kernel", "k", "--rng=transport=pci"), 0, "%s", err);
	cr_assert_eq(o.rng.transport, TRANSPORT_PCI);
	cr_assert_eq(PARSE("--kernel", "k", "--rng="), 0, "%s", err);
	cr_assert(o.rng.enabled);
	cr_assert_eq(PARSE("--kernel", "k", "--rng", "--rng"), -1);
	cr_assert_str_eq(err, "--rng: one per VM");
	cr_assert_eq(PARSE("--kernel", "k", "--rng", "bw=x"), -1);
	cr_assert(strstr(err, "--rng: bw=x is not a number"), "%s", err);
	cr_assert_eq(PARSE("--restore", "d", "--rng"), 0, "a restored VM takes --rng too: %s", err);
	cr_assert(o.rng.enabled);
}

Test(options, mac_addresses)
{
	uint8_t m[6];
	cr_assert_eq(options_parse_mac("02:00:00:00:00:01", m), 0);
	cr_assert_eq(m[0], 2);
	cr_assert_eq(options_parse_mac("01:00:00:00:00:01", m), -1, "multicast refused");
	cr_assert_eq(options_parse_mac("02:00:00:00:00", m), -1);
	cr_assert_eq(options_parse_mac("02:00:00:00:00:0g", m), -1);
	cr_assert_eq(options_parse_mac("02-00-00-00-00-01", m), -1);
	cr_assert_eq(options_parse_mac("2:000:00:00:00:01", m), -1);
}

Test(options, repeated_devices_limit)
{
	char *argv[2 + 2 * (MAX_DISKS + 1) + 1];
	int argc = 0;
	argv[argc++] = "minivmm";
	argv[argc++] = "--kernel=k";
	for (int i = 0; i <= MAX_DISKS; i++) {
		argv[argc++] = "--disk";
		argv[argc++] = "d.img";
	}
	argv[argc] = NULL;
	cr_assert_eq(options_parse(argc, argv, &o, err, sizeof(err)), -1);
	cr_assert(strstr(err, "at most"));
}

Test(options, console_max)
{
	cr_assert_eq(PARSE("--kernel", "bz"), 0, "%s", err);
	cr_assert_eq(o.console_max_mib, DEFAULT_CONSOLE_MAX_MIB);
	cr_assert_eq(PARSE("--kernel", "bz", "--console-max", "0"), 0, "%s", err);
	cr_assert_eq(o.console_max_mib, 0);
	cr_assert_eq(PARSE("--kernel", "bz", "--console-max=4096"), 0, "%s", err);
	cr_assert_eq(o.console_max_mib, 4096);
	cr_assert_neq(PARSE("--kernel", "bz", "--console-max", "-1"), 0);
	cr_assert_str_eq(err, "--console-max -1: not a number of MiB (0: no limit)");
	cr_assert_neq(PARSE("--kernel", "bz", "--console-max", "18446744073709551615"), 0);
}

Test(options, restore)
{
	cr_assert_eq(PARSE("--restore", "snap", "--disk", "d.img", "--api-sock", "s"), 0, "%s", err);
	cr_assert_str_eq(o.restore_dir, "snap");
	cr_assert_null(o.kernel);
	cr_assert_not(o.restore_mem_copy);
	cr_assert_eq(PARSE("--restore=snap", "--restore-mem", "copy"), 0, "%s", err);
	cr_assert(o.restore_mem_copy);
	cr_assert_eq(PARSE("--restore", "snap", "--restore-mem=map"), 0, "%s", err);
	cr_assert_not(o.restore_mem_copy);
	static const char *const boot[] = { "--kernel", "--initrd", "--cmdline", "--cpus", "--mem" };
	for (unsigned i = 0; i < 5; i++) {
		cr_assert_neq(PARSE("--restore", "snap", (char *)boot[i], "64"), 0, "%s accepted", boot[i]);
		cr_assert(strstr(err, "not with --restore") && !strncmp(err, boot[i], strlen(boot[i])), "%s", err);
	}
	cr_assert_neq(PARSE("--restore", "snap", "--restore-mem", "lazy"), 0);
	cr_assert(strstr(err, "--restore-mem lazy: must be map or copy"), "%s", err);
	cr_assert_neq(PARSE("--kernel", "bz", "--restore-mem", "copy"), 0);
	cr_assert(strstr(err, "--restore-mem: only with --restore"), "%s", err);
	cr_assert_neq(PARSE("--restore", ""), 0);
	cr_assert(strstr(err, "--restore: empty path"), "%s", err);
}
