/* What the code under test logged, for the tests that capture stderr with
 * cr_redirect_stderr() and check the exact lines. */
#ifndef MINIVMM_TESTS_CAPTURED_LOG_H
#define MINIVMM_TESTS_CAPTURED_LOG_H

#include <criterion/redirect.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

/* What was logged since the last call. The read does not block: nothing
 * logged is "", not a hang. */
static inline const char *logged(void)
{
	static char buf[8192];
	fflush(stderr);
	int fd = fileno(cr_get_redirected_stderr());
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = 0;
	return buf;
}

#endif
