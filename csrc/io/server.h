/* SPDX-License-Identifier: MIT
 *
 * server.h -- listening sockets (IPv4 and IPv6), accept, the list of
 * servers, and shutdown: SIGINT/SIGTERM, the grace period and its end.
 *
 * A server owns up to SERVER_MAX_LISTEN listening sockets (a host name such as
 * "localhost" may resolve to both 127.0.0.1 and ::1). Accepted sockets are made
 * non-blocking with TCP_NODELAY, and handed to a struct conn that the owner
 * allocates (s->alloc), because the owner (Lua) holds the memory; the
 * connections count themselves in the server's conn_group.
 */
#ifndef LUAWS_IO_SERVER_H
#define LUAWS_IO_SERVER_H

#include <ev.h>
#include "io/conn.h"
#include "io/pubsub.h"

struct ssl_ctx_st;

#define SERVER_MAX_LISTEN 4

enum server_nodelay { SERVER_NODELAY_UNKNOWN, SERVER_NODELAY_INHERITED, SERVER_NODELAY_SET };

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
    struct conn_group group;          /* its live connections, their counts and stats */
    struct pubsub ps;                 /* its topics */
    int index;                        /* 0, 1, ...: the order servers listened in this process */
    struct server *next;              /* the list of servers, for shutdown */
    int listed;                       /* on that list */
    int closed;                       /* no longer accepting */
    int paused;                       /* server_pause_accept: its sockets are not watched */
    int nodelay;                      /* enum server_nodelay: accepted sockets inherit TCP_NODELAY? */
    /* listen{unix = path}: the socket file this process bound (removed at
     * close, when it is still ours: same device and inode), else "" */
    char unix_path[108];
    unsigned long unix_dev, unix_ino;
};

/* Bind and listen on host:port (port 0 = any) with the given backlog; start
 * accepting, and put the server on the list. host NULL or "*" means every
 * address (IPv6 and IPv4). Returns WS_OK, or WS_ERESOLVE / WS_EIO with a
 * message in err. */
int server_listen(struct server *s, const char *host, int port, int backlog,
                  char *err, size_t errlen);

/* Bind and listen on a unix-domain socket at path, with permissions mode
 * (chmod; 0: leave the umask's). A file already at path: if something
 * accepts connections on it, WS_EIO "address already in use"; if nothing
 * does (a stale socket left by a crash), it is removed and bound anew;
 * any other kind of file is left alone (WS_EIO). The file is removed by
 * server_close. Returns WS_OK, or WS_EIO with a message in err. */
int server_listen_unix(struct server *s, const char *path, int mode, int backlog,
                       char *err, size_t errlen);

/* Serve on listening sockets this process inherited (a worker: its
 * master's, see io/workers.h) instead of binding: n descriptors (0: a
 * server the master had closed, which stays closed). Each must be a
 * listening socket; it is made non-blocking and close-on-exec, the port is
 * read back with getsockname, and accepting starts as after server_listen.
 * WS_OK or WS_EIO with a message in err. */
int server_adopt(struct server *s, const int *fds, int n, char *err, size_t errlen);

/* Stop (paused 1) or resume (0) watching the listening sockets, which stay
 * open: the kernel goes on queueing connections (the workers' master keeps
 * them for its workers and never accepts). */
void server_pause_accept(struct server *s, int paused);

/* How many servers have listened in this process: their indexes are
 * 0 .. server_count() - 1 (see server_by_index). */
int server_count(void);

/* Stop accepting and close the listening sockets. If code is not 0, also
 * start the close handshake on every live connection with that code (after
 * what is already queued for it). The server stays on the list (a shutdown
 * still reaches its connections) until server_forget. */
void server_close(struct server *s, unsigned code, const char *reason);

/* Take s off the list, before its memory goes. */
void server_forget(struct server *s);

/* The server that listened index-th in this process (a worker's relay and
 * a backplane find a publish's server by it), or NULL. */
struct server *server_by_index(int index);

/* Begin a graceful shutdown of every server: they stop accepting, every
 * open connection gets close 1001 after what is already queued for it, and
 * the grace period (not close_timeout) bounds each close. Once no
 * connection of a server is left the loop is broken. After grace seconds (at
 * once if grace <= 0) the connections still open are cut and counted (their
 * server's stats.shutdown_cut, server_shutdown_cut). Idempotent: a running
 * shutdown keeps its deadline. */
void server_shutdown(double grace);

/* End a shutdown now (or start and end one): every connection of every
 * server is dropped and the loop broken, as if the grace period had passed. */
void server_shutdown_now(void);

/* Watch SIGINT and SIGTERM: the first one calls server_shutdown(grace); one
 * that comes while a shutdown runs calls server_shutdown_now (Ctrl-C twice).
 * on=0 stops watching. */
void server_watch_signals(int on, double grace);

/* Connections the last shutdown cut when its grace ran out; reading resets
 * the count. */
size_t server_shutdown_cut(void);

/* Forget every server and stop the shutdown machinery (at lua_close, before
 * the loop goes). */
void server_reset(void);

#endif
