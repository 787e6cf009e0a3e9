/* Valid Ethernet + IPv4 + UDP frames, for the tests and benchmarks that send
 * frames through a tap: the kernel takes them as real traffic, and the
 * source port picks the flow (the tap's queue). Needs no test framework. */
#ifndef MINIVMM_TESTS_UDP_FRAME_H
#define MINIVMM_TESTS_UDP_FRAME_H

#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Sets the header checksum of the 20-byte IPv4 header at ip. */
static inline void ipv4_set_checksum(uint8_t *ip)
{
	ip[10] = ip[11] = 0;
	uint32_t sum = 0;
	for (int i = 0; i < 20; i += 2)
		sum += (uint32_t)(ip[i] << 8 | ip[i + 1]);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	ip[10] = (uint8_t)(~sum >> 8);
	ip[11] = (uint8_t)~sum;
}

/* len bytes (at least 42) from 52:54:00:01:02:03 to 52:54:00:aa:bb:cc,
 * 10.0.0.1:sport to 10.0.0.2:9, IP checksum set, UDP checksum 0 (none);
 * the payload is all fill. */
static inline void make_udp_frame(uint8_t *f, size_t len, uint16_t sport, uint8_t fill)
{
	static const uint8_t dst[6] = { 0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc }, src[6] = { 0x52, 0x54, 0x00, 1, 2, 3 };
	memset(f, fill, len);
	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	f[12] = 0x08;
	f[13] = 0x00;
	uint8_t *ip = f + 14;
	memset(ip, 0, 20);
	ip[0] = 0x45;
	uint16_t tot = htons((uint16_t)(len - 14));
	memcpy(ip + 2, &tot, 2);
	ip[8] = 64;
	ip[9] = 17;
	uint8_t sa[4] = { 10, 0, 0, 1 }, da[4] = { 10, 0, 0, 2 };
	memcpy(ip + 12, sa, 4);
	memcpy(ip + 16, da, 4);
	ipv4_set_checksum(ip);
	uint8_t *udp = ip + 20;
	uint16_t sp = htons(sport), dp = htons(9), ul = htons((uint16_t)(len - 34));
	memcpy(udp, &sp, 2);
	memcpy(udp + 2, &dp, 2);
	memcpy(udp + 4, &ul, 2);
	udp[6] = udp[7] = 0;
}

#endif
