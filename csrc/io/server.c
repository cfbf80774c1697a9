/* SPDX-License-Identifier: MIT
 *
 * server.c -- listening sockets, accept, the list of servers and shutdown.
 *
 * Accepted sockets are non-blocking, close-on-exec and TCP_NODELAY (small
 * WebSocket frames must not wait for Nagle). Beyond max_connections a new
 * socket gets a 503 and is closed; existing ones are not touched. When
 * accept() runs out of descriptors (EMFILE/ENFILE) the server stops accepting
 * for a moment instead of spinning on a listening socket that stays readable.
 *
 * Shutdown (SIGINT/SIGTERM, luaws.shutdown) is a server matter: every server
 * stops accepting and closes its connections with 1001; a before-block hook
 * notices when the last one is gone and breaks the loop, and a timer cuts
 * the rest when the grace period runs out.
 */
#include "io/server.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "io/loop.h"
#include "io/tls.h"

/* Accepts per readable event, so a connection storm cannot starve the rest. */
#define SERVER_ACCEPTS_PER_EVENT 64

/* How long to stop accepting after EMFILE. */
#define SERVER_EMFILE_PAUSE 0.1

/* Every server that listened and was not forgotten, for shutdown. */
static struct server *servers;
static int next_index;

/* Descriptors ran out: stop every server's listeners for a moment. */
static void server_emfile_resume(struct ev_loop *loop, ev_timer *w, int revents);

static void server_listeners(struct server *s, int on)
{
    struct ev_loop *loop = loop_get();
    int i;
    for (i = 0; i < s->nlisten; i++) {
        if (on)
            ev_io_start(loop, &s->listen[i]);
        else
            ev_io_stop(loop, &s->listen[i]);
    }
}

static void server_emfile_resume(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct server *s = (struct server *)((char *)w - offsetof(struct server, retry));
    (void)loop;
    (void)revents;
    if (!s->closed && !s->paused)
        server_listeners(s, 1);
}

/* Refuse one socket past max_connections: a short 503, then close. */
static void server_refuse(struct server *s, int fd)
{
    static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                               "Connection: close\r\nRetry-After: 1\r\n\r\n";
    ssize_t n = send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL);
    (void)n;   /* best effort: the socket is fresh, its buffer empty */
    shutdown(fd, SHUT_WR);
    close(fd);
    s->group.stats.rejected++;
    metrics_refused(&s->group.stats.m, 503);
}

/* TCP_NODELAY on an accepted TCP socket: every message is one write, and
 * a small one must not wait for the peer's ACK. The listeners have it set
 * (server_listen, server_adopt), and Linux copies it to the sockets they
 * accept; the first accept looks, and from then on the call is made only
 * where it is not inherited. */
static void server_nodelay(struct server *s, int fd)
{
    int one = 1;
    if (s->nodelay == SERVER_NODELAY_UNKNOWN) {
        int on = 0;
        socklen_t len = sizeof on;
        s->nodelay = getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &len) == 0 && on
                         ? SERVER_NODELAY_INHERITED : SERVER_NODELAY_SET;
    }
    if (s->nodelay == SERVER_NODELAY_SET)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void server_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct server *s = w->data;
    int i;
    (void)revents;
    for (i = 0; i < SERVER_ACCEPTS_PER_EVENT && !s->closed; i++) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        int fd = accept4(w->fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        struct conn *c;
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if ((errno == EMFILE || errno == ENFILE) && !ev_is_active(&s->retry)) {
                /* each server has its own retry timer: two servers out of
                 * descriptors at once must not share (and re-init) one */
                server_listeners(s, 0);
                ev_timer_init(&s->retry, server_emfile_resume, SERVER_EMFILE_PAUSE, 0.);
                ev_timer_start(loop, &s->retry);
            }
            return;
        }
        s->group.stats.accepted++;
        if (s->max_connections && s->group.nconns >= s->max_connections) {
            server_refuse(s, fd);
            continue;
        }
        if (peer.ss_family != AF_UNIX)
            server_nodelay(s, fd);
        c = s->alloc(s);
        if (!c) {
            close(fd);
            continue;
        }
        conn_init(c, fd, &s->group, s->hooks, &s->opt, 0, 0);
        c->born = ev_now(loop);
        conn_http_serve(c);
        if (peer.ss_family == AF_UNIX)
            c->peer.sa.sa_family = AF_UNIX;   /* a unix peer: no address worth keeping */
        else if (plen <= sizeof c->peer)
            memcpy(&c->peer, &peer, plen);
        if (s->tls) {
            struct ssl_st *ssl = tls_new(s->tls, fd, 1, NULL);
            if (!ssl)
                conn_abort(c, WS_ETLS, tls_last_error());
            else
                conn_use_tls(c, ssl);
        }
    }
}

/* "host:port: why" ("[::1]:80" for an IPv6 literal), why in lower case as
 * a message goes on: "localhost:8081: address already in use". */
static void server_err(char *err, size_t errlen, const char *host, int port, const char *why)
{
    int v6 = host && strchr(host, ':');
    int n = snprintf(err, errlen, "%s%s%s:%d: %s", v6 ? "[" : "", host ? host : "*", v6 ? "]" : "",
                     port, why);
    size_t at = n > 0 && (size_t)n < errlen ? (size_t)n - strlen(why) : 0;
    if (at > 0 && err[at] >= 'A' && err[at] <= 'Z' && !(err[at + 1] >= 'A' && err[at + 1] <= 'Z'))
        err[at] = (char)(err[at] + ('a' - 'A'));
}

/* The port a socket is bound to. */
static int server_bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0 || ss.ss_family == AF_UNIX)
        return 0;
    return ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                    : ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* Put s on the list (once), with the next index. */
static void server_enlist(struct server *s)
{
    if (!s->listed) {
        s->next = servers;
        servers = s;
        s->listed = 1;
        s->index = next_index++;
    }
}

int server_listen(struct server *s, const char *host, int port, int backlog,
                  char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL, *ai;
    char portstr[16];
    int rc;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    if (host && strcmp(host, "*") == 0)
        host = NULL;
    snprintf(portstr, sizeof portstr, "%d", port);
    rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        server_err(err, errlen, host, port, gai_strerror(rc));
        return WS_ERESOLVE;
    }
    s->nlisten = 0;
    for (ai = res; ai && s->nlisten < SERVER_MAX_LISTEN; ai = ai->ai_next) {
        int one = 1, fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                                 ai->ai_protocol);
        if (fd < 0) {
            if (errno == EAFNOSUPPORT)
                continue;   /* a kernel without IPv6: the other family will do */
            goto fail;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);   /* for what it accepts */
        if (ai->ai_family == AF_INET6)   /* so 0.0.0.0 and :: can both bind */
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        if (s->nlisten > 0 && port == 0) {
            /* the other families take the port the first one was given */
            if (ai->ai_family == AF_INET)
                ((struct sockaddr_in *)ai->ai_addr)->sin_port = htons((uint16_t)s->port);
            else if (ai->ai_family == AF_INET6)
                ((struct sockaddr_in6 *)ai->ai_addr)->sin6_port = htons((uint16_t)s->port);
        }
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, backlog) < 0) {
            int e = errno;
            close(fd);
            errno = e;
            /* "localhost" may name ::1 on a host without an IPv6 loopback */
            if (e == EADDRNOTAVAIL || e == EAFNOSUPPORT)
                continue;
            goto fail;
        }
        if (s->nlisten == 0)
            s->port = server_bound_port(fd);
        ev_io_init(&s->listen[s->nlisten], server_accept_cb, fd, EV_READ);
        s->listen[s->nlisten].data = s;
        s->nlisten++;
    }
    freeaddrinfo(res);
    if (s->nlisten == 0) {
        server_err(err, errlen, host, port, "no address to listen on");
        return WS_EIO;
    }
    s->closed = 0;
    server_listeners(s, 1);
    server_enlist(s);
    return WS_OK;
fail:
    server_err(err, errlen, host, port, strerror(errno));
    freeaddrinfo(res);
    while (s->nlisten > 0)
        close(s->listen[--s->nlisten].fd);
    return WS_EIO;
}

/* Is something accepting on the unix socket at sa? (A stale file refuses.) */
static int server_unix_live(const struct sockaddr_un *sa)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), live;
    if (fd < 0)
        return 1;   /* cannot tell: do not remove it */
    live = connect(fd, (const struct sockaddr *)sa, sizeof *sa) == 0 || errno != ECONNREFUSED;
    close(fd);
    return live;
}

int server_listen_unix(struct server *s, const char *path, int mode, int backlog,
                       char *err, size_t errlen)
{
    struct sockaddr_un sa;
    struct stat st;
    int fd;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (!path[0] || strlen(path) >= sizeof sa.sun_path) {
        snprintf(err, errlen, "unix:%s: the path must be 1 to %zu bytes", path, sizeof sa.sun_path - 1);
        return WS_EIO;
    }
    memcpy(sa.sun_path, path, strlen(path));
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen, "unix:%s: a file that is not a socket is in the way", path);
            return WS_EIO;
        }
        if (server_unix_live(&sa)) {
            snprintf(err, errlen, "unix:%s: address already in use", path);
            return WS_EIO;
        }
        unlink(path);   /* stale: its server is gone */
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        goto fail;
    if ((mode > 0 && chmod(path, (mode_t)mode) < 0) || listen(fd, backlog) < 0 || stat(path, &st) < 0) {
        int e = errno;
        unlink(path);
        errno = e;
        goto fail;
    }
    snprintf(s->unix_path, sizeof s->unix_path, "%s", path);
    s->unix_dev = (unsigned long)st.st_dev;
    s->unix_ino = (unsigned long)st.st_ino;
    s->port = 0;
    s->nlisten = 1;
    ev_io_init(&s->listen[0], server_accept_cb, fd, EV_READ);
    s->listen[0].data = s;
    s->closed = 0;
    server_listeners(s, 1);
    server_enlist(s);
    return WS_OK;
fail:
    snprintf(err, errlen, "unix:%s: %s", path, strerror(errno));
    if (err[0]) {   /* "Address already in use" -> "address already in use" */
        char *w = strstr(err, ": ");
        if (w && w[2] >= 'A' && w[2] <= 'Z' && !(w[3] >= 'A' && w[3] <= 'Z'))
            w[2] = (char)(w[2] + ('a' - 'A'));
    }
    if (fd >= 0)
        close(fd);
    return WS_EIO;
}

/* Remove the socket file s bound, if the file there is still that one (a
 * newer server may have replaced it). */
static void server_unlink_unix(struct server *s)
{
    struct stat st;
    if (!s->unix_path[0])
        return;
    if (stat(s->unix_path, &st) == 0 && (unsigned long)st.st_dev == s->unix_dev &&
        (unsigned long)st.st_ino == s->unix_ino)
        unlink(s->unix_path);
    s->unix_path[0] = '\0';
}

int server_adopt(struct server *s, const int *fds, int n, char *err, size_t errlen)
{
    int i;
    if (n > SERVER_MAX_LISTEN)
        n = SERVER_MAX_LISTEN;
    for (i = 0; i < n; i++) {
        int on = 0, rc;
        socklen_t olen = sizeof on;
        rc = getsockopt(fds[i], SOL_SOCKET, SO_ACCEPTCONN, &on, &olen);
        if (rc < 0 || !on) {
            snprintf(err, errlen, "inherited descriptor %d: %s", fds[i],
                     rc < 0 ? strerror(errno) : "not a listening socket");
            return WS_EIO;
        }
    }
    s->nlisten = 0;
    for (i = 0; i < n; i++) {
        int one = 1, fd = fds[i], fl = fcntl(fd, F_GETFL);
        if (fl >= 0)
            fcntl(fd, F_SETFL, fl | O_NONBLOCK);
        /* for what it accepts (server_nodelay); a unix socket refuses it */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(fd, F_SETFD, FD_CLOEXEC);   /* what this worker starts must not hold it */
        if (i == 0)
            s->port = server_bound_port(fd);
        ev_io_init(&s->listen[i], server_accept_cb, fd, EV_READ);
        s->listen[i].data = s;
        s->nlisten++;
    }
    s->closed = n == 0;
    if (n > 0)
        server_listeners(s, 1);
    server_enlist(s);
    return WS_OK;
}

void server_pause_accept(struct server *s, int paused)
{
    s->paused = paused;
    if (paused) {
        server_listeners(s, 0);
        ev_timer_stop(loop_get(), &s->retry);
    } else if (!s->closed) {
        server_listeners(s, 1);
    }
}

int server_count(void)
{
    return next_index;
}

void server_close(struct server *s, unsigned code, const char *reason)
{
    struct conn *c;
    if (!s->closed) {
        s->closed = 1;
        server_listeners(s, 0);
        while (s->nlisten > 0)
            close(s->listen[--s->nlisten].fd);
        ev_timer_stop(loop_get(), &s->retry);
        server_unlink_unix(s);
    }
    if (!code)
        return;
    for (c = s->group.conns; c; c = c->next) {
        if (c->state == CONN_OPEN)
            conn_close(c, code, reason, reason ? strlen(reason) : 0);
        else if (c->state == CONN_HANDSHAKE)
            conn_abort(c, WS_ECLOSED, reason);
    }
}

struct server *server_by_index(int index)
{
    struct server *s;
    for (s = servers; s; s = s->next)
        if (s->index == index)
            return s;
    return NULL;
}

void server_forget(struct server *s)
{
    struct server **pp;
    if (!s->listed)
        return;
    for (pp = &servers; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    s->listed = 0;
}

/* ---------------------------------------------------------------- shutdown */

static int shutting_down;
static size_t shutdown_cut;
static ev_timer shutdown_timer;
static ev_signal sigint_watcher, sigterm_watcher;
static double signal_grace;
static void server_shutdown_check(struct loop_hook *h);
static struct loop_hook shutdown_hook = { server_shutdown_check, NULL, 0 };

/* A shutdown is over: its timer and hook go (the timer must not fire into
 * whatever the script does next), a later signal starts a new one, and the
 * loop stops. */
static void server_shutdown_done(void)
{
    struct ev_loop *loop = loop_get();
    ev_timer_stop(loop, &shutdown_timer);
    loop_hook_remove(&shutdown_hook);
    shutting_down = 0;
    ev_break(loop, EVBREAK_ALL);
}

/* Before the loop blocks (and wherever the loop is turned by hand): is every
 * connection of every server finished? */
static void server_shutdown_check(struct loop_hook *h)
{
    struct server *s;
    (void)h;
    conn_run_pending();   /* whatever finished this turn is gone before we count */
    for (s = servers; s; s = s->next)
        if (s->group.nconns > 0)
            return;
    server_shutdown_done();
}

void server_shutdown_now(void)
{
    struct server *s;
    if (!shutting_down)
        server_shutdown(0);
    for (s = servers; s; s = s->next) {
        struct conn *c;
        for (c = s->group.conns; c; c = c->next) {
            if (conn_is_finishing(c))
                continue;
            s->group.stats.shutdown_cut++;
            shutdown_cut++;
            conn_abort(c, WS_ETIMEOUT, "shutdown");
        }
    }
    conn_run_pending();
    server_shutdown_done();
}

/* The grace period is over: drop whoever is left and stop. */
static void server_shutdown_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    server_shutdown_now();
}

void server_shutdown(double grace)
{
    struct ev_loop *loop = loop_get();
    struct server *s;
    if (shutting_down)
        return;
    shutting_down = 1;
    shutdown_cut = 0;
    for (s = servers; s; s = s->next) {
        s->group.draining = 1;
        server_close(s, 1001, "server shutdown");
    }
    /* Always armed, so that no state a connection is in can hold the loop
     * past the grace period (a grace of 0 cuts on the next iteration). */
    ev_timer_init(&shutdown_timer, server_shutdown_timeout, grace > 0 ? grace : 0., 0.);
    ev_timer_start(loop, &shutdown_timer);
    loop_hook_add(&shutdown_hook);
}

size_t server_shutdown_cut(void)
{
    size_t n = shutdown_cut;
    shutdown_cut = 0;
    return n;
}

static void server_signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    if (shutting_down)
        server_shutdown_now();   /* the second Ctrl-C: do not wait */
    else
        server_shutdown(signal_grace);
}

void server_watch_signals(int on, double grace)
{
    struct ev_loop *loop = loop_get();
    signal_grace = grace;
    if (on && !ev_is_active(&sigint_watcher)) {
        ev_signal_init(&sigint_watcher, server_signal_cb, SIGINT);
        ev_signal_init(&sigterm_watcher, server_signal_cb, SIGTERM);
        loop_signal_start(&sigint_watcher);   /* not ev_signal_start: see loop.h */
        loop_signal_start(&sigterm_watcher);
        ev_unref(loop);   /* signals alone must not keep the loop running */
        ev_unref(loop);
    } else if (!on && ev_is_active(&sigint_watcher)) {
        ev_ref(loop);
        ev_ref(loop);
        loop_signal_stop(&sigint_watcher);
        loop_signal_stop(&sigterm_watcher);
    }
}

void server_reset(void)
{
    struct ev_loop *loop = loop_get();
    if (loop) {
        server_watch_signals(0, 0);
        ev_timer_stop(loop, &shutdown_timer);
    }
    loop_hook_remove(&shutdown_hook);
    while (servers) {
        server_unlink_unix(servers);   /* at exit: the socket files go with us */
        server_forget(servers);
    }
    next_index = 0;
    shutting_down = 0;
    shutdown_cut = 0;
}
