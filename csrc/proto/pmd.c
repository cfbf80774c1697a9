/* SPDX-License-Identifier: MIT
 *
 * pmd.c -- permessage-deflate negotiation (RFC 7692 §5, §7.1) over the
 * Sec-WebSocket-Extensions grammar (RFC 6455 §9.1). Contract in pmd.h.
 *
 * Design criteria:
 *   - one pass over each header value, no allocation, no copy: elements and
 *     parameters point into the caller's bytes;
 *   - the grammar is checked whole (a quoted value must unescape to a
 *     token), so a header that does not parse declines everything rather
 *     than being half-understood;
 *   - every rule of §7 is one early return with a short reason, which the
 *     client's failure message carries.
 *
 * It does not compress (deflate.c does), and knows no zlib: the zlib quirk
 * about a window of 8 bits is deflate.c's business (see there).
 */
#include <stdio.h>
#include <string.h>

#include "proto/pmd.h"

/* RFC 9110 §5.6.2 tchar. */
static int is_tchar(unsigned char ch)
{
    if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))
        return 1;
    return ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static int is_ows(char ch)
{
    return ch == ' ' || ch == '\t';
}

static int ieq(const char *a, size_t alen, const char *b)
{
    size_t n = strlen(b);
    if (alen != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z')
            x = (char)(x + 32);
        if (x != y)
            return 0;
    }
    return 1;
}

static void skip_ows(const char *v, size_t len, size_t *i)
{
    while (*i < len && is_ows(v[*i]))
        (*i)++;
}

/* A token at v[*i..): its bytes, *i past it. 0 if there is none. */
static size_t take_token(const char *v, size_t len, size_t *i)
{
    size_t start = *i;
    while (*i < len && is_tchar((unsigned char)v[*i]))
        (*i)++;
    return *i - start;
}

/*
** A quoted-string at v[*i] == '"' whose unescaped content is a non-empty
** token (RFC 6455 §9.1): *i past the closing quote, *inner / *inner_len its
** content between the quotes. WS_OK or WS_EHTTP.
*/
static int take_quoted(const char *v, size_t len, size_t *i, const char **inner, size_t *inner_len)
{
    size_t start = ++*i, chars = 0;
    while (*i < len && v[*i] != '"') {
        if (v[*i] == '\\') {              /* quoted-pair */
            if (++*i >= len)
                return WS_EHTTP;
        }
        if (!is_tchar((unsigned char)v[*i]))
            return WS_EHTTP;              /* unescaped, it would not be a token */
        (*i)++;
        chars++;
    }
    if (*i >= len || chars == 0)
        return WS_EHTTP;                  /* unterminated, or empty */
    *inner = v + start;
    *inner_len = *i - start;
    (*i)++;
    return WS_OK;
}

int ws_ext_next(const char *value, size_t len, size_t *pos, struct ws_ext *e)
{
    size_t i = *pos;
    memset(e, 0, sizeof *e);
    /* empty elements and the commas between them (RFC 9110 §5.6.1) */
    while (i < len && (is_ows(value[i]) || value[i] == ','))
        i++;
    if (i >= len) {
        *pos = len;
        return 0;
    }
    e->name = value + i;
    if ((e->name_len = take_token(value, len, &i)) == 0)
        return WS_EHTTP;
    for (;;) {
        struct ws_ext_param p = { NULL, 0, NULL, 0, 0 };
        skip_ows(value, len, &i);
        if (i >= len || value[i] == ',')
            break;
        if (value[i] != ';')
            return WS_EHTTP;
        i++;
        skip_ows(value, len, &i);
        p.name = value + i;
        if ((p.name_len = take_token(value, len, &i)) == 0)
            return WS_EHTTP;
        skip_ows(value, len, &i);
        if (i < len && value[i] == '=') {
            i++;
            skip_ows(value, len, &i);
            if (i < len && value[i] == '"') {
                if (take_quoted(value, len, &i, &p.value, &p.value_len) != WS_OK)
                    return WS_EHTTP;
                p.quoted = 1;
            } else {
                p.value = value + i;
                if ((p.value_len = take_token(value, len, &i)) == 0)
                    return WS_EHTTP;
            }
        }
        if (e->nparams < WS_EXT_MAX_PARAMS)
            e->params[e->nparams] = p;
        e->nparams++;
    }
    if (i < len)
        i++;   /* the comma */
    *pos = i;
    return 1;
}

int ws_ext_window_bits(const struct ws_ext_param *p)
{
    char digits[3];
    size_t n = 0;
    if (!p->value)
        return -1;
    for (size_t i = 0; i < p->value_len; i++) {
        char ch = p->value[i];
        if (p->quoted && ch == '\\')
            continue;   /* take_quoted saw that a character follows */
        if (ch < '0' || ch > '9' || n == sizeof digits - 1)
            return -1;
        digits[n++] = ch;
    }
    if (n == 1 && (digits[0] == '8' || digits[0] == '9'))
        return digits[0] - '0';
    if (n == 2 && digits[0] == '1' && digits[1] >= '0' && digits[1] <= '5')
        return 10 + digits[1] - '0';
    return -1;   /* "08", "16", "7", "" ... */
}

int ws_pmd_parse_offer(const struct ws_ext *e, struct ws_pmd_offer *o, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    memset(o, 0, sizeof *o);
    if (e->nparams > WS_EXT_MAX_PARAMS) {
        *why = "too many parameters";   /* four at most, each once */
        return WS_EHANDSHAKE;
    }
    for (size_t k = 0; k < e->nparams; k++) {
        const struct ws_ext_param *p = &e->params[k];
        uint8_t *flag = NULL;
        if (ieq(p->name, p->name_len, "server_no_context_takeover"))
            flag = &o->server_no_context_takeover;
        else if (ieq(p->name, p->name_len, "client_no_context_takeover"))
            flag = &o->client_no_context_takeover;
        if (flag) {
            if (*flag) {
                *why = "a parameter given twice";
                return WS_EHANDSHAKE;
            }
            if (p->value) {
                *why = "a value on a no_context_takeover parameter";
                return WS_EHANDSHAKE;
            }
            *flag = 1;
        } else if (ieq(p->name, p->name_len, "server_max_window_bits")) {
            int bits = ws_ext_window_bits(p);
            if (o->server_max_window_bits) {
                *why = "a parameter given twice";
                return WS_EHANDSHAKE;
            }
            if (bits < 0) {   /* §7.1.2.1: it must have a value, 8..15 */
                *why = "server_max_window_bits is not 8..15";
                return WS_EHANDSHAKE;
            }
            o->server_max_window_bits = (uint8_t)bits;
        } else if (ieq(p->name, p->name_len, "client_max_window_bits")) {
            int bits = p->value ? ws_ext_window_bits(p) : 1;
            if (o->client_max_window_bits) {
                *why = "a parameter given twice";
                return WS_EHANDSHAKE;
            }
            if (bits < 0) {   /* §7.1.2.2: no value, or 8..15 */
                *why = "client_max_window_bits is not 8..15";
                return WS_EHANDSHAKE;
            }
            o->client_max_window_bits = (uint8_t)bits;
        } else {
            *why = "an unknown parameter";
            return WS_EHANDSHAKE;
        }
    }
    return WS_OK;
}

static uint8_t min_bits(unsigned a, unsigned b)
{
    return (uint8_t)(a < b ? a : b);
}

void ws_pmd_accept(const struct ws_pmd_offer *o, const struct ws_pmd_config *ours,
                   struct ws_pmd_params *agreed)
{
    agreed->server_no_context_takeover = o->server_no_context_takeover || ours->server_no_context_takeover;
    agreed->client_no_context_takeover = o->client_no_context_takeover || ours->client_no_context_takeover;
    agreed->server_max_window_bits = o->server_max_window_bits
        ? min_bits(o->server_max_window_bits, ours->server_max_window_bits)
        : ours->server_max_window_bits;
    if (o->client_max_window_bits == 0)
        agreed->client_max_window_bits = 15;   /* §7.1.2.2: we may not limit it */
    else
        agreed->client_max_window_bits = min_bits(o->client_max_window_bits == 1 ? 15 : o->client_max_window_bits,
                                                  ours->client_max_window_bits);
}

size_t ws_pmd_answer(const struct ws_pmd_params *a, const struct ws_pmd_offer *o, char *out)
{
    int n;
    n = snprintf(out, WS_PMD_ANSWER_MAX, "%s%s%s", WS_PMD_NAME,
                 a->server_no_context_takeover ? "; server_no_context_takeover" : "",
                 a->client_no_context_takeover ? "; client_no_context_takeover" : "");
    if (o->server_max_window_bits || a->server_max_window_bits < 15)
        n += snprintf(out + n, WS_PMD_ANSWER_MAX - (size_t)n, "; server_max_window_bits=%u",
                      a->server_max_window_bits);
    if (o->client_max_window_bits > 1 || (o->client_max_window_bits == 1 && a->client_max_window_bits < 15))
        n += snprintf(out + n, WS_PMD_ANSWER_MAX - (size_t)n, "; client_max_window_bits=%u",
                      a->client_max_window_bits);
    return (size_t)n;
}

/* Every header called name, in order: the next one after index *k (start
 * at 0). NULL when no more. */
static const struct ws_http_header *next_header(const struct ws_http_head *h, size_t *k, const char *name)
{
    while (*k < h->num_headers) {
        const struct ws_http_header *hd = &h->headers[(*k)++];
        if (ieq(hd->name, hd->name_len, name))
            return hd;
    }
    return NULL;
}

int ws_pmd_negotiate(const struct ws_http_head *h, const struct ws_pmd_config *ours,
                     struct ws_pmd_params *agreed, char *answer)
{
    const struct ws_http_header *hd;
    struct ws_pmd_offer chosen = { 0, 0, 0, 0 };
    size_t k = 0;
    int found = 0;
    /* the whole of every header must parse before any offer counts */
    while ((hd = next_header(h, &k, "sec-websocket-extensions")) != NULL) {
        size_t pos = 0;
        struct ws_ext e;
        int r;
        while ((r = ws_ext_next(hd->value, hd->value_len, &pos, &e)) == 1) {
            struct ws_pmd_offer o;
            if (found || !ieq(e.name, e.name_len, WS_PMD_NAME))
                continue;
            if (ws_pmd_parse_offer(&e, &o, NULL) == WS_OK) {
                chosen = o;
                found = 1;
            }
        }
        if (r != 0)
            return 0;   /* a header that breaks the grammar: decline everything */
    }
    if (!found)
        return 0;
    ws_pmd_accept(&chosen, ours, agreed);
    ws_pmd_answer(agreed, &chosen, answer);
    return 1;
}

size_t ws_pmd_offer(const struct ws_pmd_config *ours, char *out)
{
    int n = snprintf(out, WS_PMD_ANSWER_MAX, "%s%s%s", WS_PMD_NAME,
                     ours->server_no_context_takeover ? "; server_no_context_takeover" : "",
                     ours->client_no_context_takeover ? "; client_no_context_takeover" : "");
    if (ours->server_max_window_bits < 15)
        n += snprintf(out + n, WS_PMD_ANSWER_MAX - (size_t)n, "; server_max_window_bits=%u",
                      ours->server_max_window_bits);
    /* we can compress with any window the server asks for */
    if (ours->client_max_window_bits < 15)
        n += snprintf(out + n, WS_PMD_ANSWER_MAX - (size_t)n, "; client_max_window_bits=%u",
                      ours->client_max_window_bits);
    else
        n += snprintf(out + n, WS_PMD_ANSWER_MAX - (size_t)n, "; client_max_window_bits");
    return (size_t)n;
}

int ws_pmd_check_answer(const struct ws_http_head *h, const struct ws_pmd_config *ours,
                        struct ws_pmd_params *agreed, const char **why)
{
    const struct ws_http_header *hd;
    struct ws_pmd_offer a = { 0, 0, 0, 0 };   /* the answer's parameters, read as an offer's */
    size_t k = 0;
    int found = 0;
    while ((hd = next_header(h, &k, "sec-websocket-extensions")) != NULL) {
        size_t pos = 0;
        struct ws_ext e;
        int r;
        while ((r = ws_ext_next(hd->value, hd->value_len, &pos, &e)) == 1) {
            if (!ours || !ieq(e.name, e.name_len, WS_PMD_NAME)) {
                *why = "the server chose an extension we did not offer";
                return WS_EHANDSHAKE;
            }
            if (found) {
                *why = "the server answered permessage-deflate twice";
                return WS_EHANDSHAKE;
            }
            if (ws_pmd_parse_offer(&e, &a, why) != WS_OK)
                return WS_EHANDSHAKE;
            found = 1;
        }
        if (r != 0) {
            *why = "a malformed Sec-WebSocket-Extensions";
            return WS_EHANDSHAKE;
        }
    }
    if (!found)
        return 0;
    if (a.client_max_window_bits == 1) {
        *why = "client_max_window_bits without a value";   /* §7.1.2.2: an answer gives one */
        return WS_EHANDSHAKE;
    }
    if (a.client_max_window_bits > ours->client_max_window_bits) {
        *why = "client_max_window_bits above our offer";
        return WS_EHANDSHAKE;
    }
    if (ours->server_max_window_bits < 15 && a.server_max_window_bits == 0) {
        *why = "the server ignored server_max_window_bits";   /* §7.1.2.1 */
        return WS_EHANDSHAKE;
    }
    if (a.server_max_window_bits > ours->server_max_window_bits) {
        *why = "server_max_window_bits above our offer";
        return WS_EHANDSHAKE;
    }
    if (ours->server_no_context_takeover && !a.server_no_context_takeover) {
        *why = "the server ignored server_no_context_takeover";   /* §7.1.1.1 */
        return WS_EHANDSHAKE;
    }
    agreed->server_no_context_takeover = a.server_no_context_takeover;
    agreed->client_no_context_takeover = a.client_no_context_takeover;
    agreed->server_max_window_bits = a.server_max_window_bits ? a.server_max_window_bits : 15;
    agreed->client_max_window_bits = a.client_max_window_bits ? a.client_max_window_bits
                                                              : ours->client_max_window_bits;
    return 1;
}
