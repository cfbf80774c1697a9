/* SPDX-License-Identifier: MIT
 *
 * pubsub.h -- topics in one process: which connections subscribe to what,
 * and publishing a message to a topic's subscribers.
 *
 * A struct pubsub is one server's topic table: topic name -> its
 * subscribers (an intrusive list), and each connection keeps the list of its
 * own few topics (the owner holds its head), so it leaves them all at close
 * in O(topics). Publishing encodes the frame header once and hands each
 * subscriber the same bytes: straight to its socket when nothing waits
 * there, else a reference to one shared block (conn_send_shared), so a
 * message costs one copy however many subscribers hold it. A subscriber over
 * its max_backpressure is closed with 1008 like any other; nobody waits for
 * the slowest. The fan-out is this C loop: no Lua call per subscriber.
 *
 * Hooks tell the owner when a topic gets its first local subscriber and
 * loses its last, which is when a backplane subscribes and unsubscribes.
 */
#ifndef LUAWS_IO_PUBSUB_H
#define LUAWS_IO_PUBSUB_H

#include <stddef.h>
#include <stdint.h>

struct conn;
struct pubsub;
struct pubsub_topic;

/* Something that carries a publish beyond this process: the workers' relay,
 * a Redis backplane. pubsub_publish_all hands it every publish after the
 * local delivery; what it brings back from elsewhere it delivers with
 * pubsub_publish (local only), so nothing is delivered twice. */
struct pubsub_bridge {
    void (*publish)(struct pubsub_bridge *b, struct pubsub *ps, const char *topic, size_t len,
                    int opcode, const void *data, size_t dlen);
    /* a topic got its first local subscriber / lost its last (may be NULL) */
    void (*topic_first)(struct pubsub_bridge *b, struct pubsub *ps, const char *topic, size_t len);
    void (*topic_last)(struct pubsub_bridge *b, struct pubsub *ps, const char *topic, size_t len);
    struct pubsub_bridge *next;
};

/* One connection on one topic. */
struct pubsub_sub {
    struct pubsub_topic *topic;
    struct conn *c;                   /* NULL once it left during a publish */
    struct pubsub_sub *tprev, *tnext; /* the topic's subscribers */
    struct pubsub_sub *cnext;         /* the connection's topics */
};

struct pubsub {
    struct pubsub_topic **buckets;
    size_t nbuckets;                  /* a power of two, or 0 before the first topic */
    size_t ntopics;
    size_t max_topics;                /* 0: no limit */
    size_t max_per_conn;              /* 0: no limit */
    int busy;                         /* publishes under way: leaving is deferred */
    struct pubsub_sub *zombies;       /* subscriptions that left during a publish */
    struct pubsub_bridge *bridges;    /* where publishes go beyond this process */
};

/* An empty table with these limits (0 = none). */
void pubsub_init(struct pubsub *ps, size_t max_topics, size_t max_per_conn);

/* Subscribe c (whose topic list is *subs) to topic. WS_OK (also when it was
 * subscribed already), WS_ELIMIT (max_per_conn or max_topics reached: *why
 * says which), WS_ENOMEM. */
int pubsub_subscribe(struct pubsub *ps, struct pubsub_sub **subs, struct conn *c,
                     const char *topic, size_t len, const char **why);

/* Unsubscribe from topic: 1 if it was subscribed, else 0. */
int pubsub_unsubscribe(struct pubsub *ps, struct pubsub_sub **subs, const char *topic, size_t len);

/* Leave every topic of the list (at close). */
void pubsub_leave_all(struct pubsub *ps, struct pubsub_sub **subs);

/* Send data as one message (opcode WS_OP_TEXT or WS_OP_BINARY) to every open
 * subscriber of topic but except (NULL: all). Returns how many it reached. */
size_t pubsub_publish(struct pubsub *ps, const char *topic, size_t len, int opcode,
                      const void *data, size_t dlen, const struct conn *except);

/* pubsub_publish, then every bridge: the publish of a script (server:publish,
 * ws:publish). Returns the local count. */
size_t pubsub_publish_all(struct pubsub *ps, const char *topic, size_t len, int opcode,
                          const void *data, size_t dlen, const struct conn *except);

/* Add a bridge (it is told of the topics that already have subscribers) /
 * take it off. */
void pubsub_bridge_add(struct pubsub *ps, struct pubsub_bridge *b);
void pubsub_bridge_remove(struct pubsub *ps, struct pubsub_bridge *b);

/* Subscribers of topic (0 if no such topic). */
size_t pubsub_count(const struct pubsub *ps, const char *topic, size_t len);

/* Call fn for each topic that has subscribers (a backplane re-subscribing). */
void pubsub_each_topic(const struct pubsub *ps, void (*fn)(void *arg, const char *topic, size_t len),
                       void *arg);

/* The name of a subscription's topic. */
const char *pubsub_topic_name(const struct pubsub_sub *s, size_t *len);

/* Free every topic and subscription (the server is going; its connections
 * are gone or freed quietly). */
void pubsub_free(struct pubsub *ps);

#endif
