/* Stream your first trades with libslotd-client:
 *   cc first_trades.c $(pkg-config --cflags --libs slotd-client) -o first_trades
 *   ./first_trades [PORT]          (slotd on 127.0.0.1, default port 7400) */
#include <stdio.h>
#include <stdlib.h>

#include <slotd/client.h>

int main(int argc, char **argv)
{
    slotd_sender_opts o;
    slotd_sender_opts_init(&o);
    o.port = argc > 1 ? atoi(argv[1]) : 7400;
    o.client = "first-trades";
    slotd_sender *s;
    int rc = slotd_sender_new(&o, &s);
    if (rc != 0) {
        fprintf(stderr, "slotd_sender_new: %s\n", slotd_strerror(rc));
        return 1;
    }
    int64_t ts = 1767225600000000000; /* 2026-01-01T00:00:00Z, in ns */
    slotd_trade(s, "AAPL", ts, 187.25, 100, 'B', 1);
    slotd_trade(s, "AAPL", ts + 1000, 187.30, 50, 'S', 2);
    slotd_trade_fixed(s, "MSFT", ts + 2000, 40210000000, 1000000000, 'B', 3); /* 402.10 x 10, exact */
    rc = slotd_flush(s, 10000); /* 0: all three stored and journaled */
    if (rc != 0)
        fprintf(stderr, "flush: %s: %s\n", slotd_strerror(rc), slotd_sender_last_error(s)->message);
    else
        printf("stored %llu trades\n", (unsigned long long)slotd_sender_sealed(s));
    slotd_sender_close(s, 1000);
    return rc == 0 ? 0 : 1;
}
