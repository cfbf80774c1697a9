/* SPDX-License-Identifier: MIT
 *
 * frame.h -- RFC 6455 §5 frame codec: header encoder, unmasking, and an
 * incremental reader that turns a byte stream into message events.
 *
 * The reader keeps its whole state in struct ws_reader (no allocation, no I/O,
 * no Lua), so it can be fed any split of the stream, one byte at a time
 * included, and fuzzed alone. Only an unfinished frame header or an unfinished
 * control frame is kept inside it; data payload is unmasked in place in the
 * caller's buffer and handed back as chunks, so the caller decides whether to
 * copy (a fragmented or split message) or not (a whole message in one read).
 *
 * Checks, in the order the bytes arrive (RFC 6455 section in brackets):
 *   RSV2-3 set; RSV1 set with no extension           -> 1002 [5.2]
 *   with permessage-deflate (ws_reader_allow_compressed), RSV1 on a
 *   control frame or a continuation frame            -> 1002 [RFC 7692 §6.1]
 *   reserved opcode 3-7, 0xB-0xF                     -> 1002 [5.2]
 *   control frame not final, or payload > 125        -> 1002 [5.5]
 *   server reading an unmasked frame                 -> 1002 [5.1]
 *   client reading a masked frame                    -> 1002 [5.1]
 *   continuation with no message started             -> 1002 [5.4]
 *   text/binary start inside a fragmented message    -> 1002 [5.4]
 *   64-bit length with the top bit set               -> 1002 [5.2]
 *   message longer than max_message                  -> 1009 [7.4.1], at the header
 *   (a compressed message: on the wire bytes, against a bound a little
 *   above max_message, since DEFLATE may add a few bytes; the inflated
 *   size is the connection's to check)
 *   text payload that is not UTF-8 (fails fast)      -> 1007 [8.1]
 *   (not for a compressed message: its inflated text is checked instead)
 *   close payload of 1 byte, or a code not allowed   -> 1002 [5.5.1, 7.4]
 *   close reason that is not UTF-8                   -> 1007 [5.5.1]
 * After an error the reader is stuck: every later feed reports it again.
 */
#ifndef LUAWS_FRAME_H
#define LUAWS_FRAME_H

#include "luaws.h"

enum ws_opcode {
    WS_OP_CONT = 0x0,    /* continuation of a fragmented message */
    WS_OP_TEXT = 0x1,    /* text data (UTF-8) */
    WS_OP_BINARY = 0x2,  /* binary data */
    WS_OP_CLOSE = 0x8,   /* close: optional 2-byte code + UTF-8 reason */
    WS_OP_PING = 0x9,    /* ping: answered with a pong of the same payload */
    WS_OP_PONG = 0xA     /* pong */
};

/* Largest header: 2 bytes + 8 length bytes + 4 mask bytes. */
#define WS_MAX_HEADER 14

struct ws_frame_header {
    uint8_t fin;          /* 1 if final fragment */
    uint8_t rsv;          /* RSV1..RSV3 as bits 2..0 */
    uint8_t opcode;       /* enum ws_opcode, or a reserved value */
    uint8_t masked;       /* 1 if a masking key follows */
    uint8_t mask[4];      /* masking key, if masked */
    uint64_t len;         /* payload length */
};

/* Parse one frame header from p[0..n). Returns its size (2..14) with *h
 * filled, or WS_PARTIAL if n is too short. It checks nothing: ws_reader does
 * the protocol checks. */
int ws_frame_header_parse(const uint8_t *p, size_t n, struct ws_frame_header *h);

/* Write a header for a frame of len payload bytes into out (at least
 * WS_MAX_HEADER bytes), with the masking key if mask is not NULL. Uses the
 * shortest length form (§5.2). Returns the number of bytes written. */
size_t ws_frame_header_encode(uint8_t *out, int fin, int opcode, uint64_t len,
                              const uint8_t *mask);

/* XOR p[0..n) with the masking key, starting at key position offset % 4.
 * Masking and unmasking are the same operation (§5.3). Word at a time. */
void ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], size_t offset);

/* Is code a close code a peer may send (§7.4.1, §7.4.2, IANA registry)?
 * 1000-1003, 1007-1014 and 3000-4999 are; 1004-1006, 1015 and the rest are not. */
int ws_close_code_valid(unsigned code);

enum ws_event_type {
    WS_EV_NONE = 0,  /* all input consumed; nothing to report */
    WS_EV_DATA,      /* a chunk of a text/binary message (data, len, fin) */
    WS_EV_CONTROL,   /* a whole ping, pong or close frame */
    WS_EV_ERROR      /* a protocol violation: close with close_code */
};

struct ws_event {
    int type;             /* enum ws_event_type */
    int opcode;           /* DATA: WS_OP_TEXT/BINARY of the message; CONTROL: its opcode */
    int fin;              /* DATA: 1 if this chunk ends the message */
    int frame_end;        /* DATA: 1 if this chunk ends its frame (fin implies it) */
    int compressed;       /* DATA: 1 if the message's first frame had RSV1 (RFC 7692 §6) */
    uint8_t *data;        /* DATA: unmasked, in the caller's buffer; CONTROL: payload
                           * (for close: the reason only), valid until the next feed */
    size_t len;
    unsigned close_code;  /* CONTROL close: peer's code, 1005 if none; ERROR: code to send */
    const char *reason;   /* ERROR: short static text for the close reason */
};

struct ws_reader {
    /* configuration, set by ws_reader_init */
    uint64_t max_message;     /* 0 = no limit */
    uint8_t expect_masked;    /* 1 for a server, 0 for a client */
    uint8_t rsv1_ok;          /* 1 once permessage-deflate was agreed */
    /* frame in progress */
    uint8_t stage;            /* private: header, payload, control payload, error */
    uint8_t hdr_len;          /* bytes of an unfinished header held in hdr */
    uint8_t ctl_len;          /* bytes of an unfinished control payload held in ctl */
    uint8_t hdr[WS_MAX_HEADER];
    struct ws_frame_header h;
    uint64_t remaining;       /* payload bytes of the current frame not yet read */
    uint64_t mask_pos;        /* payload bytes of the current frame already read */
    /* message in progress */
    uint8_t msg_opcode;       /* 0 when no data message is open, else TEXT or BINARY */
    uint8_t msg_compressed;   /* the open message's first frame had RSV1 */
    uint64_t msg_len;         /* bytes of the open message so far */
    uint32_t utf8;            /* validator state for the open text message */
    /* error, once there is one */
    unsigned err_code;
    const char *err_reason;
    uint8_t ctl[WS_MAX_CONTROL_PAYLOAD];
};

/* expect_masked: 1 for a server reading client frames, 0 for a client.
 * max_message: the largest message in bytes, 0 for no limit. */
void ws_reader_init(struct ws_reader *r, int expect_masked, uint64_t max_message);

/* Consume bytes from buf[0..n) until there is one event to report or the input
 * is used up. Returns the number of bytes consumed and fills *ev. buf is
 * written to: payload is unmasked in place.
 *
 * What comes back:
 *   WS_EV_NONE     only when all n bytes are consumed and there is nothing to
 *                  report (so n == 0 always gives NONE);
 *   WS_EV_DATA, WS_EV_CONTROL
 *                  always with at least one byte consumed (an empty frame's
 *                  event comes with the last byte of its header); call again
 *                  with the rest;
 *   WS_EV_ERROR    stop: the reader is stuck, and every later call returns 0
 *                  bytes consumed and the same error.
 * So the caller's loop is
 *
 *     for (;;) {
 *         size_t used = ws_reader_feed(r, buf, n, &ev);
 *         buf += used;
 *         n -= used;
 *         if (ev.type == WS_EV_NONE)
 *             break;                       (n is 0: read more)
 *         if (ev.type == WS_EV_ERROR) {
 *             close with ev.close_code, ev.reason;
 *             break;
 *         }
 *         handle ev;
 *     }
 *
 * and it ends because every event but an error consumes input. (A loop
 * `while (n > 0 || ev.type != WS_EV_NONE)` also ends, provided it stops on
 * WS_EV_ERROR.)
 *
 * Data: one DATA event per stretch of payload in the input; opcode is the
 * message's (TEXT/BINARY, also for continuation frames) and fin is 1 on the
 * chunk that ends the message, frame_end 1 on the chunk that ends its frame
 * (a caller that hands on frames, not messages, gathers the chunks up to
 * it). An empty final frame gives a DATA event with len 0, fin 1 and
 * frame_end 1; an empty non-final frame gives no event at all. Text is
 * validated as it arrives: the stretch holding the first invalid byte gives
 * ERROR 1007 instead of DATA, so its bytes before the bad one are never
 * reported (earlier stretches were), and no byte after the bad one is looked
 * at. Control frames come whole as one CONTROL event, also when they arrive
 * between fragments. */
size_t ws_reader_feed(struct ws_reader *r, uint8_t *buf, size_t n, struct ws_event *ev);

/* 1 while a data message is open: its first frame header has been read and
 * its final chunk not yet reported (fragmented or not). */
int ws_reader_in_message(const struct ws_reader *r);

/* permessage-deflate was agreed (on = 1): RSV1 may mark a message's first
 * frame as compressed (RFC 7692 §6). Set it before the first frame. */
void ws_reader_allow_compressed(struct ws_reader *r, int on);

/* 1 while the open message is compressed. */
static inline int ws_reader_compressed(const struct ws_reader *r) { return r->msg_opcode && r->msg_compressed; }

/* The bound on a compressed message's bytes on the wire for max_message
 * (0: none): DEFLATE adds about 5 bytes per 16 KiB stored block and a few per
 * flush, so a message at the limit that does not compress still passes. */
static inline uint64_t ws_compressed_bound(uint64_t max_message)
{
    return max_message ? max_message + (max_message >> 7) + 1024 : 0;
}

/* RSV1 in the first header byte: "Per-Message Compressed" (RFC 7692 §6). */
#define WS_RSV1 0x40

#endif
