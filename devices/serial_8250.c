#include "devices/serial_8250.h"

#include "vmm/base/snap_format.h"

#include <string.h>

void serial_8250_init(struct serial_8250 *s, const struct serial_8250_ops *ops, void *ctx)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->ops = ops;
	s->ctx = ctx;
	s->mcr = 0x08;   /* OUT2 */
	s->dll = 0x0c;   /* 9600 baud, as after a PC reset */
}

void serial_8250_destroy(struct serial_8250 *s)
{
	pthread_mutex_destroy(&s->lock);
}

/* Highest-priority pending interrupt, as the IIR reports it. */
static uint8_t iir_locked(const struct serial_8250 *s)
{
	uint8_t fifo = (s->fcr & UART_FCR_ENABLE) ? UART_IIR_FIFO : 0;
	if ((s->ier & UART_IER_RDI) && s->rx_count)
		return fifo | UART_IIR_RDI;
	if ((s->ier & UART_IER_THRI) && s->thre_pending)
		return fifo | UART_IIR_THRI;
	return fifo | UART_IIR_NO_INT;
}

/* The ISA line is edge-triggered at the IOAPIC: drop it whenever nothing is
 * pending so the next cause makes a fresh edge. */
static void update_irq_locked(struct serial_8250 *s)
{
	bool level = !(iir_locked(s) & UART_IIR_NO_INT);
	if (level != s->irq_level) {
		s->irq_level = level;
		if (s->ops && s->ops->set_irq)
			s->ops->set_irq(s->ctx, level);
	}
}

static void rx_push_locked(struct serial_8250 *s, uint8_t c)
{
	if (s->rx_count == SERIAL_RX_FIFO)
		return;
	s->rx[(s->rx_head + s->rx_count) % SERIAL_RX_FIFO] = c;
	s->rx_count++;
}

size_t serial_8250_receive(struct serial_8250 *s, const uint8_t *buf, size_t len)
{
	pthread_mutex_lock(&s->lock);
	size_t n = 0;
	/* In loopback mode the line is disconnected from the outside world. */
	if (!(s->mcr & UART_MCR_LOOP)) {
		for (; n < len && s->rx_count < SERIAL_RX_FIFO; n++)
			rx_push_locked(s, buf[n]);
		update_irq_locked(s);
	}
	pthread_mutex_unlock(&s->lock);
	return n;
}

size_t serial_8250_rx_space(struct serial_8250 *s)
{
	pthread_mutex_lock(&s->lock);
	size_t n = SERIAL_RX_FIFO - s->rx_count;
	pthread_mutex_unlock(&s->lock);
	return n;
}

static uint8_t msr_locked(const struct serial_8250 *s)
{
	if (s->mcr & UART_MCR_LOOP) {
		/* Loopback wires DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD; Linux's
		 * autoconfig checks exactly this. */
		return (uint8_t)(((s->mcr & 0x01) << 5) | ((s->mcr & 0x02) << 3) |
				 ((s->mcr & 0x04) << 4) | ((s->mcr & 0x08) << 4));
	}
	return 0xb0;   /* DCD, DSR, CTS: a terminal is always attached */
}

static void serial_read(void *dev, uint64_t off, void *data, unsigned size)
{
	struct serial_8250 *s = dev;
	uint8_t v = 0;

	pthread_mutex_lock(&s->lock);
	switch (off) {
	case UART_RBR_THR:
		if (s->lcr & UART_LCR_DLAB) {
			v = s->dll;
		} else if (s->rx_count) {
			v = s->rx[s->rx_head];
			s->rx_head = (s->rx_head + 1) % SERIAL_RX_FIFO;
			s->rx_count--;
		}
		break;
	case UART_IER:
		v = (s->lcr & UART_LCR_DLAB) ? s->dlm : s->ier;
		break;
	case UART_IIR_FCR:
		v = iir_locked(s);
		/* Reading IIR acknowledges a THR-empty interrupt it reports. */
		if ((v & 0x0f) == UART_IIR_THRI)
			s->thre_pending = false;
		break;
	case UART_LCR:
		v = s->lcr;
		break;
	case UART_MCR:
		v = s->mcr;
		break;
	case UART_LSR:
		v = UART_LSR_THRE | UART_LSR_TEMT | (s->rx_count ? UART_LSR_DR : 0);
		break;
	case UART_MSR:
		v = msr_locked(s);
		break;
	case UART_SCR:
		v = s->scr;
		break;
	}
	update_irq_locked(s);
	pthread_mutex_unlock(&s->lock);

	memset(data, 0, size);
	*(uint8_t *)data = v;
}

static void serial_write(void *dev, uint64_t off, const void *data, unsigned size)
{
	struct serial_8250 *s = dev;
	uint8_t v = *(const uint8_t *)data;
	bool emit = false;

	pthread_mutex_lock(&s->lock);
	switch (off) {
	case UART_RBR_THR:
		if (s->lcr & UART_LCR_DLAB) {
			s->dll = v;
		} else {
			/* Transmission is instant, so THR is empty again at once. */
			if (s->mcr & UART_MCR_LOOP)
				rx_push_locked(s, v);
			else
				emit = true;
			s->thre_pending = true;
		}
		break;
	case UART_IER:
		if (s->lcr & UART_LCR_DLAB) {
			s->dlm = v;
		} else {
			/* Enabling THRI with an empty THR raises the interrupt: the
			 * 16550 does, and Linux's THRE test expects it. */
			if ((v & UART_IER_THRI) && !(s->ier & UART_IER_THRI))
				s->thre_pending = true;
			s->ier = v & 0x0f;
		}
		break;
	case UART_IIR_FCR:
		s->fcr = v & 0xc9;
		if (v & UART_FCR_CLEAR_RX)
			s->rx_head = s->rx_count = 0;
		break;
	case UART_LCR:
		s->lcr = v;
		break;
	case UART_MCR:
		s->mcr = v & 0x1f;
		break;
	case UART_SCR:
		s->scr = v;
		break;
	default:   /* LSR and MSR are read-only */
		break;
	}
	update_irq_locked(s);
	pthread_mutex_unlock(&s->lock);

	/* Output outside the lock so a slow console never blocks input. */
	if (emit && s->ops && s->ops->output)
		s->ops->output(s->ctx, &v, 1);
}

const struct io_ops serial_8250_io_ops = {
	.read = serial_read,
	.write = serial_write,
};

void serial_8250_save(struct serial_8250 *s, struct snap_writer *w)
{
	pthread_mutex_lock(&s->lock);
	uint8_t regs[7] = { s->ier, s->lcr, s->mcr, s->scr, s->dll, s->dlm, s->fcr };
	snap_put_bytes(w, regs, sizeof(regs));
	snap_put_u8(w, s->thre_pending);
	snap_put_u32(w, s->rx_count);
	for (unsigned i = 0; i < s->rx_count; i++)
		snap_put_u8(w, s->rx[(s->rx_head + i) % SERIAL_RX_FIFO]);
	pthread_mutex_unlock(&s->lock);
}

int serial_8250_load(struct serial_8250 *s, struct snap_reader *r)
{
	uint8_t regs[7], rx[SERIAL_RX_FIFO];
	snap_get_bytes(r, regs, sizeof(regs));
	bool thre = snap_get_u8(r) != 0;
	uint32_t n = snap_get_bounded(r, SERIAL_RX_FIFO, "UART receive FIFO fill");
	snap_get_bytes(r, rx, n);
	if (snap_failed(r))
		return -1;
	pthread_mutex_lock(&s->lock);
	s->ier = regs[0] & 0x0f;
	s->lcr = regs[1];
	s->mcr = regs[2] & 0x1f;
	s->scr = regs[3];
	s->dll = regs[4];
	s->dlm = regs[5];
	s->fcr = regs[6];
	s->thre_pending = thre;
	memcpy(s->rx, rx, n);
	s->rx_head = 0;
	s->rx_count = n;
	s->irq_level = false;   /* the saved irqchip has the line's state: update only if it changes */
	update_irq_locked(s);
	pthread_mutex_unlock(&s->lock);
	return 0;
}
