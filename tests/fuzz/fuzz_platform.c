/* libFuzzer target for the small platform devices a guest reaches with port
 * accesses: the 8250 UART (COM1), the i8042 (reset only), the ACPI power
 * control registers and the guest port, on one io_bus laid out as on x86,
 * with console input arriving between accesses as it does from the main
 * loop. Build and run: tests/fuzz/run.sh.
 *
 * Checked after every access: the UART's receive FIFO count and head stay
 * inside the FIFO, its interrupt line is what its registers say (IIR has an
 * interrupt pending exactly when the line is high), output arrives only from
 * THR writes outside loopback, one byte each, and a stop is asked for only
 * by the power, reset and guest-port registers, with the reason and status
 * they document. ASan/UBSan catch the rest.
 *
 * Input: 4-byte records (a short last record is ignored):
 *   u8 kind: bits 0-1 device (0 UART, 1 i8042, 2 power, 3 guest port),
 *            bit 2 write, bits 3-4 size 1 << n, bit 5: console input
 *            (value's low byte, then the access)
 *   u8 offset (within the device's range; past it: the bus answers)
 *   u16 value
 * FUZZ_PLATFORM_WRITE_SEEDS=DIR writes seed inputs there and exits. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/debug_port.h"
#include "devices/i8042.h"
#include "devices/power_ctl.h"
#include "devices/serial_8250.h"
#include "fuzz_check.h"
#include "vmm/base/io_bus.h"

#define COM1 0x3f8
#define I8042_DATA 0x60
#define I8042_CMD 0x64
#define POWER 0x600

struct machine {
	struct io_bus bus;
	struct serial_8250 uart;
	struct i8042 kbd;
	struct power_ctl power;
	struct debug_port port;
	int irq_level;
	unsigned outputs;          /* output callback calls */
	size_t output_bytes;
	int stops;
	enum vm_stop_reason last_reason;
	int last_status;
};

static void uart_output(void *ctx, const uint8_t *buf, size_t len)
{
	struct machine *m = ctx;
	CHECK(len >= 1 && buf);
	m->outputs++;
	m->output_bytes += len;
}

static void uart_set_irq(void *ctx, int level)
{
	struct machine *m = ctx;
	CHECK(level == 0 || level == 1);
	m->irq_level = level;
}

static const struct serial_8250_ops uart_ops = { .output = uart_output, .set_irq = uart_set_irq };

static void stop_request(void *ctx, enum vm_stop_reason reason, int status)
{
	struct machine *m = ctx;
	m->stops++;
	m->last_reason = reason;
	m->last_status = status;
}

static void machine_init(struct machine *m, bool guest_exit)
{
	memset(m, 0, sizeof(*m));
	serial_8250_init(&m->uart, &uart_ops, m);
	struct stop_sink sink = { .request = stop_request, .ctx = m };
	m->kbd.stop = sink;
	m->power.stop = sink;
	m->port.stop = sink;
	m->port.exit_allowed = guest_exit;
	CHECK(io_bus_register(&m->bus, COM1, 8, &serial_8250_io_ops, &m->uart, "com1") == 0);
	CHECK(io_bus_register(&m->bus, I8042_DATA, 1, &i8042_data_io_ops, &m->kbd, "i8042") == 0);
	CHECK(io_bus_register(&m->bus, I8042_CMD, 1, &i8042_cmd_io_ops, &m->kbd, "i8042") == 0);
	CHECK(io_bus_register(&m->bus, POWER, POWER_CTL_LEN, &power_ctl_io_ops, &m->power, "power") == 0);
	CHECK(io_bus_register(&m->bus, DEBUG_PORT_BASE, DEBUG_PORT_LEN, &debug_port_io_ops, &m->port, "debug") == 0);
}

/* The UART's invariants, read from its state under its lock. */
static void check_uart(struct machine *m)
{
	struct serial_8250 *s = &m->uart;
	pthread_mutex_lock(&s->lock);
	CHECK(s->rx_count <= SERIAL_RX_FIFO);
	CHECK(s->rx_head < SERIAL_RX_FIFO);
	CHECK(m->irq_level == (int)s->irq_level);
	pthread_mutex_unlock(&s->lock);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct machine m;
	static const uint64_t bases[] = { COM1, I8042_DATA, POWER, DEBUG_PORT_BASE };
	machine_init(&m, size > 0 && (data[0] & 0x80));
	for (size_t at = 0; at + 4 <= size; at += 4) {
		uint8_t kind = data[at], off = data[at + 1];
		uint16_t value = (uint16_t)(data[at + 2] | data[at + 3] << 8);
		unsigned dev = kind & 3, len = 1u << ((kind >> 3) & 3);
		bool write = kind & 4;
		if (kind & 0x20) {
			uint8_t b = (uint8_t)value;
			size_t space = serial_8250_rx_space(&m.uart);
			bool loop = m.uart.mcr & UART_MCR_LOOP;   /* the line is off: input dropped */
			size_t took = serial_8250_receive(&m.uart, &b, 1);
			CHECK(took == (space && !loop ? 1u : 0u));
		}
		/* Each device's range and a little past it (the bus answers there). */
		static const unsigned span[] = { 15, 1, 7, 3 };
		uint64_t addr = dev == 1 ? ((off & 1) ? I8042_CMD : I8042_DATA) + ((off >> 1) & 1)
					 : bases[dev] + (off & span[dev]);
		uint8_t buf[8];
		memset(buf, 0, sizeof(buf));
		memcpy(buf, &value, sizeof(value));
		unsigned outputs = m.outputs;
		size_t out_bytes = m.output_bytes;
		int stops = m.stops;
		bool thr_write = write && addr == COM1 + UART_RBR_THR && !(m.uart.lcr & UART_LCR_DLAB) &&
				 !(m.uart.mcr & UART_MCR_LOOP);
		io_bus_access(&m.bus, addr, buf, len, write);
		check_uart(&m);
		/* Output comes only from a THR write outside loopback, one byte. */
		CHECK(m.outputs == outputs + (thr_write ? 1u : 0u));
		CHECK(m.output_bytes == out_bytes + (thr_write ? 1u : 0u));
		if (m.stops != stops) {
			CHECK(m.stops == stops + 1);
			CHECK(write);
			switch (m.last_reason) {
			case STOP_POWEROFF:
				CHECK(addr >= POWER && addr < POWER + POWER_CTL_LEN);
				break;
			case STOP_REBOOT:
				CHECK((addr >= POWER && addr < POWER + POWER_CTL_LEN) || addr == I8042_CMD);
				break;
			case STOP_GUEST_STATUS:
				CHECK(addr == DEBUG_PORT_BASE + DEBUG_PORT_EXIT);
				CHECK(m.port.exit_allowed || m.last_status == 0);
				CHECK(m.last_status >= 0 && m.last_status <= 255);
				break;
			default:
				CHECK(!"a stop no platform register may ask for");
			}
		}
	}
	serial_8250_destroy(&m.uart);
	return 0;
}

/* Seeds: a Linux-like UART probe and console write, a reset through the
 * i8042, an ACPI S5 write, the guest port's exit and marker. */
__attribute__((constructor)) static void maybe_write_seeds(void)
{
	const char *dir = getenv("FUZZ_PLATFORM_WRITE_SEEDS");
	if (!dir)
		return;
#define W(dev, off, val) (uint8_t)(4 | (dev)), (uint8_t)(off), (uint8_t)((val) & 0xff), (uint8_t)((val) >> 8)
#define RD(dev, off) (uint8_t)(dev), (uint8_t)(off), 0, 0
#define IN(ch) (uint8_t)0x20, (uint8_t)UART_LSR, (uint8_t)(ch), 0
	static const uint8_t uart[] = {
		W(0, UART_LCR, 0x80), W(0, 0, 1), W(0, 1, 0), W(0, UART_LCR, 3), W(0, UART_IIR_FCR, 0xc7),
		W(0, UART_IER, 3), RD(0, UART_IIR_FCR), W(0, 0, 'h'), W(0, 0, 'i'), RD(0, UART_LSR), IN('x'),
		IN('y'), RD(0, UART_IIR_FCR), RD(0, 0), RD(0, 0), W(0, UART_MCR, 0x10), W(0, 0, 'l'), RD(0, 0),
		RD(0, UART_MSR), W(0, UART_SCR, 0x5a), RD(0, UART_SCR),
	};
	static const uint8_t reset[] = { RD(1, 1), W(1, 1, 0xfe) };
	static const uint8_t poweroff[] = { RD(2, 1), W(2, 0, 0x34) };
	static const uint8_t port[] = { 0x80 | 4 | 3, 1, 3, 0, W(3, 0, 7) };
	fuzz_write_seed(dir, "uart", uart, sizeof(uart));
	fuzz_write_seed(dir, "reset", reset, sizeof(reset));
	fuzz_write_seed(dir, "poweroff", poweroff, sizeof(poweroff));
	fuzz_write_seed(dir, "port", port, sizeof(port));
	exit(0);
}
