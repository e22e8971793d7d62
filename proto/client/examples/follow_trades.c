/* Follow trades as slotd stores them, resuming where the last run stopped:
 *   cc follow_trades.c $(pkg-config --cflags --libs slotd-client) -o follow_trades
 *   ./follow_trades [PORT] [CURSOR_FILE] [IDLE_MS]
 * Subscribes to every symbol ("*") from the cursor saved in CURSOR_FILE
 * (default follow.cursor; none yet: from the start), prints each trade and
 * saves the cursor after each push. Stops after IDLE_MS without a push
 * (default: never), or on an error; run it again to continue exactly
 * after the last trade it printed. */
#include <stdio.h>
#include <stdlib.h>

#include <slotd/client.h>

static char *load(const char *path)
{
    static char buf[64 << 10];
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static int save(const slotd_sub *sub, const char *path)
{
    static char buf[64 << 10], tmp[4096];
    if (slotd_sub_cursor(sub, buf, sizeof buf) >= (int64_t)sizeof buf)
        return -1; /* more symbols than this example's buffer */
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f || fputs(buf, f) < 0 || fclose(f) != 0)
        return -1;
    return rename(tmp, path); /* all or nothing, even if killed here */
}

int main(int argc, char **argv)
{
    const char *path = argc > 2 ? argv[2] : "follow.cursor";
    slotd_sub_opts o;
    slotd_sub_opts_init(&o);
    o.port = argc > 1 ? atoi(argv[1]) : 7400;
    o.client = "follow-trades";
    o.from = load(path); /* NULL: none saved yet */
    if (!o.from)
        o.from = "start";
    slotd_sub *sub;
    slotd_batch_error err;
    int rc = slotd_sub_open(&o, &sub, &err);
    if (rc != 0) {
        fprintf(stderr, "slotd_sub_open: %s: %s\n", slotd_strerror(rc), err.message);
        return 1;
    }
    slotd_sub_event ev;
    while ((rc = slotd_sub_next(sub, &ev, argc > 3 ? atoi(argv[3]) : -1)) > 0) {
        /* exact: no deletes in the run, so trade i is at position first + i */
        for (uint32_t i = 0; ev.type == SLOTD_SUB_TRADES && i < ev.ntrades; i++)
            printf("%-5s #%lld  ts %llu  px %s  qty %s  side %s  id %llu\n", ev.sym,
                   ev.exact ? (long long)(ev.first + i) : -1LL,
                   (unsigned long long)slotd_sub_slot(&ev, i, "ts")->u,
                   slotd_sub_slot(&ev, i, "px")->text, slotd_sub_slot(&ev, i, "qty")->text,
                   slotd_sub_slot(&ev, i, "side")->text,
                   (unsigned long long)slotd_sub_slot(&ev, i, "id")->u);
        if (ev.type == SLOTD_SUB_GAP)
            printf("%-5s trades %llu..%llu dropped by retention\n", ev.sym,
                   (unsigned long long)ev.first, (unsigned long long)ev.next - 1);
        fflush(stdout);
        if (save(sub, path) != 0) {
            perror(path);
            break;
        }
    }
    if (rc < 0) /* SLOTD_EDISCONNECTED: slotd went away; run again to resume */
        fprintf(stderr, "%s: %s\n", slotd_strerror(rc), slotd_sub_last_error(sub)->message);
    slotd_sub_close(sub, 1000);
    return rc < 0 ? 1 : 0;
}
