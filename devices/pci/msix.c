#include "devices/pci/msix.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "devices/pci/pci_dev.h"
#include "vmm/base/log.h"

int msix_init(struct msix *m, const char *name, unsigned n_vectors, unsigned n_users,
	      const struct device_host *host)
{
	memset(m, 0, sizeof(*m));
	pthread_mutex_init(&m->lock, NULL);
	m->name = name;
	m->host = *host;
	if (n_vectors == 0 || n_vectors > MSIX_MAX_VECTORS) {
		log_error("%s: %u MSI-X vectors (1 to %d supported)", name, n_vectors, MSIX_MAX_VECTORS);
		return -1;
	}
	m->vectors = calloc(n_vectors, sizeof(*m->vectors));
	m->users = calloc(n_users ? n_users : 1, sizeof(*m->users));
	m->scratch_gsi = calloc(n_vectors, sizeof(*m->scratch_gsi));
	m->scratch_msg = calloc(n_vectors, sizeof(*m->scratch_msg));
	m->scratch_users = calloc(n_vectors, sizeof(*m->scratch_users));
	if (!m->vectors || !m->users || !m->scratch_gsi || !m->scratch_msg || !m->scratch_users) {
		log_error("%s: out of memory", name);
		return -1;
	}
	m->n_users = n_users;
	for (unsigned u = 0; u < n_users; u++)
		m->users[u] = (struct msix_user){ .fd = -1, .vector = MSIX_NO_VECTOR, .attached_gsi = -1 };
	for (unsigned v = 0; v < n_vectors; v++) {
		int gsi = host->ops->alloc_gsi(host->ctx);
		if (gsi < 0) {
			log_error("%s: no free GSI for MSI-X vector %u", name, v);
			return -1;
		}
		m->vectors[v].gsi = (unsigned)gsi;
		m->vectors[v].entry[3] = MSIX_ENTRY_CTRL_MASKBIT;   /* masked at reset */
		m->n_vectors = v + 1;   /* destroy frees exactly the GSIs we got */
	}
	return 0;
}

static void detach(struct msix *m, struct msix_user *u)
{
	if (u->attached_gsi < 0)
		return;
	int e = m->host.ops->set_irqfd(m->host.ctx, u->fd, (unsigned)u->attached_gsi, false);
	if (e)
		log_warn("%s: cannot disconnect an interrupt from GSI %d: %s", m->name, u->attached_gsi,
			 device_host_error(e));
	u->attached_gsi = -1;
}

void msix_destroy(struct msix *m)
{
	if (m->users)
		for (unsigned u = 0; u < m->n_users; u++)
			detach(m, &m->users[u]);
	if (m->vectors)
		for (unsigned v = 0; v < m->n_vectors; v++)
			m->host.ops->free_gsi(m->host.ctx, m->vectors[v].gsi);
	free(m->vectors);
	free(m->users);
	free(m->scratch_gsi);
	free(m->scratch_msg);
	free(m->scratch_users);
	m->vectors = NULL;
	m->users = NULL;
	m->scratch_gsi = NULL;
	m->scratch_msg = NULL;
	m->scratch_users = NULL;
	m->n_vectors = m->n_users = 0;
	pthread_mutex_destroy(&m->lock);
}

static bool deliverable(const struct msix *m, unsigned v)
{
	return m->enabled && !m->function_masked && !(m->vectors[v].entry[3] & MSIX_ENTRY_CTRL_MASKBIT);
}

static struct msi_msg message(const struct msix *m, unsigned v)
{
	const uint32_t *e = m->vectors[v].entry;
	return (struct msi_msg){ .addr = e[0] | (uint64_t)e[1] << 32, .data = e[2], .devid = m->devid };
}

/* Brings KVM in line with the registers: routes first (one commit for all
 * that changed), then the irqfds. Lock held. */
static void sync(struct msix *m)
{
	memset(m->scratch_users, 0, m->n_vectors * sizeof(*m->scratch_users));
	for (unsigned u = 0; u < m->n_users; u++)
		if (m->users[u].vector < m->n_vectors && m->users[u].fd >= 0)
			m->scratch_users[m->users[u].vector]++;

	unsigned n = 0;
	for (unsigned v = 0; v < m->n_vectors; v++) {
		struct msix_vector *vec = &m->vectors[v];
		if (!m->scratch_users[v] || !deliverable(m, v))
			continue;
		struct msi_msg msg = message(m, v);
		if (vec->routed && vec->routed_msg.addr == msg.addr && vec->routed_msg.data == msg.data &&
		    vec->routed_msg.devid == msg.devid)
			continue;
		m->scratch_gsi[n] = vec->gsi;
		m->scratch_msg[n] = msg;
		n++;
	}
	if (n) {
		bool ok = m->host.ops->set_msi_routes(m->host.ctx, m->scratch_gsi, m->scratch_msg, n) == 0;
		if (!ok && !m->warned) {
			log_warn("%s: cannot set MSI routes; the interrupts stay pending", m->name);
			m->warned = true;
		}
		for (unsigned i = 0, v = 0; v < m->n_vectors && i < n; v++) {
			if (m->vectors[v].gsi != m->scratch_gsi[i])
				continue;
			m->vectors[v].routed = ok;
			m->vectors[v].routed_msg = m->scratch_msg[i];
			i++;
		}
	}

	for (unsigned i = 0; i < m->n_users; i++) {
		struct msix_user *u = &m->users[i];
		int want = -1;
		if (u->fd >= 0 && u->vector < m->n_vectors && deliverable(m, u->vector) &&
		    m->vectors[u->vector].routed)
			want = (int)m->vectors[u->vector].gsi;
		if (u->attached_gsi != want)
			detach(m, u);
		if (want >= 0 && u->attached_gsi < 0) {
			int e = m->host.ops->set_irqfd(m->host.ctx, u->fd, (unsigned)want, true);
			if (e == 0) {
				u->attached_gsi = want;
			} else if (!m->warned) {
				log_warn("%s: cannot connect an interrupt to GSI %d (%s); it stays pending", m->name, want,
					 device_host_error(e));
				m->warned = true;
			}
		}
	}
}

void msix_set_devid(struct msix *m, uint32_t devid)
{
	pthread_mutex_lock(&m->lock);
	m->devid = devid;
	sync(m);   /* a route already written carried the old ID */
	pthread_mutex_unlock(&m->lock);
}

void msix_set_user_fd(struct msix *m, unsigned u, int fd)
{
	pthread_mutex_lock(&m->lock);
	if (u < m->n_users) {
		detach(m, &m->users[u]);
		m->users[u].fd = fd;
		sync(m);
	}
	pthread_mutex_unlock(&m->lock);
}

uint16_t msix_set_user_vector(struct msix *m, unsigned u, uint16_t vector)
{
	pthread_mutex_lock(&m->lock);
	if (vector >= m->n_vectors)
		vector = MSIX_NO_VECTOR;
	if (u < m->n_users && m->users[u].vector != vector) {
		m->users[u].vector = vector;
		sync(m);
	} else if (u >= m->n_users) {
		vector = MSIX_NO_VECTOR;
	}
	pthread_mutex_unlock(&m->lock);
	return vector;
}

void msix_control_write(struct msix *m, uint16_t control)
{
	pthread_mutex_lock(&m->lock);
	bool enabled = control & PCI_MSIX_FLAGS_ENABLE, masked = control & PCI_MSIX_FLAGS_MASKALL;
	if (enabled != m->enabled || masked != m->function_masked) {
		m->enabled = enabled;
		m->function_masked = masked;
		atomic_store(&m->enabled_flag, enabled);
		sync(m);
	}
	pthread_mutex_unlock(&m->lock);
}

bool msix_enabled(struct msix *m)
{
	return atomic_load(&m->enabled_flag);
}

/* Checks an access: 4 bytes at a 4-byte offset or 8 at an 8-byte one. */
static bool access_ok(uint64_t off, unsigned size)
{
	return (size == 4 || size == 8) && !(off & (size - 1));
}

void msix_table_read(struct msix *m, uint64_t off, void *data, unsigned size)
{
	memset(data, 0, size);
	if (!access_ok(off, size))
		return;
	pthread_mutex_lock(&m->lock);
	if (off < (uint64_t)m->n_vectors * MSIX_ENTRY_SIZE)
		memcpy(data, (uint8_t *)m->vectors[off / MSIX_ENTRY_SIZE].entry + off % MSIX_ENTRY_SIZE, size);
	pthread_mutex_unlock(&m->lock);
}

void msix_table_write(struct msix *m, uint64_t off, const void *data, unsigned size)
{
	if (!access_ok(off, size))
		return;
	pthread_mutex_lock(&m->lock);
	if (off < (uint64_t)m->n_vectors * MSIX_ENTRY_SIZE) {
		struct msix_vector *vec = &m->vectors[off / MSIX_ENTRY_SIZE];
		uint32_t dw[2] = { 0, 0 };
		memcpy(dw, data, size);
		unsigned first = (unsigned)(off % MSIX_ENTRY_SIZE) / 4;
		bool changed = false;
		for (unsigned i = 0; i < size / 4; i++) {
			unsigned f = first + i;
			uint32_t v = f == 3 ? (dw[i] & MSIX_ENTRY_CTRL_MASKBIT) : dw[i];   /* other control bits reserved */
			changed |= vec->entry[f] != v;
			vec->entry[f] = v;
		}
		if (changed)
			sync(m);
	}
	pthread_mutex_unlock(&m->lock);
}

static bool fd_signalled(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

void msix_pba_read(struct msix *m, uint64_t off, void *data, unsigned size)
{
	memset(data, 0, size);
	if (!access_ok(off, size))
		return;
	uint64_t bits = 0;
	pthread_mutex_lock(&m->lock);
	uint64_t first = off * 8;
	for (unsigned i = 0; i < m->n_users; i++) {
		const struct msix_user *u = &m->users[i];
		if (u->vector >= m->n_vectors || u->vector < first || u->vector - first >= size * 8u)
			continue;
		/* A deliverable vector's irqfd takes every signal at once. */
		if (u->fd >= 0 && u->attached_gsi < 0 && fd_signalled(u->fd))
			bits |= 1ull << (u->vector - first);
	}
	pthread_mutex_unlock(&m->lock);
	memcpy(data, &bits, size);
}
