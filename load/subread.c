/* subread — subscribers for load/bench.sh --sub and load/subbench.sh: open
 * subscriptions through libslotd-client (slotd_sub_*) and read, decode and
 * drop every push as fast as they come, from one thread and one poll() loop.
 *
 *   subread --port 7400 --spec star      one subscriber to "*"
 *   subread --port 7400 --spec 100       100 connections, one symbol each
 *                                        (SYM0000..SYM0099, W1's hottest)
 *
 * Prints "ready" once every SUBOK is in; on SIGTERM (or SIGINT) one line:
 *   subread: 1 subscriber(s), 5000000 trades in 1234 pushes, 0 errors, 12.3 s, cpu 1.9 s
 * (cpu: its user + system time, what it took from slotd's cores).
 * It replaces load/subreader.py, whose CPU on 2 shared cores was counted as
 * slotd's cost; this one decodes every trade (the library's work) in C. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "slotd/client.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int usage(void)
{
    fprintf(stderr, "usage: subread --port P [--host H] --spec star|N [--from now|start]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *spec = NULL, *from = "now";
    int port = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port"))
            port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--host"))
            host = argv[i + 1];
        else if (!strcmp(argv[i], "--spec"))
            spec = argv[i + 1];
        else if (!strcmp(argv[i], "--from"))
            from = argv[i + 1];
        else
            return usage();
    }
    if (!port || !spec || argc % 2 == 0)
        return usage();
    int star = !strcmp(spec, "star");
    int n = star ? 1 : atoi(spec);
    if (n < 1 || n > 10000)
        return usage();

    slotd_sub **subs = calloc((size_t)n, sizeof *subs);
    struct pollfd *pfd = calloc((size_t)n, sizeof *pfd);
    if (!subs || !pfd)
        return 1;
    int rc = 0, open = 0;
    for (int i = 0; i < n; i++) {
        char name[32], sym[16];
        const char *syms[1] = {sym};
        snprintf(name, sizeof name, star ? "subread-star" : "subread-%d", i);
        snprintf(sym, sizeof sym, "SYM%04d", i);
        slotd_sub_opts o;
        slotd_sub_opts_init(&o);
        o.host = host;
        o.port = port;
        o.client = name;
        o.from = from;
        o.names = 0; /* values in slot order: no schema query (nor query perm) needed */
        if (!star) {
            o.syms = syms;
            o.nsyms = 1;
        }
        slotd_batch_error err;
        if ((rc = slotd_sub_open(&o, &subs[i], &err)) != 0) {
            fprintf(stderr, "subread: %s: %s (%s)\n", name, slotd_strerror(rc), err.message);
            goto cleanup;
        }
        pfd[i] = (struct pollfd){.fd = slotd_sub_fd(subs[i]), .events = POLLIN};
        open++;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    printf("ready\n");
    fflush(stdout);

    double t0 = now_s();
    uint64_t trades = 0, pushes = 0, errors = 0;
    while (!stop && open > 0) {
        int k = poll(pfd, (nfds_t)n, 200);
        if (k < 0 && errno != EINTR) {
            perror("subread: poll");
            break;
        }
        for (int i = 0; k > 0 && i < n; i++) {
            if (!pfd[i].revents)
                continue;
            slotd_sub_event ev;
            int r;
            /* everything already received, then back to poll */
            while ((r = slotd_sub_next(subs[i], &ev, 0)) > 0) {
                pushes++;
                if (ev.type == SLOTD_SUB_TRADES)
                    trades += ev.ntrades;
            }
            if (r < 0) {
                const slotd_batch_error *e = slotd_sub_last_error(subs[i]);
                fprintf(stderr, "subread: subscriber %d ended: %s (%s)\n", i, slotd_strerror(r),
                        e->message);
                errors++;
                pfd[i].fd = -1; /* poll ignores it from now on */
                open--;
            }
        }
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    fprintf(stderr,
            "subread: %d subscriber(s), %llu trades in %llu pushes, %llu errors, %.1f s, "
            "cpu %.2f s\n",
            n, (unsigned long long)trades, (unsigned long long)pushes,
            (unsigned long long)errors, now_s() - t0,
            (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
cleanup:
    for (int i = 0; i < n; i++)
        if (subs[i])
            slotd_sub_close(subs[i], 0); /* no UNSUB wait: the process is going */
    free(subs);
    free(pfd);
    return rc ? 1 : 0;
}
