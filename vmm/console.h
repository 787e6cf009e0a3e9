/* The serial console's host side: output to stdout or a file, input from
 * stdin when it is a terminal (put in raw mode, restored on close). */
#ifndef MINIVMM_CONSOLE_H
#define MINIVMM_CONSOLE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <termios.h>

#include "vmm/options.h"
#include "vmm/base/stop.h"

#define CONSOLE_ESCAPE 0x01   /* Ctrl-A */

struct console {
	int out_fd;            /* -1: output discarded */
	atomic_bool out_gone;  /* a write failed (reader gone, file too big): output dropped */
	bool own_out;          /* out_fd is ours to close */
	uint64_t file_left;    /* bytes a --console file may still take (--console-max) */
	const char *path;      /* the --console file, for the line saying it is full */
	uint64_t max_mib;
	int in_fd;             /* -1: no input */
	bool raw;              /* terminal attributes saved in saved_tio */
	struct termios saved_tio;
	bool escape;           /* the previous input byte was Ctrl-A */
	uint8_t pending[256];  /* input bytes waiting for room in the UART */
	size_t pending_len;
};

int console_open(struct console *c, const struct vmm_options *opts);
void console_close(struct console *c);
/* Serial output callback. */
void console_output(void *ctx, const uint8_t *buf, size_t len);

/* Turns raw input into guest bytes, interpreting Ctrl-A x (quit) and
 * Ctrl-A Ctrl-A (a literal Ctrl-A). Appends to c->pending; returns true
 * when the user asked to quit. Pure, for tests. */
bool console_filter_input(struct console *c, const uint8_t *in, size_t len);

#endif
