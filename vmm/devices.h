/* The device manager: the VM's virtio devices, the transport each sits on,
 * the PCI bus and the GSI routing table their interrupts use. vmm/devices.c
 * owns them: it builds the devices named on the command line and removes
 * them (joining their threads) before guest memory goes away. */
#ifndef MINIVMM_DEVICES_H
#define MINIVMM_DEVICES_H

#include "devices/pci/pci_host.h"
#include "vmm/msi_routes.h"

#define VM_MAX_VIRTIO 16

struct virtio_blk;
struct virtio_mmio;
struct virtio_net;
struct virtio_pci;
struct virtio_rng;
struct virtio_vsock;

/* What the control socket's "info" shows of a device. */
struct vm_device_desc {
	const char *name;        /* "blk0", "net1" */
	const char *type;        /* "virtio-blk", "virtio-net", "virtio-vsock", "virtio-rng" */
	const char *transport;   /* "mmio", "pci" */
	struct virtio_mmio *mmio;   /* the transport it sits on: one of the two */
	struct virtio_pci *pci;
};

struct vm_devices {
	struct virtio_blk *blks[VM_MAX_VIRTIO];
	unsigned n_blks;
	struct virtio_net *nets[VM_MAX_VIRTIO];
	unsigned n_nets;
	struct virtio_vsock *vsock;       /* --vsock, or NULL */
	struct virtio_rng *rng;           /* --rng, or NULL */
	struct virtio_mmio *mmio[VM_MAX_VIRTIO];
	unsigned n_mmio;
	struct virtio_pci *vpci[VM_MAX_VIRTIO];
	unsigned n_vpci;
	struct pci_host pci;              /* bus 0: config mechanism 1 or ECAM + the BAR window */
	struct msi_routes msi_routes;     /* the VM's whole GSI routing table */
	char names[VM_MAX_VIRTIO * 2][16];
	unsigned n_names;
	struct vm_device_desc descs[VM_MAX_VIRTIO * 2];   /* every device attached, in order */
	unsigned n_descs;
};

/* The fds each tap queue and vhost-net instance of every NIC uses (the
 * sandbox allows their ioctls on exactly these): fills at most max of each,
 * sets *n_taps and *n_vhost. */
void vm_devices_net_fds(const struct vm_devices *d, int *taps, unsigned max_taps, unsigned *n_taps, int *vhost,
			unsigned max_vhost, unsigned *n_vhost);
/* Start-up is over: says what devices chose when they were made (each
 * disk's engine=auto), one line each. */
void vm_devices_log_choices(struct vm_devices *d);
/* Pause and resume every device's threads (virtio_transport_pause). */
void vm_devices_pause(struct vm_devices *d);
void vm_devices_resume(struct vm_devices *d);
/* Frees the PCI bus and the routing table (after vm_remove_devices). */
void vm_devices_destroy(struct vm_devices *d);

#endif
