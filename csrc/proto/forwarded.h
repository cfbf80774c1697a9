/* SPDX-License-Identifier: MIT
 *
 * forwarded.h -- who the client of a proxied request is: X-Forwarded-For
 * (and X-Forwarded-Proto), or RFC 7239's Forwarded (for=, proto=), read
 * only when the peer that sent the request is a trusted proxy.
 *
 * The walk (the "rightmost untrusted hop", as nginx's real_ip_recursive
 * and Rails do it): each proxy appends the address it got the request
 * from, so the list is read from the right; while an entry is itself a
 * trusted proxy the walk goes on leftwards, and the first entry that is
 * not trusted is the client. Whatever a client writes into the header
 * itself stays to the left of what our proxy appended, so it is never
 * reached. All entries trusted: the leftmost is the client. An entry that
 * is no address ("unknown", an obfuscated name, garbage) ends the walk at
 * the last address that was trusted: nothing to its left can be believed.
 *
 * Which header: X-Forwarded-For when the request has one (what nginx,
 * HAProxy, AWS ALB and most others write), else Forwarded. A trusted proxy
 * must write the one it uses: one that passes a client's header on
 * untouched lets that client say anything (see docs/deploy.md).
 *
 * Secure: the proto= of the Forwarded element chosen, or the rightmost
 * X-Forwarded-Proto value (the nearest proxy's word): "https"/"wss" is
 * secure, "http"/"ws" is not, anything else says nothing.
 *
 * Bounded: at most WS_FORWARDED_HOPS entries are kept (the rightmost);
 * nothing is allocated, the head's own bytes are read in place.
 */
#ifndef LUAWS_PROTO_FORWARDED_H
#define LUAWS_PROTO_FORWARDED_H

#include "proto/addr.h"
#include "proto/http.h"

/* Entries of the forwarding list considered, from the right. */
#define WS_FORWARDED_HOPS 32

enum ws_forwarded_from {
    WS_FWD_NONE = 0,      /* peer not trusted, or no header: the peer is the client */
    WS_FWD_XFF,           /* X-Forwarded-For (and X-Forwarded-Proto) */
    WS_FWD_FORWARDED      /* RFC 7239 Forwarded */
};

struct ws_forwarded {
    struct ws_addr client;   /* the client as the trusted proxies say (or the peer) */
    int from;                /* enum ws_forwarded_from */
    int secure;              /* -1: nothing said; 0: http; 1: https */
};

/*
** Resolve the client of request h that peer sent, trusting t (see the file
** comment). Always fills *out: out->client is peer itself when the headers
** are not read (from == WS_FWD_NONE) or say nothing usable.
*/
void ws_forwarded_resolve(const struct ws_http_head *h, const struct ws_trust *t,
                          const struct ws_addr *peer, struct ws_forwarded *out);

#endif
