/* Byte-level model of MCP41xxx / MCP42xxx / AD5293 parts on SPI: see chain.h. */
#include "chain.h"

#include <string.h>

int chain_kind_from_name(const char *name)
{
    if (!strcmp(name, "MCP41"))
        return CHAIN_MCP41;
    if (!strcmp(name, "MCP42"))
        return CHAIN_MCP42;
    if (!strcmp(name, "AD5293"))
        return CHAIN_AD5293;
    return 0;
}

void chain_init(chain_t *c, int kind, int n_parts)
{
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->n_parts = n_parts;
    c->n_cs = kind == CHAIN_MCP41 ? n_parts : 1;
    c->n_channels = kind == CHAIN_MCP42 ? 2 * n_parts : n_parts;
    c->n_taps = kind == CHAIN_AD5293 ? 1024 : 256;
    c->cs = -1;
    c->stuck_part = -1;
    c->miso_force = -1;
    chain_power_on(c);
}

void chain_power_on(chain_t *c)
{
    for (int p = 0; p < c->n_parts; p++) {
        c->shift[p] = 0;
        c->wiper[p][0] = c->wiper[p][1] = (uint16_t)(c->n_taps / 2); /* midscale (0x80 / 0x200) */
        c->ctrl[p] = 0;       /* AD5293: wiper writes locked, resistor performance mode */
        c->shutdown[p] = 0;
    }
    c->cs = -1;
    c->nbytes = 0;
}

static chain_frame_t *current(chain_t *c)
{
    return &c->log[c->n_frames % CHAIN_LOG];
}

void chain_select(chain_t *c, int cs)
{
    if (c->cs >= 0) {
        c->n_overlap++; /* two /CS low at once: the model keeps the first */
        return;
    }
    c->cs = cs;
    c->nbytes = 0;
    chain_frame_t *f = current(c);
    f->cs = (uint8_t)cs;
    f->n = 0;
    f->executed = 0;
}

uint8_t chain_xfer(chain_t *c, uint8_t mosi)
{
    uint8_t miso;
    if (c->cs < 0) {
        c->n_stray++;
        return 0xFF;
    }
    if (c->kind == CHAIN_MCP41) {
        uint16_t *s = &c->shift[c->cs];
        *s = (uint16_t)((*s << 8) | mosi);
        miso = 0xFF; /* no SO pin: MISO idles high (pull-up) */
    } else {
        int n = c->n_parts;
        miso = (uint8_t)(c->shift[n - 1] >> 8);
        for (int p = n - 1; p > 0; p--)
            c->shift[p] = (uint16_t)((c->shift[p] << 8) | (c->shift[p - 1] >> 8));
        c->shift[0] = (uint16_t)((c->shift[0] << 8) | mosi);
    }
    if (c->miso_force >= 0)
        miso = (uint8_t)c->miso_force;
    chain_frame_t *f = current(c);
    if (c->nbytes < CHAIN_FRAME_MAX) {
        f->mosi[c->nbytes] = mosi;
        f->miso[c->nbytes] = miso;
    }
    c->nbytes++;
    f->n = (uint8_t)(c->nbytes < 255 ? c->nbytes : 255);
    return miso;
}

static void set_wiper(chain_t *c, int part, int pot, uint16_t tap)
{
    c->n_wiper_writes++;
    if (part == c->stuck_part)
        return; /* fault: the part ignores the write */
    c->wiper[part][pot] = tap;
}

static void exec_mcp(chain_t *c, int part)
{
    uint16_t w = c->shift[part];
    uint8_t cmd = (uint8_t)(w >> 8), data = (uint8_t)w;
    uint8_t op = (cmd >> 4) & 3, pots = cmd & 3;
    if (c->kind == CHAIN_MCP41)
        pots &= 1;
    if (op == 1) { /* write data */
        if (pots & 1)
            set_wiper(c, part, 0, data);
        if (pots & 2)
            set_wiper(c, part, 1, data);
    } else if (op == 2) { /* shutdown */
        c->shutdown[part] = 1;
    } /* 00, 11: NOP */
}

static void exec_ad5293(chain_t *c, int part)
{
    uint16_t w = c->shift[part];
    uint16_t data = w & 0x3FF;
    switch ((w >> 10) & 0xF) {
    case 1: /* write RDAC: only while C1 = 1 */
        if (c->ctrl[part] & 0x002)
            set_wiper(c, part, 0, data);
        break;
    case 2: /* wiper on SDO in the next frame */
        c->shift[part] = c->wiper[part][0];
        break;
    case 4: /* reset to midscale */
        c->wiper[part][0] = 512;
        break;
    case 6: /* control register */
        c->ctrl[part] = data & 0x006;
        break;
    case 7:
        c->shift[part] = c->ctrl[part];
        break;
    case 8:
        c->shutdown[part] = (uint8_t)(data & 1);
        break;
    default: /* NOP and unused codes */
        break;
    }
}

void chain_deselect(chain_t *c, int cs)
{
    if (c->cs != cs)
        return; /* a /CS rising that was not selected (or a second one): nothing */
    chain_frame_t *f = current(c);
    if (c->nbytes > 0 && c->nbytes % 2 == 0) {
        f->executed = 1;
        if (c->kind == CHAIN_MCP41) {
            exec_mcp(c, cs);
        } else {
            for (int p = 0; p < c->n_parts; p++) {
                if (c->kind == CHAIN_MCP42)
                    exec_mcp(c, p);
                else
                    exec_ad5293(c, p);
            }
        }
    } else {
        c->n_ignored++;
    }
    c->n_frames++;
    c->cs = -1;
    c->nbytes = 0;
}

uint16_t chain_tap(const chain_t *c, int channel)
{
    if (c->kind == CHAIN_MCP42)
        return c->wiper[channel / 2][channel % 2];
    return c->wiper[channel][0];
}

const chain_frame_t *chain_frame(const chain_t *c, unsigned long index)
{
    if (index >= c->n_frames || c->n_frames - index > CHAIN_LOG)
        return 0;
    return &c->log[index % CHAIN_LOG];
}
