/* Builds the virtio devices named on the command line and puts each on its
 * transport. The VM owns them all; vm_remove_devices stops every device
 * (joining its threads) before guest memory goes away. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/devices.h"

#include "devices/net/virtio_net.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/pci.h"
#include "devices/virtio/rng.h"
#include "devices/vsock/vsock.h"
#include "vmm/kvm_notify.h"
#include "vmm/base/log.h"
#include "vmm/machine.h"
#include "vmm/vm.h"

_Static_assert(DISK_POLL_US_MAX == VIRTIO_BLK_POLL_US_MAX, "--disk poll= and the device agree on the bound");

_Static_assert(MAX_DISK_QUEUES == VIRTIO_MAX_QUEUES, "--disk queues= limit is the transport's");

static const char *dev_name(struct vm *vm, const char *kind, unsigned index)
{
	struct vm_devices *d = &vm->devices;
	char *name = d->names[d->n_names++];
	snprintf(name, sizeof(d->names[0]), "%s%u", kind, index);
	return name;
}

static int attach_mmio(struct vm *vm, const char *name, const struct virtio_dev_ops *ops, void *dev)
{
	uint64_t base;
	unsigned gsi;
	if (vm->devices.n_mmio == VM_MAX_VIRTIO || machine_virtio_mmio_slot(vm->devices.n_mmio, &base, &gsi)) {
		log_error("%s: no room for another virtio-mmio device", name);
		return -1;
	}
	struct virtio_mmio *m = calloc(1, sizeof(*m));
	if (!m) {
		log_error("%s: out of memory", name);
		return -1;
	}
	vm->devices.mmio[vm->devices.n_mmio++] = m;   /* owned from here on, even half set up */
	m->irq_fd = -1;
	const struct device_host host = vm_device_host(vm);
	if (virtio_mmio_init(m, name, ops, dev, &vm->mem, &host, base, gsi))
		return -1;
	if (io_bus_register(&vm->mmio_bus, base, VIRTIO_MMIO_SIZE, &virtio_mmio_io_ops, m, name)) {
		log_error("%s: MMIO window 0x%llx overlaps another device", name, (unsigned long long)base);
		return -1;
	}
	return 0;
}

static int attach_pci(struct vm *vm, const char *name, const struct virtio_dev_ops *ops, void *dev)
{
	if (vm->devices.n_vpci == VM_MAX_VIRTIO) {
		log_error("%s: no room for another virtio-pci device", name);
		return -1;
	}
	struct virtio_pci *p = calloc(1, sizeof(*p));
	if (!p) {
		log_error("%s: out of memory", name);
		return -1;
	}
	vm->devices.vpci[vm->devices.n_vpci++] = p;   /* owned from here on, even half set up */
	p->config_fd = -1;
	const struct device_host host = vm_device_host(vm);
	if (virtio_pci_init(p, name, ops, dev, &vm->mem, &host))
		return -1;
	return pci_host_add(&vm->devices.pci, &p->pci) < 0 ? -1 : 0;
}

/* The type "info" shows and a snapshot records (at most 15 characters). */
static const char *dev_type(const struct virtio_dev_ops *ops)
{
	switch (ops->device_id) {
	case VIRTIO_ID_BLOCK:
		return "virtio-blk";
	case VIRTIO_ID_NET:
		return "virtio-net";
	case VIRTIO_ID_VSOCK:
		return "virtio-vsock";
	case VIRTIO_ID_RNG:
		return "virtio-rng";
	default:
		return "virtio";
	}
}

static int attach(struct vm *vm, const char *name, enum transport tr, const struct virtio_dev_ops *ops, void *dev)
{
	/* virtio-pci interrupts are MSI-X only: without MSIs (arm64 with no
	 * GICv3 ITS) the default is mmio, and asking for pci is an error. */
	if (tr == TRANSPORT_PCI && !vm->pci_msi) {
		log_error("%s: transport=pci needs MSIs, which this host's KVM cannot deliver here (no GICv3 ITS); "
			  "use transport=mmio", name);
		return -1;
	}
	bool pci = tr == TRANSPORT_PCI || (tr == TRANSPORT_DEFAULT && vm->pci_msi);
	if (pci ? attach_pci(vm, name, ops, dev) : attach_mmio(vm, name, ops, dev))
		return -1;
	struct vm_devices *d = &vm->devices;
	if (d->n_descs < ARRAY_SIZE(d->descs))
		d->descs[d->n_descs++] = (struct vm_device_desc){
			.name = name,
			.type = dev_type(ops),
			.transport = pci ? "pci" : "mmio",
			.mmio = pci ? NULL : d->mmio[d->n_mmio - 1],
			.pci = pci ? d->vpci[d->n_vpci - 1] : NULL,
		};
	return 0;
}

int vm_add_devices(struct vm *vm, const struct vmm_options *o)
{
	char err[256];
	for (unsigned i = 0; i < o->n_disks; i++) {
		const struct disk_opt *d = &o->disks[i];
		const char *name = dev_name(vm, "blk", i);
		/* One queue per vCPU unless asked, so I/O from any CPU has its own queue. */
		unsigned queues = d->queues ? d->queues : vm->n_vcpus;
		if (queues > VIRTIO_MAX_QUEUES)
			queues = VIRTIO_MAX_QUEUES;
		struct virtio_blk_params p = {
			.path = d->path,
			.readonly = d->readonly,
			.num_queues = queues,
			.serial = d->serial[0] ? d->serial : NULL,
			.bytes_per_sec = d->bytes_per_sec,
			.ops_per_sec = d->ops_per_sec,
			.engine = d->engine == DISK_ENGINE_URING  ? VIRTIO_BLK_ENGINE_URING
				  : d->engine == DISK_ENGINE_SYNC ? VIRTIO_BLK_ENGINE_SYNC
								  : VIRTIO_BLK_ENGINE_AUTO,
			.poll_us = d->poll_us,
			.poll_auto = d->poll_auto,
			.index = i,
			.threads = &vm->threads.starter,
		};
		struct virtio_blk *b = virtio_blk_create(&p, err, sizeof(err));
		if (!b) {
			log_error("--disk: %s", err);   /* the device names the image, not the option */
			return -1;
		}
		vm->devices.blks[vm->devices.n_blks++] = b;
		if (attach(vm, name, d->transport, &virtio_blk_ops, b))
			return -1;
	}
	for (unsigned i = 0; i < o->n_nets; i++) {
		const struct net_opt *n = &o->nets[i];
		const char *name = dev_name(vm, "net", i);
		struct virtio_net_params p = {
			.tap = n->tap,
			.queue_pairs = n->queue_pairs,
			.backend = n->vhost == VHOST_ON    ? VIRTIO_NET_BACKEND_VHOST
				   : n->vhost == VHOST_OFF ? VIRTIO_NET_BACKEND_WORKER
							   : VIRTIO_NET_BACKEND_AUTO,
			.bytes_per_sec = n->bytes_per_sec,
			.packets_per_sec = n->packets_per_sec,
			.tx_irq_delay_us = n->tx_irq_delay_us,
			.index = i,
			.threads = &vm->threads.starter,
		};
		if (n->has_mac)
			memcpy(p.mac, n->mac, sizeof(p.mac));
		else
			virtio_net_default_mac(i, (unsigned long)getpid(), p.mac);
		struct virtio_net *dev = virtio_net_create(&p, err, sizeof(err));
		if (!dev) {
			log_error("--net: %s", err);   /* the device names the tap, not the option */
			return -1;
		}
		vm->devices.nets[vm->devices.n_nets++] = dev;
		if (attach(vm, name, n->transport, &virtio_net_ops, dev))
			return -1;
	}
	if (o->vsock.enabled) {
		struct virtio_vsock_params p = {
			.guest_cid = o->vsock.cid,
			.uds_path = o->vsock.uds,
			.index = 0,
			.threads = &vm->threads.starter,
		};
		vm->devices.vsock = virtio_vsock_create(&p, err, sizeof(err));
		if (!vm->devices.vsock) {
			log_error("--vsock: %s", err);
			return -1;
		}
		if (attach(vm, dev_name(vm, "vsock", 0), o->vsock.transport, &virtio_vsock_ops, vm->devices.vsock))
			return -1;
	}
	if (o->rng.enabled) {
		struct virtio_rng_params p = {
			.bytes_per_sec = o->rng.bytes_per_sec,
			.index = 0,
			.threads = &vm->threads.starter,
		};
		vm->devices.rng = virtio_rng_create(&p, err, sizeof(err));
		if (!vm->devices.rng) {
			log_error("--rng: %s", err);
			return -1;
		}
		if (attach(vm, dev_name(vm, "rng", 0), o->rng.transport, &virtio_rng_ops, vm->devices.rng))
			return -1;
	}
	return 0;
}

void vm_remove_devices(struct vm *vm)
{
	/* Transports first: their teardown resets the device, which joins its
	 * worker threads; only then can the device itself go. */
	for (unsigned i = 0; i < vm->devices.n_mmio; i++) {
		virtio_mmio_destroy(vm->devices.mmio[i]);
		free(vm->devices.mmio[i]);
	}
	vm->devices.n_mmio = 0;
	for (unsigned i = 0; i < vm->devices.n_vpci; i++) {
		virtio_pci_destroy(vm->devices.vpci[i]);
		free(vm->devices.vpci[i]);
	}
	vm->devices.n_vpci = 0;
	for (unsigned i = 0; i < vm->devices.n_blks; i++)
		virtio_blk_destroy(vm->devices.blks[i]);
	vm->devices.n_blks = 0;
	for (unsigned i = 0; i < vm->devices.n_nets; i++)
		virtio_net_destroy(vm->devices.nets[i]);
	vm->devices.n_nets = 0;
	virtio_vsock_destroy(vm->devices.vsock);
	vm->devices.vsock = NULL;
	virtio_rng_destroy(vm->devices.rng);
	vm->devices.rng = NULL;
}

void vm_devices_net_fds(const struct vm_devices *d, int *taps, unsigned max_taps, unsigned *n_taps, int *vhost,
			unsigned max_vhost, unsigned *n_vhost)
{
	*n_taps = *n_vhost = 0;
	for (unsigned i = 0; i < d->n_nets; i++) {
		*n_taps += virtio_net_tap_fds(d->nets[i], taps + *n_taps, max_taps - *n_taps);
		*n_vhost += virtio_net_vhost_fds(d->nets[i], vhost + *n_vhost, max_vhost - *n_vhost);
	}
}

void vm_devices_log_choices(struct vm_devices *d)
{
	for (unsigned i = 0; i < d->n_blks; i++)
		virtio_blk_log_engine(d->blks[i]);
}

void vm_devices_pause(struct vm_devices *d)
{
	for (unsigned i = 0; i < d->n_mmio; i++)
		virtio_transport_pause(&d->mmio[i]->t);
	for (unsigned i = 0; i < d->n_vpci; i++)
		virtio_transport_pause(&d->vpci[i]->t);
}

void vm_devices_resume(struct vm_devices *d)
{
	for (unsigned i = 0; i < d->n_mmio; i++)
		virtio_transport_resume(&d->mmio[i]->t);
	for (unsigned i = 0; i < d->n_vpci; i++)
		virtio_transport_resume(&d->vpci[i]->t);
}

void vm_devices_destroy(struct vm_devices *d)
{
	pci_host_destroy(&d->pci);
	msi_routes_destroy(&d->msi_routes);
}
