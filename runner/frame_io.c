#define _GNU_SOURCE
#include "frame_io.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int frame_in_init(struct frame_in *in)
{
	memset(in, 0, sizeof(*in));
	in->buf = malloc(RUNNER_FRAME_HDR + RUNNER_FRAME_MAX);
	return in->buf ? 0 : -1;
}

void frame_in_free(struct frame_in *in)
{
	free(in->buf);
	in->buf = NULL;
}

/* Drops the frame returned last, so that the next one starts the buffer. */
static void frame_in_consume(struct frame_in *in)
{
	if (!in->frame_len)
		return;
	memmove(in->buf, in->buf + in->frame_len, in->have - in->frame_len);
	in->have -= in->frame_len;
	in->frame_len = 0;
}

int frame_in_fill(struct frame_in *in, int fd)
{
	frame_in_consume(in);
	size_t room = RUNNER_FRAME_HDR + RUNNER_FRAME_MAX - in->have;
	if (!room)
		return 1; /* a whole frame is there: frame_in_next takes it */
	ssize_t n;
	do
		n = read(fd, in->buf + in->have, room);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return (errno == EAGAIN || errno == EWOULDBLOCK) ? 1 : -1;
	if (n == 0)
		return 0;
	in->have += (size_t)n;
	return 1;
}

int frame_in_next(struct frame_in *in, struct runner_frame_hdr *hdr, const uint8_t **payload, char *err,
		  size_t errlen)
{
	frame_in_consume(in);
	if (in->have < RUNNER_FRAME_HDR)
		return 0;
	if (runner_hdr_decode(in->buf, hdr, err, errlen) < 0)
		return -1;
	if (in->have < RUNNER_FRAME_HDR + (size_t)hdr->len)
		return 0;
	*payload = in->buf + RUNNER_FRAME_HDR;
	in->frame_len = RUNNER_FRAME_HDR + hdr->len;
	return 1;
}

int frame_out_init(struct frame_out *out, size_t cap)
{
	memset(out, 0, sizeof(*out));
	out->buf = malloc(cap);
	out->cap = cap;
	return out->buf ? 0 : -1;
}

void frame_out_free(struct frame_out *out)
{
	free(out->buf);
	out->buf = NULL;
}

size_t frame_out_pending(const struct frame_out *out)
{
	return out->end - out->start;
}

size_t frame_out_room(const struct frame_out *out)
{
	return out->cap - frame_out_pending(out);
}

int frame_out_add2(struct frame_out *out, uint8_t type, const void *p1, size_t l1, const void *p2, size_t l2)
{
	size_t len = l1 + l2;
	if (len > RUNNER_FRAME_MAX || RUNNER_FRAME_HDR + len > frame_out_room(out))
		return -1;
	if (out->cap - out->end < RUNNER_FRAME_HDR + len) {
		memmove(out->buf, out->buf + out->start, frame_out_pending(out));
		out->end -= out->start;
		out->start = 0;
	}
	runner_hdr_encode(out->buf + out->end, type, (uint32_t)len);
	out->end += RUNNER_FRAME_HDR;
	if (l1)
		memcpy(out->buf + out->end, p1, l1);
	out->end += l1;
	if (l2)
		memcpy(out->buf + out->end, p2, l2);
	out->end += l2;
	return 0;
}

int frame_out_add(struct frame_out *out, uint8_t type, const void *payload, size_t len)
{
	return frame_out_add2(out, type, payload, len, NULL, 0);
}

int frame_out_flush(struct frame_out *out, int fd)
{
	while (out->start < out->end) {
		ssize_t n = send(fd, out->buf + out->start, out->end - out->start, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == ENOTSOCK)
			n = write(fd, out->buf + out->start, out->end - out->start);
		if (n < 0)
			return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
		out->start += (size_t)n;
	}
	out->start = out->end = 0;
	return 0;
}

int write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}
