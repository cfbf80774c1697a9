/* SPDX-License-Identifier: MIT
 *
 * backplane.c -- Redis pub/sub as a pubsub_bridge (see backplane.h).
 *
 * hiredis does the protocol, buffering and parsing; its libev adapter
 * drives both connections on luaws's loop. This file is the glue: which
 * channels to hold, how a message is framed, what to do when Redis is gone.
 *
 * A message on the wire is: 8 bytes of the publishing process's id, one
 * byte of opcode (1 text, 2 binary), then the payload as the script gave it.
 *
 * Lifetime: a hiredis context is freed by hiredis after its disconnect (or
 * failed connect) callback; we only drop our pointer there. Reconnecting
 * waits on a timer (0.1 s doubling to 5 s), and starts both connections
 * again, so the state is always "both up" or "down".
 */
#include "io/backplane.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

/* The adapter is a header of static functions written for gcc's defaults. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#pragma GCC diagnostic ignored "-Wmissing-prototypes"
#pragma GCC diagnostic ignored "-Wshadow"
#include <hiredis/adapters/libev.h>
#pragma GCC diagnostic pop

#include "io/loop.h"
#include "proto/buffer.h"
#include "proto/frame.h"

#define BP_BACKOFF_MIN 0.1
#define BP_BACKOFF_MAX 5.0
#define BP_ID_LEN 8

struct backplane {
    struct pubsub_bridge bridge;      /* first: the bridge is the backplane */
    struct pubsub *ps;
    redisAsyncContext *sub, *pub;
    int sub_ready, pub_ready;         /* connected (and logged in, for pub) */
    int stopping;
    int waiting;                      /* the retry timer waits out the backoff */
    double backoff;
    ev_timer retry;
    char *host, *path, *password, *username, *prefix;
    size_t prefix_len;
    int port, db;
    size_t max_pending, pending;
    uint8_t id[BP_ID_LEN];
    struct ws_buf scratch;            /* one channel name or message being built */
    struct backplane_stats stats;
    backplane_event_fn on_event;
    void *arg;
};

static void bp_connect(struct backplane *bp);
static void bp_down(struct backplane *bp, const char *why);

static char *bp_strdup(const char *s)
{
    char *d;
    if (!s)
        return NULL;
    d = malloc(strlen(s) + 1);
    if (d)
        strcpy(d, s);
    return d;
}

/* "prefix:topic" in bp->scratch; its length, or 0 if out of memory. */
static size_t bp_channel(struct backplane *bp, const char *topic, size_t len)
{
    bp->scratch.len = 0;
    if (ws_buf_append(&bp->scratch, bp->prefix, bp->prefix_len, 0) != WS_OK ||
        ws_buf_append(&bp->scratch, ":", 1, 0) != WS_OK ||
        ws_buf_append(&bp->scratch, topic, len, 0) != WS_OK)
        return 0;
    return bp->scratch.len;
}

static void bp_event(struct backplane *bp, int up, const char *detail)
{
    bp->stats.up = up;
    if (bp->on_event)
        bp->on_event(bp, up, detail, bp->arg);
}

/* ------------------------------------------------------------ receiving */

/* A reply on the subscribing connection: subscribe confirmations, and
 * ["message", channel, payload] for each message. */
static void bp_on_message(redisAsyncContext *ac, void *r, void *privdata)
{
    struct backplane *bp = privdata;
    redisReply *reply = r;
    const redisReply *ch, *msg;
    int op;
    (void)ac;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3)
        return;
    if (reply->element[0]->type != REDIS_REPLY_STRING || strcmp(reply->element[0]->str, "message") != 0)
        return;
    ch = reply->element[1];
    msg = reply->element[2];
    if (ch->type != REDIS_REPLY_STRING || msg->type != REDIS_REPLY_STRING ||
        ch->len <= bp->prefix_len + 1 || msg->len < BP_ID_LEN + 1)
        return;
    if (memcmp(msg->str, bp->id, BP_ID_LEN) == 0)
        return;   /* our own publish, delivered locally already */
    op = msg->str[BP_ID_LEN] == 2 ? WS_OP_BINARY : WS_OP_TEXT;
    bp->stats.received++;
    pubsub_publish(bp->ps, ch->str + bp->prefix_len + 1, ch->len - bp->prefix_len - 1, op,
                   msg->str + BP_ID_LEN + 1, msg->len - BP_ID_LEN - 1, NULL);
}

static void bp_subscribe(struct backplane *bp, const char *cmd, const char *topic, size_t len)
{
    size_t n;
    if (!bp->sub || !bp->sub_ready || !(n = bp_channel(bp, topic, len)))
        return;
    redisAsyncCommand(bp->sub, cmd[0] == 'S' ? bp_on_message : NULL, bp, "%s %b", cmd,
                      ws_buf_head(&bp->scratch), n);
}

static void bp_topic_first(struct pubsub_bridge *b, struct pubsub *ps, const char *topic, size_t len)
{
    (void)ps;
    bp_subscribe((struct backplane *)b, "SUBSCRIBE", topic, len);
}

static void bp_topic_last(struct pubsub_bridge *b, struct pubsub *ps, const char *topic, size_t len)
{
    (void)ps;
    bp_subscribe((struct backplane *)b, "UNSUBSCRIBE", topic, len);
}

static void bp_resubscribe_one(void *arg, const char *topic, size_t len)
{
    bp_subscribe(arg, "SUBSCRIBE", topic, len);
}

/* ----------------------------------------------------------- publishing */

static void bp_on_publish(redisAsyncContext *ac, void *r, void *privdata)
{
    struct backplane *bp = privdata;
    redisReply *reply = r;
    (void)ac;
    if (bp->pending)
        bp->pending--;
    if (reply && reply->type == REDIS_REPLY_INTEGER)
        bp->stats.published++;
    else
        bp->stats.failed++;   /* an error reply, or the connection went first */
}

static void bp_publish(struct pubsub_bridge *b, struct pubsub *ps, const char *topic, size_t len,
                       int opcode, const void *data, size_t dlen)
{
    struct backplane *bp = (struct backplane *)b;
    size_t clen;
    uint8_t kind = opcode == WS_OP_BINARY ? 2 : 1;
    const char *argv[3];
    size_t argl[3];
    (void)ps;
    if (!bp->pub || !bp->pub_ready || !bp->sub_ready || bp->pending >= bp->max_pending) {
        bp->stats.dropped++;
        return;
    }
    if (!(clen = bp_channel(bp, topic, len)) ||
        ws_buf_append(&bp->scratch, bp->id, BP_ID_LEN, 0) != WS_OK ||
        ws_buf_append(&bp->scratch, &kind, 1, 0) != WS_OK ||
        ws_buf_append(&bp->scratch, data, dlen, 0) != WS_OK) {
        bp->stats.dropped++;
        return;
    }
    argv[0] = "PUBLISH";
    argl[0] = 7;
    argv[1] = (const char *)ws_buf_head(&bp->scratch);
    argl[1] = clen;
    argv[2] = argv[1] + clen;
    argl[2] = bp->scratch.len - clen;
    /* hiredis formats the command into its own buffer: scratch is free after */
    if (redisAsyncCommandArgv(bp->pub, bp_on_publish, bp, 3, argv, argl) == REDIS_OK)
        bp->pending++;
    else
        bp->stats.dropped++;
    if (bp->scratch.cap > 1 << 20)
        ws_buf_free(&bp->scratch);   /* do not keep a big message's room */
}

/* -------------------------------------------------------------- connecting */

static void bp_check_up(struct backplane *bp)
{
    if (bp->sub_ready && bp->pub_ready && !bp->stats.up) {
        if (bp->backoff > 0)
            bp->stats.reconnects++;
        bp->backoff = 0;
        pubsub_each_topic(bp->ps, bp_resubscribe_one, bp);
        bp_event(bp, 1, "connected");
    }
}

/* AUTH / SELECT answered on the publishing connection. */
static void bp_on_setup(redisAsyncContext *ac, void *r, void *privdata)
{
    struct backplane *bp = privdata;
    redisReply *reply = r;
    if (!reply)
        return;
    (void)ac;
    if (reply->type == REDIS_REPLY_ERROR) {
        char why[200];
        snprintf(why, sizeof why, "redis: %s", reply->str);
        bp_down(bp, why);   /* the connections close from the retry timer */
    }
}

/* The last login command of a connection answered: it is ready. */
static void bp_on_ready(redisAsyncContext *ac, void *r, void *privdata)
{
    struct backplane *bp = privdata;
    redisReply *reply = r;
    if (!reply)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        bp_on_setup(ac, r, privdata);
        return;
    }
    if (ac == bp->sub)
        bp->sub_ready = 1;
    else if (ac == bp->pub)
        bp->pub_ready = 1;
    bp_check_up(bp);
}

static void bp_on_connect(const redisAsyncContext *ac, int status)
{
    struct backplane *bp = ac->data;
    redisAsyncContext *c = (redisAsyncContext *)ac;
    if (status != REDIS_OK) {
        char why[200];
        if (ac == bp->sub)
            bp->sub = NULL;   /* hiredis frees it after this call */
        if (ac == bp->pub)
            bp->pub = NULL;
        snprintf(why, sizeof why, "redis: %s", ac->errstr[0] ? ac->errstr : "cannot connect");
        bp_down(bp, why);
        return;
    }
    if (bp->username && bp->password)
        redisAsyncCommand(c, bp_on_setup, bp, "AUTH %s %s", bp->username, bp->password);
    else if (bp->password)
        redisAsyncCommand(c, bp_on_setup, bp, "AUTH %s", bp->password);
    if (ac == bp->pub && bp->db)
        redisAsyncCommand(c, bp_on_setup, bp, "SELECT %d", bp->db);
    redisAsyncCommand(c, bp_on_ready, bp, "PING");
}

static void bp_on_disconnect(const redisAsyncContext *ac, int status)
{
    struct backplane *bp = ac->data;
    (void)status;
    if (ac == bp->sub) {
        bp->sub = NULL;
        bp->sub_ready = 0;
    }
    if (ac == bp->pub) {
        bp->pub = NULL;
        bp->pub_ready = 0;
    }
    if (!bp->stopping)
        bp_down(bp, ac->errstr[0] ? ac->errstr : "connection lost");
}

/*
** The retry timer, outside every hiredis callback (hiredis must not be
** re-entered from its own callbacks): close what is left of a broken pair,
** then wait out the backoff, then connect again.
*/
static void bp_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct backplane *bp = (struct backplane *)((char *)w - offsetof(struct backplane, retry));
    (void)revents;
    if (bp->sub || bp->pub) {
        if (bp->sub)
            redisAsyncDisconnect(bp->sub);   /* its disconnect callback drops the pointer */
        if (bp->pub)
            redisAsyncDisconnect(bp->pub);
        ev_timer_set(&bp->retry, 0.05, 0.);
        ev_timer_start(loop, &bp->retry);
        return;
    }
    if (!bp->waiting) {
        bp->waiting = 1;
        bp->backoff = bp->backoff <= 0 ? BP_BACKOFF_MIN
                      : bp->backoff * 2 > BP_BACKOFF_MAX ? BP_BACKOFF_MAX : bp->backoff * 2;
        ev_timer_set(&bp->retry, bp->backoff, 0.);
        ev_timer_start(loop, &bp->retry);
        return;
    }
    bp->waiting = 0;
    bp_connect(bp);
}

/*
** Redis is unreachable (or one connection broke): say so once, and let the
** retry timer close what is left and try again after the backoff. Never
** calls hiredis: this runs inside its callbacks.
*/
static void bp_down(struct backplane *bp, const char *why)
{
    int was_up = bp->stats.up;
    if (bp->stopping)
        return;
    bp->sub_ready = bp->pub_ready = 0;
    bp->stats.up = 0;
    bp->pending = 0;
    if (why && (was_up || bp->backoff == 0) && !ev_is_active(&bp->retry))
        bp_event(bp, 0, why);
    if (!ev_is_active(&bp->retry)) {
        bp->waiting = 0;
        ev_timer_set(&bp->retry, 0., 0.);
        ev_timer_start(loop_get(), &bp->retry);
    }
}

static redisAsyncContext *bp_open(struct backplane *bp)
{
    redisAsyncContext *ac = bp->path ? redisAsyncConnectUnix(bp->path)
                                     : redisAsyncConnect(bp->host, bp->port);
    if (!ac)
        return NULL;
    if (ac->err) {
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = bp;
    redisLibevAttach(loop_get(), ac);
    redisAsyncSetConnectCallback(ac, bp_on_connect);
    redisAsyncSetDisconnectCallback(ac, bp_on_disconnect);
    return ac;
}

static void bp_connect(struct backplane *bp)
{
    bp->sub = bp_open(bp);
    bp->pub = bp_open(bp);
    if (!bp->sub || !bp->pub)
        bp_down(bp, "redis: cannot open a connection");
}

struct backplane *backplane_start(struct pubsub *ps, const struct backplane_params *p,
                                  backplane_event_fn on_event, void *arg)
{
    struct backplane *bp = calloc(1, sizeof *bp);
    if (!bp)
        return NULL;
    bp->bridge.publish = bp_publish;
    bp->bridge.topic_first = bp_topic_first;
    bp->bridge.topic_last = bp_topic_last;
    bp->ps = ps;
    bp->host = bp_strdup(p->host ? p->host : "127.0.0.1");
    bp->path = bp_strdup(p->path);
    bp->password = bp_strdup(p->password);
    bp->username = bp_strdup(p->username);
    bp->prefix = bp_strdup(p->prefix ? p->prefix : "luaws");
    if (!bp->host || !bp->prefix || (p->path && !bp->path) || (p->password && !bp->password) ||
        (p->username && !bp->username)) {
        backplane_stop(bp);
        return NULL;
    }
    bp->prefix_len = strlen(bp->prefix);
    bp->port = p->port ? p->port : 6379;
    bp->db = p->db;
    bp->max_pending = p->max_pending ? p->max_pending : 100000;
    bp->on_event = on_event;
    bp->arg = arg;
    if (RAND_bytes(bp->id, sizeof bp->id) != 1) {
        uint64_t x = (uint64_t)getpid() * 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)bp;
        memcpy(bp->id, &x, sizeof bp->id);
    }
    ev_init(&bp->retry, bp_retry_cb);
    pubsub_bridge_add(ps, &bp->bridge);   /* topics that exist: subscribed once up */
    bp_connect(bp);
    return bp;
}

void backplane_stop(struct backplane *bp)
{
    struct ev_loop *loop = loop_get();
    if (!bp)
        return;
    bp->stopping = 1;
    if (bp->ps)
        pubsub_bridge_remove(bp->ps, &bp->bridge);
    ev_timer_stop(loop, &bp->retry);
    /* Free at once: callbacks still queued in hiredis would see a backplane
     * that is gone (redisAsyncFree calls them with a NULL reply first, and
     * bp_on_* ignore NULL replies; the disconnect callback sees stopping). */
    if (bp->sub) {
        redisAsyncContext *ac = bp->sub;
        bp->sub = NULL;
        redisAsyncFree(ac);
    }
    if (bp->pub) {
        redisAsyncContext *ac = bp->pub;
        bp->pub = NULL;
        redisAsyncFree(ac);
    }
    ws_buf_free(&bp->scratch);
    free(bp->host);
    free(bp->path);
    free(bp->password);
    free(bp->username);
    free(bp->prefix);
    free(bp);
}

const struct backplane_stats *backplane_stats(const struct backplane *bp)
{
    return &bp->stats;
}
