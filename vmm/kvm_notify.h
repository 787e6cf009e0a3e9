/* The VM's side of struct device_host (vmm/base/device_host.h), on KVM:
 * ioeventfds (guest notify -> eventfd), irqfds (eventfd -> guest
 * interrupt), MSI GSIs and routes from the VM's routing table, and device
 * activation and reset on the control thread. */
#ifndef MINIVMM_KVM_NOTIFY_H
#define MINIVMM_KVM_NOTIFY_H

#include <stdbool.h>

#include "vmm/base/device_host.h"

struct vm;

/* Assigns or removes n ioeventfds back to back, without any other VM-wide
 * operation in between: a device's whole set is one batch. On a failed
 * assignment the ones already made are removed again. Returns 0, or -errno
 * of the first that failed, with none registered (not logged). */
int vm_set_ioeventfds(struct vm *vm, const struct host_notifier *n, unsigned count, bool assign);

/* The device host of vm, for its devices' transports. */
struct device_host vm_device_host(struct vm *vm);

#endif
