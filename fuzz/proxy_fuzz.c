/* SPDX-License-Identifier: MIT
 *
 * fuzz/proxy_fuzz.c -- libFuzzer target: the PROXY protocol header parser
 * (csrc/proto/proxy.c) and the address codecs under it (csrc/proto/addr.c).
 *
 * Input: the bytes a connection begins with. From a copy that ends at a
 * guard page:
 *   - ws_proxy_parse answers a length > 0, WS_PARTIAL or WS_EPROTO; a
 *     length is <= the input and within the bounds (WS_PROXY_V1_MAX for a
 *     version 1 line, LUAWS_MAX_PROXY_V2 for version 2); WS_PARTIAL never
 *     comes once the input holds LUAWS_MAX_PROXY_V2 bytes;
 *   - the same bytes at another address give the same answer (stateless);
 *   - a header: the header alone gives the same length and fields, every
 *     strict prefix of it is WS_PARTIAL, and bytes after it change nothing;
 *     a v1 header ends in CRLF; addresses are of the family the header
 *     names, and format and parse back to themselves;
 *   - WS_EPROTO stays WS_EPROTO when more bytes are appended.
 * The input is also parsed as an IP address, an address with a port and a
 * CIDR range: what parses formats to text that parses to the same bytes,
 * whose format is the same text (RFC 5952's one form), and a range
 * contains its own network address.
 *
 * Build: make fuzz-build (clang -fsanitize=fuzzer,address,undefined).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/addr.h"
#include "proto/proxy.h"
#include "guard.h"

#define CHECK FUZZ_CHECK

static int same_proxy(const struct ws_proxy *a, const struct ws_proxy *b)
{
    return a->version == b->version && a->local == b->local && a->ssl == b->ssl &&
           ws_addr_equal(&a->src, &b->src) && ws_addr_equal(&a->dst, &b->dst);
}

/* An address formats to text that parses back to it, and formats the same. */
static void round_trip(const struct ws_addr *a)
{
    char t1[WS_ADDR_TEXT_MAX], t2[WS_ADDR_TEXT_MAX];
    struct ws_addr b;
    size_t n = ws_addr_format(a, t1, sizeof t1);
    if (a->family != WS_AF_INET && a->family != WS_AF_INET6)
        return;
    CHECK(n > 0 && n < sizeof t1 && strlen(t1) == n);
    CHECK(ws_ip_parse(t1, n, &b) && b.family == a->family);
    CHECK(memcmp(a->bytes, b.bytes, a->family == WS_AF_INET ? 4 : 16) == 0);
    CHECK(ws_addr_format(&b, t2, sizeof t2) == n && strcmp(t1, t2) == 0);
}

static void text_codecs(const uint8_t *data, size_t size)
{
    const char *s = (const char *)guard_put(data, size);
    struct ws_addr a;
    struct ws_cidr c, c2;
    char t[WS_ADDR_TEXT_MAX + 8];
    if (ws_ip_parse(s, size, &a)) {
        CHECK(a.port == 0 && (a.family == WS_AF_INET || a.family == WS_AF_INET6));
        round_trip(&a);
    }
    s = (const char *)guard_put(data, size);
    if (ws_addr_parse(s, size, &a))
        round_trip(&a);
    s = (const char *)guard_put(data, size);
    if (ws_cidr_parse(s, size, &c)) {
        size_t n = ws_cidr_format(&c, t, sizeof t);
        CHECK(c.bits <= (c.family == WS_AF_INET ? 32 : 128));
        CHECK(ws_cidr_parse(t, n, &c2) && c2.family == c.family && c2.bits == c.bits &&
              memcmp(c.bytes, c2.bytes, 16) == 0);
        memset(&a, 0, sizeof a);
        a.family = c.family;
        memcpy(a.bytes, c.bytes, 16);
        CHECK(ws_cidr_match(&c, &a));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ws_proxy a, b;
    uint8_t *more;
    int r, r2;

    if (size > 3 * LUAWS_MAX_PROXY_V2)
        return 0;
    r = ws_proxy_parse(guard_put(data, size), size, &a);
    CHECK(r > 0 || r == WS_PARTIAL || r == WS_EPROTO);
    CHECK(r != WS_PARTIAL || size < LUAWS_MAX_PROXY_V2);
    /* stateless: a copy elsewhere */
    more = malloc(size + 1);
    CHECK(more != NULL);
    memcpy(more, data, size);
    r2 = ws_proxy_parse(more, size, &b);
    CHECK(r2 == r && (r <= 0 || same_proxy(&a, &b)));
    if (r > 0) {
        size_t n = (size_t)r;
        CHECK(n <= size && n >= 15);
        CHECK(a.version == 1 || a.version == 2);
        if (a.version == 1)
            CHECK(n <= WS_PROXY_V1_MAX && data[n - 2] == '\r' && data[n - 1] == '\n');
        else
            CHECK(n <= LUAWS_MAX_PROXY_V2 && n >= 16);
        if (!a.local) {
            CHECK(a.src.family == a.dst.family && a.src.family != WS_AF_NONE);
            round_trip(&a.src);
            round_trip(&a.dst);
        }
        CHECK(ws_proxy_parse(guard_put(data, n), n, &b) == r && same_proxy(&a, &b));
        for (size_t i = 0; i < n; i++)
            CHECK(ws_proxy_parse(guard_put(data, i), i, &b) == WS_PARTIAL);
    } else if (r == WS_EPROTO) {
        uint8_t *ext = malloc(size + 64);
        CHECK(ext != NULL);
        memcpy(ext, data, size);
        memset(ext + size, '\n', 64);
        CHECK(ws_proxy_parse(guard_put(ext, size + 64), size + 64, &b) == WS_EPROTO);
        memset(ext + size, 0, 64);
        CHECK(ws_proxy_parse(guard_put(ext, size + 64), size + 64, &b) == WS_EPROTO);
        free(ext);
    }
    free(more);
    text_codecs(data, size > 256 ? 256 : size);
    return 0;
}
