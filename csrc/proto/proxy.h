/* SPDX-License-Identifier: MIT
 *
 * proxy.h -- the PROXY protocol header (HAProxy's "PROXY protocol"
 * specification, versions 1 and 2), which a load balancer (HAProxy,
 * AWS NLB, nginx's proxy_protocol on) sends before anything else on a
 * connection to say whom it is proxying.
 *
 * Like the HTTP head parser (picohttpparser's contract): stateless, no
 * allocation, called again with the whole buffer once more bytes came;
 * bounded, so a caller keeps at most the limit plus one read.
 *
 *   v1 (text): "PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n" or
 *       "PROXY UNKNOWN[ anything]\r\n"; at most WS_PROXY_V1_MAX (107)
 *       bytes with the CRLF; single spaces, decimal ports without leading
 *       zeros, addresses in their plain text form of the family named.
 *   v2 (binary): the 12-byte signature, version 2 with LOCAL or PROXY,
 *       a family (AF_INET, AF_INET6 or AF_UNIX, STREAM) and a length; the
 *       address block, then TLVs (type, 16-bit length, value) that must
 *       tile the rest exactly. At most LUAWS_MAX_PROXY_V2 bytes in all.
 *
 * What it does not do: verify PP2_TYPE_CRC32C, interpret TLVs other than
 * PP2_TYPE_SSL (whose PP2_CLIENT_SSL bit says the client spoke TLS to the
 * proxy), or accept datagram families (a stream listener proxies streams).
 */
#ifndef LUAWS_PROTO_PROXY_H
#define LUAWS_PROTO_PROXY_H

#include "proto/addr.h"

/* The longest v1 line, CRLF included (the specification's own bound). */
#define WS_PROXY_V1_MAX 107

/* The longest v2 header we read, 16-byte preamble included; the
 * specification allows 65551, but what a balancer sends (addresses and a
 * few TLVs: AWS's VPC endpoint id, SSL details) is far below this. */
#ifndef LUAWS_MAX_PROXY_V2
#define LUAWS_MAX_PROXY_V2 2048
#endif

struct ws_proxy {
    int version;          /* 1 or 2 */
    int local;            /* 1: v1 UNKNOWN, v2 LOCAL or AF_UNSPEC: the connection's own
                           * addresses stand (a balancer's health check) */
    struct ws_addr src;   /* the client (family WS_AF_UNIX for a unix one), when !local */
    struct ws_addr dst;   /* the address the client connected to, when !local */
    int ssl;              /* v2: a PP2_TYPE_SSL TLV with PP2_CLIENT_SSL set */
};

/*
** Parse a PROXY header from p[0..len). Returns
**   > 0          its length (what follows is the connection's own data),
**                with *out filled;
**   WS_PARTIAL   the bytes so far can begin a header: call again with more;
**   WS_EPROTO    they cannot (another protocol, a malformed header, over
**                the limits): drop the connection.
** A header never needs more than WS_PROXY_V1_MAX or LUAWS_MAX_PROXY_V2
** bytes, so WS_PARTIAL never comes past them.
*/
int ws_proxy_parse(const uint8_t *p, size_t len, struct ws_proxy *out);

#endif
