/* SPDX-License-Identifier: MIT
 *
 * workers.h -- one server on N processes of one machine: a master that
 * supervises worker processes sharing its listening sockets, and the relay
 * that carries publishes between the workers. The design, and why it is not
 * SO_REUSEPORT, is at the top of workers.c.
 *
 * The master is the script's own process. workers_master_run stops its
 * listeners accepting (the sockets stay open: the kernel queues connections
 * for the workers), starts cfg->n workers with fork + exec of the same
 * interpreter and arguments, and runs a poll() loop of its own (never the
 * libev loop, whose timers and servers must not run here) until every worker
 * is gone after SIGTERM/SIGINT.
 *
 * A worker finds what its master handed it in its environment
 * (workers_env_init): its number, the listening sockets (per server, in
 * listen order) and its end of the relay. luaws.listen adopts the next
 * entry (workers_next_fds) instead of binding; luaws.run starts the relay
 * (workers_worker_start) and then runs the loop as a single process does.
 *
 * No Lua here: lua/workers.c is the binding.
 */
#ifndef LUAWS_IO_WORKERS_H
#define LUAWS_IO_WORKERS_H

#include <stddef.h>

struct server;

/* Most workers a master runs (a typo must not fork a million processes). */
#define WORKERS_MAX 1024

/* Bytes queued for one relay peer (the master, or one worker in the
 * master) before records are dropped and counted; also the largest record. */
#define WORKERS_RELAY_CAP ((size_t)64 << 20)

struct workers_config {
    int n;                /* workers, 1..WORKERS_MAX */
    double grace;         /* a worker's shutdown grace: SIGKILL comes grace + 5 s after SIGTERM */
    double reload_grace;  /* how long an old worker serves its connections after a reload */
};

/* Read what a master put in the environment (LUAWS_WORKER,
 * LUAWS_LISTEN_FDS, LUAWS_RELAY_FD) and take it out, so that a process
 * the worker starts is not mistaken for a worker. Idempotent. */
void workers_env_init(void);

/* This process's worker number, 1..N, or 0 when it is not a worker. */
int workers_id(void);

/* The inherited listening sockets of the next luaws.listen call (the k-th
 * call gets the k-th entry): up to max descriptors in fds. Returns their
 * count (0: the master had closed that server), or -1 when there is no
 * entry (not a worker, or more calls than the master made). */
int workers_next_fds(int *fds, int max);

/* In a worker, as luaws.run starts: connect the relay to every listed
 * server's topics but those in skip (a server with a backplane, which
 * reaches every worker already), watch SIGUSR2 (drain: stop accepting at
 * once, shut down gracefully after reload_grace seconds, or as soon as no
 * connection is left), and tell the master this worker is ready. grace is
 * the shutdown's grace. Idempotent. WS_OK or WS_EIO with err. */
int workers_worker_start(double grace, double reload_grace, struct server *const *skip, int nskip,
                         char *err, size_t errlen);

/* In the master: run the workers until a SIGTERM/SIGINT has stopped them
 * all, then close the listening sockets. Blocks; calls no Lua. WS_OK, or
 * WS_EIO with err when it cannot start (no /proc, no signalfd). */
int workers_master_run(const struct workers_config *cfg, char *err, size_t errlen);

/* Online CPUs (at least 1): workers = "auto". */
int workers_online_cpus(void);

/* Stop the worker's relay watchers and free its buffers (lua_close, before
 * the loop and the servers go). */
void workers_reset(void);

#endif
