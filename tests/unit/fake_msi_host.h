/* The VM's MSI side as a PCI device sees it (struct device_host_ops), faked
 * for the MSI-X and virtio-pci tests: GSIs handed out from next_gsi, every
 * routing commit recorded, and the irqfds attached, checked the way KVM
 * checks them (no fd attached twice, detached from the GSI it is on). */
#ifndef MINIVMM_TESTS_FAKE_MSI_HOST_H
#define MINIVMM_TESTS_FAKE_MSI_HOST_H

#include <criterion/criterion.h>
#include <stdbool.h>

#include "devices/pci/msix.h"

#define FAKE_MSI_MAX_GSI 128
#define FAKE_MSI_MAX_IRQFDS 64

struct fake_msi_host {
	int next_gsi;                  /* the next GSI alloc() gives */
	int frees;
	int commits;                   /* successful routing commits */
	int routes_in_last_commit;
	bool routed[FAKE_MSI_MAX_GSI];
	struct msi_msg msg[FAKE_MSI_MAX_GSI];
	struct { int fd, gsi; } irqfds[FAKE_MSI_MAX_IRQFDS];
	int n_irqfds;
	bool fail_routes;              /* routing commits fail */
};

static inline int fake_msi_alloc(void *c)
{
	struct fake_msi_host *f = c;
	return f->next_gsi < FAKE_MSI_MAX_GSI ? f->next_gsi++ : -1;
}

static inline void fake_msi_free(void *c, unsigned gsi)
{
	(void)gsi;
	((struct fake_msi_host *)c)->frees++;
}

static inline int fake_msi_routes(void *c, const unsigned *gsi, const struct msi_msg *msg, unsigned n)
{
	struct fake_msi_host *f = c;
	if (f->fail_routes)
		return -1;
	f->commits++;
	f->routes_in_last_commit = (int)n;
	for (unsigned i = 0; i < n; i++) {
		cr_assert_lt(gsi[i], FAKE_MSI_MAX_GSI);
		f->routed[gsi[i]] = true;
		f->msg[gsi[i]] = msg[i];
	}
	return 0;
}

static inline int fake_msi_irqfd(void *c, int fd, unsigned gsi, bool assign)
{
	struct fake_msi_host *f = c;
	for (int i = 0; i < f->n_irqfds; i++) {
		if (f->irqfds[i].fd != fd)
			continue;
		cr_assert_not(assign, "fd %d attached twice (KVM says EBUSY)", fd);
		cr_assert_eq(f->irqfds[i].gsi, (int)gsi, "deassign from the GSI it is on");
		f->irqfds[i] = f->irqfds[--f->n_irqfds];
		return 0;
	}
	cr_assert(assign, "deassign of an fd that is not attached");
	cr_assert_lt(f->n_irqfds, FAKE_MSI_MAX_IRQFDS, "test bug: too many irqfds");
	f->irqfds[f->n_irqfds].fd = fd;
	f->irqfds[f->n_irqfds].gsi = (int)gsi;
	f->n_irqfds++;
	return 0;
}

/* The fake VM as MSI-X's device host (ctx: a struct fake_msi_host). */
static const struct device_host_ops fake_msi_host_ops = {
	.set_irqfd = fake_msi_irqfd,
	.alloc_gsi = fake_msi_alloc,
	.free_gsi = fake_msi_free,
	.set_msi_routes = fake_msi_routes,
};

/* The GSI fd is attached to, -1 if none. */
static inline int fake_msi_gsi_of(const struct fake_msi_host *f, int fd)
{
	for (int i = 0; i < f->n_irqfds; i++)
		if (f->irqfds[i].fd == fd)
			return f->irqfds[i].gsi;
	return -1;
}

#endif
