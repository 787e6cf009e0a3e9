/* The control socket's protocol over a fake VM: every command, and every
 * bad request gets one error line and leaves the VM alone. */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "vmm/api_proto.h"

struct fake_vm {
	bool paused;
	int pauses, resumes, stops, snapshots;
	bool fail_resume;
	int fds_seen[2];
};

static bool f_paused(void *ctx) { return ((struct fake_vm *)ctx)->paused; }
static int f_pause(void *ctx, char *err, size_t errlen)
{
	struct fake_vm *v = ctx;
	v->pauses++;
	v->paused = true;
	return 0;
}
static int f_resume(void *ctx, char *err, size_t errlen)
{
	struct fake_vm *v = ctx;
	v->resumes++;
	v->paused = false;
	if (v->fail_resume) {
		snprintf(err, errlen, "clock said no");
		return -1;
	}
	return 0;
}
static void f_info(void *ctx, struct json_object *out)
{
	json_object_object_add(out, "vcpus", json_object_new_int(2));
}
static void f_stats(void *ctx, struct json_object *out)
{
	json_object_object_add(out, "devices", json_object_new_object());
}
static void f_stop(void *ctx) { ((struct fake_vm *)ctx)->stops++; }

static int f_snapshot(void *ctx, int state_fd, int mem_fd, struct json_object *out, char *err, size_t errlen)
{
	struct fake_vm *v = ctx;
	v->snapshots++;
	v->fds_seen[0] = state_fd;
	v->fds_seen[1] = mem_fd;
	if (state_fd == 99) {
		snprintf(err, errlen, "disk full");
		return -1;
	}
	json_object_object_add(out, "state_bytes", json_object_new_int(1234));
	return 0;
}

static const struct api_ops fake_ops = { f_paused, f_pause, f_resume, f_info, f_stats, f_stop, f_snapshot };

static struct fake_vm vm;

static char *ask_len(const char *line, size_t len)
{
	char *r = api_proto_handle(&fake_ops, &vm, line, len, NULL, 0);
	cr_assert_not_null(r);
	size_t n = strlen(r);
	cr_assert(n > 1 && r[n - 1] == '\n' && !memchr(r, '\n', n - 1), "one line: %s", r);
	return r;
}

static char *ask(const char *line)
{
	return ask_len(line, strlen(line));
}

static void expect_error(const char *line, size_t len, const char *part)
{
	struct fake_vm before = vm;
	char *r = ask_len(line, len);
	char msg[512];
	cr_assert(api_proto_reply_error(r, strlen(r), msg, sizeof(msg)), "error expected for '%.*s': %s", (int)len,
		  line, r);
	cr_assert(strstr(msg, part), "'%s' should say '%s'", msg, part);
	cr_assert(!memcmp(&before, &vm, sizeof(vm)), "the VM was touched by '%.*s'", (int)len, line);
	free(r);
}

static void expect_ok(const char *line, const char *part)
{
	char *r = ask(line);
	char msg[512];
	cr_assert_not(api_proto_reply_error(r, strlen(r), msg, sizeof(msg)), "%s: %s", line, r);
	cr_assert(strstr(r, "\"ok\":true"), "%s", r);
	cr_assert(strstr(r, part), "'%s' should hold '%s'", r, part);
	free(r);
}

static void reset(void) { memset(&vm, 0, sizeof(vm)); }

TestSuite(api_proto, .init = reset);

Test(api_proto, pause_resume_and_state)
{
	expect_ok("{\"cmd\":\"info\"}", "\"state\":\"running\"");
	expect_ok("{\"cmd\":\"pause\"}", "\"state\":\"paused\"");
	cr_assert_eq(vm.pauses, 1);
	expect_ok("{\"cmd\":\"info\"}", "\"state\":\"paused\"");
	expect_ok(" { \"cmd\" : \"resume\" } \r", "\"state\":\"running\"");
	cr_assert_eq(vm.resumes, 1);
}

Test(api_proto, info_stats_stop)
{
	expect_ok("{\"cmd\":\"info\"}", "\"vcpus\":2");
	expect_ok("{\"cmd\":\"stats\"}", "\"devices\":{}");
	expect_ok("{\"cmd\":\"stop\"}", "\"ok\":true");
	cr_assert_eq(vm.stops, 1);
}

Test(api_proto, command_not_fitting_the_state)
{
	expect_error("{\"cmd\":\"resume\"}", 16, "not paused");
	vm.paused = true;
	expect_error("{\"cmd\":\"pause\"}", 15, "paused already");
}

Test(api_proto, failed_resume_is_an_error)
{
	vm.paused = true;
	vm.fail_resume = true;
	char *r = ask("{\"cmd\":\"resume\"}");
	cr_assert(strstr(r, "\"error\":\"resume: clock said no\""), "%s", r);
	free(r);
}

Test(api_proto, snapshot_needs_a_paused_vm_and_two_files)
{
	expect_error("{\"cmd\":\"snapshot\"}", 18, "the VM is running (pause it first)");
	vm.paused = true;
	expect_error("{\"cmd\":\"snapshot\"}", 18, "must come with the request (2 file descriptors");
	int one[1] = { 7 };
	char *r = api_proto_handle(&fake_ops, &vm, "{\"cmd\":\"snapshot\"}", 18, one, 1);
	cr_assert(strstr(r, "(2 file descriptors, SCM_RIGHTS; 1 came)"), "%s", r);
	free(r);
	cr_assert_eq(vm.snapshots, 0);
}

Test(api_proto, snapshot_hands_the_files_to_the_vm)
{
	vm.paused = true;
	int fds[2] = { 11, 12 };
	char *r = api_proto_handle(&fake_ops, &vm, "{\"cmd\":\"snapshot\"}", 18, fds, 2);
	cr_assert(strstr(r, "\"ok\":true") && strstr(r, "\"state_bytes\":1234"), "%s", r);
	free(r);
	cr_assert_eq(vm.snapshots, 1);
	cr_assert(vm.fds_seen[0] == 11 && vm.fds_seen[1] == 12);
	int bad[2] = { 99, 12 };
	r = api_proto_handle(&fake_ops, &vm, "{\"cmd\":\"snapshot\"}", 18, bad, 2);
	cr_assert(strstr(r, "{\"error\":\"snapshot: disk full\"}"), "%s", r);
	free(r);
}

Test(api_proto, bad_requests)
{
	static const char *const bad[][2] = {
		{ "garbage", "not JSON" },
		{ "", "empty request" },
		{ "{\"cmd\":\"info\"", "not JSON" },
		{ "{\"cmd\":\"info\"} {}", "not JSON" },
		{ "{\"cmd\":\"info\"}x", "not JSON" },
		{ "{'cmd':'info'}", "not JSON" },
		{ "[\"info\"]", "a request is a JSON object" },
		{ "\"info\"", "a request is a JSON object" },
		{ "42", "a request is a JSON object" },
		{ "null", "a request is a JSON object" },
		{ "{}", "missing \"cmd\"" },
		{ "{\"cmd\":7}", "missing \"cmd\"" },
		{ "{\"cmd\":null}", "missing \"cmd\"" },
		{ "{\"cmd\":\"info\",\"x\":1}", "unknown key 'x'" },
		{ "{\"cmd\":\"reboot\"}", "unknown command 'reboot'" },
		{ "{\"cmd\":\"PAUSE\"}", "unknown command" },
		{ "{\"cmd\":\"pause\\u0000\"}", "NUL" },
		{ "{\"cmd\":\"\xff\xfe\"}", "not JSON" },
		{ "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
		  "not JSON" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_error(bad[i][0], strlen(bad[i][0]), bad[i][1]);
	expect_error("{\"cmd\":\"info\"}\0", 15, "NUL");
}

Test(api_proto, long_command_name_is_cut_in_the_reply)
{
	char line[API_LINE_MAX];
	int n = snprintf(line, sizeof(line), "{\"cmd\":\"%0*d\"}", 3000, 0);
	char *r = ask_len(line, (size_t)n);
	cr_assert_lt(strlen(r), 400, "%s", r);
	cr_assert(strstr(r, "unknown command"));
	free(r);
}

Test(api_proto, client_reads_replies)
{
	char msg[64];
	cr_assert_not(api_proto_reply_error("{\"ok\":true}\n", 12, msg, sizeof(msg)));
	cr_assert(api_proto_reply_error("{\"error\":\"no\"}\n", 15, msg, sizeof(msg)));
	cr_assert_str_eq(msg, "no");
	cr_assert(api_proto_reply_error("junk\n", 5, msg, sizeof(msg)));
	char *e = api_proto_error("a \"quoted\"\nline");
	cr_assert_str_eq(e, "{\"error\":\"a \\\"quoted\\\"\\nline\"}\n");
	free(e);
}
