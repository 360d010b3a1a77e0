/*
 * Byte-level model of the SPI pot parts the firmware drives (host C, no simavr dependency):
 *
 *   MCP41  MCP41xxx: one part per /CS line, one 8-bit pot, no SO pin (MISO reads 0xFF)
 *   MCP42  MCP42xxx: daisy chain of dual 8-bit pots on one /CS
 *   AD5293 AD5293: daisy chain of 10-bit pots on one /SYNC, wiper write lock (control bit C1),
 *          readback of the wiper / control register in the next frame (open-drain SDO)
 *
 * A chain is one shift register of 16 bits per part: each byte clocked in at part 0's SDI pushes
 * the chain on by 8 bits and the byte falling out of the last part's SDO is MISO.  At /CS rising
 * every part executes the word it holds if it saw a multiple of 16 clocks (else the frame is
 * ignored, as the parts do).  Every frame is logged (MOSI and MISO bytes).
 *
 * Used by the simavr harness (potsim.c) and by the host unit tests (test/test_protocol.c).
 */
#ifndef POTBRIDGE_CHAIN_H
#define POTBRIDGE_CHAIN_H

#include <stdint.h>

enum { CHAIN_MCP41 = 1, CHAIN_MCP42 = 2, CHAIN_AD5293 = 3 };

#define CHAIN_MAX_PARTS 32
#define CHAIN_FRAME_MAX 80   /* bytes kept per logged frame */
#define CHAIN_LOG 2048       /* frames kept (a ring) */

typedef struct chain_frame {
    uint8_t cs;
    uint8_t n;         /* bytes clocked (up to CHAIN_FRAME_MAX kept) */
    uint8_t executed;  /* 1: the parts executed it, 0: ignored (not a multiple of 16 bits) */
    uint8_t mosi[CHAIN_FRAME_MAX];
    uint8_t miso[CHAIN_FRAME_MAX];
} chain_frame_t;

typedef struct chain {
    int kind, n_parts, n_cs, n_channels, n_taps;
    uint16_t shift[CHAIN_MAX_PARTS];
    uint16_t wiper[CHAIN_MAX_PARTS][2];
    uint16_t ctrl[CHAIN_MAX_PARTS];   /* AD5293 control register (C2, C1) */
    uint8_t shutdown[CHAIN_MAX_PARTS];
    int cs;                           /* selected /CS, -1 = none */
    unsigned nbytes;
    /* faults (harness "fault" command) */
    int stuck_part;                   /* this part ignores wiper writes; -1 = none */
    int miso_force;                   /* MISO reads this byte; -1 = none */
    /* counters */
    unsigned long n_frames, n_ignored, n_stray, n_overlap, n_wiper_writes;
    chain_frame_t log[CHAIN_LOG];
} chain_t;

int chain_kind_from_name(const char *name); /* "MCP41" ...; 0 = unknown */
void chain_init(chain_t *c, int kind, int n_parts);
void chain_power_on(chain_t *c);            /* the parts' own power-on state (midscale, locked) */
void chain_select(chain_t *c, int cs);      /* /CS cs falls */
uint8_t chain_xfer(chain_t *c, uint8_t mosi); /* one byte: returns MISO */
void chain_deselect(chain_t *c, int cs);    /* /CS cs rises: execute */
uint16_t chain_tap(const chain_t *c, int channel);
const chain_frame_t *chain_frame(const chain_t *c, unsigned long index); /* 0 if no longer kept */

#endif
