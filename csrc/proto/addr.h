/* SPDX-License-Identifier: MIT
 *
 * addr.h -- IP addresses as bytes: their text forms (IPv4 dotted quads,
 * IPv6 per RFC 4291 §2.2, written back per RFC 5952), CIDR ranges (RFC
 * 4632 §3.1 prefix notation, for IPv6 too) and a set of trusted ranges, for
 * the PROXY protocol (proto/proxy.c), Forwarded and X-Forwarded-For
 * (proto/forwarded.c) and trusted_proxies.
 *
 * Pure: no socket headers (inet_pton lives in <arpa/inet.h>, which proto/
 * may not include), no allocation; io/ converts to and from sockaddr.
 *
 * What it does not do: host names, IPv6 zone ids ("fe80::1%eth0"), the
 * shortened or octal IPv4 forms inet_aton takes ("10.1", "010.0.0.1"):
 * an address a proxy writes is always the plain form, and anything else is
 * refused rather than guessed at.
 */
#ifndef LUAWS_PROTO_ADDR_H
#define LUAWS_PROTO_ADDR_H

#include "luaws.h"

enum ws_addr_family {
    WS_AF_NONE = 0,      /* no address */
    WS_AF_UNIX = 1,      /* a unix-domain socket peer: no address, "unix" */
    WS_AF_INET = 4,      /* IPv4: bytes[0..4) */
    WS_AF_INET6 = 6      /* IPv6: bytes[0..16) */
};

struct ws_addr {
    uint8_t family;       /* enum ws_addr_family */
    uint8_t bytes[16];    /* network order */
    uint16_t port;        /* 0: none given */
};

/* A range: the first bits bits of bytes. */
struct ws_cidr {
    uint8_t family;       /* WS_AF_INET or WS_AF_INET6 */
    uint8_t bits;         /* 0-32 or 0-128 */
    uint8_t bytes[16];    /* with the bits past the prefix cleared */
};

/* Who may speak for a client: trusted_proxies. */
struct ws_trust {
    const struct ws_cidr *nets;
    size_t n;
    int unix_peers;       /* 1: peers on a unix-domain socket are trusted ("unix") */
};

/* Longest text ws_addr_format writes, with its NUL ("ffff:...:255.255.255.255"). */
#define WS_ADDR_TEXT_MAX 48

/* Parse an IPv4 or IPv6 address, nothing around it, from s[0..len).
 * 1 and *a (port 0), or 0 (a left as it was). */
int ws_ip_parse(const char *s, size_t len, struct ws_addr *a);

/* Parse an address with an optional port, as proxies write them:
 * "192.0.2.1", "192.0.2.1:80", "2001:db8::1", "[2001:db8::1]",
 * "[2001:db8::1]:80". 1 and *a, or 0. */
int ws_addr_parse(const char *s, size_t len, struct ws_addr *a);

/* Write a's address (not its port) into buf (size >= WS_ADDR_TEXT_MAX is
 * always enough): "192.0.2.1", RFC 5952's form of IPv6 ("2001:db8::1",
 * "::ffff:192.0.2.1"), "unix", "" for none. Returns the length. */
size_t ws_addr_format(const struct ws_addr *a, char *buf, size_t size);

/* An IPv4-mapped IPv6 address (::ffff:a.b.c.d) becomes the IPv4 address
 * it maps; any other is left as it is. */
void ws_addr_unmap(struct ws_addr *a);

/* 1 if a and b are the same address and port. */
int ws_addr_equal(const struct ws_addr *a, const struct ws_addr *b);

/* Parse "10.0.0.0/8", "2001:db8::/32", or a single address (all its
 * bits). Bits past the prefix are cleared ("10.1.2.3/8" is 10.0.0.0/8).
 * 1 and *c, or 0. */
int ws_cidr_parse(const char *s, size_t len, struct ws_cidr *c);

/* Write c as "10.0.0.0/8" into buf (size >= WS_ADDR_TEXT_MAX + 4). Returns
 * the length. */
size_t ws_cidr_format(const struct ws_cidr *c, char *buf, size_t size);

/* 1 if address a is in range c. IPv4 and its IPv4-mapped IPv6 form
 * (::ffff:a.b.c.d) are one address: 10.0.0.0/8 holds ::ffff:10.1.2.3, and
 * ::ffff:10.1.2.3 (a /128) holds 10.1.2.3. */
int ws_cidr_match(const struct ws_cidr *c, const struct ws_addr *a);

/* 1 if t trusts a: a unix peer when t->unix_peers, else an address in one
 * of t's ranges. A NULL t trusts nobody. */
int ws_trust_has(const struct ws_trust *t, const struct ws_addr *a);

/* 1 if t names anyone at all. */
static inline int ws_trust_any(const struct ws_trust *t)
{
    return t && (t->n > 0 || t->unix_peers);
}

#endif
