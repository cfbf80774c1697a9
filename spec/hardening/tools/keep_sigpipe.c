/* SPDX-License-Identifier: MIT
 *
 * keep_sigpipe.c -- an LD_PRELOAD shim for one control experiment in
 * spec/hardening/faults_spec.lua: it refuses every request to change what
 * SIGPIPE does (signal, sigaction), so SIGPIPE keeps its default action and
 * kills the process. A server run with it shows that the spec's peers do
 * make the server write into broken sockets; the same peers must leave the
 * real server (which ignores SIGPIPE) running.
 *
 *   cc -shared -fPIC -o keep_sigpipe.so keep_sigpipe.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stddef.h>

sighandler_t signal(int sig, sighandler_t handler)
{
    static sighandler_t (*real)(int, sighandler_t);
    if (sig == SIGPIPE)
        return SIG_DFL;
    if (!real)
        real = (sighandler_t (*)(int, sighandler_t))dlsym(RTLD_NEXT, "signal");
    return real(sig, handler);
}

int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    static int (*real)(int, const struct sigaction *, struct sigaction *);
    if (!real)
        real = (int (*)(int, const struct sigaction *, struct sigaction *))dlsym(RTLD_NEXT, "sigaction");
    if (sig == SIGPIPE)
        act = NULL;   /* report the current action, change nothing */
    return real(sig, act, old);
}
