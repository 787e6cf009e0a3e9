/* Frames of runner/proto.h on a non-blocking stream: a reader that
 * reassembles them from whatever read() returns, and a writer that queues
 * them until the socket takes them. Used by the runner and the agent. */
#ifndef MINIVMM_RUNNER_FRAME_IO_H
#define MINIVMM_RUNNER_FRAME_IO_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct frame_in {
	uint8_t *buf; /* RUNNER_FRAME_HDR + RUNNER_FRAME_MAX bytes */
	size_t have;
	size_t frame_len; /* bytes of the frame last returned, 0 if none */
};

struct frame_out {
	uint8_t *buf;
	size_t cap, start, end; /* bytes [start, end) are waiting */
};

int frame_in_init(struct frame_in *in);
void frame_in_free(struct frame_in *in);
/* Reads what fd has. Returns 1 if it read bytes (or would block), 0 at EOF,
 * -1 on an error (errno set). Call only when frame_in_next returned 0. */
int frame_in_fill(struct frame_in *in, int fd);
/* The next complete frame: 1 and its header and payload (valid until the
 * next call), 0 if more bytes are needed, -1 with a reason if it is bad. */
int frame_in_next(struct frame_in *in, struct runner_frame_hdr *hdr, const uint8_t **payload, char *err,
		  size_t errlen);

/* cap bytes of buffer; a frame is queued only when it fits whole. */
int frame_out_init(struct frame_out *out, size_t cap);
void frame_out_free(struct frame_out *out);
size_t frame_out_room(const struct frame_out *out);
size_t frame_out_pending(const struct frame_out *out);
/* Queues one frame; -1 if it does not fit (check frame_out_room first). */
int frame_out_add(struct frame_out *out, uint8_t type, const void *payload, size_t len);
/* Two-part payload (a fixed header then bytes), as one frame. */
int frame_out_add2(struct frame_out *out, uint8_t type, const void *p1, size_t l1, const void *p2, size_t l2);
/* Writes what fd takes. Returns 0, or -1 on an error other than EAGAIN. */
int frame_out_flush(struct frame_out *out, int fd);

/* write() until all of buf is written (blocking fd). 0, or -1 (errno). */
int write_all(int fd, const void *buf, size_t len);

#endif
