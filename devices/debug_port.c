#include "devices/debug_port.h"

#include "vmm/base/log.h"

#include <stdio.h>
#include <string.h>

static void debug_port_read(void *dev, uint64_t off, void *data, unsigned size)
{
	memset(data, 0, size);
}

static void debug_port_write(void *dev, uint64_t off, const void *data, unsigned size)
{
	struct debug_port *d = dev;
	uint8_t v = *(const uint8_t *)data;

	if (off == DEBUG_PORT_EXIT) {
		/* Off by default: a guest could otherwise make minivmm exit with
		 * 1, 128+N or 159, the statuses of its own error, a signal and
		 * a seccomp kill. 0 says no more than a poweroff. */
		if (d->exit_allowed || v == 0)
			stop_sink_request(&d->stop, STOP_GUEST_STATUS, v);
		else if (!atomic_exchange(&d->exit_refused_said, true))
			log_warn("guest port: the guest asked to exit with status %u; ignored (no --guest-exit)", v);
	} else if (off == DEBUG_PORT_MARKER) {
		d->last_marker = v;
		d->last_marker_ns = monotonic_ns() - d->start_ns;
		if (d->log_markers)
			fprintf(stderr, "minivmm: boot marker %u at %.3f ms\n", v,
				(double)d->last_marker_ns / 1e6);
	}
}

const struct io_ops debug_port_io_ops = { .read = debug_port_read, .write = debug_port_write };
