/* SPDX-License-Identifier: MIT
 *
 * loop.h -- the one libev loop luaws runs on, the receive buffer every
 * connection reads into, and a list of before-block hooks.
 *
 * The loop knows watchers and hooks, nothing of connections or servers
 * (Redis's ae.c knows events and beforeSleep): conn.c finishes connections
 * from a hook, server.c checks a shutdown's progress from one. luaws uses
 * libev's default loop, so a host program that already runs it (or calls
 * luaws.step) drives luaws too.
 */
#ifndef LUAWS_IO_LOOP_H
#define LUAWS_IO_LOOP_H

#include <ev.h>
#include "luaws.h"

/* The loop; set up on first use (default loop, SIGPIPE ignored, the
 * before-block watcher started). NULL if libev could not start. */
struct ev_loop *loop_get(void);

/* The shared receive buffer, at least size bytes. NULL if out of memory. */
uint8_t *loop_rbuf(size_t size);

/* A before-block hook: fn runs each time the loop is about to block (an
 * ev_prepare watcher), and from loop_run_hooks. Hooks run in the order they
 * were added; one may add or remove hooks, itself included. */
struct loop_hook {
    void (*fn)(struct loop_hook *h);
    struct loop_hook *next;
    int added;                      /* 1 while on the list */
};

/* Put h on the list (idempotent) / take it off (idempotent). */
void loop_hook_add(struct loop_hook *h);
void loop_hook_remove(struct loop_hook *h);

/* Run every hook now: for a caller that turned the loop by hand (one
 * iteration) and must not wait for the next one to finish its work. */
void loop_run_hooks(void);

/* Give back what the loop holds (the receive buffer, libev's own memory):
 * at lua_close, after every connection, server and timer was collected. */
void loop_free(void);

#endif
