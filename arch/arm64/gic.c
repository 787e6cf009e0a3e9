/* Order, as Documentation/virt/kvm/devices/arm-vgic-v3.rst and
 * arm-vgic-its.rst ask: vCPUs created (and KVM_ARM_VCPU_INIT done, as QEMU
 * does) -> create the vGICv3 -> distributor and redistributor addresses ->
 * number of IRQs -> create the ITS and set its address -> CTRL_INIT of the
 * vGIC, then of the ITS. The ITS exists before the vGIC is initialised so
 * that the distributor advertises LPIs (GICD_TYPER.LPIS) from the start. */
#include "arch/arm64/gic.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "arch/arm64/layout.h"
#include "vmm/base/log.h"

static int set_attr(int fd, uint32_t group, uint64_t attr, const void *val)
{
	struct kvm_device_attr a = { .group = group, .attr = attr, .addr = (uint64_t)(uintptr_t)val };
	return ioctl(fd, KVM_SET_DEVICE_ATTR, &a);
}

static int create_device(int vm_fd, uint32_t type)
{
	struct kvm_create_device d = { .type = type };
	if (ioctl(vm_fd, KVM_CREATE_DEVICE, &d) < 0)
		return -1;
	return (int)d.fd;
}

/* The ITS is optional: without it the VM has no MSIs, so no virtio-pci
 * (devices fall back to virtio-mmio). Returns the fd or -1. */
static int create_its(int vm_fd)
{
	int fd = create_device(vm_fd, KVM_DEV_TYPE_ARM_VGIC_ITS);
	if (fd < 0) {
		log_info("KVM has no GICv3 ITS here (%s): no MSIs, virtio devices use virtio-mmio", strerror(errno));
		return -1;
	}
	uint64_t base = ARM64_GITS_BASE;
	if (set_attr(fd, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_ITS_ADDR_TYPE, &base) < 0) {
		log_warn("vGIC ITS: setting its address 0x%llx: %s; going on without MSIs",
			 (unsigned long long)base, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int arm64_gic_create(struct arm64_gic *g, int vm_fd, unsigned n_cpus)
{
	g->fd = g->its_fd = -1;
	/* Unreachable from the command line (vm_create allows at most 254
	 * vCPUs): a layout that no longer fits them is a bug here. */
	if (n_cpus > ARM64_GICR_MAX_CPUS) {
		log_error("internal: %u vCPUs; the redistributor region holds at most %d", n_cpus, ARM64_GICR_MAX_CPUS);
		return -1;
	}
	g->fd = create_device(vm_fd, KVM_DEV_TYPE_ARM_VGIC_V3);
	if (g->fd < 0) {
		log_error("KVM_CREATE_DEVICE (vGICv3): %s%s", strerror(errno),
			  errno == ENODEV ? " (this host cannot emulate a GICv3: a GICv2-only host?)" : "");
		return -1;
	}
	uint64_t dist = ARM64_GICD_BASE, redist = ARM64_GICR_BASE;
	uint32_t nr_irqs = ARM64_GIC_NR_IRQS;
	if (set_attr(g->fd, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, &dist) < 0) {
		log_error("vGICv3: distributor address 0x%llx: %s", (unsigned long long)dist, strerror(errno));
		return -1;
	}
	if (set_attr(g->fd, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, &redist) < 0) {
		log_error("vGICv3: redistributor address 0x%llx: %s", (unsigned long long)redist, strerror(errno));
		return -1;
	}
	if (set_attr(g->fd, KVM_DEV_ARM_VGIC_GRP_NR_IRQS, 0, &nr_irqs) < 0) {
		log_error("vGICv3: %u interrupts: %s", nr_irqs, strerror(errno));
		return -1;
	}
	g->its_fd = create_its(vm_fd);
	if (set_attr(g->fd, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT, NULL) < 0) {
		log_error("vGICv3: KVM_DEV_ARM_VGIC_CTRL_INIT: %s", strerror(errno));
		return -1;
	}
	if (g->its_fd >= 0 && set_attr(g->its_fd, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT, NULL) < 0) {
		log_error("vGIC ITS: KVM_DEV_ARM_VGIC_CTRL_INIT: %s", strerror(errno));
		return -1;
	}
	return 0;
}

void arm64_gic_destroy(struct arm64_gic *g)
{
	if (g->its_fd >= 0)
		close(g->its_fd);
	if (g->fd >= 0)
		close(g->fd);
	g->fd = g->its_fd = -1;
}
