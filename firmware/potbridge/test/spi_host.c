/* Host stand-in for spi_avr.c: frames go to the chain model (sim/chain.c) of the compiled PART. */
#include "../sim/chain.h"
#include "../src/config.h"
#include "../src/spi.h"

chain_t test_chain;

void spi_init(void)
{
}

void spi_frame(uint8_t cs, const uint8_t *out, uint8_t *in, uint8_t n)
{
    chain_select(&test_chain, cs);
    for (uint8_t i = 0; i < n; i++) {
        uint8_t b = chain_xfer(&test_chain, out[i]);
        if (in)
            in[i] = b;
    }
    chain_deselect(&test_chain, cs);
}
