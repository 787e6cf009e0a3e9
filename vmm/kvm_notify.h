/* KVM host notifiers and interrupt wiring for devices: ioeventfds (guest
 * notify -> eventfd) and irqfds (eventfd -> guest interrupt). */
#ifndef MINIVMM_KVM_NOTIFY_H
#define MINIVMM_KVM_NOTIFY_H

#include <stdbool.h>

#include "devices/virtio/transport.h"

struct vm;

/* Assigns or removes n ioeventfds back to back, without any other VM-wide
 * operation in between: a device's whole set is one batch. On a failed
 * assignment the ones already made are removed again. */
/* Returns 0, or -errno of the first that failed, with none registered (not logged). */
int vm_set_ioeventfds(struct vm *vm, const struct host_notifier *n, unsigned count, bool assign);
int vm_set_irqfd(struct vm *vm, int fd, unsigned gsi, bool assign);

/* The virtio_host_ops a transport uses, with the struct vm as context. */
extern const struct virtio_host_ops vm_virtio_host_ops;

#endif
