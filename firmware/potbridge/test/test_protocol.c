/*
 * Host unit tests of the protocol (src/protocol.c) and of the part drivers (src/parts.c) against
 * the chain model (sim/chain.c).  Built once per PART by `make check`; exit status 0 = all passed.
 */
#include <stdio.h>
#include <string.h>

#include "../sim/chain.h"
#include "../src/config.h"
#include "../src/parts.h"
#include "../src/protocol.h"

extern chain_t test_chain;

static int n_checks, n_failed;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        n_checks++;                                                                                \
        if (!(cond)) {                                                                             \
            n_failed++;                                                                            \
            printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                                 \
        }                                                                                          \
    } while (0)

#define CHECK_STR(got, want)                                                                       \
    do {                                                                                           \
        n_checks++;                                                                                \
        if (strcmp((got), (want)) != 0) {                                                          \
            n_failed++;                                                                            \
            printf("FAIL %s:%d: got \"%s\" want \"%s\"\n", __FILE__, __LINE__, (got), (want));     \
        }                                                                                          \
    } while (0)

/* ------------------------------------------------------------------ helpers */
static char reply[PB_REPLY_SIZE];
static pb_ctx_t ctx;

/* feed raw bytes; returns the last reply ("" if none), without its LF */
static const char *feed_raw(const char *bytes, size_t n)
{
    static char last[PB_REPLY_SIZE];
    last[0] = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t len = pb_feed(&ctx, (uint8_t)bytes[i], reply);
        if (len) {
            CHECK(reply[len - 1] == '\n' && strlen(reply) == len);
            CHECK(len - 1 <= PB_LINE_MAX);
            memcpy(last, reply, len - 1);
            last[len - 1] = 0;
        }
    }
    return last;
}

/* "body" -> "body*HH\n" fed byte by byte; returns the reply body (checksum checked, stripped) */
static const char *cmd(const char *body)
{
    static char line[400], out[PB_REPLY_SIZE];
    snprintf(line, sizeof line, "%s*%02X\n", body, pb_checksum(body, (uint8_t)strlen(body)));
    const char *r = feed_raw(line, strlen(line));
    size_t n = strlen(r);
    CHECK(n >= 3 && r[n - 3] == '*');
    if (n < 3)
        return "";
    unsigned hh = 0;
    sscanf(r + n - 2, "%2X", &hh);
    CHECK(hh == pb_checksum(r, (uint8_t)(n - 3)));
    memcpy(out, r, n - 3);
    out[n - 3] = 0;
    return out;
}

/* ------------------------------------------------------------------ a fake bus */
#define FAKE_CH 64
static uint16_t fake_taps[FAKE_CH];
static int fake_writes, fake_fault, fake_offset;

static uint8_t fake_write(uint8_t n, const uint8_t *ch, const uint16_t *tap, uint16_t *held)
{
    fake_writes++;
    for (uint8_t i = 0; i < n; i++) {
        fake_taps[ch[i]] = (uint16_t)(tap[i] + fake_offset);
        held[i] = fake_taps[ch[i]];
    }
    return (uint8_t)fake_fault;
}

static uint8_t fake_read(uint8_t n, const uint8_t *ch, uint16_t *held)
{
    for (uint8_t i = 0; i < n; i++)
        held[i] = fake_taps[ch[i]];
    return (uint8_t)fake_fault;
}

static const pb_bus_t fake4 = {4, 1024, "maker,model,sn1,fw1", fake_write, fake_read};
static const pb_bus_t fake64 = {FAKE_CH, 1024, "maker,model,sn1,fw1", fake_write, fake_read};

static void test_checksum(void)
{
    const char *nmea = "GPGLL,5057.970,N,00146.110,E,142451,A";
    CHECK(pb_checksum(nmea, (uint8_t)strlen(nmea)) == 0x27);
    pb_init(&ctx, &fake4);
    /* the example of docs/hardware.md, byte for byte */
    CHECK_STR(feed_raw("SET 1 700*44\n", 13), "OK 1 700*02");
    CHECK_STR(feed_raw("SET 1 700*44\r\n", 14), "OK 1 700*02"); /* CR LF from a terminal */
    CHECK_STR(feed_raw("SET 1 700*44", 12), "");                /* no LF yet: no reply */
    CHECK_STR(feed_raw("\n", 1), "OK 1 700*02");
}

static void test_commands(void)
{
    pb_init(&ctx, &fake4);
    memset(fake_taps, 0, sizeof fake_taps);
    fake_fault = fake_offset = 0;
    CHECK_STR(cmd("IDN?"), "IDN maker,model,sn1,fw1");
    CHECK_STR(cmd("CFG?"), "CFG 4 1024");
    CHECK_STR(cmd("SET 3 1023"), "OK 3 1023");
    CHECK_STR(cmd("GET 3"), "TAP 3 1023");
    CHECK_STR(cmd("SET 0 0"), "OK 0 0");
    CHECK_STR(cmd("SETM 2:5 0:17 1:1000"), "OKM 2:5 0:17 1:1000");
    CHECK_STR(cmd("GETM 1 0 3 2 1"), "TAPM 1:1000 0:17 3:1023 2:5 1:1000"); /* GETM may repeat */
    CHECK_STR(cmd("SET 002 0070"), "OK 2 70"); /* leading zeros accepted, not echoed */
    CHECK_STR(cmd("SETM 0:0 1:1 2:2 3:3"), "OKM 0:0 1:1 2:2 3:3");
    /* lower-case checksum digits are accepted */
    CHECK_STR(feed_raw("IDN?*7c\n", 8), "IDN maker,model,sn1,fw1*5C");
    CHECK_STR(feed_raw("CFG?*7d\n", 8), "CFG 4 1024*71");
}

static void test_errors(void)
{
    pb_init(&ctx, &fake4);
    memset(fake_taps, 0, sizeof fake_taps);
    fake_fault = fake_offset = fake_writes = 0;
    /* 1: checksum wrong, missing, malformed */
    CHECK_STR(feed_raw("SET 1 700*45\n", 13), "ERR 1 bad checksum*3E");
    CHECK_STR(feed_raw("SET 1 700\n", 10), "ERR 1 bad checksum*3E");
    CHECK_STR(feed_raw("SET 1 700*4G\n", 13), "ERR 1 bad checksum*3E");
    CHECK_STR(feed_raw("SET 1 700*4\n", 12), "ERR 1 bad checksum*3E");
    CHECK_STR(feed_raw("*\n", 2), "ERR 1 bad checksum*3E");
    /* 2 */
    CHECK_STR(cmd("FOO 1"), "ERR 2 unknown command");
    CHECK_STR(cmd("set 1 2"), "ERR 2 unknown command"); /* keywords are upper case */
    CHECK_STR(cmd("IDN"), "ERR 2 unknown command");
    CHECK_STR(cmd(" SET 1 2"), "ERR 2 unknown command");
    CHECK_STR(feed_raw("*00\n", 4), "ERR 2 unknown command*58"); /* empty body */
    /* 3 */
    CHECK_STR(cmd("SET 1"), "ERR 3 bad syntax or argument");
    CHECK_STR(cmd("SET 1 2 3"), "ERR 3 bad syntax or argument");
    CHECK_STR(cmd("SET"), "ERR 3 bad syntax or argument");
    CHECK_STR(cmd("SET "), "ERR 3 bad syntax or argument");
    CHECK_STR(cmd("SET 1  2"), "ERR 3 bad syntax or argument");
    CHECK_STR(cmd("SET 1 2 "), "ERR 3 bad syntax or argument");
    CHECK_STR(cmd("SET x 2"), "ERR 3 bad syntax or argument");
    CHECK_STR(cmd("SET 1 -2"), "ERR 3 bad syntax or argument");
    CHECK_STR(cmd("SET 1 +2"), "ERR 3 bad syntax or argument");
    CHECK_STR(cmd("GET"), "ERR 3 bad syntax or argument");
    CHECK_STR(cmd("GET 1 2"), "ERR 3 bad syntax or argument");
    CHECK_STR(cmd("IDN? x"), "ERR 3 bad syntax or argument");
    CHECK_STR(cmd("CFG? "), "ERR 3 bad syntax or argument");
    CHECK_STR(cmd("SETM"), "ERR 3 bad syntax or argument");
    CHECK_STR(cmd("SETM 1"), "ERR 3 bad syntax or argument");
    CHECK_STR(cmd("SETM 1:"), "ERR 3 bad syntax or argument");
    CHECK_STR(cmd("SETM :1"), "ERR 3 bad syntax or argument");
    CHECK_STR(cmd("SETM 1:2:3"), "ERR 3 bad syntax or argument");
    CHECK_STR(cmd("SETM 1:2 1:3"), "ERR 3 bad syntax or argument"); /* same channel twice */
    CHECK_STR(cmd("GETM"), "ERR 3 bad syntax or argument");
    CHECK_STR(cmd("GETM 1:2"), "ERR 3 bad syntax or argument");
    CHECK_STR(cmd("SET 1\t2"), "ERR 3 bad syntax or argument"); /* not printable */
    /* syntax anywhere is reported before a range error */
    CHECK_STR(cmd("SETM 9:1 0:x"), "ERR 3 bad syntax or argument");
    /* 4, 5: channel before tap, first offending item from the left */
    CHECK_STR(cmd("SET 4 0"), "ERR 4 channel out of range");
    CHECK_STR(cmd("SET 4 5000"), "ERR 4 channel out of range");
    CHECK_STR(cmd("SET 99999999999 0"), "ERR 4 channel out of range");
    CHECK_STR(cmd("GET 4"), "ERR 4 channel out of range");
    CHECK_STR(cmd("GETM 0 4"), "ERR 4 channel out of range");
    CHECK_STR(cmd("SET 0 1024"), "ERR 5 tap out of range");
    CHECK_STR(cmd("SET 0 99999999999"), "ERR 5 tap out of range");
    CHECK_STR(cmd("SETM 0:1 1:1024 9:1"), "ERR 5 tap out of range");
    CHECK_STR(cmd("SETM 0:1 9:1 1:1024"), "ERR 4 channel out of range");
    /* a bad item anywhere: nothing was written */
    CHECK(fake_writes == 0);
    CHECK_STR(cmd("GETM 0 1 2 3"), "TAPM 0:0 1:0 2:0 3:0");
    /* 6: bus fault, or a readback other than what was written */
    fake_fault = 1;
    CHECK_STR(cmd("SET 0 5"), "ERR 6 part did not acknowledge or read back wrongly");
    CHECK_STR(cmd("GET 0"), "ERR 6 part did not acknowledge or read back wrongly");
    CHECK_STR(cmd("GETM 0 1"), "ERR 6 part did not acknowledge or read back wrongly");
    fake_fault = 0;
    fake_offset = 1;
    CHECK_STR(cmd("SET 0 5"), "ERR 6 part did not acknowledge or read back wrongly");
    CHECK_STR(cmd("SETM 1:5 2:6"), "ERR 6 part did not acknowledge or read back wrongly");
    fake_offset = 0;
}

static void test_lengths(void)
{
    char line[700], body[300];
    pb_init(&ctx, &fake64);
    memset(fake_taps, 0, sizeof fake_taps);
    /* a line of exactly PB_LINE_MAX characters (body + *HH) is accepted */
    strcpy(body, "SETM 0:0");
    while (strlen(body) < PB_LINE_MAX - 3 - 4)
        sprintf(body + strlen(body), " %d:1", (int)(strlen(body) % 60) + 1);
    /* pad with leading zeros on the first tap to hit the limit exactly */
    while (strlen(body) < PB_LINE_MAX - 3) {
        memmove(body + 7, body + 6, strlen(body + 6) + 1);
        body[6] = '0';
    }
    CHECK(strlen(body) == PB_LINE_MAX - 3);
    const char *r = cmd(body);
    CHECK(strncmp(r, "OKM 0:0 ", 8) == 0);
    /* one more character: ERR 7, whatever the content; the next line is answered normally */
    snprintf(line, sizeof line, "%s0*00\n", body);
    CHECK(strlen(line) == PB_LINE_MAX + 2);
    CHECK_STR(feed_raw(line, strlen(line)), "ERR 7 line too long*02");
    memset(line, 'A', 500);
    line[500] = '\n';
    CHECK_STR(feed_raw(line, 501), "ERR 7 line too long*02"); /* one reply, at the LF */
    line[500] = 0;
    CHECK_STR(feed_raw(line, 500), "");                       /* nothing before the LF */
    CHECK_STR(feed_raw("\r\n", 2), "ERR 7 line too long*02");
    CHECK_STR(cmd("CFG?"), "CFG 64 1024");
    /* CR right before LF is not counted: 128 chars + CR + LF is fine */
    snprintf(line, sizeof line, "%s*%02X\r\n", body, pb_checksum(body, (uint8_t)strlen(body)));
    CHECK(strncmp(feed_raw(line, strlen(line)), "OKM 0:0 ", 8) == 0);
    /* empty lines are ignored */
    CHECK_STR(feed_raw("\n", 1), "");
    CHECK_STR(feed_raw("\r\n", 2), "");
    /* lost bytes (UART overrun) make the line an ERR 1 */
    feed_raw("GET 1", 5);
    pb_mark_corrupt(&ctx);
    CHECK_STR(feed_raw("*47\n", 4), "ERR 1 bad checksum*3E");
    CHECK_STR(cmd("GET 1"), "TAP 1 1");
    /* a reply that would not fit the line limit: ERR 7 (the host splits GETM so it never happens) */
    for (int c = 0; c < FAKE_CH; c++)
        fake_taps[c] = 1000;
    strcpy(body, "GETM");
    for (int c = 0; c < 40; c++)
        sprintf(body + strlen(body), " %d", c + 10);
    CHECK_STR(cmd(body), "ERR 7 line too long");
    CHECK(strncmp(cmd("GETM 10 11 12 13 14 15 16 17 18 19 20 21 22"), "TAPM 10:1000 ", 13) == 0);
}

/* ------------------------------------------------------------------ the part drivers */
static void frame_hex(unsigned long index, char *out)
{
    const chain_frame_t *f = chain_frame(&test_chain, index);
    out[0] = 0;
    if (!f)
        return;
    for (int i = 0; i < f->n && i < CHAIN_FRAME_MAX; i++)
        sprintf(out + strlen(out), i ? " %02X" : "%02X", f->mosi[i]);
}

static void test_parts(void)
{
    char hex[400];
    chain_init(&test_chain, PART, N_PARTS);
    CHECK(test_chain.n_channels == N_CHANNELS && test_chain.n_taps == N_TAPS);
    CHECK(parts_init() == 0);
    for (int c = 0; c < N_CHANNELS; c++)
        CHECK(chain_tap(&test_chain, c) == SAFE_TAP && SAFE_TAP == N_TAPS - 1);
    CHECK(test_chain.n_ignored == 0 && test_chain.n_stray == 0 && test_chain.n_overlap == 0);
    pb_init(&ctx, &parts_bus);
    char want[200];
    snprintf(want, sizeof want, "IDN labtrain,potbridge-avr ATmega328P %s x%d,sn%s,fw%s", PART_NAME, N_PARTS,
             SERIAL_NO, FW_VERSION);
    CHECK_STR(cmd("IDN?"), want);
    snprintf(want, sizeof want, "CFG %d %d", N_CHANNELS, N_TAPS);
    CHECK_STR(cmd("CFG?"), want);

    unsigned long f0 = test_chain.n_frames;
    CHECK_STR(cmd("SET 1 200"), "OK 1 200");
    CHECK(chain_tap(&test_chain, 1) == 200 && chain_tap(&test_chain, 0) == SAFE_TAP);
    CHECK_STR(cmd("GET 1"), "TAP 1 200");
    CHECK_STR(cmd("SETM 0:7 1:8"), "OKM 0:7 1:8");
    CHECK(chain_tap(&test_chain, 0) == 7 && chain_tap(&test_chain, 1) == 8);
    /* a bad pair: no frame at all */
    unsigned long before = test_chain.n_frames;
    CHECK_STR(cmd("SETM 0:1 1:9999"), "ERR 5 tap out of range");
    CHECK(test_chain.n_frames == before && chain_tap(&test_chain, 0) == 7);
    CHECK(test_chain.n_ignored == 0 && test_chain.n_stray == 0);

#if PART == AD5293 && N_PARTS == 2
    /* the frames of docs/hardware.md ("AD5293 daisy chain over FTDI SPI"), byte for byte */
    f0 = test_chain.n_frames;
    CHECK_STR(cmd("SETM 1:1000 0:5"), "OKM 1:1000 0:5");
    CHECK(test_chain.n_frames == f0 + 5);
    frame_hex(f0 + 0, hex); CHECK_STR(hex, "18 02 18 02");
    frame_hex(f0 + 1, hex); CHECK_STR(hex, "07 E8 04 05");
    frame_hex(f0 + 2, hex); CHECK_STR(hex, "18 00 18 00");
    frame_hex(f0 + 3, hex); CHECK_STR(hex, "08 00 08 00");
    frame_hex(f0 + 4, hex); CHECK_STR(hex, "00 00 00 00");
    const chain_frame_t *rb = chain_frame(&test_chain, f0 + 4);
    CHECK(rb && rb->miso[0] == 0x03 && rb->miso[1] == 0xE8 && rb->miso[2] == 0x00 && rb->miso[3] == 0x05);
    /* faults: a part that ignores writes, MISO stuck high (broken chain) */
    test_chain.stuck_part = 1;
    CHECK_STR(cmd("SET 1 3"), "ERR 6 part did not acknowledge or read back wrongly");
    CHECK_STR(cmd("SET 0 3"), "OK 0 3"); /* the other part is fine */
    test_chain.stuck_part = -1;
    test_chain.miso_force = 0xFF;
    CHECK_STR(cmd("GET 0"), "ERR 6 part did not acknowledge or read back wrongly");
    CHECK_STR(cmd("GETM 0 1"), "ERR 6 part did not acknowledge or read back wrongly");
    test_chain.miso_force = -1;
    CHECK_STR(cmd("GETM 0 1"), "TAPM 0:3 1:1000");
    /* a part power-cycled behind the bridge's back is seen by GET (real readback) */
    chain_power_on(&test_chain);
    CHECK_STR(cmd("GET 1"), "TAP 1 512");
#endif
#if PART == MCP42 && N_PARTS == 2
    /* channel 2p / 2p+1 = pot 0 / pot 1 of chain position p; position 1 is sent first */
    f0 = test_chain.n_frames;
    CHECK_STR(cmd("SETM 0:1 2:3 1:2"), "OKM 0:1 2:3 1:2");
    CHECK(test_chain.n_frames == f0 + 2); /* pot 0 and pot 1 of part 0: two frames */
    frame_hex(f0 + 0, hex); CHECK_STR(hex, "11 03 11 01");
    frame_hex(f0 + 1, hex); CHECK_STR(hex, "00 00 12 02");
    CHECK(chain_tap(&test_chain, 0) == 1 && chain_tap(&test_chain, 1) == 2 && chain_tap(&test_chain, 2) == 3);
    CHECK(chain_tap(&test_chain, 3) == SAFE_TAP);
    CHECK_STR(cmd("SET 3 254"), "OK 3 254");
    frame_hex(test_chain.n_frames - 1, hex); CHECK_STR(hex, "12 FE 00 00");
    /* write-only parts: GET answers the tap written last */
    CHECK_STR(cmd("GETM 0 1 2 3"), "TAPM 0:1 1:2 2:3 3:254");
#endif
#if PART == MCP41 && N_PARTS == 3
    f0 = test_chain.n_frames;
    CHECK_STR(cmd("SETM 2:9 0:4"), "OKM 2:9 0:4");
    CHECK(test_chain.n_frames == f0 + 2);
    CHECK(chain_frame(&test_chain, f0)->cs == 2 && chain_frame(&test_chain, f0 + 1)->cs == 0);
    frame_hex(f0, hex); CHECK_STR(hex, "11 09");
    CHECK(chain_tap(&test_chain, 2) == 9 && chain_tap(&test_chain, 0) == 4 && chain_tap(&test_chain, 1) == 8);
#endif
    (void)hex;
    (void)f0;
}

int main(void)
{
    test_checksum();
    test_commands();
    test_errors();
    test_lengths();
    test_parts();
    printf("potbridge host tests (%s x%d): %d checks, %d failed\n", PART_NAME, N_PARTS, n_checks, n_failed);
    return n_failed ? 1 : 0;
}
