#include "vmm/kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vmm/arch.h"
#include "vmm/base/log.h"

static const struct kvm_cap_need generic_caps[] = {
	{ KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY" },
	{ KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD" },
	{ KVM_CAP_IRQFD, "KVM_CAP_IRQFD" },
	{ KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING" },
	{ KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT" },
	{ 0, NULL },
};

bool kvm_host_is_pvm(void)
{
	return access("/sys/module/kvm_pvm", F_OK) == 0;
}

static int check_caps(int fd, const struct kvm_cap_need *caps)
{
	for (; caps->name; caps++) {
		if (ioctl(fd, KVM_CHECK_EXTENSION, caps->cap) <= 0) {
			log_error("/dev/kvm lacks %s, which minivmm needs (host kernel too old?)", caps->name);
			return -1;
		}
	}
	return 0;
}

int kvm_host_open(struct kvm_host *h)
{
	const char *path = getenv("MINIVMM_KVM_DEVICE");
	if (!path || !*path)
		path = "/dev/kvm";

	memset(h, 0, sizeof(*h));
	h->fd = open(path, O_RDWR | O_CLOEXEC);
	if (h->fd < 0) {
		int e = errno;
		if (e == ENOENT)
			log_error("%s does not exist: KVM is not available on this host "
				  "(enable virtualization; on x86 load kvm_intel or kvm_amd)", path);
		else if (e == EACCES || e == EPERM)
			log_error("%s: permission denied (add your user to the 'kvm' group or run as root)", path);
		else
			log_error("%s: %s", path, strerror(e));
		return -1;
	}
	int api = ioctl(h->fd, KVM_GET_API_VERSION, 0);
	if (api != KVM_API_VERSION) {
		log_error("%s: KVM API version %d, minivmm needs %d", path, api, KVM_API_VERSION);
		goto fail;
	}
	if (check_caps(h->fd, generic_caps) || check_caps(h->fd, arch_required_caps))
		goto fail;
	h->vcpu_mmap_size = ioctl(h->fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (h->vcpu_mmap_size <= 0) {
		log_error("%s: KVM_GET_VCPU_MMAP_SIZE failed: %s", path, strerror(errno));
		goto fail;
	}
	h->max_vcpus = ioctl(h->fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (h->max_vcpus <= 0)
		h->max_vcpus = ioctl(h->fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	if (h->max_vcpus <= 0)
		h->max_vcpus = 4;   /* what the KVM API documents when both are absent */
	h->pvm = kvm_host_is_pvm();
	return 0;
fail:
	close(h->fd);
	h->fd = -1;
	return -1;
}

void kvm_host_close(struct kvm_host *h)
{
	if (h->fd >= 0)
		close(h->fd);
	h->fd = -1;
}

int kvm_irqfd(int vm_fd, int fd, unsigned gsi, bool assign)
{
	struct kvm_irqfd irqfd = { .fd = (uint32_t)fd, .gsi = gsi, .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN };
	return ioctl(vm_fd, KVM_IRQFD, &irqfd) < 0 ? -errno : 0;
}
