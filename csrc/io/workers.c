/* SPDX-License-Identifier: MIT
 *
 * workers.c -- a master process and its workers (contract in workers.h).
 *
 * The design. The master is the script's own process: luaws.listen has
 * bound the listening sockets there before luaws.run{workers = N} comes.
 * The master then stops watching them (it never accepts) but keeps them
 * open, so the kernel keeps queueing connections on them, and starts N
 * workers with fork + exec of /proc/self/exe and the arguments of
 * /proc/self/cmdline: each worker is the same interpreter running the same
 * script from the start, and inherits the listening sockets (numbers in
 * LUAWS_LISTEN_FDS), which its luaws.listen calls adopt instead of binding.
 * Every worker accepts from the same sockets; the kernel hands each
 * connection to one of them.
 *
 * Why not SO_REUSEPORT (one socket per worker, the kernel spreading
 * connections between them): the kernel assigns a connection to one
 * reuseport socket when it arrives, and closing that socket resets the
 * connections still queued on it. A reload replaces every worker, so every
 * old worker would close its socket with connections waiting: a reload
 * would refuse clients. With one shared socket per address, held by the
 * master for as long as it runs, a worker that goes (drains, crashes,
 * reloads) only closes its copy: what is queued stays queued for the
 * others, and no connection attempt is refused at any time. The price is
 * that every idle worker wakes for a new connection and one wins the
 * accept (no EPOLLEXCLUSIVE in libev), which costs little at N = CPUs.
 *
 * Why exec and not just fork: the master has run the script up to
 * luaws.run, with its timers and state; a forked copy would share them
 * half-initialised. Exec gives each worker a fresh interpreter, and a
 * reload (SIGHUP) re-reads the script: new handlers, no restart of the
 * master, no socket closed.
 *
 * The master's loop is a plain poll() over a signalfd (SIGCHLD, SIGTERM,
 * SIGINT, SIGHUP are blocked and read from it) and its ends of the relay
 * sockets, not the libev loop: the script's timers and servers must not run
 * in the master. It calls no Lua.
 *   SIGCHLD  waitpid(WNOHANG) each worker; one that died is started again at
 *            once, or, if it died within a second of starting, after a
 *            back-off (0.1 s doubling to 5 s), so a script that cannot start
 *            does not make the master spin. One line to stderr for each.
 *   SIGTERM/SIGINT  forwarded as SIGTERM to every worker (each shuts down
 *            as a single process does: 1001 to every connection within its
 *            grace); a worker still alive grace + 5 s later is killed. A
 *            second one is forwarded too (the workers then cut at once).
 *            workers_master_run returns once every worker is gone.
 *   SIGHUP   a new worker is started for each number; when it says it is
 *            ready (its script has reached luaws.run and adopted the
 *            sockets), the old worker of that number is sent SIGUSR2: it
 *            stops accepting at once (its copies of the sockets closed: the
 *            master and the new workers hold them, nothing is refused) and
 *            shuts down gracefully after reload_grace seconds, or as soon as
 *            it has no connection left. A new script that cannot start
 *            leaves the old workers serving.
 * The workers are in a process group of their own, so a Ctrl-C on the
 * terminal reaches the master alone, which forwards it once.
 *
 * The relay (a socketpair per worker) carries publishes between workers
 * when no backplane does: each server of a worker has a pubsub_bridge that
 * appends every publish of the script to the worker's relay; the master
 * forwards each record to every other worker, which delivers it with
 * pubsub_publish (local only, so nothing loops). A record is
 *   u32 length of what follows | u16 server index | u8 opcode | u8 0 |
 *   u16 topic length | topic | payload          (big-endian)
 * with server index 0xFFFF for a message to the master ("ready").
 * Everything is non-blocking and every queue is bounded: past
 * WORKERS_RELAY_CAP bytes for one peer, records are dropped and counted
 * (one log line per episode), never waited for.
 */
#include "io/workers.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "io/conn.h"
#include "io/loop.h"
#include "io/pubsub.h"
#include "io/server.h"
#include "proto/buffer.h"
#include "proto/frame.h"

extern char **environ;

#define RELAY_HDR 10                 /* bytes before the topic */
#define RELAY_CONTROL 0xFFFFu        /* the server index of a message to the master */
#define RELAY_READY 1                /* worker -> master: "GRACE RELOAD_GRACE", it serves */
#define RELAY_LOAD 2                 /* worker -> master: "N", its connections now */
#define RELAY_PAUSE 3                /* master -> worker: "1" stop accepting, "0" accept again */
#define RELAY_READ_CHUNK 65536
#define RELAY_READS_PER_EVENT 16     /* so one busy peer cannot starve the rest */

#define BACKOFF_FIRST 0.1
#define BACKOFF_MAX 5.0
#define DIED_YOUNG 1.0               /* dying sooner than this after the start backs off */
#define KILL_AFTER 5.0               /* SIGKILL this long after a worker's grace */

static const char ENV_ID[] = "LUAWS_WORKER";
static const char ENV_FDS[] = "LUAWS_LISTEN_FDS";
static const char ENV_RELAY[] = "LUAWS_RELAY_FD";

/* ------------------------------------------------------------ records */

static void put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static unsigned get16(const uint8_t *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

/* Append one record to b, keeping b within WORKERS_RELAY_CAP. WS_OK, or
 * WS_ETOOBIG / WS_ENOMEM (nothing appended). */
static int relay_append(struct ws_buf *b, unsigned index, int opcode, const void *topic, size_t tlen,
                        const void *data, size_t dlen)
{
    size_t total = RELAY_HDR + tlen + dlen;
    uint8_t *p;
    int err;
    if (tlen > 0xFFFF || total > WORKERS_RELAY_CAP)
        return WS_ETOOBIG;
    p = ws_buf_reserve(b, total, WORKERS_RELAY_CAP, &err);
    if (!p)
        return err;
    p[0] = (uint8_t)((total - 4) >> 24);
    p[1] = (uint8_t)((total - 4) >> 16);
    p[2] = (uint8_t)((total - 4) >> 8);
    p[3] = (uint8_t)(total - 4);
    put16(p + 4, index);
    p[6] = (uint8_t)opcode;
    p[7] = 0;
    put16(p + 8, (unsigned)tlen);
    if (tlen)
        memcpy(p + RELAY_HDR, topic, tlen);
    if (dlen)
        memcpy(p + RELAY_HDR + tlen, data, dlen);
    ws_buf_commit(b, total);
    return WS_OK;
}

/* The length of the whole record at the head of b, 0 while it is
 * incomplete, -1 if it cannot be one (a peer that does not speak this). */
static long relay_next(const struct ws_buf *b)
{
    const uint8_t *p = ws_buf_head(b);
    size_t len;
    if (b->len < RELAY_HDR)
        return 0;
    len = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
    len += 4;
    if (len < RELAY_HDR || len > WORKERS_RELAY_CAP || RELAY_HDR + get16(p + 8) > len)
        return -1;
    return b->len >= len ? (long)len : 0;
}

/* Read what fd has into b (at most RELAY_READS_PER_EVENT chunks). 1 while
 * the peer is there, 0 at EOF or an error (why says which). */
static int relay_fill(int fd, struct ws_buf *b, const char **why)
{
    int i;
    for (i = 0; i < RELAY_READS_PER_EVENT; i++) {
        int err;
        uint8_t *p = ws_buf_reserve(b, RELAY_READ_CHUNK, WORKERS_RELAY_CAP + RELAY_READ_CHUNK, &err);
        ssize_t n;
        if (!p) {
            *why = "a record past the relay's cap";
            return 0;
        }
        n = recv(fd, p, RELAY_READ_CHUNK, MSG_DONTWAIT);
        if (n > 0) {
            ws_buf_commit(b, (size_t)n);
            if (n < RELAY_READ_CHUNK)
                return 1;
            continue;
        }
        if (n == 0) {
            *why = "end of file";
            return 0;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 1;
        *why = strerror(errno);
        return 0;
    }
    return 1;
}

/* Write what b holds to fd until the socket pushes back. 1 when all of it
 * went, 0 when some waits, -1 on an error. */
static int relay_drain(int fd, struct ws_buf *b)
{
    while (b->len > 0) {
        ssize_t n = send(fd, ws_buf_head(b), b->len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            ws_buf_consume(b, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        return -1;
    }
    return 1;
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int workers_online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > WORKERS_MAX ? WORKERS_MAX : (int)n;
}

/* ------------------------------------------------------------ a worker */

/* One server's way onto the relay. */
struct relay_bridge {
    struct pubsub_bridge b;   /* first: the bridge pointer is ours */
    int index;                /* the server's */
};

static struct {
    int env_read;
    int id;                   /* LUAWS_WORKER; 0: not a worker */
    int fd;                   /* LUAWS_RELAY_FD; -1 */
    char *fds;                /* LUAWS_LISTEN_FDS, "5,6;7;" */
    const char *next;         /* the entry the next listen takes; NULL: none left */
    int started;
    int draining;
    double grace, reload_grace;
    ev_io rio, wio;
    ev_signal usr2;
    ev_timer drain_timer;
    struct loop_hook drain_hook, load_hook;
    size_t load_sent;         /* the load the master last heard */
    struct ws_buf in, out;
    struct relay_bridge *bridges;
    int nbridges;
    size_t dropped;
    int dropping;
} wk = { .fd = -1 };

void workers_env_init(void)
{
    const char *v;
    if (wk.env_read)
        return;
    wk.env_read = 1;
    v = getenv(ENV_ID);
    if (!v || atoi(v) < 1)
        return;
    wk.id = atoi(v);
    if ((v = getenv(ENV_RELAY)) != NULL)
        wk.fd = atoi(v);
    if ((v = getenv(ENV_FDS)) != NULL && (wk.fds = strdup(v)) != NULL)
        wk.next = wk.fds;
    unsetenv(ENV_ID);
    unsetenv(ENV_RELAY);
    unsetenv(ENV_FDS);
}

int workers_id(void)
{
    return wk.id;
}

int workers_next_fds(int *fds, int max)
{
    const char *p = wk.next;
    int n = 0;
    if (!wk.id || !p || !*p)
        return -1;   /* each entry ends with ';': nothing left means no entry */
    while (*p && *p != ';') {
        char *end;
        long fd = strtol(p, &end, 10);
        if (end == p)
            break;   /* not a number: the rest of the entry is ignored */
        if (n < max && fd >= 0)
            fds[n++] = (int)fd;
        p = end;
        if (*p == ',')
            p++;
    }
    while (*p && *p != ';')
        p++;
    wk.next = *p == ';' ? p + 1 : p;
    return n;
}

static void worker_log(const char *what, const char *why)
{
    fprintf(stderr, "luaws worker %d (pid %d): %s%s%s\n", wk.id, (int)getpid(), what, why ? ": " : "",
            why ? why : "");
    fflush(stderr);
}

/* Take the relay's watchers off the loop and close it. */
static void worker_relay_close(void)
{
    struct ev_loop *loop = loop_get();
    int i;
    if (wk.fd < 0)
        return;
    if (loop) {
        if (ev_is_active(&wk.rio)) {
            ev_ref(loop);
            ev_io_stop(loop, &wk.rio);
        }
        ev_io_stop(loop, &wk.wio);
    }
    loop_hook_remove(&wk.load_hook);
    close(wk.fd);
    wk.fd = -1;
    ws_buf_free(&wk.in);
    ws_buf_free(&wk.out);
    for (i = 0; i < wk.nbridges; i++) {
        struct server *s = server_by_index(wk.bridges[i].index);
        if (s)
            pubsub_bridge_remove(&s->ps, &wk.bridges[i].b);
    }
    free(wk.bridges);
    wk.bridges = NULL;
    wk.nbridges = 0;
}

/* The master is gone (or speaks nonsense): nobody will restart or reload
 * this worker, so it shuts down as after a SIGTERM. */
static void worker_master_gone(const char *why)
{
    if (wk.fd < 0)
        return;
    worker_log("the relay to the master ended, shutting down", why);
    worker_relay_close();
    server_shutdown(wk.grace);
}

static void worker_flush(void)
{
    int rc;
    if (wk.fd < 0)
        return;
    rc = relay_drain(wk.fd, &wk.out);
    if (rc < 0) {
        worker_master_gone(strerror(errno));
    } else if (rc == 0) {
        ev_io_start(loop_get(), &wk.wio);
    } else {
        ev_io_stop(loop_get(), &wk.wio);
    }
}

static void worker_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    worker_flush();
}

/* Queue a record for the master. */
static void worker_send(unsigned index, int opcode, const void *topic, size_t tlen, const void *data,
                        size_t dlen)
{
    int rc;
    if (wk.fd < 0)
        return;
    rc = relay_append(&wk.out, index, opcode, topic, tlen, data, dlen);
    if (rc != WS_OK) {
        wk.dropped++;
        if (!wk.dropping) {
            char why[96];
            snprintf(why, sizeof why, "%s; %zu dropped so far",
                     rc == WS_ETOOBIG ? "over 64 MiB queued" : "out of memory", wk.dropped);
            worker_log("the relay to the master is full, publishes are dropped", why);
        }
        wk.dropping = 1;
        return;
    }
    wk.dropping = 0;
    /* the socket is writable, so this turn's records go out together in
     * the next one (a before-block hook added from another hook, say a
     * close handler that publishes, could wait for the next wakeup) */
    ev_io_start(loop_get(), &wk.wio);
}

static void worker_bridge_publish(struct pubsub_bridge *b, struct pubsub *ps, const char *topic, size_t len,
                                  int opcode, const void *data, size_t dlen)
{
    (void)ps;
    worker_send((unsigned)((struct relay_bridge *)b)->index, opcode, topic, len, data, dlen);
}

/* Stop or resume accepting on every server (the master balances the
 * workers' connections; see master_balance). */
static void worker_pause(int on)
{
    int i, n = server_count();
    for (i = 0; i < n && !wk.draining; i++) {
        struct server *s = server_by_index(i);
        if (s)
            server_pause_accept(s, on);
    }
}

/* This worker's connections, every server's (handshakes included). */
static size_t worker_load(void)
{
    int i, n = server_count();
    size_t load = 0;
    for (i = 0; i < n; i++) {
        struct server *s = server_by_index(i);
        if (s)
            load += s->group.nconns;
    }
    return load;
}

/* Before the loop blocks: tell the master the load when it changed (once
 * per turn of the loop, however many connections the turn accepted or
 * finished: a storm costs the master one record per turn, ~20 bytes). */
static void worker_load_check(struct loop_hook *h)
{
    size_t load = worker_load();
    char text[32];
    (void)h;
    if (load == wk.load_sent || wk.fd < 0)
        return;
    snprintf(text, sizeof text, "%zu", load);
    worker_send(RELAY_CONTROL, RELAY_LOAD, NULL, 0, text, strlen(text));
    wk.load_sent = load;
}

/* Deliver the whole records wk.in holds, each to its server's local
 * subscribers. */
static void worker_deliver(void)
{
    long n;
    while (wk.fd >= 0 && (n = relay_next(&wk.in)) > 0) {
        const uint8_t *r = ws_buf_head(&wk.in);
        unsigned index = get16(r + 4), tlen = get16(r + 8);
        int op = r[6];
        struct server *s = index == RELAY_CONTROL ? NULL : server_by_index((int)index);
        if (index == RELAY_CONTROL && op == RELAY_PAUSE && (size_t)n > RELAY_HDR + tlen)
            worker_pause(r[RELAY_HDR + tlen] == '1');
        else if (s && (op == WS_OP_TEXT || op == WS_OP_BINARY))
            pubsub_publish(&s->ps, (const char *)r + RELAY_HDR, tlen, op, r + RELAY_HDR + tlen,
                           (size_t)n - RELAY_HDR - tlen, NULL);
        ws_buf_consume(&wk.in, (size_t)n);
    }
    if (wk.fd >= 0 && relay_next(&wk.in) < 0)
        worker_master_gone("a malformed record");
}

static void worker_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    const char *why = NULL;
    int alive;
    (void)loop;
    (void)w;
    (void)revents;
    alive = relay_fill(wk.fd, &wk.in, &why);
    worker_deliver();   /* what came before an EOF is still delivered */
    if (!alive)
        worker_master_gone(why);
}

/* The drain is over (reload_grace passed, or nothing left to serve). */
static void worker_drain_end(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    ev_timer_stop(loop, w);
    loop_hook_remove(&wk.drain_hook);
    server_shutdown(wk.grace);
}

/* Before the loop blocks while draining: once no server has a connection,
 * there is nothing to wait for. (A zero timer ends it: a hook that starts
 * the shutdown here would only be looked at after the loop has blocked.) */
static void worker_drain_check(struct loop_hook *h)
{
    int i, n = server_count();
    for (i = 0; i < n; i++) {
        struct server *s = server_by_index(i);
        if (s && s->group.nconns > 0)
            return;
    }
    loop_hook_remove(h);
    ev_timer_stop(loop_get(), &wk.drain_timer);
    ev_timer_set(&wk.drain_timer, 0., 0.);
    ev_timer_start(loop_get(), &wk.drain_timer);
}

/* SIGUSR2: a reload replaced this worker. Stop accepting now (our copies of
 * the sockets close; the master and the new workers keep them), serve what
 * is open for reload_grace seconds, then shut down. */
static void worker_usr2_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    int i, n = server_count();
    (void)w;
    (void)revents;
    if (wk.draining)
        return;
    wk.draining = 1;
    loop_hook_remove(&wk.load_hook);   /* out of the balance: it accepts no more */
    for (i = 0; i < n; i++) {
        struct server *s = server_by_index(i);
        if (s)
            server_close(s, 0, NULL);
    }
    ev_timer_init(&wk.drain_timer, worker_drain_end, wk.reload_grace > 0 ? wk.reload_grace : 0., 0.);
    ev_timer_start(loop, &wk.drain_timer);
    wk.drain_hook.fn = worker_drain_check;
    loop_hook_add(&wk.drain_hook);
}

int workers_worker_start(double grace, double reload_grace, struct server *const *skip, int nskip,
                         char *err, size_t errlen)
{
    struct ev_loop *loop = loop_get();
    int i, n = server_count(), fl;
    sigset_t usr2;
    char ready[64];
    wk.grace = grace;
    wk.reload_grace = reload_grace;
    if (!wk.id || wk.started)
        return WS_OK;
    wk.started = 1;
    if (wk.fd < 0 || fcntl(wk.fd, F_GETFD) < 0) {
        snprintf(err, errlen, "worker %d: no relay descriptor from the master", wk.id);
        wk.fd = -1;
        return WS_EIO;
    }
    fl = fcntl(wk.fd, F_GETFL);
    fcntl(wk.fd, F_SETFL, (fl < 0 ? 0 : fl) | O_NONBLOCK);
    fcntl(wk.fd, F_SETFD, FD_CLOEXEC);
    ev_io_init(&wk.rio, worker_read_cb, wk.fd, EV_READ);
    ev_io_init(&wk.wio, worker_write_cb, wk.fd, EV_WRITE);
    ev_io_start(loop, &wk.rio);
    ev_unref(loop);   /* the relay alone must not keep the loop running */
    wk.load_hook.fn = worker_load_check;
    loop_hook_add(&wk.load_hook);

    wk.bridges = calloc(n > 0 ? (size_t)n : 1, sizeof *wk.bridges);
    for (i = 0; wk.bridges && i < n; i++) {
        struct server *s = server_by_index(i);
        int j, skipped = 0;
        for (j = 0; j < nskip; j++)
            skipped |= skip[j] == s;
        if (!s || skipped)
            continue;
        wk.bridges[wk.nbridges].b.publish = worker_bridge_publish;
        wk.bridges[wk.nbridges].index = i;
        pubsub_bridge_add(&s->ps, &wk.bridges[wk.nbridges].b);
        wk.nbridges++;
    }

    /* The master started us with SIGUSR2 blocked, so that a drain that
     * comes before this point waits here instead of killing us. */
    ev_signal_init(&wk.usr2, worker_usr2_cb, SIGUSR2);
    ev_signal_start(loop, &wk.usr2);
    ev_unref(loop);
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    sigprocmask(SIG_UNBLOCK, &usr2, NULL);

    snprintf(ready, sizeof ready, "%.3f %.3f", grace, reload_grace);
    worker_send(RELAY_CONTROL, RELAY_READY, NULL, 0, ready, strlen(ready));
    worker_flush();
    return WS_OK;
}

void workers_reset(void)
{
    struct ev_loop *loop = loop_get();
    worker_relay_close();
    if (loop && ev_is_active(&wk.usr2)) {
        ev_ref(loop);
        ev_signal_stop(loop, &wk.usr2);
    }
    if (loop)
        ev_timer_stop(loop, &wk.drain_timer);
    loop_hook_remove(&wk.drain_hook);
    wk.started = 0;
    wk.draining = 0;
}

/* ------------------------------------------------------------ the master */

enum wstate {
    W_CURRENT,    /* serving, restarted when it dies */
    W_OLD,        /* replaced by a reload; serving until its successor is ready */
    W_DRAINING,   /* told to drain (SIGUSR2); forgotten when it exits */
    W_GONE        /* to be freed */
};

struct wproc {
    struct wproc *next;
    int id;                   /* 1..N */
    pid_t pid;                /* 0: not running */
    enum wstate state;
    int ready;                /* it said so over the relay */
    size_t load;              /* its connections, as it last said */
    int paused;               /* we told it to stop accepting */
    int starts;               /* how many times this slot was started */
    int fd;                   /* the master's end of the relay, or -1 */
    struct ws_buf in, out;
    double started;           /* when it was forked */
    double restart_at;        /* pid 0, W_CURRENT: when to start it again */
    double backoff;           /* the delay before the next start if it dies young */
    double kill_at;           /* SIGKILL then (0: no deadline) */
    double grace, reload_grace;   /* the worker's own (its ready message), else the master's */
    size_t dropped;
    int dropping;
};

static struct {
    const struct workers_config *cfg;
    struct wproc *procs;
    char **argv;
    char *argbuf;
    char *listen_fds;         /* LUAWS_LISTEN_FDS's value */
    int fds[64];              /* every inherited socket, to clear FD_CLOEXEC in the child */
    int nfds;
    sigset_t child_mask;
    int stops;                /* SIGTERM/SIGINTs received */
    struct pollfd *pfd;
    struct wproc **pproc;
    size_t npfd;
    size_t dropped;
} ms;

static void master_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void master_log(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "luaws master (pid %d): ", (int)getpid());
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

/* argv from /proc/self/cmdline: the worker runs what the master was started
 * with. */
static int master_cmdline(char *err, size_t errlen)
{
    FILE *f = fopen("/proc/self/cmdline", "rb");
    size_t len = 0, cap = 0, n, argc = 0, i;
    char *buf = NULL;
    if (!f) {
        snprintf(err, errlen, "workers: cannot read /proc/self/cmdline: %s", strerror(errno));
        return -1;
    }
    for (;;) {
        if (len + 4096 > cap) {
            char *p = realloc(buf, cap = len + 4096);
            if (!p)
                break;
            buf = p;
        }
        n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
    }
    fclose(f);
    if (!buf || len == 0) {
        free(buf);
        snprintf(err, errlen, "workers: /proc/self/cmdline is empty");
        return -1;
    }
    if (buf[len - 1] != '\0')
        buf[len++] = '\0';
    for (i = 0; i < len; i++)
        argc += buf[i] == '\0';
    ms.argv = calloc(argc + 1, sizeof *ms.argv);
    if (!ms.argv) {
        free(buf);
        snprintf(err, errlen, "workers: out of memory");
        return -1;
    }
    for (i = 0, n = 0; i < len; i += strlen(buf + i) + 1)
        ms.argv[n++] = buf + i;
    ms.argbuf = buf;
    return 0;
}

/* LUAWS_LISTEN_FDS: each server's sockets in listen (index) order, each
 * entry ended by ';' (";" alone for a closed server: "5,6;;7;"), and stop
 * every server accepting. */
static int master_listen_fds(char *err, size_t errlen)
{
    int i, j, n = server_count();
    size_t cap = 16 + (size_t)n * (SERVER_MAX_LISTEN * 12 + 1), at = 0;
    ms.listen_fds = malloc(cap);
    if (!ms.listen_fds) {
        snprintf(err, errlen, "workers: out of memory");
        return -1;
    }
    ms.listen_fds[0] = '\0';
    for (i = 0; i < n; i++) {
        struct server *s = server_by_index(i);
        for (j = 0; s && !s->closed && j < s->nlisten; j++) {
            at += (size_t)snprintf(ms.listen_fds + at, cap - at, "%s%d", j ? "," : "", s->listen[j].fd);
            if (ms.nfds < (int)(sizeof ms.fds / sizeof ms.fds[0]))
                ms.fds[ms.nfds++] = s->listen[j].fd;
        }
        if (s && !s->closed)
            server_pause_accept(s, 1);
        at += (size_t)snprintf(ms.listen_fds + at, cap - at, ";");
    }
    return 0;
}

/* The worker's environment: ours without a previous LUAWS_*, plus its own. */
static char **master_env(struct wproc *p, int relay_fd, char *id, char *relay, char *fds)
{
    size_t n = 0, i, k = 0;
    char **env;
    while (environ[n])
        n++;
    env = calloc(n + 4, sizeof *env);
    if (!env)
        return NULL;
    for (i = 0; i < n; i++) {
        const char *e = environ[i];
        if (strncmp(e, "LUAWS_WORKER=", 13) == 0 || strncmp(e, "LUAWS_RELAY_FD=", 15) == 0 ||
            strncmp(e, "LUAWS_LISTEN_FDS=", 17) == 0)
            continue;
        env[k++] = (char *)e;
    }
    snprintf(id, 32, "%s=%d", ENV_ID, p->id);
    snprintf(relay, 32, "%s=%d", ENV_RELAY, relay_fd);
    sprintf(fds, "%s=%s", ENV_FDS, ms.listen_fds);
    env[k++] = id;
    env[k++] = relay;
    env[k++] = fds;
    env[k] = NULL;
    return env;
}

static void master_relay_close(struct wproc *p)
{
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    ws_buf_free(&p->in);
    ws_buf_free(&p->out);
}

/* Start p: fork, and exec the interpreter with the master's arguments. */
static void master_spawn(struct wproc *p)
{
    int sv[2], i;
    char id[32], relay[32], *fds = malloc(sizeof ENV_FDS + 1 + strlen(ms.listen_fds));
    char **env = NULL;
    pid_t pid;
    p->started = mono();
    p->restart_at = 0;
    p->ready = 0;
    p->load = 0;
    p->paused = 0;
    p->grace = ms.cfg->grace;
    p->reload_grace = ms.cfg->reload_grace;
    if (!fds || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
        master_log("worker %d: cannot make its relay: %s; trying again in %.1f s", p->id,
                   fds ? strerror(errno) : "out of memory", BACKOFF_MAX);
        free(fds);
        p->restart_at = p->started + BACKOFF_MAX;
        return;
    }
    env = master_env(p, sv[1], id, relay, fds);
    pid = env ? fork() : -1;
    if (pid == 0) {
        /* the child: only async-signal-safe calls until exec */
        for (i = 0; i < ms.nfds; i++)
            fcntl(ms.fds[i], F_SETFD, 0);
        fcntl(sv[1], F_SETFD, 0);
        setpgid(0, 0);
        sigprocmask(SIG_SETMASK, &ms.child_mask, NULL);
        execve("/proc/self/exe", ms.argv, env);
        {
            static const char msg[] = "luaws worker: cannot exec /proc/self/exe\n";
            ssize_t w = write(2, msg, sizeof msg - 1);
            (void)w;
        }
        _exit(127);
    }
    close(sv[1]);
    free(env);
    free(fds);
    if (pid < 0) {
        master_log("worker %d: cannot fork: %s; trying again in %.1f s", p->id, strerror(errno), BACKOFF_MAX);
        close(sv[0]);
        p->restart_at = p->started + BACKOFF_MAX;
        return;
    }
    p->pid = pid;
    p->fd = sv[0];
    p->starts++;
}

static struct wproc *master_add(int id)
{
    struct wproc *p = calloc(1, sizeof *p), **pp = &ms.procs;
    if (!p)
        return NULL;
    p->id = id;
    p->fd = -1;
    p->backoff = BACKOFF_FIRST;
    while (*pp)
        pp = &(*pp)->next;
    *pp = p;
    return p;
}

/* Tell an old worker to drain: stop accepting, serve reload_grace, go. */
static void master_drain(struct wproc *q, const struct wproc *successor)
{
    q->state = W_DRAINING;
    if (q->pid <= 0) {
        q->state = W_GONE;
        return;
    }
    kill(q->pid, SIGUSR2);
    q->kill_at = mono() + q->reload_grace + q->grace + KILL_AFTER;
    master_log("worker %d (pid %d) drains: replaced by pid %d, gone within %.1f s", q->id, (int)q->pid,
               (int)successor->pid, q->reload_grace + q->grace);
}

/* Keep the connections even: a worker more than 1 + 1/8 over the average
 * of the accepting workers stops accepting until it is back under. With
 * one shared socket the kernel wakes every worker for a connection in the
 * same (LIFO) order, so the same worker wins nearly every accept: left
 * alone, one worker would hold most of the long-lived connections while
 * the others idle. The least loaded worker never pauses, so somebody
 * always accepts (and a connection only waits in the queue meanwhile). */
static void master_balance(void)
{
    struct wproc *p;
    size_t sum = 0, n = 0;
    double avg;
    for (p = ms.procs; p; p = p->next)
        if (p->pid > 0 && p->ready && p->fd >= 0 && (p->state == W_CURRENT || p->state == W_OLD)) {
            sum += p->load;
            n++;
        }
    avg = n ? (double)sum / (double)n : 0;
    for (p = ms.procs; p; p = p->next) {
        int pause;
        if (p->pid <= 0 || !p->ready || p->fd < 0 || (p->state != W_CURRENT && p->state != W_OLD))
            continue;
        pause = n > 1 && (double)p->load > avg + 1 + avg / 8;
        if (pause != p->paused &&
            relay_append(&p->out, RELAY_CONTROL, RELAY_PAUSE, NULL, 0, pause ? "1" : "0", 1) == WS_OK)
            p->paused = pause;
    }
}

/* A control record from p. */
static void master_control(struct wproc *p, int op, const uint8_t *data, size_t len)
{
    struct wproc *q;
    char text[64];
    double g, rg;
    if (op == RELAY_LOAD && len > 0 && len < sizeof text) {
        memcpy(text, data, len);
        text[len] = '\0';
        p->load = (size_t)strtoull(text, NULL, 10);
        master_balance();
        return;
    }
    if (op != RELAY_READY || p->ready)
        return;
    p->ready = 1;
    p->load = 0;
    p->paused = 0;
    if (len >= sizeof text)
        len = sizeof text - 1;
    memcpy(text, data, len);
    text[len] = '\0';
    if (sscanf(text, "%lf %lf", &g, &rg) == 2 && g >= 0 && rg >= 0) {
        p->grace = g;
        p->reload_grace = rg;
    }
    if (p->state != W_CURRENT)
        return;
    for (q = ms.procs; q; q = q->next)
        if (q->state == W_OLD && q->id == p->id)
            master_drain(q, p);
    master_balance();
}

/* Queue a record for q (drop and count past the cap). */
static void master_forward(struct wproc *q, const uint8_t *rec, size_t len)
{
    int rc = ws_buf_append(&q->out, rec, len, WORKERS_RELAY_CAP);
    if (rc != WS_OK) {
        q->dropped++;
        ms.dropped++;
        if (!q->dropping)
            master_log("worker %d (pid %d) does not read its relay: over 64 MiB queued, records are dropped "
                       "(%zu so far)", q->id, (int)q->pid, q->dropped);
        q->dropping = 1;
        return;
    }
    q->dropping = 0;
}

/* Read what p sent: forward publishes to every other worker, act on
 * control records. Closes the relay at EOF (the SIGCHLD follows). */
static void master_read(struct wproc *p)
{
    const char *why = NULL;
    int alive;
    long n;
    if (p->fd < 0)
        return;
    alive = relay_fill(p->fd, &p->in, &why);
    while ((n = relay_next(&p->in)) > 0) {
        const uint8_t *r = ws_buf_head(&p->in);
        if (get16(r + 4) == RELAY_CONTROL) {
            master_control(p, r[6], r + RELAY_HDR + get16(r + 8), (size_t)n - RELAY_HDR - get16(r + 8));
        } else {
            struct wproc *q;
            for (q = ms.procs; q; q = q->next)
                if (q != p && q->fd >= 0)
                    master_forward(q, r, (size_t)n);
        }
        ws_buf_consume(&p->in, (size_t)n);
    }
    if (n < 0) {
        master_log("worker %d (pid %d) sent a malformed relay record; its relay is closed", p->id,
                   (int)p->pid);
        alive = 0;
    }
    if (!alive)
        master_relay_close(p);
}

static void master_flush(struct wproc *p)
{
    if (p->fd >= 0 && p->out.len > 0 && relay_drain(p->fd, &p->out) < 0)
        master_relay_close(p);
}

/* "exited with status 3", "was killed by signal 9 (Killed)" */
static void describe_status(char *buf, size_t len, int status)
{
    if (WIFEXITED(status))
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "was killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(buf, len, "ended (status 0x%x)", (unsigned)status);
}

/* p (whose pid was pid) is dead: forget it, or start it again. */
static void master_died(struct wproc *p, pid_t pid, int status)
{
    double now = mono(), lived = now - p->started;
    char how[96];
    master_read(p);   /* what it published before it went is still forwarded */
    master_relay_close(p);
    describe_status(how, sizeof how, status);
    p->pid = 0;
    p->kill_at = 0;
    p->ready = 0;
    if (ms.stops || p->state != W_CURRENT) {
        master_log("worker %d (pid %d%s) %s", p->id, (int)pid, ms.stops ? "" : ", replaced", how);
        p->state = W_GONE;
        return;
    }
    if (lived >= DIED_YOUNG) {
        p->backoff = BACKOFF_FIRST;
        p->restart_at = now;
        master_log("worker %d (pid %d) %s after %.1f s; starting it again", p->id, (int)pid, how, lived);
    } else {
        p->restart_at = now + p->backoff;
        master_log("worker %d (pid %d) %s %.2f s after it started; starting it again in %.1f s", p->id,
                   (int)pid, how, lived, p->backoff);
        p->backoff = p->backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : p->backoff * 2;
    }
}

static void master_reap(void)
{
    struct wproc *p;
    int died = 0;
    for (p = ms.procs; p; p = p->next) {
        int status = 0;
        pid_t pid = p->pid, r;
        if (pid <= 0)
            continue;
        do
            r = waitpid(pid, &status, WNOHANG);
        while (r < 0 && errno == EINTR);
        if (r == pid || (r < 0 && errno == ECHILD)) {
            master_died(p, pid, status);
            died = 1;
        }
    }
    if (died)
        master_balance();   /* the others may take its share now */
}

static void master_stop(int sig)
{
    struct wproc *p;
    double now = mono();
    int n = 0;
    ms.stops++;
    for (p = ms.procs; p; p = p->next) {
        if (p->pid <= 0) {
            p->state = W_GONE;
            continue;
        }
        kill(p->pid, SIGTERM);
        n++;
        if (ms.stops == 1) {
            double at = now + p->grace + KILL_AFTER;
            if (!p->kill_at || at < p->kill_at)
                p->kill_at = at;
        }
    }
    if (ms.stops == 1)
        master_log("%s: stopping %d worker%s (SIGTERM; SIGKILL for any left after its grace + %.0f s)",
                   sig == SIGINT ? "SIGINT" : "SIGTERM", n, n == 1 ? "" : "s", KILL_AFTER);
    else
        master_log("%s again: forwarded to %d worker%s, which cut their connections now",
                   sig == SIGINT ? "SIGINT" : "SIGTERM", n, n == 1 ? "" : "s");
}

static void master_reload(void)
{
    struct wproc *p;
    int id;
    if (ms.stops)
        return;
    for (p = ms.procs; p; p = p->next)
        if (p->state == W_CURRENT)
            p->state = p->pid > 0 ? W_OLD : W_GONE;
    master_log("SIGHUP: starting %d new worker%s; each old one drains once its successor is ready",
               ms.cfg->n, ms.cfg->n == 1 ? "" : "s");
    for (id = 1; id <= ms.cfg->n; id++) {
        struct wproc *q = master_add(id);
        if (q) {
            master_spawn(q);
            master_log("worker %d started (pid %d)", id, (int)q->pid);
        }
    }
}

static void master_signals(int sfd)
{
    struct signalfd_siginfo si;
    for (;;) {
        ssize_t n = read(sfd, &si, sizeof si);
        if (n != (ssize_t)sizeof si)
            return;
        switch (si.ssi_signo) {
        case SIGCHLD:
            master_reap();
            break;
        case SIGTERM:
        case SIGINT:
            master_stop((int)si.ssi_signo);
            break;
        case SIGHUP:
            master_reload();
            break;
        default:
            break;
        }
    }
}

/* Free what is W_GONE. */
static void master_sweep(void)
{
    struct wproc **pp = &ms.procs;
    while (*pp) {
        struct wproc *p = *pp;
        if (p->state == W_GONE && p->pid <= 0) {
            *pp = p->next;
            master_relay_close(p);
            free(p);
        } else {
            pp = &p->next;
        }
    }
}

/* Timers: starts that are due, SIGKILLs that are due. Returns the next
 * deadline (0: none). */
static double master_timers(void)
{
    struct wproc *p;
    double now = mono(), next = 0;
    for (p = ms.procs; p; p = p->next) {
        if (p->pid <= 0 && p->state == W_CURRENT && !ms.stops) {
            if (p->restart_at <= now) {
                master_spawn(p);
                if (p->pid > 0)
                    master_log("worker %d started again (pid %d)", p->id, (int)p->pid);
            }
            if (p->pid <= 0 && (!next || p->restart_at < next))
                next = p->restart_at;
        }
        if (p->pid > 0 && p->kill_at > 0) {
            if (p->kill_at <= now) {
                master_log("worker %d (pid %d) still runs after its grace: SIGKILL", p->id, (int)p->pid);
                kill(p->pid, SIGKILL);
                p->kill_at = 0;
            } else if (!next || p->kill_at < next) {
                next = p->kill_at;
            }
        }
    }
    return next;
}

static int master_loop(int sfd)
{
    for (;;) {
        double next, now;
        size_t n = 1, i, want = 1;
        struct wproc *p;
        int timeout, rc;
        master_sweep();
        next = master_timers();
        master_sweep();
        if (ms.stops && !ms.procs)
            return WS_OK;
        for (p = ms.procs; p; p = p->next)
            want++;
        if (want > ms.npfd) {
            struct pollfd *np = realloc(ms.pfd, want * sizeof *np);
            struct wproc **pp = np ? realloc(ms.pproc, want * sizeof *pp) : NULL;
            if (np)
                ms.pfd = np;
            if (!pp)
                return WS_ENOMEM;
            ms.pproc = pp;
            ms.npfd = want;
        }
        ms.pfd[0].fd = sfd;
        ms.pfd[0].events = POLLIN;
        ms.pproc[0] = NULL;
        for (p = ms.procs; p; p = p->next) {
            if (p->fd < 0)
                continue;
            ms.pfd[n].fd = p->fd;
            ms.pfd[n].events = (short)(POLLIN | (p->out.len ? POLLOUT : 0));
            ms.pproc[n++] = p;
        }
        now = mono();
        timeout = next <= 0 ? -1 : next <= now ? 0 : (int)((next - now) * 1000) + 1;
        rc = poll(ms.pfd, (nfds_t)n, timeout);
        if (rc < 0 && errno != EINTR)
            return WS_EIO;
        if (rc <= 0)
            continue;
        /* relays first: what a worker wrote before it died is read before
         * its SIGCHLD closes its relay */
        for (i = 1; i < n; i++) {
            p = ms.pproc[i];
            if (p->fd != ms.pfd[i].fd)
                continue;   /* closed meanwhile */
            if (ms.pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
                master_read(p);
            if (p->fd >= 0 && (ms.pfd[i].revents & POLLOUT))
                master_flush(p);
        }
        for (p = ms.procs; p; p = p->next)
            master_flush(p);
        if (ms.pfd[0].revents & POLLIN)
            master_signals(sfd);
    }
}

int workers_master_run(const struct workers_config *cfg, char *err, size_t errlen)
{
    sigset_t block, old;
    struct sigaction sa;
    int sfd = -1, id, rc = WS_EIO, i, n;
    struct wproc *p;
    memset(&ms, 0, sizeof ms);
    ms.cfg = cfg;
    if (master_cmdline(err, errlen) < 0 || master_listen_fds(err, errlen) < 0)
        goto done;
    sigemptyset(&block);
    sigaddset(&block, SIGCHLD);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, &old);
    ms.child_mask = old;
    sigdelset(&ms.child_mask, SIGCHLD);
    sigdelset(&ms.child_mask, SIGTERM);
    sigdelset(&ms.child_mask, SIGINT);
    sigdelset(&ms.child_mask, SIGHUP);
    sigaddset(&ms.child_mask, SIGUSR2);
    /* children must not be reaped behind our back */
    if (sigaction(SIGCHLD, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN) {
        sa.sa_handler = SIG_DFL;
        sigaction(SIGCHLD, &sa, NULL);
    }
    sfd = signalfd(-1, &block, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0) {
        snprintf(err, errlen, "workers: signalfd: %s", strerror(errno));
        sigprocmask(SIG_SETMASK, &old, NULL);
        goto done;
    }
    for (id = 1; id <= cfg->n; id++)
        if ((p = master_add(id)) != NULL)
            master_spawn(p);
    {
        char pids[256];
        size_t at = 0;
        pids[0] = '\0';
        for (p = ms.procs; p && at < sizeof pids - 16; p = p->next)
            at += (size_t)snprintf(pids + at, sizeof pids - at, "%s%d", at ? " " : "", (int)p->pid);
        master_log("%d worker%s started (pids %s%s)", cfg->n, cfg->n == 1 ? "" : "s", pids, p ? " ..." : "");
    }
    rc = master_loop(sfd);
    if (rc != WS_OK) {
        snprintf(err, errlen, "workers: the master's loop failed: %s", strerror(errno));
        for (p = ms.procs; p; p = p->next)
            if (p->pid > 0)
                kill(p->pid, SIGKILL);
    } else {
        char dropped[64] = "";
        if (ms.dropped)
            snprintf(dropped, sizeof dropped, " (%zu relay records were dropped)", ms.dropped);
        master_log("every worker has exited%s", dropped);
    }
    /* a signal that came after the last read would meet its default
     * action once unblocked: it was meant for the workers, who are gone */
    {
        struct signalfd_siginfo si;
        while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
            ;
    }
    close(sfd);
    sigprocmask(SIG_SETMASK, &old, NULL);
    n = server_count();
    for (i = 0; i < n; i++) {
        struct server *s = server_by_index(i);
        if (s)
            server_close(s, 0, NULL);
    }
done:
    while (ms.procs) {
        p = ms.procs;
        ms.procs = p->next;
        master_relay_close(p);
        free(p);
    }
    free(ms.pfd);
    free(ms.pproc);
    free(ms.argv);
    free(ms.argbuf);
    free(ms.listen_fds);
    memset(&ms, 0, sizeof ms);
    return rc;
}
