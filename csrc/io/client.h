/* SPDX-License-Identifier: MIT
 *
 * client.h -- the client side of luaws.connect: resolve the host, open a
 * non-blocking socket, start connect(), wrap it in TLS for wss:// and send
 * the opening handshake, all on a struct conn the owner provides.
 *
 * Resolution is getaddrinfo, so it blocks for a name that is not in
 * /etc/hosts or cached (an IP literal never does).
 */
#ifndef LUAWS_IO_CLIENT_H
#define LUAWS_IO_CLIENT_H

#include "io/conn.h"

struct ssl_ctx_st;

struct client_params {
    const char *host;             /* name or address literal (no brackets) */
    int port;
    const char *path;             /* request-target, starting with / */
    const char *extra;            /* header lines ("Name: value\r\n"...) or NULL */
    size_t extra_len;
    struct ssl_ctx_st *tls;       /* a client context for wss://, or NULL (not taken) */
    const struct conn_hooks *hooks;
    const struct conn_options *opt;
};

/* Start a client connection on c. Returns WS_OK with the connection under
 * way (its hooks report the rest), or an error with a message in err:
 * WS_ERESOLVE, WS_EREFUSED, WS_EIO (nothing was set up: the caller keeps c's
 * memory), or, with *started set to 1, WS_ETLS / WS_ENOMEM / WS_ETOOBIG
 * after c came to life (it is aborted; its release hook frees it). */
int client_connect(struct conn *c, const struct client_params *p, int *started,
                   char *err, size_t errlen);

#endif
