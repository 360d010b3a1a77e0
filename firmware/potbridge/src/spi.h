/* SPI master primitive the part drivers use: spi_avr.c on the ATmega328P, a chain model on the host. */
#ifndef POTBRIDGE_SPI_H
#define POTBRIDGE_SPI_H

#include <stdint.h>

/* pins, SPI mode and clock for the configured PART; every /CS high (idle) */
void spi_init(void);
/* one frame: /CS `cs` low, n bytes full duplex MSB first (in may be 0), /CS high */
void spi_frame(uint8_t cs, const uint8_t *out, uint8_t *in, uint8_t n);

#endif
