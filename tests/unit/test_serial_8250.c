#include <criterion/criterion.h>
#include <string.h>

#include "devices/serial_8250.h"

struct sink {
	char out[256];
	size_t n;
	int level;
	int edges;
};

static void out(void *ctx, const uint8_t *b, size_t len)
{
	struct sink *s = ctx;
	memcpy(s->out + s->n, b, len);
	s->n += len;
}

static void irq(void *ctx, int level)
{
	struct sink *s = ctx;
	if (level && !s->level)
		s->edges++;
	s->level = level;
}

static const struct serial_8250_ops ops = { out, irq };
static struct serial_8250 u;
static struct sink sk;

static uint8_t rd(unsigned reg)
{
	uint8_t v;
	serial_8250_io_ops.read(&u, reg, &v, 1);
	return v;
}

static void wr(unsigned reg, uint8_t v)
{
	serial_8250_io_ops.write(&u, reg, &v, 1);
}

static void setup(void)
{
	memset(&sk, 0, sizeof(sk));
	serial_8250_init(&u, &ops, &sk);
}

TestSuite(serial, .init = setup);

Test(serial, transmit_goes_to_output)
{
	wr(UART_RBR_THR, 'h');
	wr(UART_RBR_THR, 'i');
	cr_assert_eq(sk.n, 2);
	cr_assert_eq(memcmp(sk.out, "hi", 2), 0);
	cr_assert(rd(UART_LSR) & UART_LSR_THRE);
	cr_assert(rd(UART_LSR) & UART_LSR_TEMT);
}

Test(serial, divisor_latch_does_not_transmit)
{
	wr(UART_LCR, UART_LCR_DLAB);
	wr(UART_RBR_THR, 0x01);
	wr(UART_IER, 0x00);
	cr_assert_eq(rd(UART_RBR_THR), 0x01);
	cr_assert_eq(sk.n, 0);
	wr(UART_LCR, 0x03);
	cr_assert_eq(rd(UART_IER), 0, "IER untouched by DLM write");
}

Test(serial, thre_interrupt_when_enabled_and_acked_by_iir)
{
	cr_assert_eq(rd(UART_IIR_FCR) & 0x0f, UART_IIR_NO_INT);
	wr(UART_IER, UART_IER_THRI);
	cr_assert_eq(sk.level, 1, "enabling THRI with empty THR interrupts");
	cr_assert_eq(rd(UART_IIR_FCR) & 0x0f, UART_IIR_THRI);
	cr_assert_eq(sk.level, 0, "IIR read acknowledged it");
	cr_assert_eq(rd(UART_IIR_FCR) & 0x0f, UART_IIR_NO_INT);
	int edges = sk.edges;
	wr(UART_RBR_THR, 'x');
	cr_assert_eq(sk.level, 1, "a THR write makes THR empty again at once");
	cr_assert_eq(sk.edges, edges + 1);
}

Test(serial, receive_interrupt_and_fifo)
{
	wr(UART_IER, UART_IER_RDI);
	cr_assert_eq(sk.level, 0);
	cr_assert_eq(serial_8250_receive(&u, (const uint8_t *)"ab", 2), 2);
	cr_assert_eq(sk.level, 1);
	cr_assert_eq(rd(UART_IIR_FCR) & 0x0f, UART_IIR_RDI);
	cr_assert(rd(UART_LSR) & UART_LSR_DR);
	cr_assert_eq(rd(UART_RBR_THR), 'a');
	cr_assert_eq(sk.level, 1);
	cr_assert_eq(rd(UART_RBR_THR), 'b');
	cr_assert_eq(sk.level, 0);
	cr_assert_not(rd(UART_LSR) & UART_LSR_DR);
}

Test(serial, rx_priority_over_thre)
{
	wr(UART_IER, UART_IER_RDI | UART_IER_THRI);
	serial_8250_receive(&u, (const uint8_t *)"z", 1);
	cr_assert_eq(rd(UART_IIR_FCR) & 0x0f, UART_IIR_RDI);
	rd(UART_RBR_THR);
	cr_assert_eq(rd(UART_IIR_FCR) & 0x0f, UART_IIR_THRI);
}

Test(serial, fifo_full_backpressure)
{
	uint8_t big[SERIAL_RX_FIFO + 10];
	memset(big, 'q', sizeof(big));
	cr_assert_eq(serial_8250_receive(&u, big, sizeof(big)), SERIAL_RX_FIFO);
	cr_assert_eq(serial_8250_rx_space(&u), 0);
	rd(UART_RBR_THR);
	cr_assert_eq(serial_8250_rx_space(&u), 1);
	wr(UART_IIR_FCR, UART_FCR_ENABLE | UART_FCR_CLEAR_RX);
	cr_assert_eq(serial_8250_rx_space(&u), SERIAL_RX_FIFO);
	cr_assert_eq(rd(UART_IIR_FCR) & 0xc0, UART_IIR_FIFO, "16550A FIFO reported");
}

Test(serial, loopback_as_linux_autoconfig_checks)
{
	wr(UART_MCR, UART_MCR_LOOP | 0x0a);
	cr_assert_eq(rd(UART_MSR) & 0xf0, 0x90);
	wr(UART_MCR, UART_MCR_LOOP | 0x05);
	cr_assert_eq(rd(UART_MSR) & 0xf0, 0x60);
	wr(UART_RBR_THR, 'L');
	cr_assert_eq(sk.n, 0, "loopback output stays inside");
	cr_assert_eq(rd(UART_RBR_THR), 'L');
	cr_assert_eq(serial_8250_receive(&u, (const uint8_t *)"x", 1), 0, "line disconnected");
	wr(UART_MCR, 0x0b);
	cr_assert_eq(rd(UART_MSR) & 0xf0, 0xb0);
}

Test(serial, ier_readback_and_scratch)
{
	wr(UART_IER, 0xff);
	cr_assert_eq(rd(UART_IER), 0x0f);
	wr(UART_SCR, 0x5a);
	cr_assert_eq(rd(UART_SCR), 0x5a);
	wr(UART_LSR, 0x00);
	cr_assert(rd(UART_LSR) & UART_LSR_THRE, "LSR read-only");
}
