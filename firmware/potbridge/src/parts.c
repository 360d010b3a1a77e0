/*
 * Part drivers: MCP41xxx (one /CS per part), MCP42xxx and AD5293 (daisy chains), behind the
 * pb_bus_t interface of the protocol.  Hardware independent except for spi_frame().
 *
 * Daisy-chain frames: one 16-bit word per part, MSB first, /CS low throughout.  The word sent
 * first travels furthest, so the word for chain position p is bytes 2(N-1-p), 2(N-1-p)+1 of the
 * frame; the bytes clocked in from MISO are in the same order (last part first).
 */
#include "parts.h"
#include "config.h"
#include "spi.h"

static const char identity[] PB_FLASH = PB_IDENTITY;
static uint16_t shadow[N_CHANNELS]; /* what each channel holds (MCP: what was written last) */
static uint8_t fout[FRAME_BYTES];
#if PART == AD5293
static uint8_t fin[FRAME_BYTES];
#endif

#if PART == MCP42 || PART == AD5293
static void put_word(uint8_t pos, uint16_t w)
{
    uint8_t i = (uint8_t)(2 * (N_PARTS - 1 - pos));
    fout[i] = (uint8_t)(w >> 8);
    fout[i + 1] = (uint8_t)w;
}
#endif

#if PART == MCP41 || PART == MCP42
/* ------------------------------------------------------------ MCP41xxx / MCP42xxx (write only) */
/* command byte: x x C1 C0 x x P1 P0; C1C0 = 01 write data, 00 = NOP; P1P0 = 01 pot 0, 10 pot 1 */
#define MCP_WRITE_POT0 0x1100u
#define MCP_WRITE_POT1 0x1200u
#define MCP_NOP 0x0000u

static uint8_t mcp_write(uint8_t n, const uint8_t *channels, const uint16_t *taps, uint16_t *held)
{
#if PART == MCP41
    for (uint8_t i = 0; i < n; i++) {
        fout[0] = MCP_WRITE_POT0 >> 8;
        fout[1] = (uint8_t)taps[i];
        spi_frame(channels[i], fout, 0, 2); /* part k has its own /CS k */
        shadow[channels[i]] = taps[i];
    }
#else
    /* a part takes one command per frame: pot 0 and pot 1 of one part need two frames */
    static uint16_t want[N_CHANNELS];
    uint8_t pending = 0;
    for (uint8_t c = 0; c < N_CHANNELS; c++)
        want[c] = 0xFFFF;
    for (uint8_t i = 0; i < n; i++) {
        want[channels[i]] = taps[i];
        pending = 1;
    }
    while (pending) {
        pending = 0;
        for (uint8_t p = 0; p < N_PARTS; p++) {
            uint8_t c = (uint8_t)(2 * p);
            uint16_t word = MCP_NOP;
            if (want[c] != 0xFFFF) {
                word = MCP_WRITE_POT0 | want[c];
            } else if (want[c + 1] != 0xFFFF) {
                c++;
                word = MCP_WRITE_POT1 | want[c];
            }
            if (word != MCP_NOP) {
                shadow[c] = want[c];
                want[c] = 0xFFFF;
                pending |= (uint8_t)(want[2 * p + 1] != 0xFFFF);
            }
            put_word(p, word);
        }
        spi_frame(0, fout, 0, FRAME_BYTES);
    }
#endif
    /* the parts cannot be read back: they hold what was written */
    for (uint8_t i = 0; i < n; i++)
        held[i] = shadow[channels[i]];
    return 0;
}

static uint8_t mcp_read(uint8_t n, const uint8_t *channels, uint16_t *held)
{
    for (uint8_t i = 0; i < n; i++)
        held[i] = shadow[channels[i]];
    return 0;
}

#define bus_write mcp_write
#define bus_read mcp_read

#else
/* ------------------------------------------------------------ AD5293 (10 bit, read back) */
/* word: 0 0 C3 C2 C1 C0 D9..D0 (codes as in docs/hardware.md and labtrain.drivers.potbridge) */
#define AD_NOP 0x0000u
#define AD_WRITE_RDAC 0x0400u
#define AD_READ_RDAC 0x0800u
#define AD_WRITE_CONTROL 0x1800u
#define AD_C1_WRITE_ENABLE 0x0002u
#ifdef AD5293_NORMAL_MODE
#define AD_C2 0x0004u /* normal mode */
#else
#define AD_C2 0x0000u /* resistor performance mode (power-on default) */
#endif

static void ad_all(uint16_t word)
{
    for (uint8_t p = 0; p < N_PARTS; p++)
        put_word(p, word);
    spi_frame(0, fout, 0, FRAME_BYTES);
}

/* read every wiper into shadow; a word with DB15/DB14 set (MISO floating high) is a fault */
static uint8_t ad_readback(void)
{
    uint8_t fault = 0;
    ad_all(AD_READ_RDAC);
    for (uint8_t p = 0; p < N_PARTS; p++)
        put_word(p, AD_NOP);
    spi_frame(0, fout, fin, FRAME_BYTES);
    for (uint8_t p = 0; p < N_PARTS; p++) {
        uint8_t i = (uint8_t)(2 * (N_PARTS - 1 - p));
        uint16_t word = (uint16_t)((fin[i] << 8) | fin[i + 1]);
        if (word & 0xC000u)
            fault = 1;
        shadow[p] = word & 0x3FFu;
    }
    return fault;
}

static uint8_t ad_write(uint8_t n, const uint8_t *channels, const uint16_t *taps, uint16_t *held)
{
    ad_all(AD_WRITE_CONTROL | AD_C1_WRITE_ENABLE | AD_C2); /* unlock the wipers */
    for (uint8_t p = 0; p < N_PARTS; p++)
        put_word(p, AD_NOP);
    for (uint8_t i = 0; i < n; i++)
        put_word(channels[i], AD_WRITE_RDAC | taps[i]);
    spi_frame(0, fout, 0, FRAME_BYTES);
    ad_all(AD_WRITE_CONTROL | AD_C2); /* lock again: a glitch on the bus cannot move a wiper */
    uint8_t fault = ad_readback();
    for (uint8_t i = 0; i < n; i++)
        held[i] = shadow[channels[i]];
    return fault;
}

static uint8_t ad_read(uint8_t n, const uint8_t *channels, uint16_t *held)
{
    uint8_t fault = ad_readback();
    for (uint8_t i = 0; i < n; i++)
        held[i] = shadow[channels[i]];
    return fault;
}

#define bus_write ad_write
#define bus_read ad_read
#endif

const pb_bus_t parts_bus = {N_CHANNELS, N_TAPS, identity, bus_write, bus_read};

uint8_t parts_init(void)
{
    uint8_t ch[N_CHANNELS];
    uint16_t tap[N_CHANNELS], held[N_CHANNELS];
    uint8_t fault;
    spi_init();
    for (uint8_t c = 0; c < N_CHANNELS; c++) {
        ch[c] = c;
        tap[c] = SAFE_TAP;
    }
    fault = bus_write(N_CHANNELS, ch, tap, held);
    for (uint8_t c = 0; c < N_CHANNELS; c++)
        fault |= (uint8_t)(held[c] != SAFE_TAP);
    return fault;
}
