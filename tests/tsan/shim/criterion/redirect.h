/* See criterion.h next to this file. stderr goes to a pipe until the test
 * ends; the test reads it back through cr_get_redirected_stderr(). */
#ifndef MINIVMM_TSAN_CRITERION_SHIM_REDIRECT_H
#define MINIVMM_TSAN_CRITERION_SHIM_REDIRECT_H

#include <stdio.h>

void cr_redirect_stderr(void);
FILE *cr_get_redirected_stderr(void);

#endif
