/* SPDX-License-Identifier: MIT
 *
 * metrics.h -- the counts a server keeps for Prometheus beyond the plain
 * totals of struct conn_stats: refusals by status, closes by code, the
 * handshake and close durations as histograms, PROXY headers refused, TLS
 * handshakes. Counted where they happen (conn.c, conn_http.c, server.c);
 * formatting is the Lua layer's (lua/luaws/metrics.lua).
 *
 * Fixed arrays, no allocation: a status or close code outside the table is
 * counted as "other", so a peer cannot grow the set of series.
 */
#ifndef LUAWS_IO_METRICS_H
#define LUAWS_IO_METRICS_H

#include <stdint.h>

/* The statuses refusals are counted under (the last slot: any other). */
#define METRICS_STATUSES 16
extern const int metrics_status[METRICS_STATUSES];     /* 0 in the last slot */

/* The close codes closes are counted under (the last slot: any other). */
#define METRICS_CODES 18
extern const int metrics_code[METRICS_CODES];          /* 0 in the last slot */

/* Histogram bucket upper bounds, in seconds (+Inf is count). */
#define METRICS_BUCKETS 12
extern const double metrics_handshake_le[METRICS_BUCKETS];
extern const double metrics_close_le[METRICS_BUCKETS];

struct metrics_hist {
    uint64_t bucket[METRICS_BUCKETS];   /* not cumulative: the formatter sums */
    uint64_t count;
    double sum;
};

struct metrics {
    uint64_t refused[METRICS_STATUSES];   /* by metrics_status */
    uint64_t closes[METRICS_CODES];       /* by metrics_code */
    struct metrics_hist handshake;        /* accept to 101 */
    struct metrics_hist close;            /* close begun (CLOSING) to the socket closed */
    uint64_t proxy_errors;                /* connections dropped for a bad PROXY header */
    uint64_t tls_handshakes;              /* TLS handshakes that came through to HTTP */
    uint64_t tls_failed;                  /* TLS connections that failed before a request */
};

/* Count one refusal answered with status. */
void metrics_refused(struct metrics *m, int status);

/* Count one close of an opened connection with code, which took secs in
 * CLOSING (secs < 0: it never was, e.g. a dropped socket). */
void metrics_closed(struct metrics *m, unsigned code, double secs);

/* Add one observation of v seconds to h (bounds le). */
void metrics_observe(struct metrics_hist *h, const double *le, double v);

#endif
