/* SPDX-License-Identifier: MIT
 *
 * fuzz/forwarded_fuzz.c -- libFuzzer target: who the client of a proxied
 * request is (csrc/proto/forwarded.c: X-Forwarded-For, X-Forwarded-Proto,
 * RFC 7239 Forwarded) over the HTTP head parser (csrc/proto/http.c) and the
 * address codecs (csrc/proto/addr.c).
 *
 * Input: [peer byte][header lines]. The header lines go into a request
 * head ("GET / HTTP/1.1\r\nHost: h\r\n" + lines + "\r\n"); when it parses,
 * it is resolved from one of four peers (the low two bits of the first
 * byte: a trusted 127.0.0.1, a trusted unix peer, an untrusted 192.0.2.1,
 * a trusted ::1), trusting 127.0.0.1, 10.0.0.0/8, ::1 and unix peers:
 *   - from is NONE, XFF or FORWARDED, secure -1, 0 or 1; the client is an
 *     address (IPv4, IPv6 or unix);
 *   - an untrusted peer: the client is the peer and from NONE, whatever
 *     the headers say;
 *   - the same head parsed at another address resolves the same;
 *   - the anti-spoofing property: when X-Forwarded-For named an untrusted
 *     client, a forged X-Forwarded-For line put before the others (what a
 *     client sends through a proxy that appends) changes nothing.
 *
 * Build: make fuzz-build (clang -fsanitize=fuzzer,address,undefined).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/addr.h"
#include "proto/forwarded.h"
#include "proto/http.h"
#include "guard.h"

#define CHECK FUZZ_CHECK

static const char start[] = "GET / HTTP/1.1\r\nHost: h\r\n";
static const char forged[] = "X-Forwarded-For: 6.6.6.6\r\n";

static struct ws_cidr nets[3];
static struct ws_trust trust = { nets, 3, 1 };

/* Build the head (with the forged line first when forge) into buf; its length. */
static size_t head_of(char *buf, const uint8_t *lines, size_t n, int forge)
{
    size_t at = 0;
    memcpy(buf, start, sizeof start - 1);
    at += sizeof start - 1;
    if (forge) {
        memcpy(buf + at, forged, sizeof forged - 1);
        at += sizeof forged - 1;
    }
    memcpy(buf + at, lines, n);
    at += n;
    memcpy(buf + at, "\r\n", 2);
    return at + 2;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const peers[4] = { "127.0.0.1", "unix", "192.0.2.1", "::1" };
    static char buf[LUAWS_MAX_HEAD_BYTES + 256];
    static struct ws_http_head h, h2;
    struct ws_addr peer;
    struct ws_forwarded f, g;
    const char *ps;
    size_t n;
    int r;

    if (size < 1 || size > LUAWS_MAX_HEAD_BYTES)
        return 0;
    if (nets[0].family == 0) {
        ws_cidr_parse("127.0.0.1", 9, &nets[0]);
        ws_cidr_parse("10.0.0.0/8", 10, &nets[1]);
        ws_cidr_parse("::1", 3, &nets[2]);
    }
    ps = peers[data[0] & 3];
    memset(&peer, 0, sizeof peer);
    if (strcmp(ps, "unix") == 0)
        peer.family = WS_AF_UNIX;
    else
        CHECK(ws_ip_parse(ps, strlen(ps), &peer));
    n = head_of(buf, data + 1, size - 1, 0);
    {
        const char *copy = (const char *)guard_put(buf, n);
        r = ws_http_parse_request(copy, n, &h);
        if (r <= 0)
            return 0;
        ws_forwarded_resolve(&h, &trust, &peer, &f);
    }
    CHECK(f.from == WS_FWD_NONE || f.from == WS_FWD_XFF || f.from == WS_FWD_FORWARDED);
    CHECK(f.secure >= -1 && f.secure <= 1);
    CHECK(f.client.family == WS_AF_INET || f.client.family == WS_AF_INET6 || f.client.family == WS_AF_UNIX);
    if (!ws_trust_has(&trust, &peer))
        CHECK(f.from == WS_FWD_NONE && f.secure == -1 && ws_addr_equal(&f.client, &peer));
    if (f.from == WS_FWD_NONE && f.secure == -1)
        CHECK(ws_addr_equal(&f.client, &peer));
    /* the same head somewhere else */
    {
        char *copy = malloc(n);
        CHECK(copy != NULL);
        memcpy(copy, buf, n);
        CHECK(ws_http_parse_request(copy, n, &h2) == r);
        ws_forwarded_resolve(&h2, &trust, &peer, &g);
        CHECK(g.from == f.from && g.secure == f.secure && ws_addr_equal(&g.client, &f.client));
        free(copy);
    }
    /* a forged X-Forwarded-For line first changes nothing once the walk
     * stopped at an untrusted client */
    if (f.from == WS_FWD_XFF && !ws_trust_has(&trust, &f.client)) {
        size_t m = head_of(buf, data + 1, size - 1, 1);
        const char *copy = (const char *)guard_put(buf, m);
        if (ws_http_parse_request(copy, m, &h2) > 0) {
            ws_forwarded_resolve(&h2, &trust, &peer, &g);
            CHECK(g.from == WS_FWD_XFF && ws_addr_equal(&g.client, &f.client));
        }
    }
    return 0;
}
