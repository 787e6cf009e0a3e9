#include "devices/power_ctl.h"

#include <string.h>

static void power_ctl_read(void *dev, uint64_t off, void *data, unsigned size)
{
	memset(data, 0, size);   /* no wake status ever pending */
}

static void power_ctl_write(void *dev, uint64_t off, const void *data, unsigned size)
{
	struct power_ctl *p = dev;
	uint8_t v = *(const uint8_t *)data;

	if (off == POWER_CTL_SLEEP_CONTROL && (v & POWER_CTL_SLP_EN) &&
	    ((v >> POWER_CTL_SLP_TYP_SHIFT) & 7) == POWER_CTL_S5_TYPE)
		stop_sink_request(&p->stop, STOP_POWEROFF, 0);
	else if (off == POWER_CTL_RESET && v == POWER_CTL_RESET_VALUE)
		stop_sink_request(&p->stop, STOP_REBOOT, 0);
}

const struct io_ops power_ctl_io_ops = { .read = power_ctl_read, .write = power_ctl_write };
