/* SPDX-License-Identifier: MIT
 *
 * loop.c -- libev's default loop, the shared receive buffer and the
 * before-block hooks (contract in loop.h).
 *
 * One receive buffer serves every connection: a read lands in it, is parsed
 * at once, and only an unfinished message is copied out (conn.c), so an idle
 * connection holds no receive buffer at all.
 */
#include "io/loop.h"

#include <signal.h>
#include <stdlib.h>

static struct ev_loop *the_loop;
static ev_prepare prepare_watcher;
static struct loop_hook *hooks;
static uint8_t *rbuf;
static size_t rbuf_size;

void loop_run_hooks(void)
{
    struct loop_hook *h = hooks;
    while (h) {
        struct loop_hook *next = h->next;   /* h may take itself off */
        h->fn(h);
        h = next;
    }
}

static void loop_prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    loop_run_hooks();
}

struct ev_loop *loop_get(void)
{
    if (!the_loop) {
        the_loop = ev_default_loop(0);
        if (!the_loop)
            return NULL;
        /* A peer that resets while we write must give EPIPE, not kill us. */
        signal(SIGPIPE, SIG_IGN);
        ev_prepare_init(&prepare_watcher, loop_prepare_cb);
        ev_prepare_start(the_loop, &prepare_watcher);
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

void loop_hook_add(struct loop_hook *h)
{
    struct loop_hook **pp = &hooks;
    if (h->added)
        return;
    while (*pp)
        pp = &(*pp)->next;
    h->next = NULL;
    h->added = 1;
    *pp = h;
}

void loop_hook_remove(struct loop_hook *h)
{
    struct loop_hook **pp;
    if (!h->added)
        return;
    for (pp = &hooks; *pp; pp = &(*pp)->next)
        if (*pp == h) {
            *pp = h->next;
            break;
        }
    h->added = 0;
}

void loop_free(void)
{
    free(rbuf);
    rbuf = NULL;
    rbuf_size = 0;
    while (hooks)
        loop_hook_remove(hooks);
    if (the_loop) {
        ev_ref(the_loop);   /* balance the unref of loop_get */
        ev_prepare_stop(the_loop, &prepare_watcher);
        ev_loop_destroy(the_loop);
        the_loop = NULL;
    }
}
