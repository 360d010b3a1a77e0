/* The configured PART chain as a pb_bus_t (see config.h for PART / N_PARTS). */
#ifndef POTBRIDGE_PARTS_H
#define POTBRIDGE_PARTS_H

#include "protocol.h"

extern const pb_bus_t parts_bus;

/* SPI set-up, then every channel to SAFE_TAP (the power-up safe default).  0 = ok (readback
   confirmed where the part allows it). */
uint8_t parts_init(void);

#endif
