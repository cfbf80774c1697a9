/* SPDX-License-Identifier: MIT
 *
 * proxy.c -- the PROXY protocol header, versions 1 and 2 (see proxy.h).
 * Every check is an early return, in the order the bytes come, so that a
 * connection that does not begin with a header (an HTTP request sent
 * straight to a proxied listener) is refused at its first byte.
 */
#include "proto/proxy.h"

#include <string.h>

static const uint8_t v2_sig[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                    0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };
static const char v1_sig[6] = { 'P', 'R', 'O', 'X', 'Y', ' ' };

/* v2 family/transport bytes we take (the high nibble is the family). */
enum { V2_UNSPEC = 0x00, V2_TCP4 = 0x11, V2_TCP6 = 0x21, V2_UNIX_STREAM = 0x31 };

/* PP2_TYPE_SSL and its PP2_CLIENT_SSL bit. */
#define PP2_TYPE_SSL 0x20
#define PP2_CLIENT_SSL 0x01

/* A port: decimal 0-65535, no leading zero. */
static int port_of(const char *s, size_t n, uint16_t *port)
{
    unsigned long v = 0;
    size_t i;
    if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
        return 0;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > 65535)
        return 0;
    *port = (uint16_t)v;
    return 1;
}

/* Version 1: p starts with "PROXY ". */
static int parse_v1(const uint8_t *p, size_t len, struct ws_proxy *out)
{
    const char *line = (const char *)p;
    const char *f[5];
    size_t fl[5], i, end, at;
    int k, want;
    struct ws_proxy r;
    /* the line: printable ASCII up to CRLF, within the bound */
    for (i = sizeof v1_sig; i < len && i < WS_PROXY_V1_MAX; i++) {
        if (p[i] == '\r')
            break;
        if (p[i] < 0x20 || p[i] > 0x7e)
            return WS_EPROTO;
    }
    if (i + 2 > WS_PROXY_V1_MAX)
        return WS_EPROTO;   /* no room left for the CRLF within 107 bytes */
    if (i + 1 >= len)
        return WS_PARTIAL;
    if (p[i + 1] != '\n')
        return WS_EPROTO;
    end = i;
    memset(&r, 0, sizeof r);
    r.version = 1;
    at = sizeof v1_sig;
    if (end - at >= 7 && memcmp(line + at, "UNKNOWN", 7) == 0 && (end - at == 7 || line[at + 7] == ' ')) {
        r.local = 1;   /* what follows UNKNOWN is ignored, as the specification says */
        *out = r;
        return (int)(end + 2);
    }
    /* exactly five fields, one space between each */
    for (k = 0; k < 5; k++) {
        size_t j = at;
        while (j < end && line[j] != ' ')
            j++;
        if (j == at || (k < 4) != (j < end))
            return WS_EPROTO;
        f[k] = line + at;
        fl[k] = j - at;
        at = j + 1;
    }
    if (fl[0] != 4 || (memcmp(f[0], "TCP4", 4) != 0 && memcmp(f[0], "TCP6", 4) != 0))
        return WS_EPROTO;
    want = f[0][3] == '4' ? WS_AF_INET : WS_AF_INET6;
    if (!ws_ip_parse(f[1], fl[1], &r.src) || r.src.family != want ||
        !ws_ip_parse(f[2], fl[2], &r.dst) || r.dst.family != want ||
        !port_of(f[3], fl[3], &r.src.port) || !port_of(f[4], fl[4], &r.dst.port))
        return WS_EPROTO;
    *out = r;
    return (int)(end + 2);
}

/* The TLVs of a v2 header, p[0..n): each type, 16-bit length, value; they
 * must tile the region exactly. */
static int parse_tlvs(const uint8_t *p, size_t n, struct ws_proxy *r)
{
    size_t at = 0;
    while (at < n) {
        size_t vlen;
        if (n - at < 3)
            return 0;
        vlen = (size_t)p[at + 1] << 8 | p[at + 2];
        if (vlen > n - at - 3)
            return 0;
        if (p[at] == PP2_TYPE_SSL && vlen >= 5 && (p[at + 3] & PP2_CLIENT_SSL))
            r->ssl = 1;
        at += 3 + vlen;
    }
    return 1;
}

/* Version 2: p starts with (a prefix of) the signature. */
static int parse_v2(const uint8_t *p, size_t len, struct ws_proxy *out)
{
    size_t total, need = 0, blen;
    struct ws_proxy r;
    const uint8_t *b;
    if (len >= 13 && (p[12] >> 4) != 2)
        return WS_EPROTO;   /* version 2 only */
    if (len >= 13 && (p[12] & 0x0f) > 1)
        return WS_EPROTO;   /* LOCAL (0) or PROXY (1) */
    if (len >= 14 && p[12] == 0x21 && p[13] != V2_UNSPEC && p[13] != V2_TCP4 &&
        p[13] != V2_TCP6 && p[13] != V2_UNIX_STREAM)
        return WS_EPROTO;   /* a datagram family, or none the specification knows */
    if (len < 16)
        return WS_PARTIAL;
    blen = (size_t)p[14] << 8 | p[15];
    total = 16 + blen;
    if (total > LUAWS_MAX_PROXY_V2)
        return WS_EPROTO;
    if (p[12] == 0x21)
        need = p[13] == V2_TCP4 ? 12 : p[13] == V2_TCP6 ? 36 : p[13] == V2_UNIX_STREAM ? 216 : 0;
    if (blen < need)
        return WS_EPROTO;   /* the length cannot hold the addresses */
    if (len < total)
        return WS_PARTIAL;
    memset(&r, 0, sizeof r);
    r.version = 2;
    b = p + 16;
    if (p[12] == 0x20 || p[13] == V2_UNSPEC) {
        /* LOCAL (the balancer's own connection) or no address: ours stand.
         * The address block and TLVs of a LOCAL header are not read. */
        r.local = 1;
        *out = r;
        return (int)total;
    }
    if (p[13] == V2_TCP4) {
        r.src.family = r.dst.family = WS_AF_INET;
        memcpy(r.src.bytes, b, 4);
        memcpy(r.dst.bytes, b + 4, 4);
        r.src.port = (uint16_t)(b[8] << 8 | b[9]);
        r.dst.port = (uint16_t)(b[10] << 8 | b[11]);
    } else if (p[13] == V2_TCP6) {
        r.src.family = r.dst.family = WS_AF_INET6;
        memcpy(r.src.bytes, b, 16);
        memcpy(r.dst.bytes, b + 16, 16);
        r.src.port = (uint16_t)(b[32] << 8 | b[33]);
        r.dst.port = (uint16_t)(b[34] << 8 | b[35]);
    } else {
        r.src.family = r.dst.family = WS_AF_UNIX;   /* the paths say nothing we use */
    }
    if (!parse_tlvs(b + need, blen - need, &r))
        return WS_EPROTO;
    *out = r;
    return (int)total;
}

int ws_proxy_parse(const uint8_t *p, size_t len, struct ws_proxy *out)
{
    size_t n;
    if (len == 0)
        return WS_PARTIAL;
    if (p[0] == 'P') {
        n = len < sizeof v1_sig ? len : sizeof v1_sig;
        if (memcmp(p, v1_sig, n) != 0)
            return WS_EPROTO;
        return n < sizeof v1_sig ? WS_PARTIAL : parse_v1(p, len, out);
    }
    n = len < sizeof v2_sig ? len : sizeof v2_sig;
    if (memcmp(p, v2_sig, n) != 0)
        return WS_EPROTO;
    return parse_v2(p, len, out);
}
