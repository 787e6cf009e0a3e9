/* The VM's GSI routing table, owned in one place.
 *
 * KVM_SET_GSI_ROUTING replaces the whole table, so whoever changes one
 * route must write all of them. This object keeps the full table: the
 * default routes KVM_CREATE_IRQCHIP installs (GSI i -> IOAPIC pin i for
 * 0-23, and GSI i -> PIC pin i%8 of the master/slave PIC for 0-15, exactly
 * KVM's default_routing on x86, so KVM_IRQ_LINE and the in-kernel PIT keep
 * working), plus one MSI route per GSI handed out by msi_routes_alloc_gsi
 * (24 and up). Every change rewrites the table under a mutex; nothing else
 * in the VMM may call KVM_SET_GSI_ROUTING.
 *
 * A GSI allocated but never routed is left out of the table; freeing one
 * drops its route at the next commit (nothing may still use it: MSI-X
 * removes its irqfds first).
 *
 * It also implements struct pci_msi_host_ops (devices/pci/msix.h) for the
 * real VM: GSIs, routes, and KVM_IRQFD on the VM fd. */
#ifndef MINIVMM_MSI_ROUTES_H
#define MINIVMM_MSI_ROUTES_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/pci/msix.h"

#define MSI_ROUTES_FIRST_GSI 24
#define MSI_ROUTES_MAX_GSI 4096     /* KVM_MAX_IRQ_ROUTES on x86 */

struct msi_route {
	bool allocated;
	bool routed;
	struct msi_msg msg;
};

struct msi_routes {
	pthread_mutex_t lock;
	int vm_fd;
	unsigned n_slots;                /* routes[i] is GSI MSI_ROUTES_FIRST_GSI + i */
	struct msi_route *routes;
	void *table;                     /* struct kvm_irq_routing, rebuilt at each commit */
	unsigned table_cap;
	unsigned commits;                /* KVM_SET_GSI_ROUTING calls so far */
};

/* vm_fd: a VM with an in-kernel irqchip (KVM_CREATE_IRQCHIP done). Nothing
 * is written to KVM until the first route is set. Returns 0 or -1. */
int msi_routes_init(struct msi_routes *r, int vm_fd);
void msi_routes_destroy(struct msi_routes *r);

/* A free GSI (>= MSI_ROUTES_FIRST_GSI), or -1 when all are taken. */
int msi_routes_alloc_gsi(struct msi_routes *r);
void msi_routes_free_gsi(struct msi_routes *r, unsigned gsi);
/* Sets the MSI routes of count allocated GSIs and commits the whole table
 * once. Returns 0, or -1 (logged) when KVM refused it; KVM then keeps its
 * previous table, and so does this object. */
int msi_routes_set(struct msi_routes *r, const unsigned *gsi, const struct msi_msg *msg, unsigned count);

/* The pci_msi_host_ops of the real VM; ctx is the struct msi_routes. */
extern const struct pci_msi_host_ops vm_msi_host_ops;

#endif
