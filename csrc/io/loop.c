/* SPDX-License-Identifier: MIT
 *
 * loop.c -- libev's default loop, the shared receive buffer, the
 * before-block hooks, and the loop's face to a host loop (contract in
 * loop.h).
 *
 * One receive buffer serves every connection: a read lands in it, is parsed
 * at once, and only an unfinished message is copied out (conn.c), so an idle
 * connection holds no receive buffer at all.
 *
 * Inside another event loop (luaws.pollfd, luaws.timeout). A host such as
 * cqueues or luv waits on one descriptor and a timeout, then calls
 * luaws.step(0); lua-http gives cqueues the same three (pollfd, timeout,
 * step). The descriptor is the loop's own kernel object: the epoll fd of
 * libev's default loop. An epoll fd is readable exactly when epoll_wait on
 * it would return an event, and libev's epoll is level-triggered, so it
 * stays readable while a socket luaws watches has I/O that the last step
 * left unread. This is what libev's ev_embed does to run one loop inside
 * another; we take the fd from an ev_embed watcher started on a small
 * helper loop (`aux`, poll backend, never blocks): libev points the embed's
 * io watcher (embed.io, in ev.h though marked private) at the embedded
 * loop's backend fd, libev has no other way to name it. Why not the
 * alternatives:
 *   - a loop of our own (ev_loop_new(EVBACKEND_EPOLL)) would move every
 *     watcher off the default loop, which a host already running libev
 *     (lua-ev) drives today, and would change luaws.run/step for everyone;
 *     the default loop is embeddable as it is (epoll is libev's first
 *     choice on Linux), so nothing moves and run/step are untouched;
 *   - a second epoll fd mirroring every watcher would need a hook on each
 *     ev_io_start/stop on the message path (conn.c starts and stops
 *     EV_WRITE as its queue fills and drains), and its own copy of state
 *     libev already keeps.
 * What the fd does not cover, and how it is made up for:
 *   - watcher changes: libev applies ev_io starts and stops to the kernel
 *     only when its loop next turns (fd_reify), so a socket started by a
 *     callback or by the host's own code since the last step is not in the
 *     epoll set yet. loop_timeout() applies them first, with the embed's
 *     own machinery: running `aux` once runs the embed's prepare, which
 *     reifies the default loop's changes (libev's embed_prepare_cb); the
 *     iteration of the default loop it starts to do so is ended by our
 *     prepare watcher before it polls, so no callback and no hook runs.
 *   - timers: epoll knows nothing of libev's timers, and libev does not
 *     publish its timer heap; it works out its wait inside ev_run, after
 *     the prepare watchers ran, and hands it straight to epoll_wait, so no
 *     watcher can record it, and a mirror of the timers would need a hook
 *     in every ev_timer_start/stop of conn.c, server.c and hiredis's
 *     adapter. loop_timeout() asks the heap itself: a probe
 *     timer started to fire after t seconds is the heap's root (the
 *     earliest timer) exactly when no other timer is due by then, so a
 *     search over t finds the earliest deadline to within 20 µs in some 30
 *     start/stop pairs, a few microseconds, with no bookkeeping on the
 *     message path and every timer counted (connections', servers',
 *     luaws.after's, hiredis's). It reads the root from the watcher's
 *     `active` field, which libev keeps as the heap index (ev.c upheap and
 *     downheap; public in ev.h though marked private). That reading is
 *     checked once at set-up with two probes; should a future libev keep
 *     it otherwise, loop_timeout() falls back to waking the host every
 *     10 ms (LOOP_TIMEOUT_BLIND): late timers never, polling at worst.
 *   - signals: libev's handler writes its wake-up pipe only while libev
 *     itself blocks (pipe_write_wanted), so a signal that arrives while the
 *     host waits would wait for the timeout. For the signals luaws watches
 *     (loop_signal_start: SIGINT, SIGTERM) the handler is ours once a host
 *     asked for the fd: it hands the signal to libev (ev_feed_signal) and
 *     writes a pipe whose read end the default loop watches, so the epoll
 *     fd turns readable; the step that follows runs the signal watcher.
 *   - before-block hooks: a connection finished in a callback is queued
 *     for a hook; loop_timeout() answers 0 while a hook was handed work
 *     (loop_hook_add marks it) or libev holds pending events, so the host
 *     steps again at once instead of waiting for the next I/O.
 * None of this runs unless a host asks for the fd: luaws.run() and
 * luaws.step() are what they were; the message path pays one flag test
 * per loop iteration (loop_prepare_cb) and one store per hook run.
 */
#include "io/loop.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct ev_loop *the_loop;
static ev_prepare prepare_watcher;
static struct loop_hook *hooks;
static int hooks_due;
static uint8_t *rbuf;
static size_t rbuf_size;

/* The host-loop part: set up by loop_pollfd(). */
static struct ev_loop *aux;      /* holds the embed watcher; never blocks */
static ev_embed embed;           /* embed.io.fd is the default loop's backend fd */
static ev_io wake_watcher;       /* the read end of wake_pipe, on the default loop */
static int wake_pipe[2] = { -1, -1 };
static int applying;             /* loop_apply_changes runs: end the default loop's iteration at once */
static ev_timer probe, probe2;
static int probe_root;           /* the heap index of the earliest timer; -1: cannot tell */
static int sig_refs[NSIG];       /* watchers per signal started with loop_signal_start */

/* With no view of the timer heap: wake the host this often. */
#define LOOP_TIMEOUT_BLIND 0.01
/* How close loop_timeout() gets to the earliest deadline (never early). */
#define LOOP_TIMER_RESOLUTION 2e-5

/* A hook's work may give another hook work (a connection finished by one
 * has a close handler that publishes: the fan-out hook now has frames to
 * write). Passes repeat while that happens, a few times at most; past
 * that an idle watcher keeps the loop from blocking with work queued. */
#define LOOP_HOOK_PASSES 8
static ev_idle more_idle;

static void loop_more_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
    (void)revents;
    ev_idle_stop(loop, w);   /* the next iteration's prepare runs the hooks */
}

void loop_run_hooks(void)
{
    int pass;
    for (pass = 0; pass < LOOP_HOOK_PASSES; pass++) {
        struct loop_hook *h = hooks;
        hooks_due = 0;
        while (h) {
            struct loop_hook *next = h->next;   /* h may take itself off */
            h->fn(h);
            h = next;
        }
        if (!hooks_due)
            return;
    }
    if (the_loop && !ev_is_active(&more_idle)) {
        ev_idle_init(&more_idle, loop_more_cb);
        ev_idle_start(the_loop, &more_idle);
    }
}

static void loop_prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)w;
    (void)revents;
    if (applying) {
        /* loop_apply_changes: libev has reified, nothing else may happen */
        ev_break(loop, EVBREAK_ONE);
        return;
    }
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
    hooks_due = 1;
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

/* ---------------------------------------------------------------- signals */

/* A watched signal while a host may be waiting on the fd: what libev's own
 * handler does (ev_feed_signal, safe in a handler), then a byte down the
 * wake pipe, which libev's epoll set holds. */
static void loop_sighandler(int signum)
{
    int saved = errno;
    char b = 1;
    ev_feed_signal(signum);
    if (wake_pipe[1] >= 0 && write(wake_pipe[1], &b, 1) < 0) {
        /* the pipe is full: it is readable already */
    }
    errno = saved;
}

/* Put our handler in place of libev's (same mask and flags as libev's). */
static void loop_wrap_signal(int signum)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = loop_sighandler;
    sigfillset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(signum, &sa, NULL);
}

void loop_signal_start(ev_signal *w)
{
    struct ev_loop *loop = loop_get();
    if (ev_is_active(w))
        return;
    ev_signal_start(loop, w);   /* installs libev's handler for the first watcher */
    if (w->signum > 0 && w->signum < NSIG) {
        sig_refs[w->signum]++;
        if (aux)
            loop_wrap_signal(w->signum);
    }
}

void loop_signal_stop(ev_signal *w)
{
    if (!ev_is_active(w))
        return;
    if (w->signum > 0 && w->signum < NSIG && sig_refs[w->signum] > 0)
        sig_refs[w->signum]--;
    ev_signal_stop(loop_get(), w);   /* the last one restores SIG_DFL */
}

/* ------------------------------------------------------------- host loops */

static void loop_embed_cb(struct ev_loop *loop, ev_embed *w, int revents)
{
    /* The host, not aux, turns the default loop: nothing to sweep here. */
    (void)loop;
    (void)w;
    (void)revents;
}

static void loop_wake_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    char buf[64];
    (void)loop;
    (void)revents;
    while (read(w->fd, buf, sizeof buf) > 0) {
    }
    /* the signal itself reaches its watcher through ev_feed_signal */
}

static void loop_probe_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    /* never runs: a probe is stopped before the loop turns */
    (void)loop;
    (void)w;
    (void)revents;
}

/* Check that a probe started earlier than every timer takes the heap's root
 * index, and a second one earlier still takes it from the first; remember
 * that index, or -1 if libev does not keep `active` that way. */
static void loop_probe_calibrate(struct ev_loop *loop)
{
    int root;
    ev_timer_init(&probe, loop_probe_cb, -1e300, 0.);
    ev_timer_init(&probe2, loop_probe_cb, -2e300, 0.);
    ev_timer_start(loop, &probe);
    root = probe.active;
    ev_timer_start(loop, &probe2);
    probe_root = (probe2.active == root && probe.active != root) ? root : -1;
    ev_timer_stop(loop, &probe2);
    ev_timer_stop(loop, &probe);
}

int loop_pollfd(void)
{
    struct ev_loop *loop = loop_get();
    int s;
    if (aux)
        return embed.io.fd;
    if (!loop) {
        errno = ENOMEM;
        return -1;
    }
    if (!(ev_backend(loop) & ev_embeddable_backends()))
        return LOOP_ENOFD;
    if (pipe(wake_pipe) < 0)
        return -1;
    for (s = 0; s < 2; s++) {
        fcntl(wake_pipe[s], F_SETFL, fcntl(wake_pipe[s], F_GETFL) | O_NONBLOCK);
        fcntl(wake_pipe[s], F_SETFD, FD_CLOEXEC);
    }
    aux = ev_loop_new(EVBACKEND_POLL | EVFLAG_NOENV);
    if (!aux)
        aux = ev_loop_new(EVFLAG_NOENV);
    if (!aux) {
        close(wake_pipe[0]);
        close(wake_pipe[1]);
        wake_pipe[0] = wake_pipe[1] = -1;
        errno = ENOMEM;
        return -1;
    }
    ev_embed_init(&embed, loop_embed_cb, loop);
    ev_embed_start(aux, &embed);
    ev_io_init(&wake_watcher, loop_wake_cb, wake_pipe[0], EV_READ);
    ev_io_start(loop, &wake_watcher);
    ev_unref(loop);   /* it alone must not keep luaws.run going */
    for (s = 1; s < NSIG; s++)
        if (sig_refs[s] > 0)
            loop_wrap_signal(s);
    loop_probe_calibrate(loop);
    return embed.io.fd;
}

/* Apply the ev_io starts and stops libev holds back (see the file comment):
 * aux's one non-blocking turn runs the embed's prepare, which reifies the
 * default loop's changes; our prepare ends the default loop's iteration
 * before it polls. aux's own poll (of the epoll fd, timeout 0) finds what
 * it finds, and loop_embed_cb ignores it. */
static void loop_apply_changes(void)
{
    applying = 1;
    ev_run(aux, EVRUN_NOWAIT);
    applying = 0;
}

/* 1 if a timer other than the probe is due within `after` seconds. */
static int loop_timer_within(struct ev_loop *loop, ev_tstamp after)
{
    int first;
    ev_timer_set(&probe, after, 0.);
    ev_timer_start(loop, &probe);
    first = probe.active == probe_root;
    ev_timer_stop(loop, &probe);
    return !first;
}

/* Seconds until the earliest timer (an upper bound within the resolution:
 * never early), 0 if one is due, LOOP_TIMEOUT_NONE if there is none. */
static double loop_next_timer(struct ev_loop *loop)
{
    double lo = 0., hi = 1e-3;
    if (probe_root < 0)
        return LOOP_TIMEOUT_BLIND;
    if (!loop_timer_within(loop, 1e30))
        return LOOP_TIMEOUT_NONE;
    if (loop_timer_within(loop, 0.))
        return 0.;
    while (!loop_timer_within(loop, hi)) {   /* ends: some timer is within 1e30 */
        lo = hi;
        hi *= 8;
    }
    while (hi - lo > LOOP_TIMER_RESOLUTION && hi - lo > hi * 1e-6) {
        double mid = lo + (hi - lo) / 2;
        if (loop_timer_within(loop, mid))
            hi = mid;
        else
            lo = mid;
    }
    return hi;
}

double loop_timeout(void)
{
    struct ev_loop *loop = the_loop;
    if (!aux || hooks_due || ev_pending_count(loop) > 0)
        return 0.;
    loop_apply_changes();
    if (hooks_due || ev_pending_count(loop) > 0)
        return 0.;
    ev_now_update(loop);   /* the host's time since the last step counts */
    return loop_next_timer(loop);
}

const char *loop_backend_name(void)
{
    struct ev_loop *loop = loop_get();
    switch (loop ? ev_backend(loop) : 0) {
    case EVBACKEND_SELECT:   return "select";
    case EVBACKEND_POLL:     return "poll";
    case EVBACKEND_EPOLL:    return "epoll";
    case EVBACKEND_KQUEUE:   return "kqueue";
    case EVBACKEND_DEVPOLL:  return "devpoll";
    case EVBACKEND_PORT:     return "port";
    case EVBACKEND_LINUXAIO: return "linuxaio";
    case EVBACKEND_IOURING:  return "io_uring";
    }
    return "unknown";
}

void loop_free(void)
{
    free(rbuf);
    rbuf = NULL;
    rbuf_size = 0;
    while (hooks)
        loop_hook_remove(hooks);
    hooks_due = 0;
    if (aux) {
        ev_embed_stop(aux, &embed);   /* before aux goes: it must not take the default loop along */
        ev_loop_destroy(aux);
        aux = NULL;
        ev_ref(the_loop);   /* balance the unref of loop_pollfd */
        ev_io_stop(the_loop, &wake_watcher);
        close(wake_pipe[0]);
        close(wake_pipe[1]);
        wake_pipe[0] = wake_pipe[1] = -1;
        probe_root = 0;
    }
    memset(sig_refs, 0, sizeof sig_refs);
    if (the_loop) {
        ev_ref(the_loop);   /* balance the unref of loop_get */
        ev_prepare_stop(the_loop, &prepare_watcher);
        if (ev_is_active(&more_idle))
            ev_idle_stop(the_loop, &more_idle);
        ev_loop_destroy(the_loop);
        the_loop = NULL;
    }
}
