/* SPDX-License-Identifier: MIT
 *
 * handshake.h -- RFC 6455 §4.2.1/§4.2.2: is this request a valid WebSocket
 * opening handshake, and the server's answer; §4.1/§4.2.2 for the client side.
 *
 * The checks return the HTTP status a server answers with, so the caller only
 * writes it: 400 for a malformed upgrade, 405 for a method other than GET, 426
 * (with Sec-WebSocket-Version: 13) for another protocol version. App policy
 * (routes, origins, auth, subprotocol choice) is not here: it is Lua's.
 */
#ifndef LUAWS_HANDSHAKE_H
#define LUAWS_HANDSHAKE_H

#include "proto/http.h"

/* Length of Sec-WebSocket-Accept and of a client key, both base64. */
#define WS_ACCEPT_LEN 28
#define WS_KEY_LEN 24

/* 1 if the request asks for a WebSocket upgrade at all (an Upgrade header with
 * the token "websocket"); such requests get handshake checks, others are plain
 * HTTP. */
int ws_handshake_is_upgrade(const struct ws_http_head *req);

/* Check an upgrade request: GET, HTTP/1.1 or later, Host present, Upgrade has
 * "websocket", Connection has "upgrade", Sec-WebSocket-Version is 13 and
 * Sec-WebSocket-Key is base64 of exactly 16 bytes. Returns 0 if it is valid,
 * else the status to answer (400, 405, 426). *why gets a short reason. */
int ws_handshake_check(const struct ws_http_head *req, const char **why);

/* Sec-WebSocket-Accept for a key: base64(SHA-1(key + GUID)), §4.2.2 step 5.4.
 * out gets WS_ACCEPT_LEN characters and a NUL. Returns WS_OK, WS_ETLS if
 * the digest failed, or WS_ENOMEM. */
int ws_accept_key(const char *key, size_t key_len, char out[WS_ACCEPT_LEN + 1]);

/* A fresh random client key (base64 of 16 random bytes) + NUL. WS_OK or WS_ETLS. */
int ws_client_key(char out[WS_KEY_LEN + 1]);

#endif
