/* SPDX-License-Identifier: MIT
 *
 * pmd.h -- permessage-deflate negotiation (RFC 7692 §5, §7.1): the
 * Sec-WebSocket-Extensions grammar (RFC 6455 §9.1), the server's choice
 * among the client's offers and its answer, the client's offer and its
 * check of the server's answer. A pure codec: pointers into the caller's
 * header values, no allocation, no zlib (deflate.h compresses).
 *
 * The grammar, with RFC 9110 §5.6 list and whitespace rules:
 *     extension-list  = 1#extension              (empty elements allowed)
 *     extension       = token *( OWS ";" OWS extension-param )
 *     extension-param = token [ OWS "=" OWS ( token / quoted-string ) ]
 * and a quoted value must be a token once its escapes are removed (§9.1).
 * Names compare case-insensitively; values are the decimal integers 8..15
 * without leading zeroes (RFC 7692 §7.1.2), quoted or not.
 *
 * Server (ws_pmd_negotiate): every offer of every Sec-WebSocket-Extensions
 * header, in order; an offer of another extension is skipped, an offer of
 * permessage-deflate with a parameter it may not have (unknown, repeated,
 * a value where none belongs, a bad value) is declined (§7: "MUST decline")
 * and the next one tried; the first acceptable one is taken. Any header
 * that breaks the grammar declines them all: we do not guess what a
 * malformed header meant. What we answer (§7.1):
 *   server_no_context_takeover  when offered, or when we want it;
 *   client_no_context_takeover  when offered (so our inflater may forget
 *                               between messages), or when we want it;
 *   server_max_window_bits=N    the smaller of the offer's and ours, when
 *                               offered or when ours is below 15;
 *   client_max_window_bits=N    only when offered (§7.1.2.2: never
 *                               otherwise): the smaller of the offer's
 *                               value (15 without one) and ours, when
 *                               below 15 or when the offer gave a value.
 * Declining is never an error: the 101 then names no extension.
 *
 * Client (ws_pmd_offer, ws_pmd_check_answer): one offer from our wishes,
 * always with client_max_window_bits (we can honour any value); the answer
 * fails the connection (§5: "_Fail the WebSocket Connection_") when it
 * names an extension we did not offer, names permessage-deflate twice, has
 * a parameter that is unknown, repeated, malformed, a
 * client_max_window_bits without a value or above our offer, a
 * server_max_window_bits above our offer, or leaves out one we asked the
 * server to honour (server_no_context_takeover, server_max_window_bits).
 */
#ifndef LUAWS_PMD_H
#define LUAWS_PMD_H

#include "luaws.h"
#include "proto/http.h"

/* The extension's registered name (RFC 7692 §11.1). */
#define WS_PMD_NAME "permessage-deflate"

/* Parameters kept per extension element; more are counted, not kept. */
#define WS_EXT_MAX_PARAMS 8

/* Room for the longest answer or offer, with its NUL: every parameter,
 * two-digit windows, is 128 bytes; the rest is a margin. */
#define WS_PMD_ANSWER_MAX 160

struct ws_ext_param {
    const char *name;        /* a token; not NUL-terminated */
    size_t name_len;
    const char *value;       /* NULL: no value; else a token, or a quoted string's */
    size_t value_len;        /*   inside (quotes dropped, escapes kept) */
    uint8_t quoted;          /* 1 if the value was a quoted-string */
};

/* One element of an extension list. */
struct ws_ext {
    const char *name;
    size_t name_len;
    size_t nparams;          /* parameters it has (may exceed WS_EXT_MAX_PARAMS) */
    struct ws_ext_param params[WS_EXT_MAX_PARAMS];   /* the first ones */
};

/*
** The next element of the extension list value[*pos..len): 1 with *e filled
** and *pos past it (and past its comma), 0 when only empty elements and
** whitespace remain, WS_EHTTP when the list breaks the grammar. Start with
** *pos = 0.
*/
int ws_ext_next(const char *value, size_t len, size_t *pos, struct ws_ext *e);

/* A parameter's value as a number, quotes and escapes removed: the
 * decimal integer 8..15 written without a leading zero, else -1 (also for
 * no value). */
int ws_ext_window_bits(const struct ws_ext_param *p);

/* What one side wants (a server's policy, or what a client offers). */
struct ws_pmd_config {
    uint8_t server_no_context_takeover;   /* 1: the server's compressor forgets between messages */
    uint8_t client_no_context_takeover;   /* 1: the client's compressor forgets between messages */
    uint8_t server_max_window_bits;       /* 8..15: largest LZ77 window of the server's compressor */
    uint8_t client_max_window_bits;       /* 8..15: largest LZ77 window of the client's compressor */
};

/* What was agreed: the effective values (15 where nothing was said). */
struct ws_pmd_params {
    uint8_t server_no_context_takeover;
    uint8_t client_no_context_takeover;
    uint8_t server_max_window_bits;       /* 8..15 */
    uint8_t client_max_window_bits;       /* 8..15 */
};

/* The parameters of one permessage-deflate offer, checked (RFC 7692 §7). */
struct ws_pmd_offer {
    uint8_t server_no_context_takeover;
    uint8_t client_no_context_takeover;
    uint8_t server_max_window_bits;       /* 0: not offered, else 8..15 */
    uint8_t client_max_window_bits;       /* 0: not offered, 1: offered without a value, else 8..15 */
};

/* Check the parameters of a permessage-deflate element e as an offer:
 * WS_OK with *o filled, or WS_EHANDSHAKE (decline it) with *why saying
 * why in a few words (why may be NULL). */
int ws_pmd_parse_offer(const struct ws_ext *e, struct ws_pmd_offer *o, const char **why);

/* The server's answer to an acceptable offer under our policy: *agreed. */
void ws_pmd_accept(const struct ws_pmd_offer *o, const struct ws_pmd_config *ours,
                   struct ws_pmd_params *agreed);

/*
** Server: choose among the offers of every Sec-WebSocket-Extensions header
** of the request h (see the file comment). 1 with *agreed and the answer
** (the header's value, NUL-terminated, at most WS_PMD_ANSWER_MAX bytes with
** the NUL) in answer, or 0: no offer we can take, nothing to answer.
*/
int ws_pmd_negotiate(const struct ws_http_head *h, const struct ws_pmd_config *ours,
                     struct ws_pmd_params *agreed, char *answer);

/* Write the answer for agreed into out (at least WS_PMD_ANSWER_MAX bytes),
 * given the offer it answers. Returns its length. */
size_t ws_pmd_answer(const struct ws_pmd_params *agreed, const struct ws_pmd_offer *o, char *out);

/* Client: the value of the Sec-WebSocket-Extensions header offering what
 * we want (at least WS_PMD_ANSWER_MAX bytes). Returns its length. */
size_t ws_pmd_offer(const struct ws_pmd_config *ours, char *out);

/*
** Client: check the server's answer in the 101 h against what we offered
** (ours, or NULL when we offered nothing). 1 with *agreed when
** permessage-deflate was accepted, 0 when the answer names no extension,
** WS_EHANDSHAKE when the connection must fail, with *why (static text).
*/
int ws_pmd_check_answer(const struct ws_http_head *h, const struct ws_pmd_config *ours,
                        struct ws_pmd_params *agreed, const char **why);

#endif
