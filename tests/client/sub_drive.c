/* sub_drive — a subscriber through libslotd-client's slotd_sub_* calls, for
 * tests/integration/test_client_c_sub.py (a real slotd, real sockets).
 *
 * Prints "ready" once SUBOK is in, then one line per trade,
 *   t {"sym": ..., "kind": ..., "pos": N or null, "v": {slot: value, ...}}
 * one "gap SYM FROM TO" per GAP, one "reopen CURSOR" per reconnect, and at
 * the end one JSON line: {"rc", "err": {...}, "trades", "cursor", "reopens"}.
 * With --print-cursor a line "c CURSOR" follows every event's lines (and
 * stdout is flushed): the cursor saved with the work it covers, in the
 * same file, as a program that saves its progress would; --from CURSOR
 * resumes from it after a SIGKILL. --reconnect-ms: on SLOTD_EDISCONNECTED, open again from the
 * cursor for up to that long (the documented reconnect). Stops after
 * --expect trades, or when nothing came for --idle-ms. Exit status 0
 * whatever happened (the test reads the JSON); 2 for bad arguments. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "drive_common.h"
#include "slotd/client.h"

static void print_trades(const slotd_sub_event *ev)
{
    for (uint32_t i = 0; i < ev->ntrades; i++) {
        printf("t {\"sym\": ");
        json_str(ev->sym);
        printf(", \"kind\": ");
        json_str(ev->kind);
        if (ev->exact)
            printf(", \"pos\": %llu, \"v\": {", (unsigned long long)(ev->first + i));
        else
            printf(", \"pos\": null, \"v\": {");
        for (uint32_t j = 0; j < ev->nslots; j++) {
            const slotd_value *v = &ev->values[(size_t)i * ev->nslots + j];
            if (ev->slot_names)
                json_str(ev->slot_names[j]);
            else
                printf("\"%u\"", j);
            printf(": ");
            if (v->type == SLOTD_TEXT)
                json_str(v->text);
            else if (v->type == SLOTD_UINT)
                printf("%llu", (unsigned long long)v->u);
            else
                printf("%lld", (long long)v->i);
            printf(j + 1 < ev->nslots ? ", " : "");
        }
        printf("}}\n");
    }
}

static char *cursor_text(const slotd_sub *sub)
{
    int64_t n = slotd_sub_cursor(sub, NULL, 0);
    char *t = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (t)
        slotd_sub_cursor(sub, t, (size_t)n + 1);
    return t;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
    slotd_sub_opts o;
    slotd_sub_opts_init(&o);
    int print_cursor = 0;
    char *syms_arg = NULL;
    const char *syms[1024];
    uint64_t expect = UINT64_MAX;
    int idle_ms = -1, reconnect_ms = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int used = 1;
        if (!strcmp(a, "--gaps"))
            o.gaps = 1, used = 0;
        else if (!strcmp(a, "--no-names"))
            o.names = 0, used = 0;
        else if (!strcmp(a, "--tls"))
            o.tls = 1, used = 0;
        else if (!strcmp(a, "--print-cursor"))
            print_cursor = 1, used = 0;
        else if (!v)
            goto usage;
        else if (DRIVE_CONN_OPT(o, a, v))
            used = 1; /* a connection flag: taken */
        else if (!strcmp(a, "--syms"))
            syms_arg = strdup(v);
        else if (!strcmp(a, "--from"))
            o.from = v;
        else if (!strcmp(a, "--expect"))
            expect = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--idle-ms"))
            idle_ms = atoi(v);
        else if (!strcmp(a, "--reconnect-ms"))
            reconnect_ms = atoi(v);
        else if (!strcmp(a, "--timeout"))
            o.timeout_ms = atoi(v);
        else
            goto usage;
        i += used;
    }
    if (!o.client)
        goto usage;
    if (syms_arg && strcmp(syms_arg, "*") != 0) {
        for (char *t = strtok(syms_arg, ","); t && o.nsyms < 1024; t = strtok(NULL, ","))
            syms[o.nsyms++] = t;
        o.syms = syms;
    }

    slotd_sub *sub = NULL;
    slotd_batch_error err;
    int rc = slotd_sub_open(&o, &sub, &err), reopens = 0;
    char *text = NULL;
    uint64_t trades = 0;
    if (rc == 0) {
        printf("ready\n");
        fflush(stdout);
    }
    while (rc == 0 && trades < expect) {
        slotd_sub_event ev;
        int k = slotd_sub_next(sub, &ev, idle_ms);
        if (k == 0)
            break; /* idle */
        if (k < 0) {
            rc = k;
            err = *slotd_sub_last_error(sub);
            if (k != SLOTD_EDISCONNECTED || reconnect_ms <= 0)
                break;
            /* The documented reconnect: open again from the saved cursor. */
            free(text);
            text = cursor_text(sub);
            slotd_sub_close(sub, 0);
            sub = NULL;
            o.from = text;
            printf("reopen %s\n", text);
            uint64_t until = now_ms() + (uint64_t)reconnect_ms;
            do {
                poll(NULL, 0, 50);
                rc = slotd_sub_open(&o, &sub, &err);
            } while (rc == SLOTD_EDISCONNECTED && now_ms() < until);
            reopens++;
            continue;
        }
        if (ev.type == SLOTD_SUB_TRADES) {
            print_trades(&ev);
            trades += ev.ntrades;
        } else {
            printf("gap %s %llu %llu\n", ev.sym, (unsigned long long)ev.first,
                   (unsigned long long)ev.next);
        }
        if (print_cursor) {
            char *t = cursor_text(sub);
            printf("c %s\n", t ? t : "");
            free(t);
            fflush(stdout);
        }
    }
    char *final = sub ? cursor_text(sub) : text ? strdup(text) : NULL;
    if (sub) {
        int c = slotd_sub_close(sub, 5000);
        if (rc == 0 && c != 0) {
            rc = c;
            err.code = c;
        }
    }
    printf("{\"rc\": %d, \"err\": {\"code\": %d, \"name\": ", rc, rc ? err.code : 0);
    json_str(rc ? slotd_strerror(err.code) : "");
    printf(", \"wire_code\": ");
    json_str(rc ? err.wire_code : "");
    printf(", \"message\": ");
    json_str(rc ? err.message : "");
    printf("}, \"trades\": %llu, \"cursor\": ", (unsigned long long)trades);
    json_str(final ? final : "");
    printf(", \"reopens\": %d}\n", reopens);
    free(final);
    free(text);
    free(syms_arg);
    return 0;
usage:
    fprintf(stderr, "usage: sub_drive --client NAME [--port P] [--syms '*'|A,B] [--from now|start|"
                    "CURSOR] [--print-cursor] [--gaps] [--expect N] "
                    "[--idle-ms MS] [--reconnect-ms MS] [--tls --tls-ca F ...]\n");
    return 2;
}
