#include "vmm/base/log_limit.h"

#define WINDOW_NS ((uint64_t)LOG_LIMIT_WINDOW_S * 1000000000ull)

void log_limit_init(struct log_limit *l, const char *who)
{
	const char *env = getenv("MINIVMM_GUEST_WARNINGS");
	*l = (struct log_limit){ .who = who, .unlimited = env && strcmp(env, "all") == 0 };
	pthread_mutex_init(&l->lock, NULL);
}

/* Called with the lock held. */
static void report_held(struct log_limit *l, uint64_t now_ns)
{
	if (!l->held)
		return;
	uint64_t secs = (now_ns - l->window_start_ns + 999999999ull) / 1000000000ull;
	log_warn("%s: %llu more warnings like these in the last %llu s (rate-limited)", l->who,
		 (unsigned long long)l->held, (unsigned long long)secs);
	l->held = 0;
}

void log_limit_destroy(struct log_limit *l)
{
	pthread_mutex_lock(&l->lock);
	report_held(l, monotonic_ns());
	pthread_mutex_unlock(&l->lock);
	pthread_mutex_destroy(&l->lock);
}

bool log_limit_pass_at(struct log_limit *l, uint64_t now_ns)
{
	if (!l || l->unlimited)
		return true;
	pthread_mutex_lock(&l->lock);
	if (l->passed == 0 || now_ns - l->window_start_ns >= WINDOW_NS) {
		report_held(l, now_ns);
		l->window_start_ns = now_ns;
		l->passed = 0;
	}
	bool pass = l->passed < LOG_LIMIT_BURST;
	if (pass)
		l->passed++;
	else
		l->held++;
	pthread_mutex_unlock(&l->lock);
	return pass;
}

bool log_limit_pass(struct log_limit *l)
{
	return log_limit_pass_at(l, l ? monotonic_ns() : 0);
}
