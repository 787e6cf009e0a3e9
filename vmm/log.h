/* One-line diagnostics. Every message names the thing at fault. */
#ifndef MINIVMM_LOG_H
#define MINIVMM_LOG_H

#include <stdio.h>

#define log_error(fmt, ...) fprintf(stderr, "minivmm: error: " fmt "\n", ##__VA_ARGS__)
#define log_warn(fmt, ...)  fprintf(stderr, "minivmm: warning: " fmt "\n", ##__VA_ARGS__)
#define log_info(fmt, ...)  fprintf(stderr, "minivmm: " fmt "\n", ##__VA_ARGS__)

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
