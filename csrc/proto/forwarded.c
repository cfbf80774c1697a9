/* SPDX-License-Identifier: MIT
 *
 * forwarded.c -- the client of a proxied request, from X-Forwarded-For /
 * X-Forwarded-Proto or RFC 7239 Forwarded, when the peer is trusted (see
 * forwarded.h for the walk and the rules).
 *
 * Parsing, RFC 7239 §4: Forwarded = 1#forwarded-element, an element is
 * forwarded-pair *( ";" forwarded-pair ), a pair token "=" ( token /
 * quoted-string ); OWS is allowed around the commas of the list and, as
 * deployed proxies write it, around the semicolons. A for= node is an
 * IPv4 address, a bracketed IPv6 address (quoted), either with a port, or
 * "unknown" / an obfuscated identifier (which end the walk). A Forwarded
 * header that does not parse is not used at all.
 */
#include "proto/forwarded.h"

#include <string.h>

struct hop {
    struct ws_addr addr;
    int ok;           /* addr is an address */
    int proto;        /* -1, 0 (http), 1 (https) */
};

/* The rightmost WS_FORWARDED_HOPS entries, in a ring. */
struct hops {
    struct hop h[WS_FORWARDED_HOPS];
    size_t n;         /* entries seen in all */
};

static void hops_push(struct hops *hs, const struct hop *h)
{
    hs->h[hs->n % WS_FORWARDED_HOPS] = *h;
    hs->n++;
}

/* The i-th entry from the right (0: the rightmost), i < kept. */
static const struct hop *hops_right(const struct hops *hs, size_t i)
{
    return &hs->h[(hs->n - 1 - i) % WS_FORWARDED_HOPS];
}

static int lower(int ch)
{
    return ch >= 'A' && ch <= 'Z' ? ch + 32 : ch;
}

/* s[0..n) equals the lower-case word w, ignoring case. */
static int is_word(const char *s, size_t n, const char *w)
{
    size_t i;
    if (strlen(w) != n)
        return 0;
    for (i = 0; i < n; i++)
        if (lower((unsigned char)s[i]) != w[i])
            return 0;
    return 1;
}

static int is_ows(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* The scheme a proto value names: 1 https/wss, 0 http/ws, -1 anything else. */
static int proto_of(const char *s, size_t n)
{
    if (is_word(s, n, "https") || is_word(s, n, "wss"))
        return 1;
    if (is_word(s, n, "http") || is_word(s, n, "ws"))
        return 0;
    return -1;
}

static int is_tchar(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* Trim OWS from both ends of s[*a..*b). */
static void trim(const char *s, size_t *a, size_t *b)
{
    while (*a < *b && is_ows(s[*a]))
        (*a)++;
    while (*b > *a && is_ows(s[*b - 1]))
        (*b)--;
}

/* X-Forwarded-For: a comma-separated list of addresses (empty elements
 * skipped, RFC 9110 §5.6.1). */
static void xff_hops(const char *v, size_t n, struct hops *hs)
{
    size_t start = 0, i;
    for (i = 0; i <= n; i++) {
        if (i == n || v[i] == ',') {
            size_t a = start, b = i;
            struct hop h;
            trim(v, &a, &b);
            start = i + 1;
            if (a == b)
                continue;
            memset(&h, 0, sizeof h);
            h.proto = -1;
            h.ok = ws_addr_parse(v + a, b - a, &h.addr);
            hops_push(hs, &h);
        }
    }
}

/*
** One Forwarded header value v[0..n): its elements pushed as hops. 0 if it
** does not parse (the caller then uses none of them).
*/
static int forwarded_hops(const char *v, size_t n, struct hops *hs)
{
    size_t i = 0;
    for (;;) {
        struct hop h;
        int any = 0;
        memset(&h, 0, sizeof h);
        h.proto = -1;
        while (i < n && is_ows(v[i]))
            i++;
        /* one element: pairs until ',' or the end */
        for (;;) {
            size_t ns = i, ne, vs, ve;
            char val[WS_ADDR_TEXT_MAX + 16];
            size_t vlen = 0;
            while (i < n && is_tchar((unsigned char)v[i]))
                i++;
            ne = i;
            if (ne == ns) {
                if (i < n && v[i] != ',' && v[i] != ';')
                    return 0;
                /* an empty pair ("a=1;;b=2", ";" at the end): allowed by the grammar's list */
            } else {
                if (i >= n || v[i] != '=')
                    return 0;
                i++;
                if (i < n && v[i] == '"') {
                    i++;
                    while (i < n && v[i] != '"') {
                        if (v[i] == '\\') {
                            if (++i >= n)
                                return 0;
                        }
                        if ((unsigned char)v[i] < 0x20 && v[i] != '\t')
                            return 0;
                        if (vlen < sizeof val)
                            val[vlen] = v[i];
                        vlen++;
                        i++;
                    }
                    if (i >= n)
                        return 0;   /* no closing quote */
                    i++;
                } else {
                    vs = i;
                    while (i < n && is_tchar((unsigned char)v[i]))
                        i++;
                    ve = i;
                    if (ve == vs)
                        return 0;
                    vlen = ve - vs;
                    memcpy(val, v + vs, vlen < sizeof val ? vlen : sizeof val);
                }
                any = 1;
                if (is_word(v + ns, ne - ns, "for")) {
                    h.ok = vlen <= sizeof val && ws_addr_parse(val, vlen, &h.addr);
                    if (!h.ok)
                        memset(&h.addr, 0, sizeof h.addr);
                } else if (is_word(v + ns, ne - ns, "proto")) {
                    h.proto = vlen <= sizeof val ? proto_of(val, vlen) : -1;
                }
            }
            while (i < n && is_ows(v[i]))
                i++;
            if (i < n && v[i] == ';') {
                i++;
                while (i < n && is_ows(v[i]))
                    i++;
                continue;
            }
            break;
        }
        if (any)
            hops_push(hs, &h);
        if (i == n)
            return 1;
        if (v[i] != ',')
            return 0;
        i++;
    }
}

void ws_forwarded_resolve(const struct ws_http_head *h, const struct ws_trust *t,
                          const struct ws_addr *peer, struct ws_forwarded *out)
{
    struct hops xff, fwd;
    const struct hops *use = NULL;
    struct ws_addr cur = *peer;
    int have_xff = 0, fwd_ok = 1, xfp = -1, proto = -1;
    size_t i, kept;

    xff.n = fwd.n = 0;
    out->client = *peer;
    out->from = WS_FWD_NONE;
    out->secure = -1;
    if (!ws_trust_has(t, peer))
        return;
    for (i = 0; i < h->num_headers; i++) {
        const struct ws_http_header *hd = &h->headers[i];
        if (is_word(hd->name, hd->name_len, "x-forwarded-for")) {
            have_xff = 1;
            xff_hops(hd->value, hd->value_len, &xff);
        } else if (is_word(hd->name, hd->name_len, "forwarded")) {
            if (fwd_ok && !forwarded_hops(hd->value, hd->value_len, &fwd))
                fwd_ok = 0;
        } else if (is_word(hd->name, hd->name_len, "x-forwarded-proto")) {
            /* the rightmost value: the nearest proxy wrote it */
            size_t a = 0, b = hd->value_len;
            const char *comma = NULL, *p;
            for (p = hd->value; p < hd->value + hd->value_len; p++)
                if (*p == ',')
                    comma = p;
            if (comma)
                a = (size_t)(comma - hd->value) + 1;
            trim(hd->value, &a, &b);
            xfp = proto_of(hd->value + a, b - a);
        }
    }
    if (have_xff) {
        use = &xff;
        out->from = WS_FWD_XFF;
    } else if (fwd_ok && fwd.n > 0) {
        use = &fwd;
        out->from = WS_FWD_FORWARDED;
    }
    if (use) {
        kept = use->n < WS_FORWARDED_HOPS ? use->n : WS_FORWARDED_HOPS;
        for (i = 0; i < kept; i++) {
            const struct hop *hp = hops_right(use, i);
            proto = hp->proto;
            if (!hp->ok)
                break;   /* no address: nothing further left can be believed */
            cur = hp->addr;
            ws_addr_unmap(&cur);
            if (!ws_trust_has(t, &cur))
                break;   /* the rightmost untrusted hop: the client */
        }
    }
    out->client = cur;
    out->secure = out->from == WS_FWD_FORWARDED ? proto : xfp;
}
