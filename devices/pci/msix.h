/* MSI-X for one PCI function: the vector table and pending bit array (both
 * in a BAR of the device), the enable and function-mask bits of the
 * capability's message control, and delivery of every vector through KVM.
 *
 * Delivery. Vector v owns one GSI (allocated at init) whose routing entry
 * is the MSI message of table entry v. Interrupt sources are "users":
 * eventfds that device threads or vhost signal (virtio-pci: each queue's
 * call eventfd, and one for config changes). A user names at most one
 * vector; while that vector is deliverable (MSI-X enabled, function not
 * masked, entry not masked) the user's eventfd is connected to the
 * vector's GSI with an irqfd, so an interrupt goes eventfd -> KVM -> guest
 * with no VMM thread in between. Several users may share a vector (several
 * irqfds on one GSI).
 *
 * Masking. When a vector stops being deliverable, its users' irqfds are
 * removed (QEMU does the same). A signal that comes while it is masked
 * stays in the eventfd's counter: a PBA read reports it as the pending bit
 * (poll, nothing consumed), and at unmask the irqfd is connected again and
 * KVM, finding the eventfd already signalled, injects the interrupt at once
 * (kvm_irqfd_assign polls the eventfd). Nothing is lost, nothing arrives
 * while masked.
 *
 * Routes. A vector's route is written only when the vector is deliverable,
 * has users, and its message differs from the one KVM holds: all such
 * vectors go in one routing-table commit. Linux masks an entry while it
 * rewrites the message, so that is one commit per vector at driver setup
 * and per IRQ affinity change, never per I/O.
 *
 * Locking: one mutex per function. Callers may hold the PCI host lock and
 * the virtio transport lock (in that order) when they call in. */
#ifndef MINIVMM_PCI_MSIX_H
#define MINIVMM_PCI_MSIX_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/base/device_host.h"

#define MSIX_NO_VECTOR 0xffff
#define MSIX_ENTRY_SIZE 16
#define MSIX_MAX_VECTORS 2048

/* Table entry fields. */
#define MSIX_ENTRY_ADDR_LO 0
#define MSIX_ENTRY_ADDR_HI 4
#define MSIX_ENTRY_DATA 8
#define MSIX_ENTRY_CTRL 12
#define MSIX_ENTRY_CTRL_MASKBIT 1

struct msix_vector {
	uint32_t entry[4];          /* addr lo, addr hi, data, vector control, as the guest wrote them */
	unsigned gsi;
	bool routed;                /* KVM's route for gsi carries routed_msg */
	struct msi_msg routed_msg;
};

struct msix_user {
	int fd;                     /* eventfd the device signals; -1: none */
	uint16_t vector;            /* MSIX_NO_VECTOR: none */
	int attached_gsi;           /* irqfd connected to this GSI, or -1 */
};

struct msix {
	pthread_mutex_t lock;
	const char *name;
	unsigned n_vectors;
	struct msix_vector *vectors;
	unsigned n_users;
	struct msix_user *users;
	uint32_t devid;                  /* requester ID every message carries (pci_host_add sets it) */
	bool enabled, function_masked;   /* message control */
	atomic_bool enabled_flag;        /* same as enabled, readable without the lock */
	struct device_host host;         /* GSIs, MSI routes and irqfds */
	/* scratch for one routing update */
	unsigned *scratch_gsi;
	struct msi_msg *scratch_msg;
	unsigned *scratch_users;
	bool warned;
};

/* n_vectors table entries (all masked), n_users users (no fd, no vector).
 * Allocates one GSI per vector. Returns -1 (logged) on failure; call
 * msix_destroy either way. */
int msix_init(struct msix *m, const char *name, unsigned n_vectors, unsigned n_users,
	      const struct device_host *host);
/* Removes every irqfd and gives the GSIs back. Call while the user fds are
 * still open. */
void msix_destroy(struct msix *m);

/* The function's requester ID, which its messages carry as devid. Set when
 * the function gets its place on the bus, before the guest runs. */
void msix_set_devid(struct msix *m, uint32_t devid);

/* Sets the eventfd of user u (before the user gets a vector). */
void msix_set_user_fd(struct msix *m, unsigned u, int fd);
/* Connects user u to vector (MSIX_NO_VECTOR: to none). A vector beyond the
 * table counts as none. Returns the vector now in use, which is what the
 * virtio registers read back. */
uint16_t msix_set_user_vector(struct msix *m, unsigned u, uint16_t vector);

/* The capability's message control was written. */
void msix_control_write(struct msix *m, uint16_t control);
/* Table and PBA accesses, offsets from their start; 4-byte accesses at
 * 4-byte offsets and 8-byte ones at 8-byte offsets, anything else reads 0
 * and is ignored. */
void msix_table_read(struct msix *m, uint64_t off, void *data, unsigned size);
void msix_table_write(struct msix *m, uint64_t off, const void *data, unsigned size);
void msix_pba_read(struct msix *m, uint64_t off, void *data, unsigned size);

/* Whether the guest enabled MSI-X; lock-free, for interrupt paths. */
bool msix_enabled(struct msix *m);

#endif
