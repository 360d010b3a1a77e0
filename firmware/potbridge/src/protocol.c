/* Pot-bridge line protocol v1: see protocol.h and docs/hardware.md. */
#include "protocol.h"

#ifdef __AVR__
#define PB_RD(p) pgm_read_byte(p)
#else
#define PB_RD(p) (*(const uint8_t *)(p))
#endif

enum { CMD_IDN, CMD_CFG, CMD_SET, CMD_GET, CMD_SETM, CMD_GETM, CMD_NONE };

static const char kw_idn[] PB_FLASH = "IDN?";
static const char kw_cfg[] PB_FLASH = "CFG?";
static const char kw_set[] PB_FLASH = "SET";
static const char kw_get[] PB_FLASH = "GET";
static const char kw_setm[] PB_FLASH = "SETM";
static const char kw_getm[] PB_FLASH = "GETM";
static const char *const keywords[] PB_FLASH = {kw_idn, kw_cfg, kw_set, kw_get, kw_setm, kw_getm};

static const char err1[] PB_FLASH = "bad checksum";
static const char err2[] PB_FLASH = "unknown command";
static const char err3[] PB_FLASH = "bad syntax or argument";
static const char err4[] PB_FLASH = "channel out of range";
static const char err5[] PB_FLASH = "tap out of range";
static const char err6[] PB_FLASH = "part did not acknowledge or read back wrongly";
static const char err7[] PB_FLASH = "line too long";
static const char *const err_texts[] PB_FLASH = {err1, err2, err3, err4, err5, err6, err7};

static const char s_idn[] PB_FLASH = "IDN ";
static const char s_cfg[] PB_FLASH = "CFG ";
static const char s_ok[] PB_FLASH = "OK ";
static const char s_tap[] PB_FLASH = "TAP ";
static const char s_okm[] PB_FLASH = "OKM";
static const char s_tapm[] PB_FLASH = "TAPM";
static const char s_err[] PB_FLASH = "ERR ";

/* one SETM/GETM worth of items: static, so the AVR's RAM report shows them */
static uint16_t item_num[PB_MAX_ITEMS]; /* first number of each field (the channel of a pair) */
static uint16_t item_tap[PB_MAX_ITEMS]; /* second number of a pair */
static uint8_t item_ch[PB_MAX_ITEMS];   /* item_num once checked against n_channels */
static uint16_t item_held[PB_MAX_ITEMS];
static uint8_t seen[(PB_MAX_CHANNELS + 8) / 8];

static const char *flash_ptr(const char *const *table, uint8_t i)
{
#ifdef __AVR__
    return (const char *)pgm_read_word(&table[i]);
#else
    return table[i];
#endif
}

uint8_t pb_checksum(const char *s, uint8_t n)
{
    uint8_t x = 0;
    while (n--)
        x ^= (uint8_t)*s++;
    return x;
}

/* ------------------------------------------------------------------ reply builder */
typedef struct {
    char *buf;
    uint8_t len;
    uint8_t over; /* the body did not fit */
} out_t;

static void put_c(out_t *o, char c)
{
    if (o->len < PB_LINE_MAX - 3)
        o->buf[o->len++] = c;
    else
        o->over = 1;
}

static void put_P(out_t *o, const char *flash)
{
    char c;
    while ((c = (char)PB_RD(flash++)) != 0)
        put_c(o, c);
}

static void put_u(out_t *o, uint16_t v)
{
    char digits[5];
    uint8_t n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        put_c(o, digits[--n]);
}

static const char hexdig[] PB_FLASH = "0123456789ABCDEF";

/* append "*HH" LF NUL; returns the line length with its LF */
static uint8_t finish(out_t *o)
{
    uint8_t x = pb_checksum(o->buf, o->len);
    o->buf[o->len++] = '*';
    o->buf[o->len++] = (char)PB_RD(&hexdig[x >> 4]);
    o->buf[o->len++] = (char)PB_RD(&hexdig[x & 15]);
    o->buf[o->len++] = '\n';
    o->buf[o->len] = 0;
    return o->len;
}

static uint8_t error_reply(char *reply, uint8_t code)
{
    out_t o = {reply, 0, 0};
    put_P(&o, s_err);
    put_u(&o, code);
    put_c(&o, ' ');
    put_P(&o, flash_ptr(err_texts, (uint8_t)(code - 1)));
    return finish(&o);
}

/* ------------------------------------------------------------------ parsing */
static int8_t hexval(char c)
{
    if (c >= '0' && c <= '9')
        return (int8_t)(c - '0');
    if (c >= 'A' && c <= 'F')
        return (int8_t)(c - 'A' + 10);
    if (c >= 'a' && c <= 'f')
        return (int8_t)(c - 'a' + 10);
    return -1;
}

/* decimal digits s[0..n), n >= 1; saturates at 65535 (out of range for any channel or tap) */
static uint8_t parse_u(const char *s, uint8_t n, uint16_t *value)
{
    uint32_t v = 0;
    if (n == 0)
        return 0;
    while (n--) {
        char c = *s++;
        if (c < '0' || c > '9')
            return 0;
        v = v * 10 + (uint8_t)(c - '0');
        if (v > 0xFFFF)
            v = 0xFFFF;
    }
    *value = (uint16_t)v;
    return 1;
}

static uint8_t keyword(const char *s, uint8_t n)
{
    for (uint8_t k = 0; k < CMD_NONE; k++) {
        const char *kw = flash_ptr(keywords, k);
        uint8_t i = 0;
        while (i < n && (char)PB_RD(kw + i) == s[i])
            i++;
        if (i == n && PB_RD(kw + i) == 0)
            return k;
    }
    return CMD_NONE;
}

/*
 * Split args (the body after the keyword's space) into fields.  Each field is a number or, with
 * pairs = 1, number ":" number.  Returns 0 = ok (count in *n), else PB_ERR_SYNTAX.
 */
static uint8_t parse_fields(const char *s, uint8_t len, uint8_t pairs, uint8_t *n)
{
    uint8_t count = 0, i = 0;
    if (len == 0)
        return PB_ERR_SYNTAX;
    while (1) {
        uint8_t start = i;
        while (i < len && s[i] != ' ')
            i++;
        uint8_t flen = (uint8_t)(i - start);
        if (flen == 0 || count >= PB_MAX_ITEMS)
            return PB_ERR_SYNTAX; /* empty field: leading, trailing or double space */
        const char *f = s + start;
        uint16_t ch, tap = 0;
        if (pairs) {
            uint8_t c = 0;
            while (c < flen && f[c] != ':')
                c++;
            if (c == flen || !parse_u(f, c, &ch) || !parse_u(f + c + 1, (uint8_t)(flen - c - 1), &tap))
                return PB_ERR_SYNTAX;
        } else if (!parse_u(f, flen, &ch)) {
            return PB_ERR_SYNTAX;
        }
        item_num[count] = ch;
        item_tap[count] = tap;
        count++;
        if (i == len)
            break;
        i++; /* the space */
    }
    *n = count;
    return 0;
}

/* ranges, left to right: channel (4) before tap (5) within an item */
static uint8_t check_ranges(const pb_bus_t *bus, uint8_t n, uint8_t taps)
{
    for (uint8_t k = 0; k < n; k++) {
        if (item_num[k] >= bus->n_channels)
            return PB_ERR_CHANNEL;
        if (taps && item_tap[k] >= bus->n_taps)
            return PB_ERR_TAP;
        item_ch[k] = (uint8_t)item_num[k];
    }
    return 0;
}

/* ------------------------------------------------------------------ commands */
uint8_t pb_handle_line(const pb_bus_t *bus, const char *line, uint8_t len, char *reply)
{
    if (len > PB_LINE_MAX)
        return error_reply(reply, PB_ERR_TOO_LONG);
    /* framing and checksum */
    if (len < 3 || line[len - 3] != '*')
        return error_reply(reply, PB_ERR_CHECKSUM);
    int8_t hi = hexval(line[len - 2]), lo = hexval(line[len - 1]);
    uint8_t blen = (uint8_t)(len - 3);
    if (hi < 0 || lo < 0 || (uint8_t)((hi << 4) | lo) != pb_checksum(line, blen))
        return error_reply(reply, PB_ERR_CHECKSUM);
    for (uint8_t i = 0; i < blen; i++)
        if ((uint8_t)line[i] < 0x20 || (uint8_t)line[i] > 0x7E || line[i] == '*')
            return error_reply(reply, PB_ERR_SYNTAX);
    /* keyword */
    uint8_t klen = 0;
    while (klen < blen && line[klen] != ' ')
        klen++;
    uint8_t cmd = keyword(line, klen);
    if (cmd == CMD_NONE)
        return error_reply(reply, PB_ERR_COMMAND);
    uint8_t has_args = klen < blen;
    const char *args = line + klen + 1;
    uint8_t alen = has_args ? (uint8_t)(blen - klen - 1) : 0;

    out_t o = {reply, 0, 0};
    uint8_t n = 0, err;
    switch (cmd) {
    case CMD_IDN:
    case CMD_CFG:
        if (has_args)
            return error_reply(reply, PB_ERR_SYNTAX);
        if (cmd == CMD_IDN) {
            put_P(&o, s_idn);
            put_P(&o, bus->identity);
        } else {
            put_P(&o, s_cfg);
            put_u(&o, bus->n_channels);
            put_c(&o, ' ');
            put_u(&o, bus->n_taps);
        }
        break;

    case CMD_SET:
    case CMD_GET: {
        uint8_t want = cmd == CMD_SET ? 2 : 1;
        if (!has_args || parse_fields(args, alen, 0, &n) || n != want)
            return error_reply(reply, PB_ERR_SYNTAX);
        uint16_t ch = item_num[0];
        if (ch >= bus->n_channels)
            return error_reply(reply, PB_ERR_CHANNEL);
        uint8_t c8 = (uint8_t)ch;
        uint16_t held;
        if (cmd == CMD_SET) {
            uint16_t tap = item_num[1];
            if (tap >= bus->n_taps)
                return error_reply(reply, PB_ERR_TAP);
            if (bus->write(1, &c8, &tap, &held) || held != tap)
                return error_reply(reply, PB_ERR_PART);
            put_P(&o, s_ok);
        } else {
            if (bus->read(1, &c8, &held))
                return error_reply(reply, PB_ERR_PART);
            put_P(&o, s_tap);
        }
        put_u(&o, ch);
        put_c(&o, ' ');
        put_u(&o, held);
        break;
    }

    case CMD_SETM:
    case CMD_GETM: {
        uint8_t setm = cmd == CMD_SETM;
        if (!has_args || parse_fields(args, alen, setm, &n))
            return error_reply(reply, PB_ERR_SYNTAX);
        if (setm) {
            /* a channel named twice: which tap is meant is ambiguous -> refuse the whole line */
            for (uint8_t i = 0; i < sizeof seen; i++)
                seen[i] = 0;
            for (uint8_t k = 0; k < n; k++) {
                if (item_num[k] <= 0xFF) { /* larger ones are out of range anyway */
                    uint8_t c = (uint8_t)item_num[k];
                    if (seen[c >> 3] & (1 << (c & 7)))
                        return error_reply(reply, PB_ERR_SYNTAX);
                    seen[c >> 3] |= (uint8_t)(1 << (c & 7));
                }
            }
        }
        if ((err = check_ranges(bus, n, setm)) != 0)
            return error_reply(reply, err);
        /* every item is valid: now, and only now, touch the parts */
        if (setm) {
            if (bus->write(n, item_ch, item_tap, item_held))
                return error_reply(reply, PB_ERR_PART);
            for (uint8_t k = 0; k < n; k++)
                if (item_held[k] != item_tap[k])
                    return error_reply(reply, PB_ERR_PART);
            put_P(&o, s_okm);
        } else {
            if (bus->read(n, item_ch, item_held))
                return error_reply(reply, PB_ERR_PART);
            put_P(&o, s_tapm);
        }
        for (uint8_t k = 0; k < n; k++) {
            put_c(&o, ' ');
            put_u(&o, item_ch[k]);
            put_c(&o, ':');
            put_u(&o, item_held[k]);
        }
        break;
    }
    }
    if (o.over)
        return error_reply(reply, PB_ERR_TOO_LONG);
    return finish(&o);
}

/* ------------------------------------------------------------------ line assembly */
void pb_init(pb_ctx_t *ctx, const pb_bus_t *bus)
{
    ctx->bus = bus;
    ctx->len = 0;
    ctx->overflow = 0;
    ctx->corrupt = 0;
}

void pb_mark_corrupt(pb_ctx_t *ctx)
{
    ctx->corrupt = 1;
}

uint8_t pb_feed(pb_ctx_t *ctx, uint8_t byte, char *reply)
{
    if (byte != '\n') {
        /* one extra slot: a CR right before the LF is not part of the line */
        if (ctx->len < PB_LINE_MAX + 1)
            ctx->line[ctx->len++] = (char)byte;
        else
            ctx->overflow = 1;
        return 0;
    }
    uint8_t len = ctx->len, overflow = ctx->overflow, corrupt = ctx->corrupt;
    ctx->len = 0;
    ctx->overflow = 0;
    ctx->corrupt = 0;
    if (len && ctx->line[len - 1] == '\r')
        len--;
    if (overflow || len > PB_LINE_MAX)
        return error_reply(reply, PB_ERR_TOO_LONG);
    if (corrupt)
        return error_reply(reply, PB_ERR_CHECKSUM);
    if (len == 0)
        return 0; /* an empty line is not a command: no reply */
    return pb_handle_line(ctx->bus, ctx->line, len, reply);
}
