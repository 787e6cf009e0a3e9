/* Just enough of the PS/2 controller for the "keyboard reset" reboot path:
 * a status port that never reports busy and the 0xFE pulse-reset command. */
#ifndef MINIVMM_I8042_H
#define MINIVMM_I8042_H

#include "vmm/base/io_bus.h"
#include "vmm/base/stop.h"

#define I8042_DATA_PORT 0x60
#define I8042_CMD_PORT 0x64
#define I8042_CMD_RESET 0xfe

struct i8042 {
	struct stop_sink stop;
};

extern const struct io_ops i8042_data_io_ops;
extern const struct io_ops i8042_cmd_io_ops;

#endif
