/* The per-device limit on the log lines a guest can cause. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../../vmm/base/log_limit.h"
#include "captured_log.h"

#define S 1000000000ull

static int count_lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void warn_n(struct log_limit *l, int n)
{
	for (int i = 0; i < n; i++)
		log_warn_limited(l, "dev0: bad ring %d", i);
}

Test(log_limit, burst_then_count, .init = cr_redirect_stderr)
{
	struct log_limit l;
	log_limit_init(&l, "dev0");
	int passed = 0;
	for (int i = 0; i < 1000; i++)
		passed += log_limit_pass_at(&l, 100 * S + (uint64_t)i * 1000);
	cr_assert_eq(passed, (int)LOG_LIMIT_BURST);
	cr_assert_str_empty(logged(), "nothing is said while the window lasts");
	/* The next line after the window: the count of what was held, then the line. */
	cr_assert(log_limit_pass_at(&l, 100 * S + LOG_LIMIT_WINDOW_S * S));
	cr_assert_str_eq(logged(), "minivmm: warning: dev0: 995 more warnings like these in the last 10 s (rate-limited)\n");
	/* A new window: a new burst, nothing held, nothing to report. */
	for (unsigned i = 1; i < LOG_LIMIT_BURST; i++)
		cr_assert(log_limit_pass_at(&l, 111 * S));
	cr_assert_not(log_limit_pass_at(&l, 111 * S));
	log_limit_destroy(&l);   /* at the real time: not the test's clock */
	const char *out = logged();
	cr_assert(strstr(out, "minivmm: warning: dev0: 1 more warnings like these in the last ") == out, "%s", out);
}

Test(log_limit, quiet_device_says_nothing_more, .init = cr_redirect_stderr)
{
	struct log_limit l;
	log_limit_init(&l, "dev0");
	cr_assert(log_limit_pass_at(&l, 5 * S));
	cr_assert(log_limit_pass_at(&l, 500 * S));
	log_limit_destroy(&l);
	cr_assert_str_empty(logged());
}

Test(log_limit, macro_logs_the_first_few, .init = cr_redirect_stderr)
{
	struct log_limit l;
	log_limit_init(&l, "dev0");
	warn_n(&l, 50);
	const char *out = logged();
	cr_assert_eq(count_lines(out), (int)LOG_LIMIT_BURST, "%s", out);
	cr_assert(strstr(out, "minivmm: warning: dev0: bad ring 0\n") == out);
	log_limit_destroy(&l);
	cr_assert(strstr(logged(), "dev0: 45 more warnings like these"));
}

Test(log_limit, null_limiter_passes_everything)
{
	for (int i = 0; i < 100; i++)
		cr_assert(log_limit_pass(NULL));
}

Test(log_limit, environment_lifts_the_limit)
{
	setenv("MINIVMM_GUEST_WARNINGS", "all", 1);
	struct log_limit l;
	log_limit_init(&l, "dev0");
	unsetenv("MINIVMM_GUEST_WARNINGS");
	for (int i = 0; i < 100; i++)
		cr_assert(log_limit_pass_at(&l, 7 * S));
	log_limit_destroy(&l);
}
