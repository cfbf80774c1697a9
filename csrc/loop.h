/* SPDX-License-Identifier: MIT
 *
 * loop.h -- the one libev loop luaws runs on, and what all connections of it
 * share: the receive buffer, the list of connections waiting to be finished,
 * the list of servers, and shutdown on SIGINT/SIGTERM.
 *
 * luaws uses libev's default loop, so a host program that already runs it
 * (or calls luaws.step) drives luaws too.
 */
#ifndef LUAWS_LOOP_H
#define LUAWS_LOOP_H

#include <ev.h>
#include "luaws.h"

struct conn;
struct server;

/* The loop; set up on first use (default loop, SIGPIPE ignored, the
 * pending-list watcher started). NULL if libev could not start. */
struct ev_loop *loop_get(void);

/* The shared receive buffer, at least size bytes. NULL if out of memory. */
uint8_t *loop_rbuf(size_t size);

/* Queue c to be finished by the loop before it next blocks. */
void loop_pending_add(struct conn *c);

/* Finish every queued connection now. */
void loop_pending_run(void);

/* Servers register so shutdown can reach them. */
void loop_server_add(struct server *s);
void loop_server_remove(struct server *s);

/* Begin a graceful shutdown: servers stop accepting, every open connection
 * gets close 1001 after what is already queued for it, and the loop is broken
 * once no connection is left. After grace seconds (at once if grace <= 0) the
 * connections still open are cut, counted in loop_shutdown_cut and in their
 * server's stats. Idempotent: a running shutdown keeps its deadline. */
void loop_shutdown(double grace);

/* End a shutdown now (or start and end one): every connection is dropped and
 * the loop broken, as if the grace period had passed. */
void loop_shutdown_now(void);

/* Watch SIGINT and SIGTERM: the first one calls loop_shutdown(grace); one
 * that comes while a shutdown runs calls loop_shutdown_now (Ctrl-C twice).
 * on=0 stops. */
void loop_watch_signals(int on, double grace);

/* Connections the last shutdown cut when its grace ran out. */
extern size_t loop_shutdown_cut;

/* Give back what the loop holds (the receive buffer, libev's own memory):
 * at lua_close, after every connection, server and timer was collected. */
void loop_free(void);

/* Live connections (accepted or connecting, not yet finished). */
extern size_t loop_live_conns;

#endif
