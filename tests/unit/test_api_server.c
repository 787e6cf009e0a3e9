/* The control socket's server (vmm/api.c) over a fake VM, no KVM: mode,
 * removal, and the limits that keep one client from holding up another. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "vmm/api.h"

static bool f_paused(void *ctx) { return false; }
static int f_pause(void *ctx, char *err, size_t errlen) { return 0; }
static int f_resume(void *ctx, char *err, size_t errlen) { return 0; }
static void f_info(void *ctx, struct json_object *out) {}
static void f_stats(void *ctx, struct json_object *out) {}
static void f_stop(void *ctx) {}
static const struct api_ops fake_ops = { f_paused, f_pause, f_resume, f_info, f_stats, f_stop, NULL };

static char dir[64], path[128];
static struct api_server srv;

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/minivmm-api-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/vm.sock", dir);
	api_init(&srv);
}

static void teardown(void)
{
	api_close(&srv);
	rmdir(dir);
}

static void serve(unsigned idle_ms)
{
	cr_assert_eq(api_open(&srv, path), 0);
	srv.idle_ms = idle_ms;
	cr_assert_eq(api_start(&srv, NULL, &fake_ops, NULL), 0);
}

static int client(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "connect: %s", strerror(errno));
	struct timeval tv = { .tv_sec = 5 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* Reads one line (or up to EOF); returns its length, 0 at EOF. */
static size_t read_line(int fd, char *buf, size_t cap)
{
	size_t len = 0;
	while (len + 1 < cap) {
		ssize_t n = recv(fd, buf + len, 1, 0);
		cr_assert_geq(n, 0, "recv: %s", strerror(errno));   /* a timeout fails here */
		if (n == 0)
			break;
		if (buf[len++] == '\n')
			break;
	}
	buf[len] = 0;
	return len;
}

static void say(int fd, const char *s)
{
	cr_assert_eq(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

/* Closed: EOF, or ECONNRESET when the server closed with our bytes unread. */
static void expect_eof(int fd)
{
	char c;
	ssize_t n = recv(fd, &c, 1, 0);
	cr_assert(n == 0 || (n < 0 && errno == ECONNRESET), "connection should be closed (%zd, %s)", n,
		  strerror(errno));
}

TestSuite(api_server, .init = setup, .fini = teardown, .timeout = 20);

Test(api_server, socket_mode_0600_and_removed_at_close)
{
	serve(API_IDLE_MS);
	struct stat st;
	cr_assert_eq(lstat(path, &st), 0);
	cr_assert(S_ISSOCK(st.st_mode));
	cr_assert_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
	int fd = client();
	char line[256];
	say(fd, "{\"cmd\":\"info\"}\n{\"cmd\":\"stats\"}\n");
	read_line(fd, line, sizeof(line));
	cr_assert_str_eq(line, "{\"ok\":true,\"state\":\"running\"}\n");
	read_line(fd, line, sizeof(line));
	cr_assert_str_eq(line, "{\"ok\":true}\n");
	close(fd);
	api_close(&srv);
	cr_assert_neq(lstat(path, &st), 0, "the socket file is left");
}

Test(api_server, silent_client_does_not_block_others)
{
	serve(API_IDLE_MS);
	int quiet = client();
	say(quiet, "{\"cmd\":");   /* half a line, then nothing */
	int fd = client();
	char line[256];
	say(fd, "{\"cmd\":\"pause\"}\n");
	read_line(fd, line, sizeof(line));
	cr_assert(strstr(line, "\"ok\":true"), "%s", line);
	close(fd);
	close(quiet);
}

Test(api_server, a_hundred_clients)
{
	serve(API_IDLE_MS);
	int fds[100];
	char line[256];
	for (int i = 0; i < 100; i++)
		fds[i] = client();
	int served = 0, refused = 0;
	for (int i = 0; i < 100; i++) {
		/* A refused one may be closed already (EPIPE): its line waits all the same. */
		send(fds[i], "{\"cmd\":\"info\"}\n", 15, MSG_NOSIGNAL);
		read_line(fds[i], line, sizeof(line));
		if (strstr(line, "\"ok\":true"))
			served++;
		else if (strstr(line, "too many clients")) {
			refused++;
			expect_eof(fds[i]);
		} else
			cr_assert_fail("client %d: '%s'", i, line);
	}
	cr_assert_eq(served, API_MAX_CLIENTS);
	cr_assert_eq(refused, 100 - API_MAX_CLIENTS);
	for (int i = 0; i < 100; i++)
		close(fds[i]);
	/* Their slots are free again. */
	usleep(100000);
	int fd = client();
	say(fd, "{\"cmd\":\"info\"}\n");
	read_line(fd, line, sizeof(line));
	cr_assert(strstr(line, "\"ok\":true"), "%s", line);
	close(fd);
}

Test(api_server, line_over_the_limit)
{
	serve(API_IDLE_MS);
	int fd = client();
	char big[API_LINE_MAX + 100];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	say(fd, big);
	char line[256];
	read_line(fd, line, sizeof(line));
	cr_assert(strstr(line, "longer than 4096 bytes"), "%s", line);
	expect_eof(fd);
	close(fd);
}

Test(api_server, idle_client_closed)
{
	serve(200);
	int fd = client();
	char line[256];
	read_line(fd, line, sizeof(line));
	cr_assert(strstr(line, "idle for 200 ms"), "%s", line);
	expect_eof(fd);
	close(fd);
	/* The server goes on. */
	fd = client();
	say(fd, "nonsense\n{\"cmd\":\"info\"}\n");
	read_line(fd, line, sizeof(line));
	cr_assert(strstr(line, "\"error\":\"not JSON"), "%s", line);
	read_line(fd, line, sizeof(line));
	cr_assert(strstr(line, "\"ok\":true"), "%s", line);
	close(fd);
}

Test(api_server, path_taken)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fclose(f);
	cr_assert_eq(api_open(&srv, path), -1, "a file is in the way");
	unlink(path);
	/* A live socket: refused; once its server is gone (stale): replaced. */
	struct api_server other;
	api_init(&other);
	cr_assert_eq(api_open(&other, path), 0);
	cr_assert_eq(api_open(&srv, path), -1, "another VM listens");
	api_init(&srv);
	close(other.listen_fd);   /* gone without removing its file */
	other.listen_fd = -1;
	api_close(&other);
	cr_assert_eq(api_open(&srv, path), 0, "a stale socket is replaced");
}
