#include "devices/i8042.h"

#include <string.h>

static void i8042_read(void *dev, uint64_t off, void *data, unsigned size)
{
	/* No keyboard, no pending data, input buffer empty. */
	memset(data, 0, size);
}

static void i8042_cmd_write(void *dev, uint64_t off, const void *data, unsigned size)
{
	struct i8042 *k = dev;
	if (*(const uint8_t *)data == I8042_CMD_RESET)
		stop_sink_request(&k->stop, STOP_REBOOT, 0);
}

const struct io_ops i8042_data_io_ops = { .read = i8042_read };
const struct io_ops i8042_cmd_io_ops = { .read = i8042_read, .write = i8042_cmd_write };
