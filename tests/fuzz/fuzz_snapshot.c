/* libFuzzer target for the snapshot state file's parser (--restore): the
 * input is the payload, which the target wraps in a header with the right
 * checksums (or the checksums would stop every input at the door), then
 * snapshot_parse() reads the VM layout, the x86 VM and vCPU sections, the
 * UART and device sections; each virtio-mmio device's transport state is
 * read too. Build and run: tests/fuzz/run.sh.
 *
 * Checked on success: the vCPU count and memory regions are within their
 * limits and add up, every device section lies inside the file. ASan/UBSan
 * catch the rest. FUZZ_SNAPSHOT_WRITE_SEEDS=DIR writes a valid payload (one
 * vCPU, two devices) there and exits. */
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/virtio/transport.h"
#include "fuzz_check.h"
#include "vmm/base/snap_format.h"
#include "vmm/snapshot.h"

static void put_zero_blob(struct snap_writer *w, size_t len)
{
	void *z = calloc(1, len);
	snap_put_u32(w, (uint32_t)len);
	snap_put_bytes(w, z, len);
	free(z);
}

static void put_irqchip(struct snap_writer *w, uint32_t id)
{
	struct kvm_irqchip c;
	memset(&c, 0, sizeof(c));
	c.chip_id = id;
	snap_put_u32(w, sizeof(c));
	snap_put_bytes(w, &c, sizeof(c));
}

/* A payload of the shape minivmm writes: 64 MiB in one region, one vCPU,
 * one mmio disk of one queue and one pci NIC (its section left short). */
static void write_seed(const char *dir)
{
	struct snap_writer w = { 0 };
	size_t at = snap_begin(&w, SNAP_TAG_VM);
	snap_put_u32(&w, 1);
	snap_put_u64(&w, 64ull << 20);
	snap_put_u32(&w, 1);
	snap_put_u64(&w, 0);
	snap_put_u64(&w, 64ull << 20);
	snap_put_u64(&w, 0);
	snap_put_u32(&w, 2);
	char t[16] = "virtio-blk", tr[8] = "mmio";
	snap_put_bytes(&w, t, 16);
	snap_put_bytes(&w, tr, 8);
	char t2[16] = "virtio-net", tr2[8] = "pci";
	snap_put_bytes(&w, t2, 16);
	snap_put_bytes(&w, tr2, 8);
	snap_end(&w, at);
	at = snap_begin(&w, SNAP_TAG('X', 'V', 'M', ' '));
	put_irqchip(&w, KVM_IRQCHIP_PIC_MASTER);
	put_irqchip(&w, KVM_IRQCHIP_PIC_SLAVE);
	put_irqchip(&w, KVM_IRQCHIP_IOAPIC);
	put_zero_blob(&w, sizeof(struct kvm_pit_state2));
	snap_put_u64(&w, 12345);
	snap_end(&w, at);
	at = snap_begin(&w, SNAP_TAG('X', 'C', 'P', 'U'));
	put_zero_blob(&w, sizeof(struct kvm_regs));
	put_zero_blob(&w, sizeof(struct kvm_sregs));
	put_zero_blob(&w, sizeof(struct kvm_lapic_state));
	put_zero_blob(&w, sizeof(struct kvm_xcrs));
	put_zero_blob(&w, sizeof(struct kvm_debugregs));
	put_zero_blob(&w, sizeof(struct kvm_vcpu_events));
	put_zero_blob(&w, sizeof(struct kvm_mp_state));
	snap_put_u32(&w, 1000000);   /* TSC kHz */
	snap_put_u32(&w, 1);         /* one CPUID leaf */
	struct kvm_cpuid_entry2 leaf = { .function = 0x80000001, .ecx = 0x1 };
	snap_put_bytes(&w, &leaf, sizeof(leaf));
	snap_put_u32(&w, 2);         /* two MSRs */
	snap_put_u32(&w, 0x10);
	snap_put_u64(&w, 1234);
	snap_put_u32(&w, 0xc0000080);
	snap_put_u64(&w, 0x500);
	put_zero_blob(&w, sizeof(struct kvm_xsave));
	snap_end(&w, at);
	at = snap_begin(&w, SNAP_TAG_UART);
	uint8_t regs[7] = { 1, 3, 0, 0, 1, 0, 0xc7 };
	snap_put_bytes(&w, regs, 7);
	snap_put_u8(&w, 0);
	snap_put_u32(&w, 2);
	snap_put_bytes(&w, "ok", 2);
	snap_end(&w, at);
	at = snap_begin(&w, SNAP_TAG_DEVICE);   /* mmio: ISR, transport, device */
	snap_put_u32(&w, 1);
	size_t tt = snap_begin(&w, SNAP_TAG('V', 'T', 'R', 'N'));
	snap_put_u64(&w, 0x130000244ull);
	snap_put_u64(&w, 0x100000244ull);
	snap_put_u8(&w, 0xf);
	snap_put_u8(&w, 0);
	snap_put_u32(&w, 0);
	snap_put_u32(&w, 1);
	snap_put_u16(&w, 256);
	snap_put_u8(&w, 1);
	snap_put_u16(&w, 0xffff);
	snap_put_u64(&w, 0x100000);
	snap_put_u64(&w, 0x101000);
	snap_put_u64(&w, 0x102000);
	snap_put_u16(&w, 17);
	snap_put_u16(&w, 17);
	snap_end(&w, tt);
	size_t dd = snap_begin(&w, SNAP_TAG('V', 'D', 'E', 'V'));
	snap_put_u64(&w, 16384);
	snap_put_u32(&w, 1);
	snap_put_u8(&w, 0);
	snap_end(&w, dd);
	snap_end(&w, at);
	at = snap_begin(&w, SNAP_TAG_DEVICE);
	snap_put_u32(&w, 0xfe000004);
	snap_end(&w, at);
	char path[4096];
	snprintf(path, sizeof(path), "%s/valid", dir);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(w.buf, 1, w.len, f) != w.len) {
		perror(path);
		exit(1);
	}
	fclose(f);
	snap_writer_free(&w);
	exit(0);
}

/* Before libFuzzer starts: an exit() inside a run counts as a crash. */
__attribute__((constructor)) static void maybe_write_seeds(void)
{
	const char *dir = getenv("FUZZ_SNAPSHOT_WRITE_SEEDS");
	if (dir)
		write_seed(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t len = SNAP_HEADER_SIZE + size;
	uint8_t *file = malloc(len ? len : 1);
	if (!file)
		return 0;
	snap_header_encode(file, SNAP_ARCH_X86_64, 0, data, size);
	memcpy(file + SNAP_HEADER_SIZE, data, size);
	static struct snapshot s;
	char err[300];
	if (snapshot_parse(file, len, &s, err, sizeof(err)) == 0) {
		CHECK(s.n_vcpus >= 1 && s.n_vcpus <= SNAP_MAX_VCPUS);
		CHECK(s.n_regions >= 1 && s.n_regions <= GUEST_MEM_MAX_REGIONS);
		uint64_t sum = 0;
		for (unsigned i = 0; i < s.n_regions; i++)
			sum += s.regions[i].size;
		CHECK(sum == s.mem_bytes);
		for (unsigned i = 0; i < s.n_devices; i++) {
			struct snap_reader *r = &s.devices[i].state;
			CHECK(r->p >= file && r->p + r->len <= file + len);
			if (!strcmp(s.devices[i].transport, "mmio")) {
				struct virtio_transport_state ts;
				snap_get_u32(r);
				if (virtio_transport_state_read(r, &ts) == 0)
					CHECK(ts.n_queues <= VIRTIO_MAX_QUEUES);
			}
		}
	} else {
		CHECK(err[0] != 0);
		if (getenv("FUZZ_SNAPSHOT_VERBOSE"))
			fprintf(stderr, "refused: %s\n", err);
	}
	snapshot_free(&s);
	free(file);
	return 0;
}
