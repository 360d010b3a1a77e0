/*
 * ATmega328P hardware SPI (master): SCK = PB5 (D13), MISO = PB4 (D12), MOSI = PB3 (D11).
 * /CS lines: PB2 (D10) for a daisy chain; MCP41 parts get one each: D10 D9 D8 D7 D6 D5 D4 D3.
 */
#include <avr/io.h>

#include "config.h"
#include "spi.h"

/* /CS k is bit cs_bit[k] of port B (cs_portb[k] = 1) or port D */
static const uint8_t cs_bit[8] = {PB2, PB1, PB0, PD7, PD6, PD5, PD4, PD3};

static void cs_set(uint8_t k, uint8_t high)
{
    uint8_t m = (uint8_t)(1 << cs_bit[k]);
    if (k < 3) {
        if (high)
            PORTB |= m;
        else
            PORTB &= (uint8_t)~m;
    } else {
        if (high)
            PORTD |= m;
        else
            PORTD &= (uint8_t)~m;
    }
}

void spi_init(void)
{
    /* /CS high first, then outputs: no glitch low */
    for (uint8_t k = 0; k < N_CS; k++) {
        cs_set(k, 1);
        if (k < 3)
            DDRB |= (uint8_t)(1 << cs_bit[k]);
        else
            DDRD |= (uint8_t)(1 << cs_bit[k]);
    }
    PORTB |= (uint8_t)(1 << PB2); /* SS must stay an output for master mode even if unused */
    DDRB |= (uint8_t)((1 << PB2) | (1 << PB3) | (1 << PB5));
    PORTB |= (uint8_t)(1 << PB4); /* pull-up on MISO: reads 1 when nothing drives it */
#if PART == AD5293
    /* mode 1 (CPOL 0, CPHA 1: the AD5293 samples SDI on falling SCLK); fosc/16 = 1 MHz, slow
       enough for the open-drain SDO pull-ups of a readback chain */
    SPCR = (uint8_t)((1 << SPE) | (1 << MSTR) | (1 << CPHA) | (1 << SPR0));
#else
    /* mode 0 (MCP4xxxx: mode 0,0 or 1,1); fosc/4 = 4 MHz (the parts take 10 MHz) */
    SPCR = (uint8_t)((1 << SPE) | (1 << MSTR));
#endif
    SPSR = 0;
}

void spi_frame(uint8_t cs, const uint8_t *out, uint8_t *in, uint8_t n)
{
    cs_set(cs, 0);
    for (uint8_t i = 0; i < n; i++) {
        SPDR = out[i];
        while (!(SPSR & (1 << SPIF)))
            ;
        uint8_t b = SPDR;
        if (in)
            in[i] = b;
    }
    cs_set(cs, 1);
}
