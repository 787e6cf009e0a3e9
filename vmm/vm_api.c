/* What the control socket's commands do to a running VM (on the api thread). */
#include "vmm/vm_api.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "devices/net/virtio_net.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/rng.h"
#include "devices/vsock/vsock.h"
#include "vmm/arch.h"
#include "vmm/base/log.h"
#include "vmm/snapshot.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

static void add_u64(struct json_object *o, const char *key, uint64_t v)
{
	json_object_object_add(o, key, json_object_new_uint64(v));
}

static bool op_paused(void *ctx)
{
	struct vm *vm = ctx;
	return atomic_load(&vm->pause_requested);
}

/* vCPUs first (no new requests), then the device threads (the requests in
 * flight finish): then no descriptor is in flight and the rings are final. */
static int op_pause(void *ctx, char *err, size_t errlen)
{
	struct vm *vm = ctx;
	vm_pause(vm);
	vm_devices_pause(&vm->devices);
	return 0;
}

static int op_resume(void *ctx, char *err, size_t errlen)
{
	struct vm *vm = ctx;
	int rc = 0;
	for (unsigned i = 0; i < vm->n_vcpus; i++) {
		if (arch_vcpu_resuming(&vm->vcpus[i]) && !rc) {
			/* Resumed all the same: a guest clock warning beats a VM that never runs again. */
			snprintf(err, errlen, "vCPU %u: telling the guest's clock of the pause: %s", i, strerror(errno));
			rc = -1;
		}
	}
	vm_devices_resume(&vm->devices);
	vm_resume(vm);
	return rc;
}

static int op_snapshot(void *ctx, int state_fd, int mem_fd, struct json_object *out, char *err, size_t errlen)
{
	struct vm *vm = ctx;
	struct snapshot_result res;
	uint64_t t0 = monotonic_ns();
	if (snapshot_save(vm, state_fd, mem_fd, &res, err, errlen))
		return -1;
	add_u64(out, "state_bytes", res.state_bytes);
	add_u64(out, "memory_bytes", res.memory_bytes);
	add_u64(out, "memory_written", res.memory_written);
	add_u64(out, "ms", (monotonic_ns() - t0) / 1000000);
	return 0;
}


static void op_info(void *ctx, struct json_object *out)
{
	struct vm *vm = ctx;
	uint64_t bytes = 0;
	for (unsigned i = 0; i < vm->mem.n_regions; i++)
		bytes += vm->mem.regions[i].size;
	add_u64(out, "vcpus", vm->n_vcpus);
	add_u64(out, "memory_mib", bytes >> 20);
	struct json_object *devs = json_object_new_array();
	for (unsigned i = 0; devs && i < vm->devices.n_descs; i++) {
		const struct vm_device_desc *d = &vm->devices.descs[i];
		struct json_object *o = json_object_new_object();
		if (!o)
			break;
		json_object_object_add(o, "name", json_object_new_string(d->name));
		json_object_object_add(o, "type", json_object_new_string(d->type));
		json_object_object_add(o, "transport", json_object_new_string(d->transport));
		json_object_array_add(devs, o);
	}
	json_object_object_add(out, "devices", devs);
}

static struct json_object *blk_stats(struct virtio_blk *blk)
{
	struct virtio_blk_stats st;
	virtio_blk_stats(blk, &st);
	struct json_object *o = json_object_new_object();
	if (!o)
		return NULL;
	json_object_object_add(o, "engine", json_object_new_string(virtio_blk_engine_name(blk)));
	add_u64(o, "reads", st.reads);
	add_u64(o, "writes", st.writes);
	add_u64(o, "flushes", st.flushes);
	add_u64(o, "discards", st.discards);
	add_u64(o, "write_zeroes", st.write_zeroes);
	add_u64(o, "other_requests", st.others);
	add_u64(o, "read_bytes", st.read_bytes);
	add_u64(o, "written_bytes", st.written_bytes);
	add_u64(o, "errors", st.errors);
	add_u64(o, "discards_ignored", st.discards_ignored);
	add_u64(o, "throttled", st.throttled);
	add_u64(o, "uring_requests", st.uring_requests);
	add_u64(o, "poll_epochs", st.poll_epochs);
	add_u64(o, "kick_epochs", st.kick_epochs);
	return o;
}

static struct json_object *net_stats(struct virtio_net *net)
{
	struct json_object *o = json_object_new_object(), *pairs = json_object_new_array();
	if (!o || !pairs) {
		json_object_put(o);
		json_object_put(pairs);
		return NULL;
	}
	unsigned n = virtio_net_active_pairs(net);
	json_object_object_add(o, "backend", json_object_new_string(virtio_net_backend(net)->name));
	add_u64(o, "active_pairs", n);
	for (unsigned i = 0; i < n; i++) {
		struct net_pair_stats st;
		virtio_net_pair_stats(net, i, &st);
		struct json_object *p = json_object_new_object();
		if (!p)
			break;
		json_object_object_add(p, "counted", json_object_new_boolean(st.available));
		add_u64(p, "tx_packets", st.tx_packets);
		add_u64(p, "tx_bytes", st.tx_bytes);
		add_u64(p, "tx_dropped", st.tx_dropped);
		add_u64(p, "rx_packets", st.rx_packets);
		add_u64(p, "rx_bytes", st.rx_bytes);
		add_u64(p, "rx_dropped", st.rx_dropped);
		add_u64(p, "wakeups", st.wakeups);
		add_u64(p, "tx_throttled", st.tx_throttled);
		add_u64(p, "rx_throttled", st.rx_throttled);
		add_u64(p, "kicks", st.kicks);
		json_object_array_add(pairs, p);
	}
	json_object_object_add(o, "pairs", pairs);
	return o;
}

static struct json_object *vsock_stats(struct virtio_vsock *v)
{
	struct virtio_vsock_stats st;
	virtio_vsock_stats(v, &st);
	struct json_object *o = json_object_new_object();
	if (!o)
		return NULL;
	add_u64(o, "connections", st.connections);
	add_u64(o, "rx_packets", st.rx_packets);
	add_u64(o, "rx_bytes", st.rx_bytes);
	add_u64(o, "tx_packets", st.tx_packets);
	add_u64(o, "tx_bytes", st.tx_bytes);
	add_u64(o, "resets", st.resets);
	add_u64(o, "errors", st.errors);
	return o;
}

static struct json_object *rng_stats(struct virtio_rng *r)
{
	struct virtio_rng_stats st;
	virtio_rng_stats(r, &st);
	struct json_object *o = json_object_new_object();
	if (!o)
		return NULL;
	add_u64(o, "requests", st.requests);
	add_u64(o, "bytes", st.bytes);
	add_u64(o, "throttled", st.throttled);
	add_u64(o, "errors", st.errors);
	return o;
}

static void op_stats(void *ctx, struct json_object *out)
{
	struct vm *vm = ctx;
	struct json_object *devs = json_object_new_object();
	if (!devs)
		return;
	char name[16];
	for (unsigned i = 0; i < vm->devices.n_blks; i++) {
		snprintf(name, sizeof(name), "blk%u", i);
		json_object_object_add(devs, name, blk_stats(vm->devices.blks[i]));
	}
	for (unsigned i = 0; i < vm->devices.n_nets; i++) {
		snprintf(name, sizeof(name), "net%u", i);
		json_object_object_add(devs, name, net_stats(vm->devices.nets[i]));
	}
	if (vm->devices.vsock)
		json_object_object_add(devs, "vsock0", vsock_stats(vm->devices.vsock));
	if (vm->devices.rng)
		json_object_object_add(devs, "rng0", rng_stats(vm->devices.rng));
	json_object_object_add(out, "devices", devs);
}

static void op_stop(void *ctx)
{
	vm_request_stop(ctx, STOP_API, 0);
}

const struct api_ops vm_api_ops = {
	.paused = op_paused,
	.pause = op_pause,
	.resume = op_resume,
	.info = op_info,
	.stats = op_stats,
	.stop = op_stop,
	.snapshot = op_snapshot,
};
