/* The minivmm guest port: a guest (or a test program in it) reports an exit
 * status for minivmm to exit with, and marks boot milestones that the
 * benchmarks time. Documented in the README ("Guest port").
 *   port base+0, write 8 bits: exit minivmm with this status (with
 *                              --guest-exit; else ignored, said once)
 *   port base+1, write 8 bits: boot marker N (logged with the time since start
 *                              when MINIVMM_BOOT_MARKERS=1)            */
#ifndef MINIVMM_DEBUG_PORT_H
#define MINIVMM_DEBUG_PORT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/base/io_bus.h"
#include "vmm/base/stop.h"

#define DEBUG_PORT_BASE 0x4f0
#define DEBUG_PORT_LEN 2
#define DEBUG_PORT_EXIT 0
#define DEBUG_PORT_MARKER 1

struct debug_port {
	struct stop_sink stop;
	uint64_t start_ns;          /* CLOCK_MONOTONIC at VMM start */
	int log_markers;
	bool exit_allowed;          /* --guest-exit */
	atomic_bool exit_refused_said;
	unsigned last_marker;
	uint64_t last_marker_ns;    /* time of the last marker, since start */
};

extern const struct io_ops debug_port_io_ops;

#endif
