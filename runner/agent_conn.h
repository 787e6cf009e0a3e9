/* Reaching the guest agent: the vsock device's Unix socket, Firecracker's
 * "CONNECT <port>" handshake, retried while the guest boots. */
#ifndef MINIVMM_RUNNER_AGENT_CONN_H
#define MINIVMM_RUNNER_AGENT_CONN_H

#include <signal.h>
#include <stddef.h>

struct vm_proc;

/* CLOCK_MONOTONIC in milliseconds. */
double runner_now_ms(void);

enum agent_connect_error { AGENT_CONN_FAILED = -1, AGENT_CONN_TIMEOUT = -2 };

/* Connects to the agent's port through the device socket at sock_path,
 * trying again (5 ms, doubling up to 100 ms) while nobody listens, until limit_ms
 * (runner_now_ms() time), *stop, or the VM's end. Returns a blocking fd
 * joined to the agent, or an agent_connect_error with a reason in err. */
int agent_connect(const char *sock_path, struct vm_proc *vm, double limit_ms, volatile sig_atomic_t *stop,
		  char *err, size_t errlen);

/* HELLO, then READY within limit_ms (or until *stop): whether the agent is
 * up. Returns 0, or -1 with a reason in err. The fd stays open. */
int agent_hello(int fd, double limit_ms, volatile sig_atomic_t *stop, char *err, size_t errlen);

#endif
