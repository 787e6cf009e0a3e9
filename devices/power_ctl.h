/* ACPI hardware-reduced sleep control/status and reset registers, as the
 * FADT announces them. Linux powers off by writing SLP_TYP(S5)|SLP_EN to the
 * sleep control register and resets by writing the reset value. */
#ifndef MINIVMM_POWER_CTL_H
#define MINIVMM_POWER_CTL_H

#include "vmm/base/io_bus.h"
#include "vmm/base/stop.h"

#define POWER_CTL_SLEEP_CONTROL 0   /* offsets within the port range */
#define POWER_CTL_SLEEP_STATUS 1
#define POWER_CTL_RESET 2
#define POWER_CTL_LEN 3

#define POWER_CTL_S5_TYPE 5         /* the \_S5 package value in our DSDT */
#define POWER_CTL_SLP_EN 0x20
#define POWER_CTL_SLP_TYP_SHIFT 2
#define POWER_CTL_RESET_VALUE 0x01

struct power_ctl {
	struct stop_sink stop;
};

extern const struct io_ops power_ctl_io_ops;

#endif
