/* SPDX-License-Identifier: MIT
 *
 * server.h -- listening sockets (IPv4 and IPv6), accept, and the list of a
 * server's live connections.
 *
 * A server owns up to SERVER_MAX_LISTEN listening sockets (a host name such as
 * "localhost" may resolve to both 127.0.0.1 and ::1). Accepted sockets are made
 * non-blocking with TCP_NODELAY, and handed to a struct conn that the owner
 * allocates (hooks->alloc), because the owner (Lua) holds the memory.
 */
#ifndef LUAWS_SERVER_H
#define LUAWS_SERVER_H

#include <ev.h>
#include "conn.h"

struct ssl_ctx_st;

#define SERVER_MAX_LISTEN 4

struct server_stats {
    uint64_t accepted;        /* sockets accepted */
    uint64_t upgraded;        /* handshakes completed */
    uint64_t rejected;        /* refused: over max_connections or a failed handshake */
    uint64_t msgs_in, msgs_out, bytes_in, bytes_out;
    uint64_t frames_cut;      /* connections closed by a deadline in the middle of a frame */
    uint64_t shutdown_cut;    /* connections still open when a shutdown's grace ran out */
};

struct server {
    ev_io listen[SERVER_MAX_LISTEN];
    ev_timer retry;                   /* resumes accepting after EMFILE/ENFILE */
    int nlisten;
    int port;                         /* the bound port of the first socket */
    struct conn_options opt;
    size_t max_connections;           /* 0 = no limit; past it: 503 */
    struct ssl_ctx_st *tls;           /* TLS context for wss://, or NULL (owned) */
    const struct conn_hooks *hooks;
    /* allocate the memory for a new connection, or NULL to refuse it */
    struct conn *(*alloc)(struct server *s);
    void *owner;                      /* for the owner's use (lua_server.c) */
    struct conn *conns;               /* live connections (accepted, not finished) */
    size_t nconns;                    /* how many */
    size_t nopen;                     /* of which OPEN or CLOSING */
    struct server_stats stats;
    struct server *next;              /* loop.c's list */
    int closed;                       /* no longer accepting */
};

/* Bind and listen on host:port (port 0 = any) with the given backlog; start
 * accepting. host NULL or "*" means every address (IPv6 and IPv4). Returns
 * WS_OK, or WS_ERESOLVE / WS_EIO with a message in err. */
int server_listen(struct server *s, const char *host, int port, int backlog,
                  char *err, size_t errlen);

/* Stop accepting and close the listening sockets. If code is not 0, also
 * start the close handshake on every live connection with that code (after
 * what is already queued for it). shutdown: the loop's shutdown is closing
 * the server, so its grace period, not close_timeout, bounds each close. The
 * server stays on the loop's list (for shutdown) until its owner frees it
 * and calls loop_server_remove. */
void server_close(struct server *s, unsigned code, const char *reason, int shutdown);

/* Connection list upkeep, from conn.c. */
void server_conn_add(struct server *s, struct conn *c);
void server_conn_remove(struct server *s, struct conn *c);

#endif
