/*
 * Compile-time configuration of the pot-bridge firmware.
 *
 *   PART     MCP41   MCP41010/41050/41100: one 8-bit pot per part (256 taps), no SO pin, so one /CS
 *                    line per part (D10, D9, D8, D7, D6, D5, D4, D3: at most 8 parts)
 *            MCP42   MCP42010/42050/42100: two 8-bit pots per part (256 taps), parts in one SPI daisy
 *                    chain on /CS = D10; channel 2k is pot 0 of chain position k, 2k+1 is pot 1
 *            AD5293  AD5293 (10 bit, 1024 taps), parts in one SPI daisy chain on /SYNC = D10;
 *                    channel k is chain position k; wipers are read back after every write
 *   N_PARTS  parts on the bus (chain position 0 is the part whose SDI is wired to MOSI)
 *   SAFE_TAP tap written to every channel at power-up (default: the highest resistance, n_taps - 1)
 *   SERIAL_NO serial number string reported by IDN?
 *
 * This header is shared by the AVR build, the host unit tests and (for the part names) the
 * simavr harness.  Nothing here depends on avr-libc.
 */
#ifndef POTBRIDGE_CONFIG_H
#define POTBRIDGE_CONFIG_H

#define MCP41 1
#define MCP42 2
#define AD5293 3

#ifndef PART
#define PART MCP42
#endif
#ifndef N_PARTS
#define N_PARTS 4
#endif
#ifndef SERIAL_NO
#define SERIAL_NO "0"
#endif
#define FW_VERSION "1.0.0"

#define PB_STR_(x) #x
#define PB_STR(x) PB_STR_(x)

#if PART == MCP41
#define PART_NAME "MCP41xxx"
#define N_CHANNELS (N_PARTS)
#define N_TAPS 256
#define N_CS (N_PARTS)           /* one /CS per part */
#if N_PARTS > 8
#error "MCP41: at most 8 parts (one /CS pin each: D10 D9 D8 D7 D6 D5 D4 D3)"
#endif
#elif PART == MCP42
#define PART_NAME "MCP42xxx"
#define N_CHANNELS (2 * (N_PARTS))
#define N_TAPS 256
#define N_CS 1
#elif PART == AD5293
#define PART_NAME "AD5293"
#define N_CHANNELS (N_PARTS)
#define N_TAPS 1024
#define N_CS 1
#else
#error "PART must be MCP41, MCP42 or AD5293"
#endif

#if N_PARTS < 1 || N_PARTS > 32
#error "N_PARTS must be 1..32"
#endif

#ifndef SAFE_TAP
#define SAFE_TAP (N_TAPS - 1)    /* tap 0 = wiper at B = lowest resistance; n_taps-1 = highest */
#endif
#if SAFE_TAP < 0 || SAFE_TAP >= N_TAPS
#error "SAFE_TAP must be a tap of the part"
#endif

#define FRAME_BYTES (2 * (N_PARTS))  /* one 16-bit word per part in a daisy-chain frame */

#define PB_IDENTITY "labtrain,potbridge-avr ATmega328P " PART_NAME " x" PB_STR(N_PARTS) ",sn" SERIAL_NO ",fw" FW_VERSION

#endif
