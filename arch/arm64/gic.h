/* The guest's interrupt controller: KVM's vGICv3 (distributor plus one
 * redistributor per vCPU) and, when the host KVM offers one, a virtual ITS
 * that turns MSI writes from PCI devices into LPIs. */
#ifndef MINIVMM_ARM64_GIC_H
#define MINIVMM_ARM64_GIC_H

#include <stdbool.h>

struct arm64_gic {
	int fd;          /* KVM_DEV_TYPE_ARM_VGIC_V3 device, -1 when none */
	int its_fd;      /* KVM_DEV_TYPE_ARM_VGIC_ITS device, -1 when none */
};

/* Creates and initialises the vGICv3 at the layout.h addresses for n_cpus
 * redistributors, then the ITS if KVM has one (its absence is not an error:
 * g->its_fd stays -1). Every vCPU must exist already (KVM refuses new
 * vCPUs once the vGIC is initialised). Logs and returns -1 on failure. */
int arm64_gic_create(struct arm64_gic *g, int vm_fd, unsigned n_cpus);
void arm64_gic_destroy(struct arm64_gic *g);

static inline bool arm64_gic_has_its(const struct arm64_gic *g)
{
	return g->its_fd >= 0;
}

#endif
