/*
 * mvexit STATUS: end the VM with STATUS (0-255) as the VMM's exit status.
 *
 * Installed in the guest initramfs as /usr/bin/mvexit (guest-images/build.sh compiles every
 * tests/e2e/guest/NAME.c statically). It writes STATUS to minivmm's guest port, I/O port 0x4f0
 * (README "Guest port"); QEMU does the same with -device isa-debug-exit,iobase=0x4f0 (exiting
 * with STATUS * 2 + 1 there).
 *
 * Before the write it waits for the console to drain: the 8250 driver sends from a buffer
 * under interrupts, so the last lines a command printed may still be in the guest when the
 * VM stops, and would be lost.
 *
 * The port is reached with ioperm + outb; kernels built without X86_IOPL_IOPERM (our minimal
 * kernel: tinyconfig turns it off) refuse ioperm with ENOSYS, so /dev/port (DEVPORT) is the
 * fallback. Exit status 1 with a message if the VM is still running afterwards (nothing
 * listens at the port): the caller then powers off the usual way.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <termios.h>
#include <unistd.h>

#define GUEST_EXIT_PORT 0x4f0

static int parse_status(const char *s, unsigned char *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > 255)
		return -1;
	*out = (unsigned char)v;
	return 0;
}

/* Wait until everything written to the console has left the UART. */
static void drain_console(void)
{
	int fd = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return;
	tcdrain(fd);
	close(fd);
}

static int write_port(unsigned char status)
{
	if (ioperm(GUEST_EXIT_PORT, 1, 1) == 0) {
		outb(status, GUEST_EXIT_PORT);
		return 0;
	}
	int ioperm_errno = errno;
	int fd = open("/dev/port", O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "mvexit: cannot reach port 0x%x: ioperm: %s; /dev/port: %s\n",
			GUEST_EXIT_PORT, strerror(ioperm_errno), strerror(errno));
		return -1;
	}
	ssize_t n = pwrite(fd, &status, 1, GUEST_EXIT_PORT);
	int write_errno = errno;
	close(fd);
	if (n != 1) {
		fprintf(stderr, "mvexit: write to /dev/port at 0x%x failed: %s\n", GUEST_EXIT_PORT,
			n < 0 ? strerror(write_errno) : "short write");
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	unsigned char status;

	if (argc != 2 || parse_status(argv[1], &status)) {
		fprintf(stderr, "usage: mvexit STATUS   (STATUS 0-255; got %s)\n",
			argc > 1 ? argv[1] : "nothing");
		return 2;
	}
	fflush(NULL);
	sync();
	drain_console();
	if (write_port(status))
		return 1;
	/* minivmm stops the vCPUs asynchronously: give it time before calling this a failure. */
	sleep(5);
	fprintf(stderr, "mvexit: the VM is still running after writing port 0x%x: not minivmm?\n",
		GUEST_EXIT_PORT);
	return 1;
}
