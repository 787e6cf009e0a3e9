/* Base64 (RFC 4648, with padding) for the server's JSON, which carries
 * stdin, files and output as strings whatever bytes they hold. */
#ifndef MINIVMM_RUNNER_BASE64_H
#define MINIVMM_RUNNER_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Characters base64_encode writes for len bytes, without the NUL. */
size_t base64_encoded_len(size_t len);
/* Writes the encoding and a NUL into out (base64_encoded_len + 1 bytes). */
void base64_encode(const uint8_t *in, size_t len, char *out);
/* Decodes into out (at least len / 4 * 3 bytes); returns the length, or -1
 * if in is not base64 (bad character, bad length or padding). */
long long base64_decode(const char *in, size_t len, uint8_t *out);

#endif
