/* SPDX-License-Identifier: MIT
 *
 * hex.h -- the value of a hexadecimal digit, for the parsers that read one
 * (IPv6 groups in addr.c, chunk sizes in http.c).
 */
#ifndef LUAWS_PROTO_HEX_H
#define LUAWS_PROTO_HEX_H

/* 0-15 for 0-9, a-f, A-F; -1 for anything else. */
static inline int ws_hexval(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

#endif
