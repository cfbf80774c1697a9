/* SPDX-License-Identifier: MIT
 *
 * addr.c -- IP address text <-> bytes, CIDR ranges, the trusted set (see
 * addr.h). Strict on input: one spelling of IPv4 (four decimal numbers
 * 0-255, no leading zeros), the RFC 4291 §2.2 forms of IPv6 (hex groups of
 * one to four digits, one "::", an IPv4 tail), no zone ids, no brackets
 * where a bare address is wanted. What a proxy writes always fits; what
 * does not is refused, never guessed at.
 */
#include "proto/addr.h"
#include "proto/hex.h"

#include <stdio.h>
#include <string.h>

/* A decimal number of 1 to maxdigits digits, no leading zero (but "0"),
 * at most max: s[0..len) whole. -1 if not. */
static long decimal(const char *s, size_t len, size_t maxdigits, long max)
{
    long v = 0;
    size_t i;
    if (len == 0 || len > maxdigits || (len > 1 && s[0] == '0'))
        return -1;
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v <= max ? v : -1;
}

/* Four dotted decimals 0-255 in s[0..len), into out[0..4). */
static int ipv4_parse(const char *s, size_t len, uint8_t *out)
{
    size_t i = 0, part;
    for (part = 0; part < 4; part++) {
        size_t j = i;
        long v;
        while (j < len && s[j] != '.')
            j++;
        if ((part < 3) != (j < len))
            return 0;   /* three dots, the last part ends the text */
        v = decimal(s + i, j - i, 3, 255);
        if (v < 0)
            return 0;
        out[part] = (uint8_t)v;
        i = j + 1;
    }
    return 1;
}

/* RFC 4291 §2.2: x:x:x:x:x:x:x:x, one "::" for a run of zero groups, the
 * last 32 bits maybe as an IPv4 dotted quad. Into out[0..16). */
static int ipv6_parse(const char *s, size_t len, uint8_t *out)
{
    uint16_t g[8];
    int n = 0, gap = -1, k;
    size_t i = 0;
    if (len < 2)
        return 0;
    if (s[0] == ':') {
        if (s[1] != ':')
            return 0;
        gap = 0;
        i = 2;
    }
    while (i < len) {
        size_t j = i;
        unsigned v = 0;
        if (n == 8)
            return 0;
        while (j < len && ws_hexval(s[j]) >= 0 && j - i < 5) {
            v = v * 16 + (unsigned)ws_hexval(s[j]);
            j++;
        }
        if (j < len && s[j] == '.') {
            uint8_t v4[4];
            if (n > 6 || !ipv4_parse(s + i, len - i, v4))
                return 0;
            g[n++] = (uint16_t)(v4[0] << 8 | v4[1]);
            g[n++] = (uint16_t)(v4[2] << 8 | v4[3]);
            i = len;
            break;
        }
        if (j == i || j - i > 4)
            return 0;
        g[n++] = (uint16_t)v;
        i = j;
        if (i == len)
            break;
        if (s[i] != ':')
            return 0;
        i++;
        if (i < len && s[i] == ':') {
            if (gap >= 0)
                return 0;   /* one "::" at most */
            gap = n;
            i++;
        } else if (i == len) {
            return 0;       /* a lone ':' at the end */
        }
    }
    if (gap < 0 ? n != 8 : n > 7)
        return 0;
    memset(out, 0, 16);
    for (k = 0; k < n; k++) {
        int at = gap >= 0 && k >= gap ? k + (8 - n) : k;
        out[2 * at] = (uint8_t)(g[k] >> 8);
        out[2 * at + 1] = (uint8_t)g[k];
    }
    return 1;
}

int ws_ip_parse(const char *s, size_t len, struct ws_addr *a)
{
    struct ws_addr r;
    memset(&r, 0, sizeof r);
    if (memchr(s, ':', len)) {
        if (!ipv6_parse(s, len, r.bytes))
            return 0;
        r.family = WS_AF_INET6;
    } else {
        if (!ipv4_parse(s, len, r.bytes))
            return 0;
        r.family = WS_AF_INET;
    }
    *a = r;
    return 1;
}

/* ":port" at s[0..len) whole, into *port. */
static int port_parse(const char *s, size_t len, uint16_t *port)
{
    long v;
    if (len < 2 || s[0] != ':')
        return 0;
    v = decimal(s + 1, len - 1, 5, 65535);
    if (v < 0)
        return 0;
    *port = (uint16_t)v;
    return 1;
}

int ws_addr_parse(const char *s, size_t len, struct ws_addr *a)
{
    struct ws_addr r;
    const char *colon;
    uint16_t port = 0;
    if (len > 0 && s[0] == '[') {
        const char *end = memchr(s, ']', len);
        size_t in, rest;
        if (!end)
            return 0;
        in = (size_t)(end - s) - 1;
        rest = len - in - 2;
        if (!ipv6_parse(s + 1, in, r.bytes))
            return 0;
        if (rest > 0 && !port_parse(end + 1, rest, &port))
            return 0;
        r.family = WS_AF_INET6;
        r.port = port;
        *a = r;
        return 1;
    }
    colon = memchr(s, ':', len);
    if (colon && !memchr(colon + 1, ':', len - (size_t)(colon - s) - 1)) {
        /* one colon: IPv4 with a port */
        if (!port_parse(colon, len - (size_t)(colon - s), &port) ||
            !ws_ip_parse(s, (size_t)(colon - s), &r) || r.family != WS_AF_INET)
            return 0;
        r.port = port;
        *a = r;
        return 1;
    }
    if (!ws_ip_parse(s, len, &r))
        return 0;
    *a = r;
    return 1;
}

static int is_mapped(const struct ws_addr *a)
{
    static const uint8_t prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    return a->family == WS_AF_INET6 && memcmp(a->bytes, prefix, 12) == 0;
}

void ws_addr_unmap(struct ws_addr *a)
{
    if (is_mapped(a)) {
        memmove(a->bytes, a->bytes + 12, 4);
        memset(a->bytes + 4, 0, 12);
        a->family = WS_AF_INET;
    }
}

int ws_addr_equal(const struct ws_addr *a, const struct ws_addr *b)
{
    size_t n = a->family == WS_AF_INET ? 4 : a->family == WS_AF_INET6 ? 16 : 0;
    return a->family == b->family && a->port == b->port && memcmp(a->bytes, b->bytes, n) == 0;
}

/*
** RFC 5952 §4: lower-case hex without leading zeros; the longest run of two
** or more zero groups (the first of equal runs) as "::"; §5: an
** IPv4-mapped address ends in its dotted quad.
*/
size_t ws_addr_format(const struct ws_addr *a, char *buf, size_t size)
{
    char tmp[WS_ADDR_TEXT_MAX];
    size_t n = 0;
    int i, best = -1, bestlen = 0, groups = 8;
    if (a->family == WS_AF_INET) {   /* by hand: once per request (req.remote), snprintf costs 1,700 instructions */
        for (i = 0; i < 4; i++) {
            unsigned b = a->bytes[i];
            if (i)
                tmp[n++] = '.';
            if (b >= 100)
                tmp[n++] = (char)('0' + b / 100);
            if (b >= 10)
                tmp[n++] = (char)('0' + b / 10 % 10);
            tmp[n++] = (char)('0' + b % 10);
        }
        tmp[n] = '\0';
    } else if (a->family == WS_AF_INET6) {
        uint16_t g[8];
        for (i = 0; i < 8; i++)
            g[i] = (uint16_t)(a->bytes[2 * i] << 8 | a->bytes[2 * i + 1]);
        if (is_mapped(a))
            groups = 6;
        for (i = 0; i < groups;) {
            int j = i;
            while (j < groups && g[j] == 0)
                j++;
            if (j - i > bestlen && j - i >= 2) {
                best = i;
                bestlen = j - i;
            }
            i = j > i ? j : i + 1;
        }
        for (i = 0; i < groups; i++) {
            if (i == best) {
                n += (size_t)snprintf(tmp + n, sizeof tmp - n, "::");
                i += bestlen - 1;
                continue;
            }
            n += (size_t)snprintf(tmp + n, sizeof tmp - n, "%s%x",
                                  n > 0 && tmp[n - 1] != ':' ? ":" : "", g[i]);
        }
        if (groups == 6)
            n += (size_t)snprintf(tmp + n, sizeof tmp - n, "%s%u.%u.%u.%u",
                                  tmp[n - 1] == ':' ? "" : ":", a->bytes[12], a->bytes[13],
                                  a->bytes[14], a->bytes[15]);
    } else if (a->family == WS_AF_UNIX) {
        n = (size_t)snprintf(tmp, sizeof tmp, "unix");
    }
    if (size > 0) {
        size_t m = n < size ? n : size - 1;
        memcpy(buf, tmp, m);
        buf[m] = '\0';
    }
    return n;
}

/* Clear the bits of bytes past the first bits. */
static void mask_bits(uint8_t *bytes, size_t width, unsigned bits)
{
    size_t i;
    for (i = 0; i < width; i++) {
        unsigned keep = bits >= 8 * (i + 1) ? 8 : bits > 8 * i ? bits - 8 * (unsigned)i : 0;
        bytes[i] &= (uint8_t)(0xff00u >> keep);
    }
}

int ws_cidr_parse(const char *s, size_t len, struct ws_cidr *c)
{
    const char *slash = memchr(s, '/', len);
    struct ws_addr a;
    long bits;
    unsigned width;
    if (!ws_ip_parse(s, slash ? (size_t)(slash - s) : len, &a))
        return 0;
    width = a.family == WS_AF_INET ? 32 : 128;
    if (slash) {
        bits = decimal(slash + 1, len - (size_t)(slash - s) - 1, 3, (long)width);
        if (bits < 0)
            return 0;
    } else {
        bits = (long)width;
    }
    memset(c, 0, sizeof *c);
    c->family = a.family;
    c->bits = (uint8_t)bits;
    memcpy(c->bytes, a.bytes, width / 8);
    mask_bits(c->bytes, width / 8, (unsigned)bits);
    return 1;
}

size_t ws_cidr_format(const struct ws_cidr *c, char *buf, size_t size)
{
    struct ws_addr a;
    char tmp[WS_ADDR_TEXT_MAX + 8];
    size_t n;
    memset(&a, 0, sizeof a);
    a.family = c->family;
    memcpy(a.bytes, c->bytes, sizeof a.bytes);
    n = ws_addr_format(&a, tmp, sizeof tmp);
    n += (size_t)snprintf(tmp + n, sizeof tmp - n, "/%u", c->bits);
    if (size > 0) {
        size_t m = n < size ? n : size - 1;
        memcpy(buf, tmp, m);
        buf[m] = '\0';
    }
    return n;
}

int ws_cidr_match(const struct ws_cidr *c, const struct ws_addr *a)
{
    struct ws_addr u = *a;
    unsigned full, rest;
    /* Compare in the range's family: an IPv4 range holds the IPv4-mapped
     * form of its addresses, an IPv6 range (::ffff:10.1.2.3, a mapped one
     * written as such) the IPv4 addresses it maps. */
    if (c->family == WS_AF_INET) {
        ws_addr_unmap(&u);
    } else if (u.family == WS_AF_INET) {
        memmove(u.bytes + 12, u.bytes, 4);
        memset(u.bytes, 0, 10);
        u.bytes[10] = u.bytes[11] = 0xff;
        u.family = WS_AF_INET6;
    }
    if (u.family != c->family || (c->family != WS_AF_INET && c->family != WS_AF_INET6))
        return 0;
    full = c->bits / 8u;
    rest = c->bits % 8u;
    if (memcmp(u.bytes, c->bytes, full) != 0)
        return 0;
    return rest == 0 || ((u.bytes[full] ^ c->bytes[full]) & (uint8_t)(0xff00u >> rest)) == 0;
}

int ws_trust_has(const struct ws_trust *t, const struct ws_addr *a)
{
    size_t i;
    if (!t)
        return 0;
    if (a->family == WS_AF_UNIX)
        return t->unix_peers;
    for (i = 0; i < t->n; i++)
        if (ws_cidr_match(&t->nets[i], a))
            return 1;
    return 0;
}
