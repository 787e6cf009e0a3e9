/*
 * mvexit STATUS: end the VM with STATUS (0-255) as the VMM's exit status.
 * mvexit --mark N MS: write boot marker N (0-255) to the guest port every MS milliseconds,
 *   forever. The rig's benchmarks time a guest to its first marker: after a cold boot, and
 *   after a restore, where the first marker comes as soon as the guest runs again. QEMU gets
 *   the same byte with -device isa-debugcon,iobase=0x4f1.
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
#include <time.h>
#include <unistd.h>

#define GUEST_EXIT_PORT 0x4f0
#define GUEST_MARKER_PORT 0x4f1

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

static int write_port(unsigned port, unsigned char value)
{
	if (ioperm(port, 1, 1) == 0) {
		outb(value, port);
		return 0;
	}
	int ioperm_errno = errno;
	int fd = open("/dev/port", O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "mvexit: cannot reach port 0x%x: ioperm: %s; /dev/port: %s\n",
			port, strerror(ioperm_errno), strerror(errno));
		return -1;
	}
	ssize_t n = pwrite(fd, &value, 1, port);
	int write_errno = errno;
	close(fd);
	if (n != 1) {
		fprintf(stderr, "mvexit: write to /dev/port at 0x%x failed: %s\n", port,
			n < 0 ? strerror(write_errno) : "short write");
		return -1;
	}
	return 0;
}

/* The markers go through /dev/port (the kernel's outb), not ioperm: in the
 * nested rig a restored guest's user-mode OUT faults, as the emulated CPU
 * (QEMU TCG) checks the I/O bitmap only through a TSS of type "available"
 * while KVM reports and restores it "busy", as real CPUs hold it
 * (docs/snapshots.md). */
static int mark_forever(const char *marker, const char *period_ms)
{
	unsigned char v, ms;
	if (parse_status(marker, &v) || parse_status(period_ms, &ms) || ms == 0) {
		fprintf(stderr, "usage: mvexit --mark N MS   (N 0-255, MS 1-255)\n");
		return 2;
	}
	int fd = open("/dev/port", O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "mvexit: /dev/port: %s\n", strerror(errno));
		return 1;
	}
	struct timespec period = { .tv_sec = 0, .tv_nsec = ms * 1000000L };
	for (;;) {
		if (pwrite(fd, &v, 1, GUEST_MARKER_PORT) != 1) {
			fprintf(stderr, "mvexit: write to /dev/port at 0x%x failed: %s\n", GUEST_MARKER_PORT,
				strerror(errno));
			return 1;
		}
		nanosleep(&period, NULL);
	}
}

int main(int argc, char **argv)
{
	unsigned char status;

	if (argc == 4 && !strcmp(argv[1], "--mark"))
		return mark_forever(argv[2], argv[3]);
	if (argc != 2 || parse_status(argv[1], &status)) {
		fprintf(stderr, "usage: mvexit STATUS   (STATUS 0-255; got %s)\n",
			argc > 1 ? argv[1] : "nothing");
		return 2;
	}
	fflush(NULL);
	sync();
	drain_console();
	if (write_port(GUEST_EXIT_PORT, status))
		return 1;
	/* minivmm stops the vCPUs asynchronously: give it time before calling this a failure. */
	sleep(5);
	fprintf(stderr, "mvexit: the VM is still running after writing port 0x%x: not minivmm?\n",
		GUEST_EXIT_PORT);
	return 1;
}
