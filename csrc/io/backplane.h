/* SPDX-License-Identifier: MIT
 *
 * backplane.h -- a server's topics across processes and machines through
 * Redis pub/sub (hiredis async, on the same libev loop).
 *
 * A backplane is a pubsub_bridge on one server's topic table: every local
 * publish also goes out as PUBLISH prefix:topic, and the process SUBSCRIBEs
 * to the channel of each topic while it has a local subscriber (reference
 * counted by the topic table: SUBSCRIBE on the first, UNSUBSCRIBE after the
 * last). Two Redis connections: one subscribes, one publishes. A message
 * carries the publishing process's random id, so the copy Redis sends back
 * to its own publisher is skipped: local subscribers get a message once.
 *
 * When Redis goes away, local traffic goes on; publishes meanwhile are
 * counted as dropped, never lost silently; the backplane reconnects with
 * capped exponential backoff and subscribes again to every topic. Its owner
 * hears of each change of state through a hook.
 */
#ifndef LUAWS_IO_BACKPLANE_H
#define LUAWS_IO_BACKPLANE_H

#include <stddef.h>
#include <stdint.h>

#include "io/pubsub.h"

struct backplane;

/* Where Redis is and how to log in. */
struct backplane_params {
    const char *host;             /* TCP host, or NULL with path */
    int port;
    const char *path;             /* unix socket path, or NULL */
    const char *password;         /* AUTH, or NULL */
    const char *username;         /* AUTH username password (Redis 6 ACL), or NULL */
    int db;                       /* SELECT on the publishing connection (pub/sub ignores it) */
    const char *prefix;           /* channels are prefix:topic */
    size_t max_pending;           /* PUBLISHes awaiting a reply before more are dropped */
};

struct backplane_stats {
    uint64_t published;           /* PUBLISHes Redis acknowledged */
    uint64_t received;            /* messages from other processes delivered locally */
    uint64_t dropped;             /* publishes not sent: Redis down, or too many pending */
    uint64_t failed;              /* PUBLISHes sent that Redis answered with an error or never */
    uint64_t reconnects;          /* times it came back after being down */
    int up;                       /* 1 while both connections are ready */
};

/* Told when the backplane goes up or down: detail says why ("connected",
 * "Connection refused", ...). */
typedef void (*backplane_event_fn)(struct backplane *bp, int up, const char *detail, void *arg);

/* Attach a backplane to a server's topic table and start connecting.
 * NULL if out of memory. The strings are copied. */
struct backplane *backplane_start(struct pubsub *ps, const struct backplane_params *p,
                                  backplane_event_fn on_event, void *arg);

/* Detach, disconnect and free (the server is going). */
void backplane_stop(struct backplane *bp);

const struct backplane_stats *backplane_stats(const struct backplane *bp);

#endif
