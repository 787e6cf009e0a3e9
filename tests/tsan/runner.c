/* Runs the tests registered through the Criterion shim (shim/criterion/),
 * in one process, in name order, each between its suite's init and fini.
 * Exit 0 when all passed or skipped; a failed assertion aborts. Usage:
 * tsan_test_X [--filter SUBSTRING]. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "criterion/criterion.h"
#include "criterion/redirect.h"

#define MAX_TESTS 512
#define MAX_SUITES 16

struct test {
	const char *suite, *name;
	void (*fn)(void);
	const struct criterion_test_extra_data *extra;
};

static struct test tests[MAX_TESTS];
static unsigned n_tests;
static struct {
	const char *name;
	const struct criterion_test_extra_data *extra;
} suites[MAX_SUITES];
static unsigned n_suites;
static jmp_buf skip_jump;
static char skip_reason[512];
static int saved_stderr = -1;
static FILE *captured;

void shim_register_test(const char *suite, const char *name, void (*fn)(void),
			const struct criterion_test_extra_data *extra)
{
	if (n_tests == MAX_TESTS)
		abort();
	tests[n_tests++] = (struct test){ suite, name, fn, extra };
}

void shim_register_suite(const char *suite, const struct criterion_test_extra_data *extra)
{
	if (n_suites == MAX_SUITES)
		abort();
	suites[n_suites].name = suite;
	suites[n_suites++].extra = extra;
}

static void restore_stderr(void)
{
	if (saved_stderr < 0)
		return;
	fflush(stderr);
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	saved_stderr = -1;
	if (captured)
		fclose(captured);
	captured = NULL;
}

void shim_fail(const char *file, int line, const char *expr, const char *fmt, ...)
{
	restore_stderr();
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "FAIL: %s:%d: %s%s%s\n", file, line, expr, *msg ? ": " : "", msg);
	abort();
}

void shim_skip(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(skip_reason, sizeof(skip_reason), fmt, ap);
	va_end(ap);
	longjmp(skip_jump, 1);
}

void shim_log(const char *level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("[%s] ", level);
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
	va_end(ap);
}

void cr_redirect_stderr(void)
{
	int p[2];
	if (saved_stderr >= 0 || pipe2(p, O_CLOEXEC))
		abort();
	fcntl(p[0], F_SETPIPE_SZ, 1 << 20);   /* what a test logs must not block it */
	fflush(stderr);
	saved_stderr = dup(STDERR_FILENO);
	dup2(p[1], STDERR_FILENO);
	close(p[1]);
	captured = fdopen(p[0], "r");
}

FILE *cr_get_redirected_stderr(void)
{
	return captured;
}

static int by_name(const void *a, const void *b)
{
	const struct test *x = a, *y = b;
	int c = strcmp(x->suite, y->suite);
	return c ? c : strcmp(x->name, y->name);
}

int main(int argc, char **argv)
{
	const char *filter = argc == 3 && !strcmp(argv[1], "--filter") ? argv[2] : NULL;
	qsort(tests, n_tests, sizeof(tests[0]), by_name);
	unsigned passed = 0, skipped = 0;
	/* What a test may change for its own process under Criterion (each
	 * test forks there), put back after each one here. */
	struct rlimit fsize;
	getrlimit(RLIMIT_FSIZE, &fsize);
	for (unsigned i = 0; i < n_tests; i++) {
		setrlimit(RLIMIT_FSIZE, &fsize);
		struct test *t = &tests[i];
		if (t->extra->disabled || (filter && !strstr(t->name, filter)))
			continue;
		const struct criterion_test_extra_data *suite = NULL;
		for (unsigned s = 0; s < n_suites; s++)
			if (!strcmp(suites[s].name, t->suite))
				suite = suites[s].extra;
		fprintf(stderr, "[RUN ] %s::%s\n", t->suite, t->name);
		if (setjmp(skip_jump) == 0) {
			if (suite && suite->init)
				suite->init();
			if (t->extra->init)
				t->extra->init();
			t->fn();
			if (t->extra->fini)
				t->extra->fini();
			if (suite && suite->fini)
				suite->fini();
			restore_stderr();
			fprintf(stderr, "[PASS] %s::%s\n", t->suite, t->name);
			passed++;
		} else {
			/* Criterion runs the suite's fini after a skip too. */
			if (suite && suite->fini)
				suite->fini();
			restore_stderr();
			fprintf(stderr, "[SKIP] %s::%s: %s\n", t->suite, t->name, skip_reason);
			skipped++;
		}
	}
	fprintf(stderr, "tsan: %u passed, %u skipped\n", passed, skipped);
	return 0;
}
