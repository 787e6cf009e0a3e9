#include "vmm/console.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "vmm/base/log.h"

int console_open(struct console *c, const struct vmm_options *o)
{
	memset(c, 0, sizeof(*c));
	c->out_fd = -1;
	c->in_fd = -1;

	switch (o->console) {
	case CONSOLE_NONE:
		return 0;
	case CONSOLE_FILE:
		/* O_NOFOLLOW: a symlink planted at PATH must not get a file
		 * elsewhere truncated and written with the guest's output. */
		c->out_fd = open(o->console_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
		if (c->out_fd < 0) {
			log_error("--console %s: %s", o->console_path,
				  errno == ELOOP ? "is a symbolic link (not followed)" : strerror(errno));
			return -1;
		}
		c->own_out = true;
		c->path = o->console_path;
		c->max_mib = o->console_max_mib;
		/* A guest printing for ever must not fill the host's disk. */
		c->file_left = o->console_max_mib ? o->console_max_mib << 20 : UINT64_MAX;
		return 0;
	case CONSOLE_STDIO:
		c->out_fd = STDOUT_FILENO;
		if (isatty(STDIN_FILENO)) {
			struct termios raw;
			if (tcgetattr(STDIN_FILENO, &c->saved_tio) == 0) {
				raw = c->saved_tio;
				/* Raw: every key goes to the guest, Ctrl-C included. */
				cfmakeraw(&raw);
				raw.c_oflag |= OPOST | ONLCR;   /* keep host-side newline handling sane */
				if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0)
					c->raw = true;
			}
			c->in_fd = STDIN_FILENO;
		}
		return 0;
	}
	return 0;
}

void console_close(struct console *c)
{
	if (c->raw)
		tcsetattr(STDIN_FILENO, TCSANOW, &c->saved_tio);
	c->raw = false;
	if (c->own_out && c->out_fd >= 0)
		close(c->out_fd);
	c->out_fd = -1;
	c->in_fd = -1;
}

void console_output(void *ctx, const uint8_t *buf, size_t len)
{
	struct console *c = ctx;
	if (c->out_fd < 0 || atomic_load(&c->out_gone))
		return;
	bool full = false;
	if (c->own_out) {
		if (len >= c->file_left) {
			len = (size_t)c->file_left;
			full = true;
		}
		c->file_left -= len;
	}
	while (len) {
		ssize_t n = write(c->out_fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN) {
			/* Console gone (EPIPE: SIGPIPE is ignored), or the file cannot
			 * grow: the guest keeps running, its output is dropped. Said
			 * once, on stderr, if that still works. */
			int e = errno;
			if (!atomic_exchange(&c->out_gone, true))
				log_warn("console: %s; guest output dropped from now on", strerror(e));
			return;
		}
		if (n <= 0)
			return;   /* full non-blocking console: this output is dropped */
		buf += n;
		len -= (size_t)n;
	}
	if (full && !atomic_exchange(&c->out_gone, true))
		log_warn("console: %s reached --console-max %llu MiB; guest output dropped from now on", c->path,
			 (unsigned long long)c->max_mib);
}

static void push(struct console *c, uint8_t b)
{
	if (c->pending_len < sizeof(c->pending))
		c->pending[c->pending_len++] = b;
}

bool console_filter_input(struct console *c, const uint8_t *in, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		uint8_t b = in[i];
		if (c->escape) {
			c->escape = false;
			if (b == 'x' || b == 'X')
				return true;
			if (b != CONSOLE_ESCAPE)
				push(c, CONSOLE_ESCAPE);
			push(c, b);
		} else if (b == CONSOLE_ESCAPE) {
			c->escape = true;
		} else {
			push(c, b);
		}
	}
	return false;
}
