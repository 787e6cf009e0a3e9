/* A stand-in for the part of Criterion the threaded unit tests use, for the
 * ThreadSanitizer build: Criterion's runner cannot start under TSan (its
 * boxfort arena collides with TSan's memory layout: Criterion issue #274).
 * Here tests run one after another in one process, without fork: Test()
 * and TestSuite() register through constructors, tests/tsan/runner.c runs
 * them, a failed assertion prints its message and aborts the run. */
#ifndef MINIVMM_TSAN_CRITERION_SHIM_H
#define MINIVMM_TSAN_CRITERION_SHIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

struct criterion_test_extra_data {
	void (*init)(void);
	void (*fini)(void);
	bool disabled;
	int signal;
	int exit_code;
	double timeout;
	const char *description;
};

void shim_register_test(const char *suite, const char *name, void (*fn)(void),
			const struct criterion_test_extra_data *extra);
void shim_register_suite(const char *suite, const struct criterion_test_extra_data *extra);
__attribute__((noreturn, format(printf, 4, 5))) void shim_fail(const char *file, int line, const char *expr,
							       const char *fmt, ...);
__attribute__((noreturn, format(printf, 1, 2))) void shim_skip(const char *fmt, ...);
__attribute__((format(printf, 2, 3))) void shim_log(const char *level, const char *fmt, ...);

#define Test(suite, name, ...)                                                                   \
	static void suite##_##name##_body(void);                                                 \
	__attribute__((constructor)) static void suite##_##name##_register(void)                 \
	{                                                                                        \
		static const struct criterion_test_extra_data extra = { __VA_ARGS__ };           \
		shim_register_test(#suite, #name, suite##_##name##_body, &extra);                \
	}                                                                                        \
	static void suite##_##name##_body(void)

#define TestSuite(suite, ...)                                                                    \
	__attribute__((constructor)) static void suite##_suite_register(void)                    \
	{                                                                                        \
		static const struct criterion_test_extra_data extra = { __VA_ARGS__ };           \
		shim_register_suite(#suite, &extra);                                             \
	}

/* "" fmt: the message is optional, as in Criterion. */
#define cr_assert(cond, ...) \
	do { if (!(cond)) shim_fail(__FILE__, __LINE__, #cond, "" __VA_ARGS__); } while (0)
#define cr_assert_not(cond, ...) cr_assert(!(cond), ##__VA_ARGS__)
#define cr_assert_eq(a, b, ...) cr_assert((a) == (b), ##__VA_ARGS__)
#define cr_assert_neq(a, b, ...) cr_assert((a) != (b), ##__VA_ARGS__)
#define cr_assert_lt(a, b, ...) cr_assert((a) < (b), ##__VA_ARGS__)
#define cr_assert_leq(a, b, ...) cr_assert((a) <= (b), ##__VA_ARGS__)
#define cr_assert_gt(a, b, ...) cr_assert((a) > (b), ##__VA_ARGS__)
#define cr_assert_geq(a, b, ...) cr_assert((a) >= (b), ##__VA_ARGS__)
#define cr_assert_null(p, ...) cr_assert((p) == NULL, ##__VA_ARGS__)
#define cr_assert_not_null(p, ...) cr_assert((p) != NULL, ##__VA_ARGS__)
#define cr_assert_str_eq(a, b, ...) cr_assert(strcmp((a), (b)) == 0, ##__VA_ARGS__)
#define cr_assert_str_empty(a, ...) cr_assert((a)[0] == 0, ##__VA_ARGS__)
#define cr_assert_arr_eq(a, b, n, ...) cr_assert(memcmp((a), (b), (n)) == 0, ##__VA_ARGS__)
#define cr_assert_arr_neq(a, b, n, ...) cr_assert(memcmp((a), (b), (n)) != 0, ##__VA_ARGS__)
#define cr_skip_test(...) shim_skip("" __VA_ARGS__)
/* To stdout: a test may have stderr redirected and read back. */
#define cr_log_info(...) shim_log("info", "" __VA_ARGS__)
#define cr_log_warn(...) shim_log("warn", "" __VA_ARGS__)

#endif
