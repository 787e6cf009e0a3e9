/* The VM's GSI routing table, owned in one place.
 *
 * KVM_SET_GSI_ROUTING replaces the whole table, so whoever changes one
 * route must write all of them. This object keeps the full table: the
 * default routes of the in-kernel irqchip, which the architecture hands in
 * (arch_default_irq_routes: on x86 the IOAPIC and PIC pins exactly as KVM's
 * default_routing, so KVM_IRQ_LINE and the in-kernel PIT keep working; on
 * arm64 one route per GIC SPI), plus one MSI route per GSI handed out by
 * msi_routes_alloc_gsi (from the first GSI above the defaults). Every change
 * rewrites the table under a mutex; nothing else in the VMM may call
 * KVM_SET_GSI_ROUTING.
 *
 * When KVM says MSIs need a device ID (KVM_CAP_MSI_DEVID on the VM: arm64
 * with a GICv3 ITS), each MSI route carries the message's devid with
 * KVM_MSI_VALID_DEVID; elsewhere devid is ignored.
 *
 * A GSI allocated but never routed is left out of the table; freeing one
 * drops its route at the next commit (nothing may still use it: MSI-X
 * removes its irqfds first).
 *
 * The VM's device host (vmm/kvm_notify.c) hands its GSIs and routes to the
 * PCI functions' MSI-X. */
#ifndef MINIVMM_MSI_ROUTES_H
#define MINIVMM_MSI_ROUTES_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/base/device_host.h"
#include "vmm/base/log_limit.h"

#define MSI_ROUTES_MAX_GSI 4096     /* KVM_MAX_IRQ_ROUTES */
#define MSI_ROUTES_MAX_DEFAULTS 128

struct msi_route {
	bool allocated;
	bool routed;
	struct msi_msg msg;
};

struct msi_routes {
	pthread_mutex_t lock;
	int vm_fd;
	bool msi_devid;                  /* KVM_CAP_MSI_DEVID: MSI routes carry a device ID */
	struct kvm_irq_routing_entry defaults[MSI_ROUTES_MAX_DEFAULTS];
	unsigned n_defaults;
	unsigned first_gsi;              /* first MSI GSI: above every default route */
	unsigned n_slots;                /* routes[i] is GSI first_gsi + i */
	struct msi_route *routes;
	void *table;                     /* struct kvm_irq_routing, rebuilt at each commit */
	unsigned table_cap;
	unsigned commits;                /* KVM_SET_GSI_ROUTING calls so far */
	struct log_limit log_limit;      /* failures a guest's MSI-X writes can repeat */
};

/* vm_fd: a VM with its in-kernel irqchip created (and on arm64 its ITS, if
 * any). defaults: the n routes the irqchip has by default, kept in every
 * table written (at most MSI_ROUTES_MAX_DEFAULTS). Nothing is written to KVM
 * until the first route is set. Returns 0 or -1. */
int msi_routes_init(struct msi_routes *r, int vm_fd, const struct kvm_irq_routing_entry *defaults, unsigned n);
void msi_routes_destroy(struct msi_routes *r);

/* A free GSI (>= first_gsi), or -1 when all are taken. */
int msi_routes_alloc_gsi(struct msi_routes *r);
void msi_routes_free_gsi(struct msi_routes *r, unsigned gsi);
/* Sets the MSI routes of count allocated GSIs and commits the whole table
 * once. Returns 0, or -1 (logged) when KVM refused it; KVM then keeps its
 * previous table, and so does this object. */
int msi_routes_set(struct msi_routes *r, const unsigned *gsi, const struct msi_msg *msg, unsigned count);

#endif
