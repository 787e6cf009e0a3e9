#include "vmm/kvm_notify.h"

#include <errno.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vmm/base/log.h"
#include "vmm/vm.h"

static int ioeventfd(struct vm *vm, const struct host_notifier *n, bool assign)
{
	struct kvm_ioeventfd io = {
		.datamatch = n->data,
		.addr = n->addr,
		.len = n->len,
		.fd = n->fd,
		.flags = (n->pio ? KVM_IOEVENTFD_FLAG_PIO : 0u) |
			 (n->datamatch ? KVM_IOEVENTFD_FLAG_DATAMATCH : 0u) |
			 (assign ? 0u : KVM_IOEVENTFD_FLAG_DEASSIGN),
	};
	return ioctl(vm->fd, KVM_IOEVENTFD, &io);
}

int vm_set_ioeventfds(struct vm *vm, const struct host_notifier *n, unsigned count, bool assign)
{
	for (unsigned i = 0; i < count; i++) {
		if (ioeventfd(vm, &n[i], assign) == 0)
			continue;
		int e = errno;
		if (!assign) {
			log_warn("KVM_IOEVENTFD deassign 0x%llx: %s", (unsigned long long)n[i].addr, strerror(e));
			continue;   /* remove as many as we can */
		}
		/* The caller says it, naming the device, as often as its
		 * rate limit lets it (a guest can move a BAR onto another's). */
		while (i--)
			ioeventfd(vm, &n[i], false);
		return -e;
	}
	return 0;
}

static int host_set_notifiers(void *ctx, const struct host_notifier *n, unsigned count, bool assign)
{
	return vm_set_ioeventfds(ctx, n, count, assign);
}

static int host_set_irqfd(void *ctx, int fd, unsigned gsi, bool assign)
{
	struct vm *vm = ctx;
	return kvm_irqfd(vm->fd, fd, gsi, assign);
}

static int host_alloc_gsi(void *ctx)
{
	struct vm *vm = ctx;
	return msi_routes_alloc_gsi(&vm->devices.msi_routes);
}

static void host_free_gsi(void *ctx, unsigned gsi)
{
	struct vm *vm = ctx;
	msi_routes_free_gsi(&vm->devices.msi_routes, gsi);
}

static int host_set_msi_routes(void *ctx, const unsigned *gsi, const struct msi_msg *msg, unsigned count)
{
	struct vm *vm = ctx;
	return msi_routes_set(&vm->devices.msi_routes, gsi, msg, count);
}

static int host_run_control(void *ctx, int (*fn)(void *), void *arg)
{
	struct vm *vm = ctx;
	return vm_threads_call(&vm->threads, fn, arg);
}

static const struct device_host_ops vm_device_host_ops = {
	.set_notifiers = host_set_notifiers,
	.set_irqfd = host_set_irqfd,
	.alloc_gsi = host_alloc_gsi,
	.free_gsi = host_free_gsi,
	.set_msi_routes = host_set_msi_routes,
	.run_control = host_run_control,
};

struct device_host vm_device_host(struct vm *vm)
{
	return (struct device_host){ &vm_device_host_ops, vm };
}
