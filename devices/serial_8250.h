/* 16550A-compatible UART with receive and THR-empty interrupts. It knows
 * nothing about KVM or terminals: output, and the interrupt line, go
 * through the callbacks it is given. */
#ifndef MINIVMM_SERIAL_8250_H
#define MINIVMM_SERIAL_8250_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/base/io_bus.h"

#define SERIAL_RX_FIFO 64

struct serial_8250_ops {
	void (*output)(void *ctx, const uint8_t *buf, size_t len);
	void (*set_irq)(void *ctx, int level);
};

struct serial_8250 {
	pthread_mutex_t lock;         /* vCPU exits and console input race here */
	const struct serial_8250_ops *ops;
	void *ctx;

	uint8_t ier, lcr, mcr, scr, dll, dlm, fcr;
	bool thre_pending;            /* THR-empty interrupt latched, cleared by IIR read or THR write */
	bool irq_level;
	uint8_t rx[SERIAL_RX_FIFO];
	unsigned rx_head, rx_count;
};

extern const struct io_ops serial_8250_io_ops;

void serial_8250_init(struct serial_8250 *s, const struct serial_8250_ops *ops, void *ctx);
void serial_8250_destroy(struct serial_8250 *s);
/* Queues bytes for the guest to read; returns how many fit in the FIFO. */
size_t serial_8250_receive(struct serial_8250 *s, const uint8_t *buf, size_t len);
size_t serial_8250_rx_space(struct serial_8250 *s);

/* Snapshots: the registers and the receive FIFO. load checks every field
 * (-1 with the reader failed) and then sets the interrupt line as the
 * registers say. */
struct snap_writer;
struct snap_reader;
void serial_8250_save(struct serial_8250 *s, struct snap_writer *w);
int serial_8250_load(struct serial_8250 *s, struct snap_reader *r);

/* Register offsets and bits, shared with the tests. */
enum {
	UART_RBR_THR = 0, UART_IER = 1, UART_IIR_FCR = 2, UART_LCR = 3,
	UART_MCR = 4, UART_LSR = 5, UART_MSR = 6, UART_SCR = 7,
};
#define UART_IER_RDI   0x01
#define UART_IER_THRI  0x02
#define UART_IIR_NO_INT 0x01
#define UART_IIR_THRI  0x02
#define UART_IIR_RDI   0x04
#define UART_IIR_FIFO  0xc0
#define UART_LCR_DLAB  0x80
#define UART_MCR_LOOP  0x10
#define UART_LSR_DR    0x01
#define UART_LSR_THRE  0x20
#define UART_LSR_TEMT  0x40
#define UART_FCR_ENABLE 0x01
#define UART_FCR_CLEAR_RX 0x02

#endif
