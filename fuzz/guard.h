/* SPDX-License-Identifier: MIT
 *
 * fuzz/guard.h -- put a fuzz input right before an inaccessible page
 * (picohttpparser's test.c trick), shared by the libFuzzer targets.
 *
 * guard_put(p, n) copies n bytes so that they end exactly where a PROT_NONE
 * page begins and returns the copy. A codec that reads or writes even one
 * byte past what it was given faults at once, with or without ASan (ASan
 * does not watch memory from mmap, the guard page does). The region is
 * readable and writable, since the frame reader unmasks in place, and grows
 * when an input is larger than it. Each call overwrites the previous copy: a
 * target hands a codec one piece at a time, which also proves the codec keeps
 * no pointer into memory from an earlier call.
 *
 * It does not catch reads before the start of the copy (the bytes there are
 * mapped), and it is not thread-safe; libFuzzer runs one input at a time.
 */
#ifndef LUAWS_FUZZ_GUARD_H
#define LUAWS_FUZZ_GUARD_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static uint8_t *guard_base;   /* start of the accessible pages */
static size_t guard_room;     /* their size; the guard page follows */

/* Map room bytes (rounded up to pages) and one PROT_NONE page after them. */
static void guard_map(size_t room)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t size = (room + page - 1) / page * page;
    uint8_t *base;

    if (size == 0)
        size = page;
    base = mmap(NULL, size + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED || mprotect(base + size, page, PROT_NONE) != 0) {
        perror("guard page");
        abort();
    }
    if (guard_base != NULL)
        munmap(guard_base, guard_room + page);
    guard_base = base;
    guard_room = size;
}

/*
** Copy p[0..n) so that its last byte sits right before the guard page and
** return the copy (for n == 0, the guard page's address: nothing may be read
** there). Writable; valid until the next guard_put.
*/
static uint8_t *guard_put(const void *p, size_t n)
{
    uint8_t *dst;

    if (guard_base == NULL || n > guard_room)
        guard_map(n > 65536 ? n : 65536);
    dst = guard_base + guard_room - n;
    if (n > 0)
        memcpy(dst, p, n);
    return dst;
}

/* An invariant of the code under test: on violation say which, and abort so
 * libFuzzer records the input as a crash. */
#define FUZZ_CHECK(cond) do { \
        if (!(cond)) { \
            fprintf(stderr, "%s:%d: invariant violated: %s\n", __FILE__, __LINE__, #cond); \
            abort(); \
        } \
    } while (0)

#endif
