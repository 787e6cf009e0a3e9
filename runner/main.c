/* minivmm-runner: runs commands each in a microVM of its own, through the
 * guest agent over vsock; a person uses `run`, a scheduler uses `serve`. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frame_io.h"
#include "job.h"
#include "pool.h"
#include "runner.h"
#include "server.h"
#include "submit.h"

#define EXIT_TIMEOUT 124 /* as timeout(1) */
#define EXIT_RUNNER 125	 /* the runner's own failure, as docker run */

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	stop_flag = sig;
}

static const char usage[] =
	"usage: minivmm-runner run [OPTIONS] [--] COMMAND [ARG]...\n"
	"       minivmm-runner serve --socket PATH [OPTIONS]\n"
	"       minivmm-runner submit --socket PATH < JOBS.jsonl > RESULTS.jsonl\n"
	"\n"
	"Runs each command in a microVM of its own (never reused), started from a snapshot of a VM\n"
	"booted to its agent (made on first use, kept in the pool directory), or booted cold.\n"
	"\n"
	"run: the command's stdout and stderr are streamed here; the exit status is the command's\n"
	"(128+N if signal N killed it), 124 on a timeout, 125 if the runner failed.\n"
	"  -i, --stdin           give this program's stdin to the command (default: empty)\n"
	"  -e, --env NAME=VALUE  set a variable in the command's environment (repeatable)\n"
	"  -C, --cwd DIR         the command's working directory (default /)\n"
	"  -f, --file HOST:GUEST[:MODE]  copy a host file into the guest first (repeatable; MODE octal,\n"
	"                        default the host file's)\n"
	"serve: reads jobs as JSON lines from clients of a Unix socket, answers with results as JSON\n"
	"lines (docs/function-runner.md).\n"
	"  --socket PATH         where to listen\n"
	"  --jobs N              at most N jobs at once (default 8)\n"
	"submit: sends job lines to a server and prints its result lines, one per job.\n"
	"run and serve:\n"
	"  --kernel PATH         the guest kernel (default $MINIVMM_RUNNER_KERNEL)\n"
	"  --initrd PATH         the initramfs with the agent (default $MINIVMM_RUNNER_INITRD)\n"
	"  --minivmm PATH        the VMM (default: minivmm beside this program, else in PATH)\n"
	"  --mem MiB             guest memory (default 256)\n"
	"  --cpus N              vCPUs (default 1)\n"
	"  --timeout S           kill the VM after S seconds (default: none for run, 600 for serve)\n"
	"  --cold                boot each VM instead of restoring the snapshot\n"
	"  --pool-dir DIR        snapshots (default ~/.cache/minivmm/runner-pool)\n"
	"  --work-dir DIR        per-job directories (default $TMPDIR or /tmp)\n"
	"  --append STR          more kernel command line\n"
	"  --keep                keep each job's directory (console, minivmm's log)\n"
	"  -v, --verbose         say what the runner does\n"
	"  -h, --help\n";

__attribute__((noreturn, format(printf, 1, 2))) static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("minivmm-runner: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(EXIT_RUNNER);
}

static unsigned parse_uint(const char *opt, const char *s, unsigned min, unsigned max)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < min || v > max)
		die("%s %s: must be a number from %u to %u", opt, s, min, max);
	return (unsigned)v;
}

void runner_cmdline(const struct runner_cfg *cfg, char *buf, size_t len)
{
	snprintf(buf, len, "console=ttyS0 quiet panic=-1 mvagent=1%s%s", cfg->append ? " " : "",
		 cfg->append ? cfg->append : "");
}

static char *default_minivmm(void)
{
	static char path[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 16);
	if (n > 0) {
		path[n] = '\0';
		char *slash = strrchr(path, '/');
		if (slash) {
			strcpy(slash + 1, "minivmm");
			if (access(path, X_OK) == 0)
				return path;
		}
	}
	/* execv needs a path: look in PATH. */
	const char *env = getenv("PATH");
	char *copy = strdup(env ? env : "/usr/local/bin:/usr/bin:/bin");
	for (char *save, *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		snprintf(path, sizeof(path), "%s/minivmm", dir);
		if (access(path, X_OK) == 0) {
			free(copy);
			return path;
		}
	}
	free(copy);
	return NULL;
}

/* ---- run ---- */

static int write_stream(void *ctx, int stream, const uint8_t *buf, size_t len)
{
	(void)ctx;
	return write_all(stream == 1 ? STDOUT_FILENO : STDERR_FILENO, buf, len);
}

/* HOST:GUEST[:MODE] */
static void parse_file(const char *arg, struct job_file *f)
{
	char *copy = strdup(arg);
	char *guest = copy ? strchr(copy, ':') : NULL;
	if (!guest || guest == copy || !guest[1])
		die("--file %s: must be HOST:GUEST[:MODE]", arg);
	*guest++ = '\0';
	char *mode = strchr(guest, ':');
	if (mode)
		*mode++ = '\0';
	if (guest[0] != '/')
		die("--file %s: the guest path must be absolute", arg);
	int fd = open(copy, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		die("--file %s: %s", copy, strerror(errno));
	if (!S_ISREG(st.st_mode))
		die("--file %s: not a regular file", copy);
	f->guest_path = guest;
	f->mode = st.st_mode & 07777;
	if (mode) {
		char *end;
		unsigned long m = strtoul(mode, &end, 8);
		if (!*mode || *end || m > 07777)
			die("--file %s: mode %s: must be octal, at most 7777", arg, mode);
		f->mode = (uint32_t)m;
	}
	f->data = (struct job_source){ .fd = fd };
	f->size = (uint64_t)st.st_size;
}

static int run_one(const struct runner_cfg *cfg, struct job_spec *spec)
{
	char err[256];
	struct pool *pool = NULL;
	if (!spec->cold && !(pool = pool_open(cfg, err, sizeof(err))))
		die("%s", err);
	struct job_sink sink = { .write = write_stream };
	struct job_result res;
	job_run(cfg, pool, spec, &sink, &res);
	pool_close(pool);
	if (cfg->verbose)
		fprintf(stderr, "minivmm-runner: %s in %.0f ms (agent ready at %.0f ms)\n",
			job_outcome_name(res.outcome), res.ms_total, res.ms_ready);
	switch (res.outcome) {
	case JOB_OK:
		return res.signaled ? 128 + res.code : res.code;
	case JOB_TIMEOUT:
		fprintf(stderr, "minivmm-runner: %s\n", res.error);
		return EXIT_TIMEOUT;
	case JOB_OUTPUT_LIMIT:
	case JOB_ERROR:
		break;
	}
	fprintf(stderr, "minivmm-runner: %s\n", res.error);
	return stop_flag ? 128 + stop_flag : EXIT_RUNNER;
}

enum { OPT_KERNEL = 256, OPT_INITRD, OPT_MINIVMM, OPT_MEM, OPT_CPUS, OPT_TIMEOUT, OPT_COLD, OPT_POOL, OPT_WORK,
       OPT_APPEND, OPT_KEEP, OPT_SOCKET, OPT_JOBS };

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	const char *mode = argv[1];
	bool serve = !strcmp(mode, "serve"), submit = !strcmp(mode, "submit");
	if (!serve && !submit && strcmp(mode, "run"))
		die("unknown mode '%s' (run, serve or submit; --help)", mode);

	static const struct option opts[] = {
		{ "kernel", required_argument, 0, OPT_KERNEL }, { "initrd", required_argument, 0, OPT_INITRD },
		{ "minivmm", required_argument, 0, OPT_MINIVMM }, { "mem", required_argument, 0, OPT_MEM },
		{ "cpus", required_argument, 0, OPT_CPUS },	  { "timeout", required_argument, 0, OPT_TIMEOUT },
		{ "cold", no_argument, 0, OPT_COLD },		  { "pool-dir", required_argument, 0, OPT_POOL },
		{ "work-dir", required_argument, 0, OPT_WORK },	  { "append", required_argument, 0, OPT_APPEND },
		{ "keep", no_argument, 0, OPT_KEEP },		  { "socket", required_argument, 0, OPT_SOCKET },
		{ "jobs", required_argument, 0, OPT_JOBS },	  { "stdin", no_argument, 0, 'i' },
		{ "env", required_argument, 0, 'e' },		  { "cwd", required_argument, 0, 'C' },
		{ "file", required_argument, 0, 'f' },		  { "verbose", no_argument, 0, 'v' },
		{ "help", no_argument, 0, 'h' },		  { 0, 0, 0, 0 },
	};
	struct runner_cfg cfg = { .kernel = getenv("MINIVMM_RUNNER_KERNEL"),
				  .initrd = getenv("MINIVMM_RUNNER_INITRD"),
				  .stop = &stop_flag };
	struct job_spec spec = { .mem_mib = 256, .cpus = 1, .stdin_src = { .fd = -1 } };
	const char *socket_path = NULL;
	unsigned max_jobs = 8;
	bool timeout_set = false;
	char **env = calloc((size_t)argc + 1, sizeof(char *));
	struct job_file *files = calloc((size_t)argc + 1, sizeof(*files));
	size_t n_env = 0;
	if (!env || !files)
		die("out of memory");
	/* "+": options stop at the command's first word. */
	optind = 2;
	int c;
	while ((c = getopt_long(argc, argv, "+ie:C:f:vh", opts, NULL)) != -1) {
		switch (c) {
		case OPT_KERNEL: cfg.kernel = optarg; break;
		case OPT_INITRD: cfg.initrd = optarg; break;
		case OPT_MINIVMM: cfg.minivmm = optarg; break;
		case OPT_MEM: spec.mem_mib = parse_uint("--mem", optarg, 64, 1024 * 1024); break;
		case OPT_CPUS: spec.cpus = parse_uint("--cpus", optarg, 1, 255); break;
		case OPT_TIMEOUT:
			spec.timeout_s = parse_uint("--timeout", optarg, 0, 7 * 24 * 3600);
			timeout_set = true;
			break;
		case OPT_COLD: spec.cold = true; break;
		case OPT_POOL: cfg.pool_dir = optarg; break;
		case OPT_WORK: cfg.work_dir = optarg; break;
		case OPT_APPEND: cfg.append = optarg; break;
		case OPT_KEEP: cfg.keep = true; break;
		case OPT_SOCKET: socket_path = optarg; break;
		case OPT_JOBS: max_jobs = parse_uint("--jobs", optarg, 1, 1024); break;
		case 'i': spec.stdin_src.fd = STDIN_FILENO; break;
		case 'e':
			if (!strchr(optarg, '=') || optarg[0] == '=')
				die("--env %s: must be NAME=VALUE", optarg);
			env[n_env++] = optarg;
			break;
		case 'C': spec.cwd = optarg; break;
		case 'f': parse_file(optarg, &files[spec.n_files++]); break;
		case 'v': cfg.verbose = true; break;
		case 'h': fputs(usage, stdout); return 0;
		default: fputs("minivmm-runner: see --help\n", stderr); return EXIT_RUNNER;
		}
	}
	if (submit) {
		if (!socket_path || optind < argc)
			die("submit takes --socket PATH and nothing else");
		free(env);
		free(files);
		return submit_run(socket_path);
	}
	if (!cfg.kernel || !cfg.initrd)
		die("--kernel and --initrd are needed (or MINIVMM_RUNNER_KERNEL and MINIVMM_RUNNER_INITRD)");
	if (access(cfg.kernel, R_OK) < 0)
		die("--kernel %s: %s", cfg.kernel, strerror(errno));
	if (access(cfg.initrd, R_OK) < 0)
		die("--initrd %s: %s", cfg.initrd, strerror(errno));
	if (!cfg.minivmm && !(cfg.minivmm = default_minivmm()))
		die("no minivmm beside this program or in PATH: say where with --minivmm");
	if (access(cfg.minivmm, X_OK) < 0)
		die("--minivmm %s: %s", cfg.minivmm, strerror(errno));
	char pool_default[PATH_MAX];
	if (!cfg.pool_dir) {
		const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
		if (xdg && *xdg)
			snprintf(pool_default, sizeof(pool_default), "%s/minivmm/runner-pool", xdg);
		else
			snprintf(pool_default, sizeof(pool_default), "%s/.cache/minivmm/runner-pool",
				 home && *home ? home : "/tmp");
		/* Its parent may not exist yet. */
		char parent[PATH_MAX];
		snprintf(parent, sizeof(parent), "%s", pool_default);
		for (char *p = parent + 1; (p = strchr(p, '/')); p++) {
			*p = '\0';
			mkdir(parent, 0755);
			*p = '/';
		}
		cfg.pool_dir = pool_default;
	}
	if (!cfg.work_dir)
		cfg.work_dir = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";

	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	int rc;
	if (serve) {
		if (!socket_path)
			die("serve needs --socket PATH");
		if (optind < argc)
			die("serve takes no command (jobs come on the socket)");
		if (!timeout_set)
			spec.timeout_s = 600;
		rc = server_run(&cfg, &spec, socket_path, max_jobs);
	} else {
		if (optind >= argc)
			die("no command to run (--help)");
		spec.argv = argv + optind;
		spec.env = n_env ? env : NULL;
		spec.files = files;
		rc = run_one(&cfg, &spec);
	}
	for (size_t i = 0; i < spec.n_files; i++)
		if (files[i].data.fd >= 0)
			close(files[i].data.fd);
	free(env);
	free(files);
	return rc;
}
