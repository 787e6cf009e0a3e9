/* What a device or a transport asks of the VM it sits in, in one interface:
 * queue notifiers (guest notify -> eventfd: KVM ioeventfds), interrupt
 * eventfds (eventfd -> guest interrupt: KVM irqfds), GSIs with MSI routes
 * (for MSI-X), and where device activation and reset run. The VM implements
 * it with KVM (vmm/kvm_notify.c); tests implement it with fakes. */
#ifndef MINIVMM_DEVICE_HOST_H
#define MINIVMM_DEVICE_HOST_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* One queue-notify address as KVM_IOEVENTFD needs it. */
struct host_notifier {
	uint64_t addr;
	uint32_t len;          /* access width the guest uses: 2 or 4 */
	bool pio;
	bool datamatch;
	uint64_t data;         /* the queue index, with datamatch */
	int fd;
};

/* One MSI message, as the guest wrote it into an MSI-X table entry. */
struct msi_msg {
	uint64_t addr;
	uint32_t data;
	uint32_t devid;        /* requester ID (bus << 8 | devfn): the ITS device ID on arm64 */
};

/* set_notifiers and set_irqfd return 0 or a negative errno (-1 when there
 * is none to give) and log nothing: the caller says it, naming its device,
 * as often as its rate limit lets it (a guest can make them fail on purpose). */
struct device_host_ops {
	/* Registers (assign) or removes count notifiers, all or none. */
	int (*set_notifiers)(void *ctx, const struct host_notifier *n, unsigned count, bool assign);
	/* Connects (assign) or disconnects an eventfd to an interrupt line (GSI). */
	int (*set_irqfd)(void *ctx, int fd, unsigned gsi, bool assign);
	/* MSI only (NULL elsewhere): a free GSI, or -1; giving one back (its
	 * irqfds already removed); pointing count GSIs at their messages in one
	 * routing update. */
	int (*alloc_gsi)(void *ctx);
	void (*free_gsi)(void *ctx, unsigned gsi);
	int (*set_msi_routes)(void *ctx, const unsigned *gsi, const struct msi_msg *msg, unsigned count);
	/* Optional (NULL: on the calling thread). Runs fn(arg) where device
	 * activation and reset belong, and returns its result (negative when
	 * it could not run): they open tap queues, set up vhost-net and start
	 * threads, which the vCPU that wrote the status must not be allowed
	 * to do (its seccomp filter). minivmm runs them on its control thread. */
	int (*run_control)(void *ctx, int (*fn)(void *), void *arg);
};

struct device_host {
	const struct device_host_ops *ops;
	void *ctx;
};

/* host->ops->run_control, or fn(arg) where the host has none. */
static inline int device_host_run_control(const struct device_host *host, int (*fn)(void *), void *arg)
{
	return host->ops->run_control ? host->ops->run_control(host->ctx, fn, arg) : fn(arg);
}

/* What a host op's failure says in a log line: its errno, or -1's "refused". */
static inline const char *device_host_error(int e)
{
	return e < -1 ? strerror(-e) : "refused";
}

#endif
