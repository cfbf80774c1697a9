/* SPDX-License-Identifier: MIT
 *
 * metrics.c -- see metrics.h. The tables are what a WebSocket server
 * answers or is closed with: RFC 6455 §7.4.1's codes and the HTTP statuses
 * luaws itself or a typical upgrade hook chooses.
 */
#include "io/metrics.h"

const int metrics_status[METRICS_STATUSES] = {
    400, 401, 403, 404, 405, 408, 413, 414, 426, 429, 431, 500, 501, 502, 503, 0
};

const int metrics_code[METRICS_CODES] = {
    1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 1015,
    4000, 4001, 0
};

/* A loopback handshake takes well under a millisecond, one over TLS or a
 * continent tens of them; 10 s is the default handshake_timeout. */
const double metrics_handshake_le[METRICS_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 10
};

/* A close is one round trip plus what was queued; 5 s is close_timeout. */
const double metrics_close_le[METRICS_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30
};

void metrics_observe(struct metrics_hist *h, const double *le, double v)
{
    int i;
    if (v < 0)
        v = 0;
    for (i = 0; i < METRICS_BUCKETS; i++)
        if (v <= le[i]) {
            h->bucket[i]++;
            break;
        }
    h->count++;
    h->sum += v;
}

void metrics_refused(struct metrics *m, int status)
{
    int i;
    for (i = 0; i < METRICS_STATUSES - 1 && metrics_status[i] != status; i++)
        ;
    m->refused[i]++;
}

void metrics_closed(struct metrics *m, unsigned code, double secs)
{
    int i;
    for (i = 0; i < METRICS_CODES - 1 && metrics_code[i] != (int)code; i++)
        ;
    m->closes[i]++;
    if (secs >= 0)
        metrics_observe(&m->close, metrics_close_le, secs);
}
