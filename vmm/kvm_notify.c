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

int vm_set_irqfd(struct vm *vm, int fd, unsigned gsi, bool assign)
{
	struct kvm_irqfd irqfd = { .fd = (uint32_t)fd, .gsi = gsi, .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN };
	if (ioctl(vm->fd, KVM_IRQFD, &irqfd) < 0) {
		log_error("KVM_IRQFD (gsi %u): %s", gsi, strerror(errno));
		return -1;
	}
	return 0;
}

static int host_set_notifiers(void *host, const struct host_notifier *n, unsigned count, bool assign)
{
	return vm_set_ioeventfds(host, n, count, assign);
}

static int host_set_irqfd(void *host, int fd, unsigned gsi, bool assign)
{
	return vm_set_irqfd(host, fd, gsi, assign);
}

static int host_run_control(void *host, int (*fn)(void *), void *arg)
{
	struct vm *vm = host;
	return vm_threads_call(&vm->threads, fn, arg);
}

const struct virtio_host_ops vm_virtio_host_ops = {
	.run_control = host_run_control,
	.set_notifiers = host_set_notifiers,
	.set_irqfd = host_set_irqfd,
};
