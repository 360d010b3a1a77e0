/*
 * Pot-bridge firmware for the ATmega328P (Arduino Uno / Nano, 16 MHz): protocol v1 on the UART
 * (115200 8N1), the pots on SPI (parts.c).  docs/hardware.md has the protocol, the wiring and
 * how to build and flash.
 *
 * Power-up: every pot is written to SAFE_TAP before the receiver is switched on; the bridge then
 * sleeps (idle mode) until a byte arrives and never sends anything unprompted.
 */
#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/sleep.h>
#include <avr/wdt.h>

#include "config.h"
#include "parts.h"
#include "protocol.h"

#ifndef F_CPU
#define F_CPU 16000000UL
#endif
#define BAUD 115200UL
/* U2X: 16 MHz / (8 * 17) = 117647 baud, +2.1 %, as the Arduino core does */
#define UBRR_VALUE ((F_CPU + 4 * BAUD) / (8 * BAUD) - 1)

/* receive ring: the ISR stores each byte with flags for the main loop */
#define RX_BAD 0x100u   /* framing error / overrun at this byte: the line is corrupt */
#define RX_LOST 0x200u  /* the ring was full after this byte: bytes of the next ones were lost */
#define RX_SIZE 64u     /* power of two */
static volatile uint16_t rx_ring[RX_SIZE];
static volatile uint8_t rx_head, rx_tail;

/* Optiboot leaves the watchdog as it was: switch it off before anything else */
void early_wdt_off(void) __attribute__((naked, used, section(".init3")));
void early_wdt_off(void)
{
    MCUSR = 0;
    wdt_disable();
}

ISR(USART_RX_vect)
{
    uint8_t status = UCSR0A;
    uint16_t entry = UDR0;
    if (status & ((1 << FE0) | (1 << DOR0)))
        entry |= RX_BAD;
    uint8_t next = (uint8_t)((rx_head + 1) & (RX_SIZE - 1));
    if (next == rx_tail) {
        rx_ring[(rx_head - 1) & (RX_SIZE - 1)] |= RX_LOST;
        return;
    }
    rx_ring[rx_head] = entry;
    rx_head = next;
}

static void uart_init(void)
{
    UCSR0A = (uint8_t)(1 << U2X0); /* before UBRR0: the baud rate depends on it */
    UBRR0H = (uint8_t)(UBRR_VALUE >> 8);
    UBRR0L = (uint8_t)UBRR_VALUE;
    UCSR0C = (uint8_t)((1 << UCSZ01) | (1 << UCSZ00)); /* 8N1 */
    UCSR0B = (uint8_t)((1 << RXEN0) | (1 << TXEN0) | (1 << RXCIE0));
}

static void uart_write(const char *s, uint8_t n)
{
    while (n--) {
        while (!(UCSR0A & (1 << UDRE0)))
            ;
        UDR0 = (uint8_t)*s++;
    }
}

int main(void)
{
    static pb_ctx_t ctx;
    static char reply[PB_REPLY_SIZE];

    PRR = (uint8_t)((1 << PRTWI) | (1 << PRTIM2) | (1 << PRTIM1) | (1 << PRTIM0) | (1 << PRADC));
    parts_init(); /* safe default first: a fault shows up at the first GET/SET as ERR 6 */
    pb_init(&ctx, &parts_bus);
    uart_init();
    set_sleep_mode(SLEEP_MODE_IDLE);
    sei();
    for (;;) {
        cli();
        if (rx_head == rx_tail) {
            sleep_enable();
            sei(); /* the instruction after SEI runs before any interrupt: no lost wake-up */
            sleep_cpu();
            sleep_disable();
            continue;
        }
        uint16_t entry = rx_ring[rx_tail];
        rx_tail = (uint8_t)((rx_tail + 1) & (RX_SIZE - 1));
        sei();
        if (entry & RX_BAD)
            pb_mark_corrupt(&ctx);
        uint8_t n = pb_feed(&ctx, (uint8_t)entry, reply);
        if (entry & RX_LOST)
            pb_mark_corrupt(&ctx);
        if (n)
            uart_write(reply, n);
    }
}
