/* SPDX-License-Identifier: MIT
 *
 * pubsub.c -- topic table and fan-out (see pubsub.h).
 *
 * The table is a chained hash (FNV-1a) that doubles at one topic per bucket.
 * A subscription is one small node on two lists: its topic's (doubly
 * linked, so leaving is O(1)) and its connection's (singly linked: a
 * connection has few topics). A topic without subscribers is freed.
 *
 * Publishing may run Lua (a drain handler fired by a flush) which may
 * unsubscribe: while a publish runs, a subscription that leaves is only
 * marked (c = NULL) and taken off its topic afterwards, so the walk never
 * meets freed memory.
 */
#include "io/pubsub.h"

#include <stdlib.h>
#include <string.h>

#include "io/conn.h"
#include "proto/frame.h"

struct pubsub_topic {
    struct pubsub_topic *hnext;
    uint32_t hash;
    size_t nsubs;
    struct pubsub_sub *subs;
    size_t len;
    char name[];
};

static uint32_t pubsub_hash(const char *p, size_t n)
{
    uint32_t h = 2166136261u;
    while (n--) {
        h ^= (uint8_t)*p++;
        h *= 16777619u;
    }
    return h;
}

void pubsub_init(struct pubsub *ps, size_t max_topics, size_t max_per_conn)
{
    memset(ps, 0, sizeof *ps);
    ps->max_topics = max_topics;
    ps->max_per_conn = max_per_conn;
}

static struct pubsub_topic *pubsub_find(const struct pubsub *ps, const char *name, size_t len,
                                        uint32_t h)
{
    struct pubsub_topic *t;
    if (!ps->nbuckets)
        return NULL;
    for (t = ps->buckets[h & (ps->nbuckets - 1)]; t; t = t->hnext)
        if (t->hash == h && t->len == len && memcmp(t->name, name, len) == 0)
            return t;
    return NULL;
}

/* Double the buckets (or make the first 16). 0 if out of memory. */
static int pubsub_grow(struct pubsub *ps)
{
    size_t n = ps->nbuckets ? ps->nbuckets * 2 : 16, i;
    struct pubsub_topic **b = calloc(n, sizeof *b);
    if (!b)
        return 0;
    for (i = 0; i < ps->nbuckets; i++) {
        struct pubsub_topic *t = ps->buckets[i], *next;
        for (; t; t = next) {
            next = t->hnext;
            t->hnext = b[t->hash & (n - 1)];
            b[t->hash & (n - 1)] = t;
        }
    }
    free(ps->buckets);
    ps->buckets = b;
    ps->nbuckets = n;
    return 1;
}

static void pubsub_unlink_topic(struct pubsub *ps, struct pubsub_topic *t)
{
    struct pubsub_topic **pp = &ps->buckets[t->hash & (ps->nbuckets - 1)];
    while (*pp != t)
        pp = &(*pp)->hnext;
    *pp = t->hnext;
    ps->ntopics--;
    {
        struct pubsub_bridge *b;
        for (b = ps->bridges; b; b = b->next)
            if (b->topic_last)
                b->topic_last(b, ps, t->name, t->len);
    }
    free(t);
}

/* Take s off its topic's list (the topic goes with its last subscriber). */
static void pubsub_detach(struct pubsub *ps, struct pubsub_sub *s)
{
    struct pubsub_topic *t = s->topic;
    if (s->tprev)
        s->tprev->tnext = s->tnext;
    else
        t->subs = s->tnext;
    if (s->tnext)
        s->tnext->tprev = s->tprev;
    if (--t->nsubs == 0)
        pubsub_unlink_topic(ps, t);
    free(s);
}

/* A subscription leaves: at once, or after the publish under way. */
static void pubsub_leave(struct pubsub *ps, struct pubsub_sub *s)
{
    if (ps->busy) {
        s->c = NULL;
        s->cnext = ps->zombies;
        ps->zombies = s;
    } else {
        pubsub_detach(ps, s);
    }
}

int pubsub_subscribe(struct pubsub *ps, struct pubsub_sub **subs, struct conn *c,
                     const char *topic, size_t len, const char **why)
{
    uint32_t h = pubsub_hash(topic, len);
    struct pubsub_topic *t;
    struct pubsub_sub *s;
    size_t mine = 0;
    for (s = *subs; s; s = s->cnext, mine++)
        if (s->topic->hash == h && s->topic->len == len && memcmp(s->topic->name, topic, len) == 0)
            return WS_OK;   /* already */
    if (ps->max_per_conn && mine >= ps->max_per_conn) {
        *why = "max_topics_per_connection";
        return WS_ELIMIT;
    }
    t = pubsub_find(ps, topic, len, h);
    if (!t) {
        if (ps->max_topics && ps->ntopics >= ps->max_topics) {
            *why = "max_topics";
            return WS_ELIMIT;
        }
        if (ps->ntopics >= ps->nbuckets && !pubsub_grow(ps))
            return WS_ENOMEM;
        if (!(t = malloc(sizeof *t + len + 1)))
            return WS_ENOMEM;
        t->hash = h;
        t->nsubs = 0;
        t->subs = NULL;
        t->len = len;
        memcpy(t->name, topic, len);
        t->name[len] = '\0';
        t->hnext = ps->buckets[h & (ps->nbuckets - 1)];
        ps->buckets[h & (ps->nbuckets - 1)] = t;
        ps->ntopics++;
        {
            struct pubsub_bridge *b;
            for (b = ps->bridges; b; b = b->next)
                if (b->topic_first)
                    b->topic_first(b, ps, t->name, t->len);
        }
    }
    if (!(s = malloc(sizeof *s))) {
        if (t->nsubs == 0)
            pubsub_unlink_topic(ps, t);
        return WS_ENOMEM;
    }
    s->topic = t;
    s->c = c;
    s->tprev = NULL;
    s->tnext = t->subs;
    if (t->subs)
        t->subs->tprev = s;
    t->subs = s;
    t->nsubs++;
    s->cnext = *subs;
    *subs = s;
    return WS_OK;
}

int pubsub_unsubscribe(struct pubsub *ps, struct pubsub_sub **subs, const char *topic, size_t len)
{
    struct pubsub_sub **pp;
    for (pp = subs; *pp; pp = &(*pp)->cnext) {
        struct pubsub_sub *s = *pp;
        if (s->topic->len == len && memcmp(s->topic->name, topic, len) == 0) {
            *pp = s->cnext;
            pubsub_leave(ps, s);
            return 1;
        }
    }
    return 0;
}

void pubsub_leave_all(struct pubsub *ps, struct pubsub_sub **subs)
{
    while (*subs) {
        struct pubsub_sub *s = *subs;
        *subs = s->cnext;
        pubsub_leave(ps, s);
    }
}

size_t pubsub_publish(struct pubsub *ps, const char *topic, size_t len, int opcode,
                      const void *data, size_t dlen, const struct conn *except)
{
    size_t n = 0;
    struct conn_fanout f;
    struct pubsub_topic *t = pubsub_find(ps, topic, len, pubsub_hash(topic, len));
    struct pubsub_sub *s;
    if (!t)
        return 0;
    conn_fanout_start(&f, opcode, data, dlen);
    ps->busy++;
    for (s = t->subs; s; s = s->tnext) {
        struct conn *c = s->c;
        if (!c || c == except || c->state != CONN_OPEN)
            continue;
        if (conn_fanout_send(c, &f) == WS_OK)
            n++;
    }
    conn_fanout_end(&f);
    if (--ps->busy == 0) {
        while (ps->zombies) {
            s = ps->zombies;
            ps->zombies = s->cnext;
            pubsub_detach(ps, s);
        }
    }
    return n;
}

size_t pubsub_publish_all(struct pubsub *ps, const char *topic, size_t len, int opcode,
                          const void *data, size_t dlen, const struct conn *except)
{
    size_t n = pubsub_publish(ps, topic, len, opcode, data, dlen, except);
    struct pubsub_bridge *b;
    for (b = ps->bridges; b; b = b->next)
        b->publish(b, ps, topic, len, opcode, data, dlen);
    return n;
}

void pubsub_bridge_add(struct pubsub *ps, struct pubsub_bridge *b)
{
    size_t i;
    b->next = ps->bridges;
    ps->bridges = b;
    if (!b->topic_first)
        return;
    for (i = 0; i < ps->nbuckets; i++) {
        const struct pubsub_topic *t;
        for (t = ps->buckets[i]; t; t = t->hnext)
            b->topic_first(b, ps, t->name, t->len);
    }
}

void pubsub_bridge_remove(struct pubsub *ps, struct pubsub_bridge *b)
{
    struct pubsub_bridge **pp;
    for (pp = &ps->bridges; *pp; pp = &(*pp)->next)
        if (*pp == b) {
            *pp = b->next;
            return;
        }
}

size_t pubsub_count(const struct pubsub *ps, const char *topic, size_t len)
{
    const struct pubsub_topic *t = pubsub_find(ps, topic, len, pubsub_hash(topic, len));
    return t ? t->nsubs : 0;
}

void pubsub_each_topic(const struct pubsub *ps, void (*fn)(void *arg, const char *topic, size_t len),
                       void *arg)
{
    size_t i;
    for (i = 0; i < ps->nbuckets; i++) {
        const struct pubsub_topic *t;
        for (t = ps->buckets[i]; t; t = t->hnext)
            fn(arg, t->name, t->len);
    }
}

const char *pubsub_topic_name(const struct pubsub_sub *s, size_t *len)
{
    *len = s->topic->len;
    return s->topic->name;
}

void pubsub_free(struct pubsub *ps)
{
    size_t i;
    for (i = 0; i < ps->nbuckets; i++) {
        struct pubsub_topic *t = ps->buckets[i], *next;
        for (; t; t = next) {
            struct pubsub_sub *s = t->subs, *snext;
            next = t->hnext;
            for (; s; s = snext) {
                snext = s->tnext;
                free(s);
            }
            free(t);
        }
    }
    free(ps->buckets);
    ps->buckets = NULL;
    ps->nbuckets = 0;
    ps->ntopics = 0;
    ps->zombies = NULL;
    ps->bridges = NULL;
}
