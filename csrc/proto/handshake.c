/* SPDX-License-Identifier: MIT
 *
 * handshake.c -- the RFC 6455 opening handshake: the server's checks on an
 * upgrade request (§4.2.1), its Sec-WebSocket-Accept (§4.2.2 step 5.4), and
 * the client's random key (§4.1).
 *
 * The checks answer with the HTTP status the server should send and a short
 * reason for its log; they look only at the parsed head. It does not choose
 * subprotocols or extensions, check Origin, or write the response: those are
 * policy for the layers above.
 */
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "proto/handshake.h"

/* §1.3: the GUID appended to the key before hashing. */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
#define WS_GUID_LEN (sizeof ws_guid - 1)

/* The first header of known name k is a list holding token (case-insensitive). */
static int header_has_token(const struct ws_http_head *h, int k, const char *token)
{
    size_t len;
    const char *v = ws_http_known_value(h, k, &len);

    return v != NULL && ws_http_has_token(v, len, token);
}

/* Upgrade: websocket (§4.2.1 item 3) marks a WebSocket request; requests
 * without it are ordinary HTTP and the caller may serve them otherwise. */
int ws_handshake_is_upgrade(const struct ws_http_head *req)
{
    return header_has_token(req, WS_H_UPGRADE, "websocket");
}

/* RFC 4648 §4: the bytes of the alphabet (the pad is not one). */
#define A1(c) [c] = 1
static const unsigned char b64_char[256] = {
    A1('A'), A1('B'), A1('C'), A1('D'), A1('E'), A1('F'), A1('G'), A1('H'), A1('I'), A1('J'),
    A1('K'), A1('L'), A1('M'), A1('N'), A1('O'), A1('P'), A1('Q'), A1('R'), A1('S'), A1('T'),
    A1('U'), A1('V'), A1('W'), A1('X'), A1('Y'), A1('Z'),
    A1('a'), A1('b'), A1('c'), A1('d'), A1('e'), A1('f'), A1('g'), A1('h'), A1('i'), A1('j'),
    A1('k'), A1('l'), A1('m'), A1('n'), A1('o'), A1('p'), A1('q'), A1('r'), A1('s'), A1('t'),
    A1('u'), A1('v'), A1('w'), A1('x'), A1('y'), A1('z'),
    A1('0'), A1('1'), A1('2'), A1('3'), A1('4'), A1('5'), A1('6'), A1('7'), A1('8'), A1('9'),
    A1('+'), A1('/'),
};
#undef A1

static int is_base64_char(char ch)
{
    return b64_char[(unsigned char)ch];
}

/*
** §4.2.1 item 5 / §4.1: the key is base64 of 16 bytes, which is always 22
** alphabet characters and "==" (24 characters). Non-zero bits in the last
** character's unused low bits are tolerated, as most decoders do.
*/
static int key_valid(const char *key, size_t len)
{
    if (len != WS_KEY_LEN)
        return 0;
    for (size_t i = 0; i < WS_KEY_LEN - 2; i++)
        if (!is_base64_char(key[i]))
            return 0;
    return key[WS_KEY_LEN - 2] == '=' && key[WS_KEY_LEN - 1] == '=';
}

/*
** §4.2.1, in the order the items are listed; the first failure decides the
** status. §4.2.2 item 4 makes a version other than 13 a 426 (the caller adds
** Sec-WebSocket-Version: 13), and a method other than GET gets 405 as RFC 9110
** §15.5.6 prescribes.
*/
int ws_handshake_check(const struct ws_http_head *req, const char **why)
{
    const char *v;
    size_t len;
    const char *dummy;

    if (why == NULL)
        why = &dummy;
    if (req->method_len != 3 || memcmp(req->method, "GET", 3) != 0) {  /* item 1; methods are case-sensitive */
        *why = "method not GET";
        return 405;
    }
    if (req->minor_version < 1) {                                      /* item 1 */
        *why = "HTTP/1.1 required";
        return 400;
    }
    if (!ws_http_known(req, WS_H_HOST)) {                              /* item 2 */
        *why = "missing Host";
        return 400;
    }
    if (!header_has_token(req, WS_H_UPGRADE, "websocket")) {           /* item 3 */
        *why = "Upgrade is not websocket";
        return 400;
    }
    if (!header_has_token(req, WS_H_CONNECTION, "upgrade")) {          /* item 4 */
        *why = "Connection lacks upgrade";
        return 400;
    }
    v = ws_http_known_value(req, WS_H_SEC_WEBSOCKET_VERSION, &len);    /* item 6 */
    if (v == NULL || len != 2 || memcmp(v, "13", 2) != 0) {
        *why = "unsupported version";
        return 426;
    }
    v = ws_http_known_value(req, WS_H_SEC_WEBSOCKET_KEY, &len);        /* item 5 */
    if (v == NULL || !key_valid(v, len)) {
        *why = "invalid Sec-WebSocket-Key";
        return 400;
    }
    *why = NULL;
    return 0;
}

/*
** base64(SHA-1(key ++ GUID)). SHA-1 is fetched from OpenSSL's provider once
** and one digest context is kept for the process and reset for each key:
** EVP_sha1() makes OpenSSL 3 fetch the implementation on every use, and
** EVP_Digest allocates a context each time (together about a sixth of an
** upgrade's user-space instructions). A process is one thread.
*/
static EVP_MD *sha1;
static EVP_MD_CTX *sha1_ctx;

/* Lua unloads the module at lua_close (dlclose): give them back then, or
 * they would be lost with the library's statics. */
__attribute__((destructor)) static void ws_accept_key_free(void)
{
    EVP_MD_CTX_free(sha1_ctx);
    EVP_MD_free(sha1);
    sha1_ctx = NULL;
    sha1 = NULL;
}

int ws_accept_key(const char *key, size_t key_len, char out[WS_ACCEPT_LEN + 1])
{
    EVP_MD_CTX *ctx;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;

    if (!sha1 && !(sha1 = EVP_MD_fetch(NULL, "SHA1", NULL)))
        return WS_ETLS;
    if (!sha1_ctx && !(sha1_ctx = EVP_MD_CTX_new()))
        return WS_ENOMEM;
    ctx = sha1_ctx;
    if (!EVP_DigestInit_ex(ctx, sha1, NULL) || !EVP_DigestUpdate(ctx, key, key_len) ||
        !EVP_DigestUpdate(ctx, ws_guid, WS_GUID_LEN) || !EVP_DigestFinal_ex(ctx, md, &md_len) ||
        md_len != 20)
        return WS_ETLS;
    EVP_EncodeBlock((unsigned char *)out, md, 20);   /* 28 characters and a NUL */
    return WS_OK;
}

/* §4.1 item 7: a nonce of 16 random bytes, base64-encoded. */
int ws_client_key(char out[WS_KEY_LEN + 1])
{
    unsigned char nonce[16];

    if (RAND_bytes(nonce, sizeof nonce) != 1)
        return WS_ETLS;
    EVP_EncodeBlock((unsigned char *)out, nonce, sizeof nonce);   /* 24 characters and a NUL */
    return WS_OK;
}
