/* SPDX-License-Identifier: MIT
 *
 * loop.c -- libev's default loop and what its connections share.
 *
 * One receive buffer serves every connection: a read lands in it, is parsed
 * at once, and only an unfinished message is copied out (conn.c), so an idle
 * connection holds no receive buffer at all.
 *
 * Connections are finished from an ev_prepare watcher, never from inside the
 * event that ended them (see conn.h), and the same watcher ends the loop once
 * a shutdown has no connection left to wait for.
 */
#include "loop.h"

#include <signal.h>
#include <stdlib.h>

#include "conn.h"
#include "server.h"

size_t loop_live_conns;
size_t loop_shutdown_cut;

static struct ev_loop *the_loop;
static ev_prepare pending_watcher;
static struct conn *pending_head;
static uint8_t *rbuf;
static size_t rbuf_size;
static struct server *servers;
static int shutting_down;
static ev_timer shutdown_timer;
static ev_signal sigint_watcher, sigterm_watcher;
static double signal_grace;

/* A shutdown is over: its timer goes (it must not fire into whatever the
 * script does next), a later signal starts a new one, and the loop stops. */
static void loop_shutdown_done(struct ev_loop *loop)
{
    ev_timer_stop(loop, &shutdown_timer);
    shutting_down = 0;
    ev_break(loop, EVBREAK_ALL);
}

static void loop_prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    loop_pending_run();
}

struct ev_loop *loop_get(void)
{
    if (!the_loop) {
        the_loop = ev_default_loop(0);
        if (!the_loop)
            return NULL;
        /* A peer that resets while we write must give EPIPE, not kill us. */
        signal(SIGPIPE, SIG_IGN);
        ev_prepare_init(&pending_watcher, loop_prepare_cb);
        ev_prepare_start(the_loop, &pending_watcher);
        ev_unref(the_loop);   /* it alone must not keep ev_run going */
    }
    return the_loop;
}

uint8_t *loop_rbuf(size_t size)
{
    if (size > rbuf_size) {
        uint8_t *p = realloc(rbuf, size);
        if (!p)
            return NULL;
        rbuf = p;
        rbuf_size = size;
    }
    return rbuf;
}

void loop_pending_add(struct conn *c)
{
    c->pending_next = pending_head;
    pending_head = c;
}

void loop_pending_run(void)
{
    /* on_close hooks may finish more connections: take the list until empty */
    while (pending_head) {
        struct conn *c = pending_head;
        pending_head = c->pending_next;
        c->pending_next = NULL;
        conn_finish_now(c);
    }
    /* Checked here, not only before the loop blocks: step() finishes
     * connections after its iteration too, and a shutdown must not stay
     * "running" (swallowing the next signal) because its last connection
     * went there. */
    if (shutting_down && loop_live_conns == 0)
        loop_shutdown_done(the_loop);
}

void loop_server_add(struct server *s)
{
    s->next = servers;
    servers = s;
}

void loop_server_remove(struct server *s)
{
    struct server **pp;
    for (pp = &servers; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
}

void loop_shutdown_now(void)
{
    struct ev_loop *loop = loop_get();
    struct server *s;
    if (!shutting_down)
        loop_shutdown(0);
    for (s = servers; s; s = s->next) {
        struct conn *c;
        for (c = s->conns; c; c = c->next) {
            if (c->state == CONN_CLOSED || (c->flags & CF_PENDING))
                continue;
            s->stats.shutdown_cut++;
            loop_shutdown_cut++;
            conn_abort(c, "shutdown");
        }
    }
    loop_pending_run();
    loop_shutdown_done(loop);
}

/* The grace period is over: drop whoever is left and stop. */
static void loop_shutdown_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    loop_shutdown_now();
}

void loop_shutdown(double grace)
{
    struct ev_loop *loop = loop_get();
    struct server *s;
    if (shutting_down)
        return;
    shutting_down = 1;
    loop_shutdown_cut = 0;
    for (s = servers; s; s = s->next)
        server_close(s, 1001, "server shutdown", 1);
    /* Always armed, so that no state a connection is in can hold the loop
     * past the grace period (a grace of 0 cuts on the next iteration). */
    ev_timer_init(&shutdown_timer, loop_shutdown_timeout, grace > 0 ? grace : 0., 0.);
    ev_timer_start(loop, &shutdown_timer);
}

static void loop_signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    if (shutting_down)
        loop_shutdown_now();   /* the second Ctrl-C: do not wait */
    else
        loop_shutdown(signal_grace);
}

void loop_watch_signals(int on, double grace)
{
    struct ev_loop *loop = loop_get();
    signal_grace = grace;
    if (on && !ev_is_active(&sigint_watcher)) {
        ev_signal_init(&sigint_watcher, loop_signal_cb, SIGINT);
        ev_signal_init(&sigterm_watcher, loop_signal_cb, SIGTERM);
        ev_signal_start(loop, &sigint_watcher);
        ev_signal_start(loop, &sigterm_watcher);
        ev_unref(loop);
        ev_unref(loop);
    } else if (!on && ev_is_active(&sigint_watcher)) {
        ev_ref(loop);
        ev_ref(loop);
        ev_signal_stop(loop, &sigint_watcher);
        ev_signal_stop(loop, &sigterm_watcher);
    }
}

void loop_free(void)
{
    free(rbuf);
    rbuf = NULL;
    rbuf_size = 0;
    if (the_loop) {
        if (ev_is_active(&sigint_watcher))
            loop_watch_signals(0, 0);
        ev_ref(the_loop);   /* balance the unref of loop_get */
        ev_prepare_stop(the_loop, &pending_watcher);
        if (ev_is_active(&shutdown_timer))
            ev_timer_stop(the_loop, &shutdown_timer);
        ev_loop_destroy(the_loop);
        the_loop = NULL;
    }
    servers = NULL;
    pending_head = NULL;
    shutting_down = 0;
    loop_shutdown_cut = 0;
}
