/* Why a VM stops, and the one callback platform devices use to ask for it. */
#ifndef MINIVMM_STOP_H
#define MINIVMM_STOP_H

enum vm_stop_reason {
	STOP_NONE = 0,
	STOP_POWEROFF,      /* guest powered off: exit 0 */
	STOP_REBOOT,        /* guest asked for a reset: reported, exit 0 */
	STOP_GUEST_STATUS,  /* guest reported an exit status through the debug port */
	STOP_SIGNAL,        /* SIGINT/SIGTERM: exit 128+signal */
	STOP_USER_QUIT,     /* Ctrl-A x on the console: exit 0 */
	STOP_API,           /* "stop" on the control socket: exit 0 */
	STOP_ERROR,         /* KVM or VMM failure: exit 1 */
};

struct stop_sink {
	void (*request)(void *ctx, enum vm_stop_reason reason, int status);
	void *ctx;
};

static inline void stop_sink_request(const struct stop_sink *s, enum vm_stop_reason r, int status)
{
	if (s && s->request)
		s->request(s->ctx, r, status);
}

#endif
