/* SPDX-License-Identifier: MIT */
/*
** wsdeflate.h -- what the bench clients (loadgen.c, fanout.c) share for the
** compressed scenarios: JSON-like payloads and permessage-deflate (RFC 7692)
** on zlib.
**
** Header-only (static inline), because each bench tool is one C file built
** on its own (bench/Makefile.inc). It never uses the library under test.
**
** JSON-like payloads: json_fill() writes exactly `size` bytes of a JSON
** object chosen by a seed: a realistic mix of keys (a few message types with
** their own fields), strings (user names, rooms, sentences from a word list),
** integers, decimals, booleans, timestamps, arrays and nested objects. The
** same seed gives the same bytes on every machine (splitmix64, no libc rand).
**
** permessage-deflate, the client's side:
**   pmd_offer()       the Sec-WebSocket-Extensions value we send: like a
**                     browser ("permessage-deflate; client_max_window_bits"),
**                     or with server_ and client_no_context_takeover too;
**   pmd_parse()       the server's answer (one extension, known parameters,
**                     values 8..15, quoted or not), or why it is not one;
**   pmd_compress()    one message through a raw deflate stream with
**                     Z_SYNC_FLUSH, the 0x00 0x00 0xff 0xff tail removed
**                     (§7.2.1);
**   pmd_inflate()     one whole compressed message with the tail put back
**                     (§7.2.2), bounded by the expected size.
*/
#ifndef LUAWS_BENCH_WSDEFLATE_H
#define LUAWS_BENCH_WSDEFLATE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

/* ------------------------------------------------------------------------ */
/* JSON-like payloads                                                       */

static inline uint64_t jp_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline unsigned jp_below(uint64_t *s, unsigned n)
{
    return (unsigned)(jp_next(s) % n);
}

#define JP_PICK(s, arr) ((arr)[jp_below((s), (unsigned)(sizeof(arr) / sizeof((arr)[0])))])

static const char *const jp_words[] = {
    "the", "build", "is", "green", "again", "after", "we", "moved", "cache", "to", "a", "new",
    "region", "please", "review", "my", "pull", "request", "before", "lunch", "deploy", "went",
    "fine", "but", "latency", "spiked", "for", "ten", "minutes", "on", "mobile", "clients",
    "anyone", "seen", "this", "error", "in", "staging", "yesterday", "thanks", "I", "will",
    "check", "logs", "and", "get", "back", "with", "numbers", "meeting", "moved", "tomorrow",
    "at", "nine", "customer", "asked", "about", "invoice", "totals", "rounding", "looks",
    "off", "by", "one", "cent", "ship", "it", "tests", "pass", "locally", "flaky", "retry",
    "queue", "backlog", "cleared", "overnight", "disk", "almost", "full", "rotating", "now",
    "coffee", "break", "release", "notes", "draft", "ready", "feedback", "welcome", "ok",
};
static const char *const jp_first[] = {
    "mara", "jonas", "aiko", "lucas", "priya", "tomasz", "ines", "kofi", "elena", "david",
    "sofia", "omar", "hana", "noah", "lea", "mateo", "yuki", "amir", "chloe", "ivan",
};
static const char *const jp_last[] = {
    "kovacs", "schmidt", "tanaka", "silva", "sharma", "nowak", "garcia", "mensah", "rossi",
    "cohen", "berg", "haddad", "kim", "martin", "dubois", "lopez", "sato", "karimi", "moreau",
};
static const char *const jp_rooms[] = {
    "general", "random", "ops", "release", "support", "design", "backend", "mobile", "sales",
};
static const char *const jp_types[] = {
    "chat.message", "presence.update", "order.created", "metrics.sample", "cart.updated",
    "notification", "typing", "ticket.comment",
};
static const char *const jp_status[] = {
    "pending", "paid", "shipped", "delivered", "cancelled", "open", "closed", "online", "away",
};
static const char *const jp_tags[] = {
    "urgent", "vip", "beta", "eu", "us", "ios", "android", "web", "internal", "billing",
};
static const char *const jp_locale[] = { "en-GB", "de-DE", "fr-FR", "ja-JP", "pt-BR", "es-ES" };
static const char *const jp_cur[] = { "EUR", "USD", "GBP", "JPY", "BRL" };

/* Append printf output to b (bounded by cap); returns the new length. */
static inline size_t jp_put(char *b, size_t len, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static inline size_t jp_put(char *b, size_t len, size_t cap, const char *fmt, ...)
{
    if (len >= cap)
        return len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b + len, cap - len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return len;
    return len + (size_t)n >= cap ? cap - 1 : len + (size_t)n;
}

static inline size_t jp_sentence(char *b, size_t len, size_t cap, uint64_t *s, unsigned words)
{
    for (unsigned i = 0; i < words; i++)
        len = jp_put(b, len, cap, "%s%s", i ? " " : "", JP_PICK(s, jp_words));
    return len;
}

/* One "key":value field (no separator) into b at len; returns the new length. */
static inline size_t jp_field(char *b, size_t len, size_t cap, uint64_t *s, unsigned k)
{
    switch (k % 14) {
    case 0:
        return jp_put(b, len, cap, "\"id\":%u", 100000u + jp_below(s, 900000u));
    case 1:
        return jp_put(b, len, cap,
                      "\"user\":{\"id\":%u,\"name\":\"%s.%s\",\"role\":\"%s\",\"online\":%s}",
                      1000u + jp_below(s, 90000u), JP_PICK(s, jp_first), JP_PICK(s, jp_last),
                      jp_below(s, 5) ? "member" : "admin", jp_below(s, 3) ? "true" : "false");
    case 2:
        return jp_put(b, len, cap, "\"ts\":%llu",
                      (unsigned long long)(1764590000000ull + jp_next(s) % 86400000ull));
    case 3:
        return jp_put(b, len, cap, "\"room\":\"%s\"", JP_PICK(s, jp_rooms));
    case 4:
        len = jp_put(b, len, cap, "\"text\":\"");
        len = jp_sentence(b, len, cap, s, 5 + jp_below(s, 12));
        return jp_put(b, len, cap, "\"");
    case 5:
        return jp_put(b, len, cap, "\"tags\":[\"%s\",\"%s\"]", JP_PICK(s, jp_tags), JP_PICK(s, jp_tags));
    case 6:
        return jp_put(b, len, cap, "\"amount\":%u.%02u,\"currency\":\"%s\"", jp_below(s, 5000),
                      jp_below(s, 100), JP_PICK(s, jp_cur));
    case 7:
        return jp_put(b, len, cap, "\"geo\":{\"lat\":%d.%06u,\"lon\":%d.%06u}",
                      (int)jp_below(s, 140) - 70, jp_below(s, 1000000), (int)jp_below(s, 340) - 170,
                      jp_below(s, 1000000));
    case 8: {
        unsigned n = 1 + jp_below(s, 3);
        len = jp_put(b, len, cap, "\"items\":[");
        for (unsigned i = 0; i < n; i++)
            len = jp_put(b, len, cap, "%s{\"sku\":\"%c%c-%05u\",\"qty\":%u,\"price\":%u.%02u}",
                         i ? "," : "", 'A' + (int)jp_below(s, 26), 'A' + (int)jp_below(s, 26),
                         jp_below(s, 100000), 1 + jp_below(s, 9), jp_below(s, 300), jp_below(s, 100));
        return jp_put(b, len, cap, "]");
    }
    case 9:
        return jp_put(b, len, cap, "\"status\":\"%s\"", JP_PICK(s, jp_status));
    case 10:
        return jp_put(b, len, cap, "\"score\":%u.%03u,\"rank\":%u", jp_below(s, 100), jp_below(s, 1000),
                      1 + jp_below(s, 500));
    case 11:
        return jp_put(b, len, cap,
                      "\"client\":{\"app\":\"%s\",\"version\":\"%u.%u.%u\",\"locale\":\"%s\"}",
                      jp_below(s, 2) ? "web" : "mobile", 1 + jp_below(s, 4), jp_below(s, 30),
                      jp_below(s, 10), JP_PICK(s, jp_locale));
    case 12:
        return jp_put(b, len, cap, "\"metrics\":{\"cpu\":%u.%u,\"mem_mb\":%u,\"rps\":%u,\"p99_ms\":%u.%u}",
                      jp_below(s, 100), jp_below(s, 10), 64 + jp_below(s, 4000), jp_below(s, 20000),
                      jp_below(s, 900), jp_below(s, 10));
    default:
        return jp_put(b, len, cap, "\"read\":%s,\"edited\":%s", jp_below(s, 2) ? "true" : "false",
                      jp_below(s, 4) ? "false" : "true");
    }
}

/*
** Exactly `size` bytes of JSON-like text for this seed into dst (printable
** ASCII, so valid UTF-8 as a text frame). If `prefix` is not NULL it starts
** the object (e.g. "{\"seq\":\"" followed by room the caller overwrites).
** Objects: a type, then the 14 kinds of field in a random order (each at
** most once) while they fit, then a "note" string that fills the rest
** exactly.
*/
static inline void json_fill(uint8_t *dst, size_t size, uint64_t seed, const char *prefix)
{
    char b[1 << 16];
    if (size + 1 > sizeof b) { /* larger than a JSON message needs: repeat the text */
        json_fill(dst, sizeof b - 1, seed, prefix);
        for (size_t i = sizeof b - 1; i < size; i++)
            dst[i] = dst[i % (sizeof b - 1)];
        return;
    }
    uint64_t s = seed * 0x2545F4914F6CDD1Dull + 1;
    size_t cap = sizeof b;
    size_t len = jp_put(b, 0, cap, "%s", prefix ? prefix : "{");
    len = jp_put(b, len, cap, "\"type\":\"%s\"", JP_PICK(&s, jp_types));
    unsigned order[14]; /* each field kind once, in a random order: no duplicate keys */
    for (unsigned i = 0; i < 14; i++)
        order[i] = i;
    for (unsigned i = 13; i > 0; i--) {
        unsigned j = jp_below(&s, i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    char f[2048];
    for (unsigned i = 0; i < 14; i++) {
        size_t fl = jp_field(f, 0, sizeof f, &s, order[i]);
        if (len + 1 + fl + 12 > size) /* keep room for ,"note":"" } */
            continue;
        b[len++] = ',';
        memcpy(b + len, f, fl);
        len += fl;
    }
    if (len + 12 <= size) { /* a free-text note fills the rest exactly */
        len = jp_put(b, len, cap, ",\"note\":\"");
        size_t want = size - 2; /* the closing quote and brace */
        int misses = 0;
        while (len < want && misses < 16) {
            const char *w = JP_PICK(&s, jp_words);
            size_t wl = strlen(w) + (b[len - 1] != '"');
            if (len + wl > want) {
                misses++;
                continue;
            }
            if (b[len - 1] != '"')
                b[len++] = ' ';
            memcpy(b + len, w, strlen(w));
            len += strlen(w);
        }
        while (len < want)
            b[len++] = '.';
        b[len++] = '"';
        b[len++] = '}';
    }
    while (len < size) /* tiny sizes: pad (still printable) */
        b[len++] = ' ';
    memcpy(dst, b, size);
}

/* ------------------------------------------------------------------------ */
/* permessage-deflate negotiation                                           */

struct pmd {
    uint8_t on;         /* the server accepted permessage-deflate */
    uint8_t snct, cnct; /* server_/client_no_context_takeover */
    uint8_t sbits, cbits; /* server_/client_max_window_bits (15 when unsaid) */
};

/* The offer: like a browser, or asking for no context takeover both ways. */
static inline const char *pmd_offer(bool nct)
{
    return nct ? "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                 "client_max_window_bits"
               : "permessage-deflate; client_max_window_bits";
}

static inline const char *pmd_skip_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

/*
** Parse the server's Sec-WebSocket-Extensions value [v, ve) against what we
** offered (nct). Returns NULL and fills *out, or a reason it is not an answer
** we can use.
*/
static inline const char *pmd_parse(const char *v, const char *ve, bool nct, struct pmd *out)
{
    memset(out, 0, sizeof *out);
    out->sbits = out->cbits = 15;
    const char *p = pmd_skip_ws(v, ve);
    static const char name[] = "permessage-deflate";
    size_t nl = sizeof name - 1;
    if ((size_t)(ve - p) < nl || strncasecmp(p, name, nl) != 0)
        return "not permessage-deflate";
    p += nl;
    bool seen_s = false, seen_c = false, seen_sb = false, seen_cb = false;
    for (;;) {
        p = pmd_skip_ws(p, ve);
        if (p == ve)
            break;
        if (*p == ',')
            return "more than one extension in the answer";
        if (*p != ';')
            return "junk after the extension name";
        p = pmd_skip_ws(p + 1, ve);
        const char *k = p;
        while (p < ve && *p != '=' && *p != ';' && *p != ',' && *p != ' ' && *p != '\t')
            p++;
        size_t kl = (size_t)(p - k);
        p = pmd_skip_ws(p, ve);
        int val = -1;
        if (p < ve && *p == '=') {
            p = pmd_skip_ws(p + 1, ve);
            bool q = p < ve && *p == '"';
            if (q)
                p++;
            val = 0;
            const char *d = p;
            while (p < ve && *p >= '0' && *p <= '9' && p - d < 3)
                val = val * 10 + (*p++ - '0');
            if (p == d)
                return "a parameter value that is not a number";
            if (q) {
                if (p >= ve || *p != '"')
                    return "an unterminated quoted value";
                p++;
            }
        }
#define PMD_IS(lit) (kl == sizeof(lit) - 1 && strncasecmp(k, lit, kl) == 0)
        if (PMD_IS("server_no_context_takeover")) {
            if (seen_s || val >= 0)
                return "a bad server_no_context_takeover";
            seen_s = true;
            out->snct = 1;
        } else if (PMD_IS("client_no_context_takeover")) {
            if (seen_c || val >= 0)
                return "a bad client_no_context_takeover";
            seen_c = true;
            out->cnct = 1;
        } else if (PMD_IS("server_max_window_bits")) {
            if (seen_sb || val < 8 || val > 15)
                return "a bad server_max_window_bits";
            seen_sb = true;
            out->sbits = (uint8_t)val;
        } else if (PMD_IS("client_max_window_bits")) {
            if (seen_cb || val < 8 || val > 15)
                return "a bad client_max_window_bits";
            seen_cb = true;
            out->cbits = (uint8_t)val;
        } else {
            return "an unknown parameter";
        }
#undef PMD_IS
    }
    if (nct && !out->snct)
        return "server_no_context_takeover was offered and not answered";
    if (nct)
        out->cnct = 1; /* we offered not to keep our context: we don't */
    if (out->cbits == 8)
        return "client_max_window_bits=8 (zlib's raw deflate needs 9 or more)";
    out->on = 1;
    return NULL;
}

/* The answer as text (for the report). */
static inline void pmd_describe(const struct pmd *p, char *b, size_t n)
{
    if (!p->on) {
        snprintf(b, n, "none");
        return;
    }
    snprintf(b, n, "permessage-deflate%s%s; server_max_window_bits=%u; client_max_window_bits=%u",
             p->snct ? "; server_no_context_takeover" : "",
             p->cnct ? "; client_no_context_takeover" : "", p->sbits, p->cbits);
}

/* ------------------------------------------------------------------------ */
/* Compress and inflate one message                                         */

static const uint8_t pmd_tail[4] = { 0x00, 0x00, 0xff, 0xff };

/* A raw deflate stream of 2^bits window (9..15); dies on failure. */
static inline bool pmd_deflate_init(z_stream *z, int level, int bits)
{
    memset(z, 0, sizeof *z);
    return deflateInit2(z, level, Z_DEFLATED, -bits, 8, Z_DEFAULT_STRATEGY) == Z_OK;
}

/* The most pmd_compress() may write for n bytes. */
static inline size_t pmd_bound(size_t n)
{
    return n + n / 8 + 64;
}

/*
** Compress one message into out (pmd_bound(n) bytes); returns its length
** without the tail, or (size_t)-1. The stream keeps its context; reset it
** (deflateReset) first for no context takeover.
*/
static inline size_t pmd_compress(z_stream *z, const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    z->next_in = (Bytef *)(uintptr_t)in;
    z->avail_in = (uInt)n;
    z->next_out = out;
    z->avail_out = (uInt)cap;
    int r = deflate(z, Z_SYNC_FLUSH);
    if ((r != Z_OK && r != Z_BUF_ERROR) || z->avail_in != 0 || z->avail_out == 0)
        return (size_t)-1;
    size_t len = cap - z->avail_out;
    if (len >= 4 && memcmp(out + len - 4, pmd_tail, 4) == 0)
        len -= 4;
    return len;
}

static inline bool pmd_inflate_init(z_stream *z)
{
    memset(z, 0, sizeof *z);
    return inflateInit2(z, -15) == Z_OK; /* any window the server used fits in 15 */
}

/*
** Inflate one whole compressed message (payload without the tail) into out.
** Returns the inflated length, or -1 if the stream is corrupt, or -2 if it
** inflates to more than cap bytes (the caller then counts a length error).
*/
static inline long pmd_inflate(z_stream *z, const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    z->next_out = out;
    z->avail_out = (uInt)cap;
    for (int part = 0; part < 2; part++) {
        z->next_in = (Bytef *)(uintptr_t)(part ? pmd_tail : in);
        z->avail_in = (uInt)(part ? 4 : n);
        while (z->avail_in > 0) {
            int r = inflate(z, Z_SYNC_FLUSH);
            if (r == Z_STREAM_END) { /* a final block: the next message starts afresh */
                inflateReset(z);
                return (long)(cap - z->avail_out);
            }
            if (r == Z_BUF_ERROR && z->avail_out == 0)
                return -2;
            if (r != Z_OK)
                return -1;
            if (z->avail_out == 0 && z->avail_in > 0)
                return -2;
        }
    }
    return (long)(cap - z->avail_out);
}

#endif
