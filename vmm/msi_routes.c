#include "vmm/msi_routes.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vmm/base/log.h"

int msi_routes_init(struct msi_routes *r, int vm_fd, const struct kvm_irq_routing_entry *defaults, unsigned n)
{
	memset(r, 0, sizeof(*r));
	if (n > MSI_ROUTES_MAX_DEFAULTS) {
		log_error("internal: %u default interrupt routes, at most %d", n, MSI_ROUTES_MAX_DEFAULTS);
		return -1;
	}
	pthread_mutex_init(&r->lock, NULL);
	log_limit_init(&r->log_limit, "MSI routes");
	r->vm_fd = vm_fd;
	memcpy(r->defaults, defaults, n * sizeof(*defaults));
	r->n_defaults = n;
	for (unsigned i = 0; i < n; i++)
		if (defaults[i].gsi >= r->first_gsi)
			r->first_gsi = defaults[i].gsi + 1;
	r->msi_devid = vm_fd >= 0 && ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MSI_DEVID) > 0;
	return 0;
}

void msi_routes_destroy(struct msi_routes *r)
{
	free(r->routes);
	free(r->table);
	r->routes = NULL;
	r->table = NULL;
	r->n_slots = r->table_cap = 0;
	pthread_mutex_destroy(&r->lock);
	log_limit_destroy(&r->log_limit);
}

int msi_routes_alloc_gsi(struct msi_routes *r)
{
	int gsi = -1;
	pthread_mutex_lock(&r->lock);
	unsigned i = 0;
	while (i < r->n_slots && r->routes[i].allocated)
		i++;
	if (i == r->n_slots) {
		unsigned max = MSI_ROUTES_MAX_GSI - r->first_gsi;
		unsigned n = r->n_slots ? r->n_slots * 2 : 64;
		if (n > max)
			n = max;
		struct msi_route *grown = n > r->n_slots ? realloc(r->routes, n * sizeof(*grown)) : NULL;
		if (!grown)
			goto out;
		memset(grown + r->n_slots, 0, (n - r->n_slots) * sizeof(*grown));
		r->routes = grown;
		r->n_slots = n;
	}
	r->routes[i] = (struct msi_route){ .allocated = true };
	gsi = (int)(r->first_gsi + i);
out:
	pthread_mutex_unlock(&r->lock);
	return gsi;
}

static struct msi_route *slot(struct msi_routes *r, unsigned gsi)
{
	if (gsi < r->first_gsi || gsi - r->first_gsi >= r->n_slots)
		return NULL;
	struct msi_route *s = &r->routes[gsi - r->first_gsi];
	return s->allocated ? s : NULL;
}

void msi_routes_free_gsi(struct msi_routes *r, unsigned gsi)
{
	pthread_mutex_lock(&r->lock);
	struct msi_route *s = slot(r, gsi);
	if (s)
		*s = (struct msi_route){ .allocated = false };
	pthread_mutex_unlock(&r->lock);
}

/* Writes the whole table to KVM. Lock held. */
static int commit(struct msi_routes *r)
{
	unsigned n = r->n_defaults;
	for (unsigned i = 0; i < r->n_slots; i++)
		n += r->routes[i].routed;
	if (n > r->table_cap) {
		void *t = realloc(r->table, sizeof(struct kvm_irq_routing) + n * sizeof(struct kvm_irq_routing_entry));
		if (!t)
			return -1;
		r->table = t;
		r->table_cap = n;
	}
	struct kvm_irq_routing *t = r->table;
	memset(t, 0, sizeof(*t) + n * sizeof(t->entries[0]));
	t->nr = n;
	struct kvm_irq_routing_entry *e = t->entries;
	memcpy(e, r->defaults, r->n_defaults * sizeof(*e));
	e += r->n_defaults;
	for (unsigned i = 0; i < r->n_slots; i++) {
		const struct msi_route *s = &r->routes[i];
		if (!s->routed)
			continue;
		e->gsi = r->first_gsi + i;
		e->type = KVM_IRQ_ROUTING_MSI;
		if (r->msi_devid) {
			e->flags = KVM_MSI_VALID_DEVID;
			e->u.msi.devid = s->msg.devid;
		}
		e->u.msi.address_lo = (uint32_t)s->msg.addr;
		e->u.msi.address_hi = (uint32_t)(s->msg.addr >> 32);
		e->u.msi.data = s->msg.data;
		e++;
	}
	r->commits++;
	if (ioctl(r->vm_fd, KVM_SET_GSI_ROUTING, t) < 0) {
		log_error_limited(&r->log_limit, "KVM_SET_GSI_ROUTING (%u routes): %s", n, strerror(errno));
		return -1;
	}
	return 0;
}

int msi_routes_set(struct msi_routes *r, const unsigned *gsi, const struct msi_msg *msg, unsigned count)
{
	pthread_mutex_lock(&r->lock);
	struct msi_route *old = malloc((count ? count : 1) * sizeof(*old));
	int rc = old ? 0 : -1;
	unsigned done = 0;
	for (; rc == 0 && done < count; done++) {
		struct msi_route *s = slot(r, gsi[done]);
		if (!s) {
			log_error("internal: MSI route for GSI %u, which is not allocated", gsi[done]);
			rc = -1;
			break;
		}
		old[done] = *s;
		s->routed = true;
		s->msg = msg[done];
	}
	if (rc == 0)
		rc = commit(r);
	if (rc && old) {
		/* KVM kept its previous table: so do we. */
		while (done--)
			*slot(r, gsi[done]) = old[done];
	}
	free(old);
	pthread_mutex_unlock(&r->lock);
	return rc;
}
