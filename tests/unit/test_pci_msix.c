/* MSI-X: table and PBA through their accessors, enable and function mask,
 * routes and irqfds on a fake host (one routing commit per change, irqfds
 * off while masked, pending bits from signalled eventfds, shared vectors),
 * hostile accesses; and vmm/msi_routes.c on real KVM when there is one. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "devices/pci/msix.h"
#include "devices/pci/pci_dev.h"
#include "vmm/arch.h"
#include "vmm/kvm.h"
#include "vmm/msi_routes.h"
#include "fake_msi_host.h"

static struct fake_msi_host host;
static struct msix m;
static int fds[3];

static int gsi_of(int fd) { return fake_msi_gsi_of(&host, fd); }

static void setup(void)
{
	memset(&host, 0, sizeof(host));
	host.next_gsi = 24;
	cr_assert_eq(msix_init(&m, "msix-test", 3, 3, &(struct device_host){ &fake_msi_host_ops, &host }), 0);
	for (int i = 0; i < 3; i++) {
		fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		msix_set_user_fd(&m, (unsigned)i, fds[i]);
	}
}

static void teardown(void)
{
	msix_destroy(&m);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
}

TestSuite(pci_msix, .init = setup, .fini = teardown);

static void twr(unsigned vec, unsigned field, uint32_t v)
{
	msix_table_write(&m, vec * MSIX_ENTRY_SIZE + field, &v, 4);
}
static uint32_t trd(unsigned vec, unsigned field)
{
	uint32_t v = 0xdeadbeef;
	msix_table_read(&m, vec * MSIX_ENTRY_SIZE + field, &v, 4);
	return v;
}
static uint64_t pba(void)
{
	uint64_t v = ~0ull;
	msix_pba_read(&m, 0, &v, 8);
	return v;
}
static void entry(unsigned vec, uint32_t addr, uint32_t data, bool masked)
{
	twr(vec, MSIX_ENTRY_ADDR_LO, addr);
	twr(vec, MSIX_ENTRY_ADDR_HI, 0);
	twr(vec, MSIX_ENTRY_DATA, data);
	twr(vec, MSIX_ENTRY_CTRL, masked);
}
static void signal(int fd)
{
	uint64_t one = 1;
	cr_assert_eq(write(fd, &one, 8), 8);
}

Test(pci_msix, reset_state_and_gsis)
{
	cr_assert_eq(m.vectors[0].gsi, 24);
	cr_assert_eq(m.vectors[2].gsi, 26);
	for (unsigned v = 0; v < 3; v++) {
		cr_assert_eq(trd(v, MSIX_ENTRY_CTRL), 1, "masked at reset");
		cr_assert_eq(trd(v, MSIX_ENTRY_DATA), 0);
	}
	cr_assert_not(msix_enabled(&m));
	cr_assert_eq(pba(), 0);
}

/* The order Linux's msix_capability_init and request_irq follow. */
Test(pci_msix, linux_setup_sequence_one_commit_per_unmask)
{
	cr_assert_eq(msix_set_user_vector(&m, 0, 0), 0);
	cr_assert_eq(msix_set_user_vector(&m, 1, 1), 1);
	cr_assert_eq(msix_set_user_vector(&m, 2, 1), 1, "vectors can be shared");
	msix_control_write(&m, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	cr_assert(msix_enabled(&m));
	entry(0, 0xfee00000u, 0x4021, true);
	entry(1, 0xfee01000u, 0x4022, true);
	msix_control_write(&m, PCI_MSIX_FLAGS_ENABLE);
	cr_assert_eq(host.commits, 0, "every entry still masked");
	cr_assert_eq(host.n_irqfds, 0);

	twr(0, MSIX_ENTRY_CTRL, 0);   /* request_irq unmasks */
	cr_assert_eq(host.commits, 1);
	cr_assert_eq(host.routes_in_last_commit, 1);
	cr_assert(host.routed[24]);
	cr_assert_eq(host.msg[24].addr, 0xfee00000u);
	cr_assert_eq(host.msg[24].data, 0x4021);
	cr_assert_eq(gsi_of(fds[0]), 24);
	cr_assert_eq(gsi_of(fds[1]), -1);

	twr(1, MSIX_ENTRY_CTRL, 0);
	cr_assert_eq(host.commits, 2);
	cr_assert_eq(host.msg[25].addr, 0xfee01000u);
	cr_assert_eq(gsi_of(fds[1]), 25);
	cr_assert_eq(gsi_of(fds[2]), 25, "two irqfds on one GSI");
	cr_assert_eq(host.n_irqfds, 3);
}

/* On arm64 the GICv3 ITS identifies the device by its requester ID:
 * every route carries it, and a new ID re-routes what is routed already. */
Test(pci_msix, messages_carry_the_requester_id)
{
	msix_set_devid(&m, 3 << 3);
	msix_set_user_vector(&m, 0, 0);
	msix_control_write(&m, PCI_MSIX_FLAGS_ENABLE);
	entry(0, 0x08090040u, 7, false);   /* GITS_TRANSLATER, event 7 */
	cr_assert_eq(host.commits, 1);
	cr_assert_eq(host.msg[24].devid, 3 << 3);
	cr_assert_eq(host.msg[24].data, 7);
	msix_set_devid(&m, 5 << 3);
	cr_assert_eq(host.commits, 2, "the route changed with the ID");
	cr_assert_eq(host.msg[24].devid, 5 << 3);
	msix_set_devid(&m, 5 << 3);
	cr_assert_eq(host.commits, 2, "same ID: nothing to write");
}

Test(pci_msix, masked_vector_latches_pending_and_delivers_on_unmask)
{
	msix_set_user_vector(&m, 0, 0);
	msix_set_user_vector(&m, 1, 1);
	msix_control_write(&m, PCI_MSIX_FLAGS_ENABLE);
	entry(0, 0xfee00000u, 0x30, false);
	entry(1, 0xfee00000u, 0x31, false);
	cr_assert_eq(host.n_irqfds, 2);
	int commits = host.commits;

	twr(1, MSIX_ENTRY_CTRL, 1);   /* mask */
	cr_assert_eq(gsi_of(fds[1]), -1, "irqfd removed while masked");
	cr_assert_eq(pba(), 0);
	signal(fds[1]);
	cr_assert_eq(pba(), 2, "pending bit of vector 1");
	signal(fds[0]);
	cr_assert_eq(pba(), 2, "a deliverable vector is never pending: KVM takes it");
	uint32_t lo = 0;
	msix_pba_read(&m, 0, &lo, 4);
	cr_assert_eq(lo, 2, "dword read of the PBA");

	twr(1, MSIX_ENTRY_CTRL, 0);   /* unmask: same message, no new route */
	cr_assert_eq(gsi_of(fds[1]), 25, "irqfd back: KVM injects the pending signal");
	cr_assert_eq(host.commits, commits);
	cr_assert_eq(pba(), 0);

	/* message changed while masked: one route update at unmask */
	twr(1, MSIX_ENTRY_CTRL, 1);
	twr(1, MSIX_ENTRY_DATA, 0x41);
	cr_assert_eq(host.commits, commits);
	twr(1, MSIX_ENTRY_CTRL, 0);
	cr_assert_eq(host.commits, commits + 1);
	cr_assert_eq(host.routes_in_last_commit, 1);
	cr_assert_eq(host.msg[25].data, 0x41);

	/* rewritten while unmasked (undefined by the spec): follows at once */
	twr(0, MSIX_ENTRY_DATA, 0x50);
	cr_assert_eq(host.msg[24].data, 0x50);
}

Test(pci_msix, function_mask_and_disable_detach_everything)
{
	msix_set_user_vector(&m, 0, 0);
	msix_set_user_vector(&m, 1, 2);
	msix_control_write(&m, PCI_MSIX_FLAGS_ENABLE);
	entry(0, 0xfee00000u, 0x30, false);
	entry(2, 0xfee00000u, 0x32, false);
	cr_assert_eq(host.n_irqfds, 2);
	msix_control_write(&m, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	cr_assert_eq(host.n_irqfds, 0);
	signal(fds[1]);
	cr_assert_eq(pba(), 4);
	msix_control_write(&m, PCI_MSIX_FLAGS_ENABLE);
	cr_assert_eq(host.n_irqfds, 2);
	msix_control_write(&m, 0);
	cr_assert_eq(host.n_irqfds, 0);
	cr_assert_not(msix_enabled(&m));
}

Test(pci_msix, user_vector_changes_move_the_irqfd)
{
	msix_control_write(&m, PCI_MSIX_FLAGS_ENABLE);
	entry(0, 0xfee00000u, 0x30, false);
	entry(1, 0xfee00000u, 0x31, false);
	msix_set_user_vector(&m, 0, 0);
	cr_assert_eq(gsi_of(fds[0]), 24);
	msix_set_user_vector(&m, 0, 1);
	cr_assert_eq(gsi_of(fds[0]), 25);
	cr_assert_eq(msix_set_user_vector(&m, 0, 3), MSIX_NO_VECTOR, "beyond the table");
	cr_assert_eq(gsi_of(fds[0]), -1);
	cr_assert_eq(msix_set_user_vector(&m, 0, 0xffff), MSIX_NO_VECTOR);
	cr_assert_eq(msix_set_user_vector(&m, 7, 0), MSIX_NO_VECTOR, "no such user");
	cr_assert_eq(host.n_irqfds, 0);
}

Test(pci_msix, route_failure_keeps_interrupts_pending)
{
	host.fail_routes = true;
	msix_set_user_vector(&m, 0, 0);
	msix_control_write(&m, PCI_MSIX_FLAGS_ENABLE);
	entry(0, 0xfee00000u, 0x30, false);
	cr_assert_eq(host.n_irqfds, 0, "no irqfd on a GSI without its route");
	signal(fds[0]);
	cr_assert_eq(pba(), 1);
	host.fail_routes = false;
	twr(0, MSIX_ENTRY_CTRL, 1);
	twr(0, MSIX_ENTRY_CTRL, 0);
	cr_assert_eq(gsi_of(fds[0]), 24, "retried at the next change");
}

Test(pci_msix, hostile_table_accesses)
{
	twr(0, MSIX_ENTRY_CTRL, 0xfffffffeu);
	cr_assert_eq(trd(0, MSIX_ENTRY_CTRL), 0, "reserved control bits read 0");
	uint32_t v = 0x12345678;
	msix_table_write(&m, 2, &v, 4);   /* unaligned */
	msix_table_write(&m, 0, &v, 2);   /* narrow */
	msix_table_write(&m, 0, &v, 1);
	cr_assert_eq(trd(0, MSIX_ENTRY_ADDR_LO), 0);
	msix_table_write(&m, 3 * MSIX_ENTRY_SIZE, &v, 4);        /* past the table */
	msix_table_write(&m, 0xffffffffffff0000ull, &v, 4);
	v = 0xdead;
	msix_table_read(&m, 3 * MSIX_ENTRY_SIZE, &v, 4);
	cr_assert_eq(v, 0);
	v = 0xdead;
	msix_table_read(&m, 1, &v, 4);
	cr_assert_eq(v, 0);
	uint64_t q = 0xfee0000000001000ull;
	msix_table_write(&m, MSIX_ENTRY_SIZE, &q, 8);   /* address as one qword */
	cr_assert_eq(trd(1, MSIX_ENTRY_ADDR_LO), 0x1000);
	cr_assert_eq(trd(1, MSIX_ENTRY_ADDR_HI), 0xfee00000u);
	q = 0x0000000100000077ull;                      /* data + control, unmasking */
	msix_table_write(&m, MSIX_ENTRY_SIZE + 8, &q, 8);
	cr_assert_eq(trd(1, MSIX_ENTRY_DATA), 0x77);
	cr_assert_eq(trd(1, MSIX_ENTRY_CTRL), 1);
	msix_table_write(&m, MSIX_ENTRY_SIZE + 4, &q, 8);   /* qword not qword-aligned */
	cr_assert_eq(trd(1, MSIX_ENTRY_ADDR_HI), 0xfee00000u);
	uint64_t p = 0;
	msix_pba_read(&m, 8, &p, 8);
	cr_assert_eq(p, 0, "beyond the PBA");
	msix_pba_read(&m, 3, &p, 4);
	cr_assert_eq(p, 0);
}

Test(pci_msix, destroy_detaches_and_frees)
{
	msix_set_user_vector(&m, 0, 0);
	msix_control_write(&m, PCI_MSIX_FLAGS_ENABLE);
	entry(0, 0xfee00000u, 0x30, false);
	cr_assert_eq(host.n_irqfds, 1);
	msix_destroy(&m);
	cr_assert_eq(host.n_irqfds, 0);
	cr_assert_eq(host.frees, 3);
	cr_assert_eq(msix_init(&m, "again", 3, 3, &(struct device_host){ &fake_msi_host_ops, &host }), 0);   /* for teardown */
}

Test(pci_msix_init, bad_sizes_and_gsi_exhaustion)
{
	struct fake_msi_host h = { .next_gsi = FAKE_MSI_MAX_GSI - 2 };
	struct msix x;
	cr_assert_eq(msix_init(&x, "zero", 0, 1, &(struct device_host){ &fake_msi_host_ops, &h }), -1);
	msix_destroy(&x);
	cr_assert_eq(msix_init(&x, "huge", MSIX_MAX_VECTORS + 1, 1, &(struct device_host){ &fake_msi_host_ops, &h }), -1);
	msix_destroy(&x);
	cr_assert_eq(msix_init(&x, "three", 3, 1, &(struct device_host){ &fake_msi_host_ops, &h }), -1, "only 2 GSIs left");
	msix_destroy(&x);
	cr_assert_eq(h.frees, 2, "the two it got are given back");
}

/* ---- vmm/msi_routes.c on real KVM ---- */

static int open_vm(int *kvm_fd)
{
	*kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (*kvm_fd < 0)
		return -1;
	int vm = ioctl(*kvm_fd, KVM_CREATE_VM, 0);
	if (vm < 0 || ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0) {
		if (vm >= 0)
			close(vm);
		close(*kvm_fd);
		return -1;
	}
	return vm;
}

Test(msi_routes, full_table_on_real_kvm)
{
	int kvm_fd;
	int vm = open_vm(&kvm_fd);
	if (vm < 0)
		cr_skip_test("no usable /dev/kvm with an in-kernel irqchip");
	struct msi_routes r;
	struct kvm_irq_routing_entry defaults[64];
	unsigned n_defaults = arch_default_irq_routes(defaults, 64);
	cr_assert_eq(n_defaults, 24 + 16, "x86: IOAPIC and PIC pins");
	cr_assert_eq(msi_routes_init(&r, vm, defaults, n_defaults), 0);
	cr_assert_eq(r.first_gsi, 24, "MSI GSIs start above the IOAPIC pins");
	cr_assert_not(r.msi_devid, "x86 MSIs carry no device ID");
	int g0 = msi_routes_alloc_gsi(&r), g1 = msi_routes_alloc_gsi(&r);
	cr_assert_eq(g0, 24);
	cr_assert_eq(g1, 25);
	unsigned gsis[2] = { (unsigned)g0, (unsigned)g1 };
	struct msi_msg msgs[2] = { { .addr = 0xfee00000u, .data = 0x4021 }, { .addr = 0xfee01000u, .data = 0x4022 } };
	cr_assert_eq(msi_routes_set(&r, gsis, msgs, 2), 0, "KVM_SET_GSI_ROUTING accepted");
	cr_assert_eq(r.commits, 1, "one commit for both");

	const struct kvm_irq_routing *t = r.table;
	cr_assert_eq(t->nr, 24 + 16 + 2);
	unsigned ioapic = 0, pic = 0, msi = 0;
	for (unsigned i = 0; i < t->nr; i++) {
		const struct kvm_irq_routing_entry *e = &t->entries[i];
		if (e->type == KVM_IRQ_ROUTING_IRQCHIP && e->u.irqchip.irqchip == KVM_IRQCHIP_IOAPIC) {
			cr_assert_eq(e->u.irqchip.pin, e->gsi, "IOAPIC pin i is GSI i");
			ioapic++;
		} else if (e->type == KVM_IRQ_ROUTING_IRQCHIP) {
			cr_assert_eq(e->u.irqchip.pin, e->gsi % 8);
			cr_assert_eq(e->u.irqchip.irqchip, e->gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE);
			pic++;
		} else {
			cr_assert_eq(e->type, KVM_IRQ_ROUTING_MSI);
			cr_assert(e->gsi == (unsigned)g0 || e->gsi == (unsigned)g1);
			cr_assert_eq(e->u.msi.address_lo, e->gsi == (unsigned)g0 ? 0xfee00000u : 0xfee01000u);
			msi++;
		}
	}
	cr_assert_eq(ioapic, 24);
	cr_assert_eq(pic, 16);
	cr_assert_eq(msi, 2);

	/* an irqfd on the MSI GSI, as the VM's device host connects MSI-X vectors */
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	cr_assert_eq(kvm_irqfd(vm, efd, (unsigned)g0, true), 0);
	uint64_t one = 1;
	cr_assert_eq(write(efd, &one, 8), 8);   /* an MSI to a VM with no vCPU: dropped by KVM */
	cr_assert_eq(kvm_irqfd(vm, efd, (unsigned)g0, false), 0);
	/* the legacy lines still work after our table replaced KVM's */
	struct kvm_irq_level line = { .irq = 4, .level = 1 };
	cr_assert_eq(ioctl(vm, KVM_IRQ_LINE, &line), 0);

	/* freed GSIs come back, their routes drop out at the next commit */
	msi_routes_free_gsi(&r, (unsigned)g0);
	cr_assert_eq(msi_routes_alloc_gsi(&r), g0);
	cr_assert_eq(msi_routes_set(&r, &gsis[1], &msgs[1], 1), 0);
	cr_assert_eq(((const struct kvm_irq_routing *)r.table)->nr, 24 + 16 + 1);
	/* a GSI nobody allocated is refused without touching KVM */
	unsigned bogus = 4000;
	cr_assert_eq(msi_routes_set(&r, &bogus, msgs, 1), -1);
	cr_assert_eq(r.commits, 2);

	close(efd);
	msi_routes_destroy(&r);
	close(vm);
	close(kvm_fd);
}

/* When KVM asks for device IDs (KVM_CAP_MSI_DEVID: arm64 with an ITS), MSI
 * routes carry the flag and the ID; irqchip routes never do. No such KVM
 * here: the flag is forced and the table checked after KVM (no VM) refused
 * it, which it does only after building it. */
Test(msi_routes, device_id_when_kvm_asks_for_it)
{
	struct msi_routes r;
	struct kvm_irq_routing_entry defaults[64];
	cr_assert_eq(msi_routes_init(&r, -1, defaults, arch_default_irq_routes(defaults, 64)), 0);
	cr_assert_not(r.msi_devid, "no VM, no KVM_CAP_MSI_DEVID");
	r.msi_devid = true;
	unsigned g = (unsigned)msi_routes_alloc_gsi(&r);
	struct msi_msg msg = { .addr = 0x08090040u, .data = 3, .devid = 0x18 };
	cr_assert_eq(msi_routes_set(&r, &g, &msg, 1), -1, "no VM to take it");
	const struct kvm_irq_routing *t = r.table;
	unsigned seen = 0;
	for (unsigned i = 0; i < t->nr; i++) {
		const struct kvm_irq_routing_entry *e = &t->entries[i];
		if (e->type != KVM_IRQ_ROUTING_MSI) {
			cr_assert_eq(e->flags, 0);
			continue;
		}
		cr_assert_eq(e->gsi, g);
		cr_assert_eq(e->flags, KVM_MSI_VALID_DEVID);
		cr_assert_eq(e->u.msi.devid, 0x18);
		cr_assert_eq(e->u.msi.address_lo, 0x08090040u);
		seen++;
	}
	cr_assert_eq(seen, 1);
	msi_routes_destroy(&r);
}

/* Defaults decide where MSI GSIs start: above the highest default GSI. */
Test(msi_routes, first_gsi_above_the_defaults)
{
	struct msi_routes r;
	struct kvm_irq_routing_entry spi[96];
	for (unsigned i = 0; i < 96; i++)
		spi[i] = (struct kvm_irq_routing_entry){ .gsi = i, .type = KVM_IRQ_ROUTING_IRQCHIP,
							  .u.irqchip = { .irqchip = 0, .pin = i } };
	cr_assert_eq(msi_routes_init(&r, -1, spi, 96), 0);
	cr_assert_eq(msi_routes_alloc_gsi(&r), 96, "GIC SPIs 0-95 are GSIs 0-95");
	msi_routes_destroy(&r);
	struct kvm_irq_routing_entry many[MSI_ROUTES_MAX_DEFAULTS + 1];
	memset(many, 0, sizeof(many));
	cr_assert_eq(msi_routes_init(&r, -1, many, MSI_ROUTES_MAX_DEFAULTS + 1), -1, "too many defaults");
}

Test(msi_routes, allocation_limits)
{
	struct msi_routes r;
	struct kvm_irq_routing_entry defaults[64];
	cr_assert_eq(msi_routes_init(&r, -1, defaults, arch_default_irq_routes(defaults, 64)), 0);
	int last = -1, n = 0;
	for (int g; (g = msi_routes_alloc_gsi(&r)) >= 0; n++)
		last = g;
	cr_assert_eq(n, MSI_ROUTES_MAX_GSI - 24);
	cr_assert_eq(last, MSI_ROUTES_MAX_GSI - 1);
	msi_routes_free_gsi(&r, 100);
	msi_routes_free_gsi(&r, 5);       /* not an MSI GSI: ignored */
	msi_routes_free_gsi(&r, 99999);
	cr_assert_eq(msi_routes_alloc_gsi(&r), 100);
	/* KVM refusing the table (here: no VM) leaves our table as KVM's */
	unsigned g = 100;
	struct msi_msg msg = { .addr = 0xfee00000u, .data = 1 };
	cr_assert_eq(msi_routes_set(&r, &g, &msg, 1), -1);
	cr_assert_not(r.routes[100 - r.first_gsi].routed);
	msi_routes_destroy(&r);
}
