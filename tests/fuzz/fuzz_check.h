/* The fuzz targets' own checks: a failed one aborts, which libFuzzer reports
 * as a crash and keeps the input. */
#ifndef MINIVMM_FUZZ_CHECK_H
#define MINIVMM_FUZZ_CHECK_H

#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>

#define CHECK(cond)                                                                             \
	do {                                                                                    \
		if (!(cond)) {                                                                  \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                                \
		}                                                                               \
	} while (0)

/* Writes a seed input DIR/NAME (FUZZ_*_WRITE_SEEDS), or aborts. */
static inline void fuzz_write_seed(const char *dir, const char *name, const void *data, size_t len)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	CHECK(f && fwrite(data, 1, len, f) == len && fclose(f) == 0);
}

#endif
