/*
 * Pot-bridge line protocol, version 1 (docs/hardware.md, "Pot-bridge line protocol").
 *
 * Hardware independent: it compiles for the ATmega328P and for the host (unit tests).  The
 * firmware feeds every received byte to pb_feed(); when a line is complete the reply is written
 * to the caller's buffer and its length returned.  The parts are reached through a pb_bus_t.
 *
 *   line     = body "*" HH LF       HH = XOR of the body's bytes (either case accepted, upper sent)
 *   IDN?                  -> IDN <text>
 *   CFG?                  -> CFG <n_channels> <n_taps>
 *   SET <ch> <tap>        -> OK <ch> <tap>
 *   GET <ch>              -> TAP <ch> <tap>
 *   SETM <ch>:<tap> ...   -> OKM <ch>:<tap> ...
 *   GETM <ch> ...         -> TAPM <ch>:<tap> ...
 *   anything else         -> ERR <code> <text>
 *
 * Checks, in this order (the first failing one answers):
 *   7  the line is longer than PB_LINE_MAX characters (LF and one CR before it not counted);
 *      the rest of the line is discarded up to its LF, then ERR 7 is sent
 *   1  the line does not end in "*HH", HH is not hex, or HH differs from the body's XOR; also
 *      when bytes of the line were lost (UART overrun/framing error: pb_mark_corrupt)
 *   3  the body holds a byte outside 0x20..0x7E
 *   2  the keyword (text up to the first space) is not one of the six
 *   3  wrong number of fields, an empty field (double/leading/trailing space), a field that is not
 *      a decimal number, a malformed pair, a channel repeated in SETM  (all fields checked first)
 *   4  a channel >= n_channels (first offending field from the left)
 *   5  a tap >= n_taps
 *   6  the bus reported a fault, or the part reads back another tap than was written
 *   7  the reply would not fit PB_LINE_MAX (GETM of many channels)
 * An empty line (LF, or CR LF, alone) is ignored: no reply.
 */
#ifndef POTBRIDGE_PROTOCOL_H
#define POTBRIDGE_PROTOCOL_H

#include <stdint.h>

#define PB_LINE_MAX 128                 /* longest line either way: body + "*HH" */
#define PB_REPLY_SIZE (PB_LINE_MAX + 2) /* + LF + NUL */
#define PB_MAX_ITEMS 64                 /* pairs/channels in one SETM/GETM (a 128-char line holds <= 61) */
#define PB_MAX_CHANNELS 255

enum {
    PB_ERR_CHECKSUM = 1,
    PB_ERR_COMMAND = 2,
    PB_ERR_SYNTAX = 3,
    PB_ERR_CHANNEL = 4,
    PB_ERR_TAP = 5,
    PB_ERR_PART = 6,
    PB_ERR_TOO_LONG = 7,
};

/* The parts, as the protocol sees them.  Channels passed in are valid and distinct. */
typedef struct pb_bus {
    uint8_t n_channels;
    uint16_t n_taps;
    const char *identity; /* IDN text (in flash on the AVR: PB_FLASH) */
    /* write taps[i] to channels[i] for i < n; held[i] = the tap the part holds afterwards (read back
       from the part where the part allows it, else what was written); 0 = ok, else a bus fault */
    uint8_t (*write)(uint8_t n, const uint8_t *channels, const uint16_t *taps, uint16_t *held);
    /* held[i] = tap of channels[i]; 0 = ok, else a bus fault */
    uint8_t (*read)(uint8_t n, const uint8_t *channels, uint16_t *held);
} pb_bus_t;

typedef struct pb_ctx {
    const pb_bus_t *bus;
    uint8_t len;      /* characters of the current line buffered */
    uint8_t overflow; /* the current line is longer than PB_LINE_MAX: ERR 7 at its LF */
    uint8_t corrupt;  /* bytes of the current line were lost: ERR 1 at its LF */
    char line[PB_LINE_MAX + 1];
} pb_ctx_t;

#ifdef __AVR__
#include <avr/pgmspace.h>
#define PB_FLASH PROGMEM
#else
#define PB_FLASH
#endif

void pb_init(pb_ctx_t *ctx, const pb_bus_t *bus);
/* Feed one received byte.  Returns the length of the reply written to `reply` (a full line with
   its LF, NUL-terminated; at most PB_REPLY_SIZE bytes with the NUL), or 0: nothing to send. */
uint8_t pb_feed(pb_ctx_t *ctx, uint8_t byte, char *reply);
/* The receiver lost bytes of the current line (overrun, framing error): answer it with ERR 1. */
void pb_mark_corrupt(pb_ctx_t *ctx);
/* Answer one complete line (without LF / CR, len <= PB_LINE_MAX).  Returns the reply length. */
uint8_t pb_handle_line(const pb_bus_t *bus, const char *line, uint8_t len, char *reply);
/* NMEA 0183 checksum: XOR of n bytes. */
uint8_t pb_checksum(const char *s, uint8_t n);

#endif
