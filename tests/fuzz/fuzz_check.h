/* The fuzz targets' own checks: a failed one aborts, which libFuzzer reports
 * as a crash and keeps the input. */
#ifndef MINIVMM_FUZZ_CHECK_H
#define MINIVMM_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                             \
	do {                                                                                    \
		if (!(cond)) {                                                                  \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                                \
		}                                                                               \
	} while (0)

#endif
