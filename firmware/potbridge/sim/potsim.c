/*
 * potsim: runs the pot-bridge firmware (.elf) on a simulated ATmega328P (simavr) with
 *   - its UART on a pseudo-terminal: any serial client (labtrain's SerialPotBridge, pyserial,
 *     screen) opens the printed /dev/pts/N at "115200 8N1";
 *   - its SPI bus and /CS pins wired to a model of the pot parts (chain.c) that logs every frame,
 *     holds the taps and answers readback where the part allows it.
 *
 * Usage:  potsim --part MCP41|MCP42|AD5293 --parts N [--freq HZ] [--verbose] firmware.elf
 *
 * stdout: "READY <pty path>" once the pty is open (or "NOPTY <reason>" and exit status 4), then
 *         one answer per control command.
 * stdin (control, one command per line):
 *   ping                    OK pong
 *   taps                    TAPS <tap of channel 0> <channel 1> ...     (what the parts hold)
 *   frames [FIRST]          FRAMES <total>, then FRAME <i> <cs> <executed> <mosi hex> <miso hex>
 *                           for every logged frame from FIRST on, then END
 *   stats                   STATS key=value ... (sim/wall time, reply latency, SPI checks)
 *   reset                   MCU reset (as the Uno's DTR auto-reset): the parts keep their taps
 *   powercycle              the parts go to their own power-on state (midscale), then MCU reset
 *   pause / resume          freeze / run the CPU (the bridge stops answering: host timeouts)
 *   mute / unmute           drop / pass everything the bridge sends
 *   cut K                   pass only the first K bytes of the next reply line (no LF)
 *   garble K                flip bit 0 of byte K of the next reply line (line noise)
 *   fault stuck P           part P ignores wiper writes;  fault miso B: MISO reads byte B;
 *   fault clear
 *   quit
 * SIGUSR1 = reset; SIGTERM / SIGINT / end of stdin = quit.
 *
 * Host bytes reach the UART at the line rate (one byte per 11 bit times at 117647 baud, simavr's
 * own UART timing), and only while the receiver is enabled: bytes sent during a reset wait for the
 * firmware (the bootloader of a real Uno would eat them).  Simulated time is held close to wall
 * time (simavr sleeps while the firmware sleeps): host timeouts mean the same as on hardware.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "avr_ioport.h"
#include "avr_spi.h"
#include "avr_uart.h"
#include "sim_avr.h"
#include "sim_cycle_timers.h"
#include "sim_elf.h"
#include "sim_irq.h"

#include "chain.h"

/* ATmega328P data-space addresses and bits the harness looks at */
#define REG_UCSR0B 0xC1
#define BIT_RXEN0 4
#define REG_SPCR 0x4C
#define SPCR_DORD 0x20
#define SPCR_MSTR 0x10
#define SPCR_CPOL 0x08
#define SPCR_CPHA 0x04

/* /CS k: port, bit (config.h / spi_avr.c: D10 D9 D8 D7 D6 D5 D4 D3) */
static const char cs_port[8] = {'B', 'B', 'B', 'D', 'D', 'D', 'D', 'D'};
static const int cs_bit[8] = {2, 1, 0, 7, 6, 5, 4, 3};

static avr_t *avr;
static chain_t chain;
static avr_irq_t *uart_in, *spi_in;
static int master_fd = -1, slave_fd = -1;
static uint32_t freq = 16000000;
static avr_cycle_count_t byte_cycles; /* one UART character on the line */

#define QSIZE 65536
typedef struct {
    uint8_t buf[QSIZE];
    size_t head, tail;
} queue_t;
static queue_t inq, outq;

static size_t q_len(const queue_t *q) { return q->head - q->tail; }
static void q_push(queue_t *q, uint8_t b)
{
    if (q_len(q) < QSIZE)
        q->buf[q->head++ % QSIZE] = b;
}
static uint8_t q_pop(queue_t *q) { return q->buf[q->tail++ % QSIZE]; }

/* state */
static int inject_scheduled, paused, muted, cut_armed, cut_left, garble_armed, garble_at, out_col, cs_level[8];
static int line_has_content, awaiting_reply;
static avr_cycle_count_t lf_cycle, next_inject;
static double max_latency_s, last_latency_s, wall_paused_s;
static unsigned long lines_in, lines_out, bytes_in, bytes_out, spi_bytes, spi_mode_errors, resets;
static struct timespec t_start, t_pause;
static volatile sig_atomic_t sig_reset, sig_quit;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t_start.tv_sec) + 1e-9 * (double)(t.tv_nsec - t_start.tv_nsec);
}

/* ------------------------------------------------------------------ UART */
static avr_cycle_count_t inject(avr_t *a, avr_cycle_count_t when, void *param)
{
    (void)param;
    if (!q_len(&inq)) {
        inject_scheduled = 0;
        return 0;
    }
    if (!(a->data[REG_UCSR0B] & (1 << BIT_RXEN0)))
        return when + byte_cycles; /* receiver off (reset, start-up): hold the bytes */
    uint8_t b = q_pop(&inq);
    bytes_in++;
    if (b == '\n') {
        if (line_has_content) {
            lines_in++;
            lf_cycle = when + byte_cycles; /* the LF is received one character time later */
            awaiting_reply = 1;
        }
        line_has_content = 0;
    } else if (b != '\r') {
        line_has_content = 1;
    }
    avr_raise_irq(uart_in, b);
    next_inject = when + byte_cycles;
    if (!q_len(&inq)) {
        inject_scheduled = 0;
        return 0;
    }
    return next_inject;
}

static void schedule_inject(void)
{
    if (inject_scheduled || !q_len(&inq))
        return;
    avr_cycle_count_t delay = next_inject > avr->cycle ? next_inject - avr->cycle : 1;
    avr_cycle_timer_register(avr, delay, inject, NULL);
    inject_scheduled = 1;
}

static void uart_out_cb(avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq;
    (void)param;
    uint8_t b = (uint8_t)value;
    bytes_out++;
    if (b == '\n') {
        lines_out++;
        if (awaiting_reply) {
            /* from the LF received to the reply's LF sent (its last bit on the line) */
            double lat = (double)(avr->cycle + byte_cycles - lf_cycle) / freq;
            last_latency_s = lat;
            if (lat > max_latency_s)
                max_latency_s = lat;
            awaiting_reply = 0;
        }
    }
    int col = out_col;
    out_col = b == '\n' ? 0 : out_col + 1;
    if (muted)
        return;
    if (garble_armed && b != '\n' && col == garble_at) {
        b ^= 0x01;
        garble_armed = 0;
    }
    if (cut_armed) {
        if (cut_left > 0) {
            cut_left--;
            q_push(&outq, b);
        }
        if (b == '\n')
            cut_armed = 0;
        return;
    }
    q_push(&outq, b);
}

/* ------------------------------------------------------------------ SPI + /CS */
static void spi_out_cb(avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq;
    (void)param;
    uint8_t spcr = avr->data[REG_SPCR];
    int cpol = !!(spcr & SPCR_CPOL), cpha = !!(spcr & SPCR_CPHA);
    int mode_ok = (spcr & SPCR_MSTR) && !(spcr & SPCR_DORD);
    if (chain.kind == CHAIN_AD5293)
        mode_ok = mode_ok && !cpol && cpha; /* mode 1 */
    else
        mode_ok = mode_ok && cpol == cpha; /* MCP4xxxx: mode 0,0 or 1,1 */
    spi_bytes++;
    uint8_t miso;
    if (!mode_ok) {
        spi_mode_errors++; /* the parts would see garbage: do not let it through */
        miso = 0xFF;
    } else {
        miso = chain_xfer(&chain, (uint8_t)value);
    }
    avr_raise_irq(spi_in, miso);
}

static void cs_cb(avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq;
    int k = (int)(intptr_t)param;
    int level = value ? 1 : 0;
    if (level == cs_level[k])
        return;
    cs_level[k] = level;
    if (level)
        chain_deselect(&chain, k);
    else
        chain_select(&chain, k);
}

/* ------------------------------------------------------------------ control */
static void do_reset(int power)
{
    if (power) {
        chain_power_on(&chain);
        for (int k = 0; k < 8; k++)
            cs_level[k] = 1;
    }
    avr_reset(avr); /* cancels every cycle timer, ours included */
    inject_scheduled = 0;
    next_inject = 0;
    awaiting_reply = 0;
    line_has_content = 0;
    resets++;
    out_col = 0;
    schedule_inject();
}

static void hex(const uint8_t *b, int n, char *out)
{
    static const char d[] = "0123456789ABCDEF";
    for (int i = 0; i < n; i++) {
        out[2 * i] = d[b[i] >> 4];
        out[2 * i + 1] = d[b[i] & 15];
    }
    out[2 * n] = 0;
    if (n == 0)
        strcpy(out, "-");
}

static int command(char *line)
{
    char *argv[4] = {0};
    int argc = 0;
    for (char *tok = strtok(line, " \t\r"); tok && argc < 4; tok = strtok(NULL, " \t\r"))
        argv[argc++] = tok;
    if (argc == 0)
        return 0;
    if (!strcmp(argv[0], "ping")) {
        printf("OK pong\n");
    } else if (!strcmp(argv[0], "taps")) {
        printf("TAPS");
        for (int c = 0; c < chain.n_channels; c++)
            printf(" %u", chain_tap(&chain, c));
        printf("\n");
    } else if (!strcmp(argv[0], "frames")) {
        unsigned long first = argc > 1 ? strtoul(argv[1], 0, 10) : 0;
        char mosi[2 * CHAIN_FRAME_MAX + 2], miso[2 * CHAIN_FRAME_MAX + 2];
        printf("FRAMES %lu\n", chain.n_frames);
        for (unsigned long i = first; i < chain.n_frames; i++) {
            const chain_frame_t *f = chain_frame(&chain, i);
            if (!f)
                continue;
            int n = f->n < CHAIN_FRAME_MAX ? f->n : CHAIN_FRAME_MAX;
            hex(f->mosi, n, mosi);
            hex(f->miso, n, miso);
            printf("FRAME %lu %u %u %s %s\n", i, f->cs, f->executed, mosi, miso);
        }
        printf("END\n");
    } else if (!strcmp(argv[0], "stats")) {
        double wall = now_s() - wall_paused_s;
        printf("STATS sim_s=%.6f wall_s=%.6f lines_in=%lu lines_out=%lu bytes_in=%lu bytes_out=%lu "
               "max_latency_s=%.6f last_latency_s=%.6f spi_bytes=%lu spi_mode_errors=%lu frames=%lu "
               "ignored=%lu stray=%lu overlap=%lu wiper_writes=%lu resets=%lu pending_in=%zu\n",
               (double)avr->cycle / freq, wall, lines_in, lines_out, bytes_in, bytes_out, max_latency_s,
               last_latency_s, spi_bytes, spi_mode_errors, chain.n_frames, chain.n_ignored, chain.n_stray,
               chain.n_overlap, chain.n_wiper_writes, resets, q_len(&inq));
    } else if (!strcmp(argv[0], "reset") || !strcmp(argv[0], "powercycle")) {
        do_reset(argv[0][0] == 'p');
        printf("OK %s\n", argv[0]);
    } else if (!strcmp(argv[0], "pause")) {
        if (!paused)
            clock_gettime(CLOCK_MONOTONIC, &t_pause);
        paused = 1;
        printf("OK pause\n");
    } else if (!strcmp(argv[0], "resume")) {
        if (paused) {
            struct timespec t;
            clock_gettime(CLOCK_MONOTONIC, &t);
            uint64_t ns = (uint64_t)(t.tv_sec - t_pause.tv_sec) * 1000000000ull + (uint64_t)t.tv_nsec -
                          (uint64_t)t_pause.tv_nsec;
            if (avr->time_base) /* simavr keeps simulated time on wall time: skip the pause */
                avr->time_base += ns;
            wall_paused_s += 1e-9 * (double)ns;
        }
        paused = 0;
        schedule_inject(); /* bytes that arrived while paused */
        printf("OK resume\n");
    } else if (!strcmp(argv[0], "mute") || !strcmp(argv[0], "unmute")) {
        muted = argv[0][0] == 'm';
        printf("OK %s\n", argv[0]);
    } else if (!strcmp(argv[0], "cut") && argc == 2) {
        cut_armed = 1;
        cut_left = atoi(argv[1]);
        printf("OK cut\n");
    } else if (!strcmp(argv[0], "garble") && argc == 2) {
        garble_armed = 1;
        garble_at = atoi(argv[1]);
        printf("OK garble\n");
    } else if (!strcmp(argv[0], "fault") && argc >= 2) {
        if (!strcmp(argv[1], "stuck") && argc == 3)
            chain.stuck_part = atoi(argv[2]);
        else if (!strcmp(argv[1], "miso") && argc == 3)
            chain.miso_force = (int)strtol(argv[2], 0, 16) & 0xFF;
        else if (!strcmp(argv[1], "clear"))
            chain.stuck_part = chain.miso_force = -1;
        else {
            printf("ERR fault stuck P | fault miso HH | fault clear\n");
            return 0;
        }
        printf("OK fault\n");
    } else if (!strcmp(argv[0], "quit")) {
        printf("OK quit\n");
        return 1;
    } else {
        printf("ERR unknown command %s\n", argv[0]);
    }
    return 0;
}

/* ------------------------------------------------------------------ I/O between runs */
static char ctl_buf[4096];
static size_t ctl_len;

static int service_io(int timeout_ms)
{
    struct pollfd p[2] = {{master_fd, POLLIN, 0}, {0, POLLIN, 0}};
    if (q_len(&outq))
        p[0].events |= POLLOUT;
    if (poll(p, 2, timeout_ms) < 0)
        return errno == EINTR ? 0 : -1;
    if (p[0].revents & POLLIN) {
        uint8_t buf[4096];
        ssize_t n = read(master_fd, buf, sizeof buf);
        for (ssize_t i = 0; i < n; i++)
            q_push(&inq, buf[i]);
        if (n > 0 && !paused)
            schedule_inject();
    }
    while (q_len(&outq)) {
        uint8_t buf[4096];
        size_t n = 0;
        while (n < sizeof buf && n < q_len(&outq)) {
            buf[n] = outq.buf[(outq.tail + n) % QSIZE];
            n++;
        }
        ssize_t w = write(master_fd, buf, n);
        if (w <= 0)
            break;
        outq.tail += (size_t)w;
    }
    if (p[1].revents & (POLLIN | POLLHUP)) {
        ssize_t n = read(0, ctl_buf + ctl_len, sizeof ctl_buf - 1 - ctl_len);
        if (n <= 0)
            return 1; /* the controlling process went away */
        ctl_len += (size_t)n;
        char *nl;
        while ((nl = memchr(ctl_buf, '\n', ctl_len)) != NULL) {
            *nl = 0;
            int quit = command(ctl_buf);
            fflush(stdout);
            size_t used = (size_t)(nl - ctl_buf) + 1;
            memmove(ctl_buf, nl + 1, ctl_len - used);
            ctl_len -= used;
            if (quit)
                return 1;
        }
        if (ctl_len == sizeof ctl_buf - 1)
            ctl_len = 0; /* an absurd line: drop it */
    }
    return 0;
}

/*
 * simavr naps 1000 cycles at a time while the firmware sleeps.  With no cycle timer pending
 * (no UART or SPI transfer under way, no host byte waiting) nothing can happen until the host or
 * the control channel writes: block in poll() for up to 20 ms instead, then bring simulated time
 * up to the wall clock, as simavr's own sleep does.
 */
static void sleep_cb(avr_t *a, avr_cycle_count_t how_long)
{
    if (a->cycle_timers.timer || q_len(&outq) || sig_reset || sig_quit) {
        avr_callback_sleep_raw(a, how_long);
        return;
    }
    struct pollfd p[2] = {{master_fd, POLLIN, 0}, {0, POLLIN, 0}};
    poll(p, 2, 20);
    uint64_t wall = (uint64_t)((double)avr_get_time_stamp(a) * 1e-9 * freq);
    if (wall > a->cycle + how_long + 1)
        a->cycle = wall - how_long - 1; /* simavr adds how_long + 1 when we return */
}

static void on_signal(int sig)
{
    if (sig == SIGUSR1)
        sig_reset = 1;
    else
        sig_quit = 1;
}

static int log_level = LOG_ERROR;

/* simavr's messages go to stderr: stdout carries the control answers only */
static void logger(avr_t *a, const int level, const char *format, va_list ap)
{
    (void)a;
    if (level <= log_level)
        vfprintf(stderr, format, ap);
}

static void usage(void)
{
    fprintf(stderr, "usage: potsim --part MCP41|MCP42|AD5293 --parts N [--freq HZ] [--verbose] firmware.elf\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *elf = NULL, *part = "MCP42";
    int n_parts = 4, verbose = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--part") && i + 1 < argc)
            part = argv[++i];
        else if (!strcmp(argv[i], "--parts") && i + 1 < argc)
            n_parts = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--freq") && i + 1 < argc)
            freq = (uint32_t)strtoul(argv[++i], 0, 10);
        else if (!strcmp(argv[i], "--verbose"))
            verbose = 1;
        else if (argv[i][0] != '-' && !elf)
            elf = argv[i];
        else
            usage();
    }
    int kind = chain_kind_from_name(part);
    if (!elf || !kind || n_parts < 1 || n_parts > CHAIN_MAX_PARTS || (kind == CHAIN_MCP41 && n_parts > 8))
        usage();
    clock_gettime(CLOCK_MONOTONIC, &t_start);
    chain_init(&chain, kind, n_parts);
    log_level = verbose ? LOG_TRACE : LOG_ERROR;
    avr_global_logger_set(logger);

    elf_firmware_t fw;
    memset(&fw, 0, sizeof fw);
    if (elf_read_firmware(elf, &fw)) {
        fprintf(stderr, "potsim: cannot read %s\n", elf);
        return 2;
    }
    avr = avr_make_mcu_by_name("atmega328p");
    if (!avr) {
        fprintf(stderr, "potsim: simavr has no atmega328p core\n");
        return 2;
    }
    avr_init(avr);
    fw.frequency = freq;
    avr_load_firmware(avr, &fw);
    avr->frequency = freq;
    avr->log = (uint8_t)log_level;
    avr->sleep = sleep_cb;
    /* 11 bit times (simavr counts a parity slot) at 16 MHz / (8 * 17): simavr's own RX pace */
    byte_cycles = (avr_cycle_count_t)(11ull * 8 * 17 * freq / 16000000ull);

    uint32_t flags = 0; /* no console echo, no polling usleep */
    avr_ioctl(avr, AVR_IOCTL_UART_SET_FLAGS('0'), &flags);
    uart_in = avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_INPUT);
    avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUTPUT), uart_out_cb, NULL);
    spi_in = avr_io_getirq(avr, AVR_IOCTL_SPI_GETIRQ(0), SPI_IRQ_INPUT);
    avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_SPI_GETIRQ(0), SPI_IRQ_OUTPUT), spi_out_cb, NULL);
    for (int k = 0; k < chain.n_cs; k++) {
        cs_level[k] = 1;
        avr_irq_t *pin = avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ(cs_port[k]), cs_bit[k]);
        avr_irq_register_notify(pin, cs_cb, (void *)(intptr_t)k);
    }
    for (int k = chain.n_cs; k < 8; k++)
        cs_level[k] = 1;

    char name[128];
    if (openpty(&master_fd, &slave_fd, name, NULL, NULL) < 0) {
        printf("NOPTY %s\n", strerror(errno)); /* no /dev/pts here: the caller skips */
        fflush(stdout);
        return 4;
    }
    struct termios tio;
    tcgetattr(slave_fd, &tio);
    cfmakeraw(&tio); /* no echo, no line discipline, until the client sets its own mode */
    tcsetattr(slave_fd, TCSANOW, &tio);
    fcntl(master_fd, F_SETFL, fcntl(master_fd, F_GETFL) | O_NONBLOCK);
    /* slave_fd stays open: the master keeps working while no client has the pty open */

    signal(SIGUSR1, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    printf("READY %s\n", name);
    fflush(stdout);

    for (;;) {
        if (sig_quit)
            break;
        if (sig_reset) {
            sig_reset = 0;
            do_reset(0);
        }
        if (service_io(paused ? 5 : 0))
            break;
        if (paused)
            continue;
        for (int i = 0; i < 20000; i++) {
            int state = avr_run(avr);
            if (state == cpu_Done || state == cpu_Crashed) {
                printf("CRASHED state=%d pc=0x%04x cycle=%llu\n", state, avr->pc, (unsigned long long)avr->cycle);
                fflush(stdout);
                return 3;
            }
            if (avr->state == cpu_Sleeping)
                break; /* simavr slept up to the next timer: look at the pty and stdin */
        }
    }
    avr_terminate(avr);
    return 0;
}
