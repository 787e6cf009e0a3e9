/* The function runner's wire protocol between the host (minivmm-runner) and
 * the guest agent (mvagent), over one vsock stream per job.
 *
 * Everything is a frame: an 8-byte header, then `len` bytes of payload.
 *   u8 type; u8 zero; u16 zero; u32 len (little-endian)
 * A payload is at most RUNNER_FRAME_MAX bytes; anything bigger (a file, stdin,
 * stdout) travels as many frames. A peer that sends an unknown type, nonzero
 * pad bytes, a length over the maximum, or a payload that does not fit its
 * type is broken: the other side says so in one line and drops the stream.
 *
 * One job on one connection, in this order:
 *   host:  HELLO                      agent: READY
 *   host:  SEED, then ARG+ ENV* CWD? (FILE FILE_DATA*)* RUN
 *   host:  STDIN* STDIN_EOF           (may interleave with the agent's output)
 *   agent: STDOUT* STDERR* ... EXIT   (or ERROR at any point, then close)
 * HELLO alone (then close) is the runner's "is the agent up" probe.
 * Between SEED and RUN the agent takes ARG, ENV, CWD and FILE in any order
 * (argv in ARG order; at most one CWD); a FILE's `size` bytes must all come
 * as FILE_DATA before the next other frame. A relative FILE path is taken
 * from / (the agent's directory), not from CWD.
 *
 * Payload lengths each type allows (the header check):
 *   HELLO, READY 4; EXIT 2; RUN, STDIN_EOF 0; SEED 12 + 0..256 entropy bytes;
 *   FILE 12 + a path of 1 or more bytes; ARG any (an empty argument is
 *   legal); ENV, CWD 1 or more; ERROR 1..1024; FILE_DATA, STDIN, STDOUT,
 *   STDERR any (up to RUNNER_FRAME_MAX).
 *
 * Pure: no I/O here; both sides and the unit tests share it. */
#ifndef MINIVMM_RUNNER_PROTO_H
#define MINIVMM_RUNNER_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RUNNER_PROTO_VERSION 1
/* The vsock port the agent listens on. */
#define RUNNER_AGENT_PORT 52
#define RUNNER_FRAME_HDR 8
/* Larger than Linux's longest single argument (MAX_ARG_STRLEN, 128 KiB), so
 * any argument or environment string fits in one frame. */
#define RUNNER_FRAME_MAX (256u * 1024)
/* Entropy bytes in a SEED frame (after the 12 bytes of time): what the
 * runner sends, and the most a SEED may carry. */
#define RUNNER_SEED_ENTROPY 64
#define RUNNER_SEED_ENTROPY_MAX 256
/* The longest ERROR line. */
#define RUNNER_ERROR_MAX 1024
/* What one job's command line may hold: at most RUNNER_MAX_ARGS ARG frames
 * and as many ENV frames, and RUNNER_MAX_ARGV_BYTES of ARG and ENV strings
 * in all (each counted with its terminating NUL). */
#define RUNNER_MAX_ARGS 65536
#define RUNNER_MAX_ARGV_BYTES (16u * 1024 * 1024)

enum runner_frame_type {
	/* host -> agent */
	RF_HELLO = 1,	  /* u32 protocol version */
	RF_SEED = 2,	  /* u64 seconds, u32 nanoseconds (CLOCK_REALTIME), 0-256 entropy bytes */
	RF_ARG = 3,	  /* one argv string, no NUL */
	RF_ENV = 4,	  /* one "NAME=VALUE", no NUL, NAME not empty (has an '=') */
	RF_CWD = 5,	  /* the working directory, no NUL */
	RF_FILE = 6,	  /* u32 mode, u64 size, path (no NUL); size bytes follow as FILE_DATA */
	RF_FILE_DATA = 7, /* bytes of the file announced last */
	RF_RUN = 8,	  /* empty: start the command */
	RF_STDIN = 9,	  /* bytes for the command's stdin */
	RF_STDIN_EOF = 10, /* empty: close the command's stdin */
	/* agent -> host */
	RF_READY = 0x81,  /* u32 protocol version */
	RF_STDOUT = 0x82, /* bytes the command wrote to stdout */
	RF_STDERR = 0x83, /* bytes the command wrote to stderr */
	RF_EXIT = 0x84,	  /* u8 kind (0 exited, 1 killed by a signal), u8 code */
	RF_ERROR = 0x85,  /* one line of text: what went wrong (no command ran, or the stream broke) */
};

enum runner_exit_kind { RUNNER_EXITED = 0, RUNNER_SIGNALED = 1 };

struct runner_frame_hdr {
	uint8_t type;
	uint32_t len;
};

/* Writes a header for (type, len) into out[RUNNER_FRAME_HDR]. */
void runner_hdr_encode(uint8_t out[RUNNER_FRAME_HDR], uint8_t type, uint32_t len);

/* Checks and decodes a header. Returns 0, or -1 with a one-line reason in err
 * (unknown type, pad bytes set, payload too long, or a length its type does
 * not allow: e.g. a nonempty RUN, an EXIT that is not 2 bytes). */
int runner_hdr_decode(const uint8_t in[RUNNER_FRAME_HDR], struct runner_frame_hdr *hdr, char *err, size_t errlen);

/* Whether a frame of this type may be sent by the host (else by the agent). */
bool runner_type_from_host(uint8_t type);

/* The type's name ("HELLO", ...), or "unknown". */
const char *runner_type_name(uint8_t type);

/* Fixed-layout payloads. Each encode returns the payload length written into
 * out (big enough: 16 bytes for all of them); each decode returns 0, or -1 with
 * a reason (wrong length, bad value). */
size_t runner_u32_encode(uint8_t *out, uint32_t v);
int runner_u32_decode(const uint8_t *p, size_t len, uint32_t *v, char *err, size_t errlen);

struct runner_exit {
	uint8_t kind; /* enum runner_exit_kind */
	uint8_t code; /* exit status 0-255, or the signal number 1-64 */
};
size_t runner_exit_encode(uint8_t *out, const struct runner_exit *e);
int runner_exit_decode(const uint8_t *p, size_t len, struct runner_exit *e, char *err, size_t errlen);

/* SEED: time then entropy; the entropy is at p + RUNNER_SEED_TIME_LEN. */
#define RUNNER_SEED_TIME_LEN 12
struct runner_seed {
	uint64_t sec;
	uint32_t nsec;
	const uint8_t *entropy;
	size_t entropy_len;
};
/* Writes the 12 bytes of time; the caller appends the entropy. */
size_t runner_seed_time_encode(uint8_t *out, uint64_t sec, uint32_t nsec);
int runner_seed_decode(const uint8_t *p, size_t len, struct runner_seed *s, char *err, size_t errlen);

/* FILE: mode and size, then the path (the rest of the payload). */
#define RUNNER_FILE_HDR_LEN 12
struct runner_file {
	uint32_t mode;
	uint64_t size;
	const char *path; /* not NUL-terminated: path_len bytes */
	size_t path_len;
};
size_t runner_file_hdr_encode(uint8_t *out, uint32_t mode, uint64_t size);
int runner_file_decode(const uint8_t *p, size_t len, struct runner_file *f, char *err, size_t errlen);

/* Checks a string payload (ARG, ENV, CWD, FILE path): no NUL byte; ENV has a
 * nonempty name before '='; CWD and paths are not empty. */
int runner_string_check(uint8_t type, const uint8_t *p, size_t len, char *err, size_t errlen);

#endif
