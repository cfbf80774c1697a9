/* SPDX-License-Identifier: MIT
 *
 * loop.h -- the one libev loop luaws runs on, the receive buffer every
 * connection reads into, and a list of before-block hooks.
 *
 * The loop knows watchers and hooks, nothing of connections or servers
 * (Redis's ae.c knows events and beforeSleep): conn.c finishes connections
 * from a hook, server.c checks a shutdown's progress from one. luaws uses
 * libev's default loop, so a host program that already runs it (or calls
 * luaws.step) drives luaws too; a host with another loop (cqueues, luv)
 * waits on loop_pollfd() for loop_timeout() seconds and then steps it (see
 * loop.c for how that fd works).
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

/* Put h on the list (idempotent) / take it off (idempotent). Adding also
 * marks the hooks due, h already on the list too: an owner calls it each
 * time it hands its hook new work (conn_finish does, for every connection
 * it queues), so that loop_timeout() answers 0 until the hooks have run. */
void loop_hook_add(struct loop_hook *h);
void loop_hook_remove(struct loop_hook *h);

/* Run every hook now: for a caller that turned the loop by hand (one
 * iteration) and must not wait for the next one to finish its work. */
void loop_run_hooks(void);

/* Start / stop a signal watcher on the loop. Use these rather than
 * ev_signal_start/stop: once a host waits on loop_pollfd(), a signal must
 * make that fd readable, which libev's own handler does only while libev
 * itself blocks (see loop.c). */
void loop_signal_start(ev_signal *w);
void loop_signal_stop(ev_signal *w);

/* The one descriptor a host loop waits on (readable) before it turns the
 * loop with EVRUN_NOWAIT: readable while a watched socket has I/O, or after
 * a signal started with loop_signal_start (timers are loop_timeout's). Set
 * up on first use; the same fd every call. Returns the fd,
 * LOOP_ENOFD when the loop's backend has none (libev's select or poll
 * backends: LIBEV_FLAGS), or -1 with errno set (no descriptors left). */
#define LOOP_ENOFD (-2)
int loop_pollfd(void);

/* How long the host may wait on loop_pollfd() before it turns the loop:
 * seconds until the earliest timer on the loop is due (0 if one is due
 * already), 0 while before-block hooks are due or events are pending, and
 * LOOP_TIMEOUT_NONE when no timer is armed (wait for the fd alone). First
 * applies the watcher changes libev holds back until its next iteration,
 * so that the fd covers every socket luaws watches now; runs no callback.
 * Call it right before the host blocks, after loop_pollfd() succeeded, and
 * never while the loop runs. */
#define LOOP_TIMEOUT_NONE (-1.0)
double loop_timeout(void);

/* The name of the loop's libev backend ("epoll", "select", ...). */
const char *loop_backend_name(void);

/* Give back what the loop holds (the receive buffer, libev's own memory):
 * at lua_close, after every connection, server and timer was collected. */
void loop_free(void);

#endif
