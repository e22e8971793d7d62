/* storebench — what the store costs per trade, measured.
 *
 * Loads the reference workloads W1 (1,000 symbols) and W1-10k (10,000
 * symbols), 1M trades each unless told otherwise, into a fresh store in
 * batches of 1,000 through the real two-phase path (add, reserve, commit),
 * and prints the store's own accounting next to what the kernel says:
 *
 *   B/trade   store bytes_reserved (slab pages carved, live + free-listed,
 *             plus the symbol table and partitions) / trades
 *   RSS/trade growth of the process's resident set over the load / trades
 *
 * Each workload runs twice, with compaction (the default) and a plain
 * store (store_config.plain), each in a forked child so one run's heap
 * does not flatter the next one's RSS; then a range scan of everything and
 * a snapshot load from memory are timed.
 *
 *   storebench [trades] [seed]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kind.h"
#include "slab.h"
#include "snapshot.h"
#include "store.h"
#include "workload.h"

#define BATCH 1000
#define SCANS 5 /* range-scan passes; the best is reported */
#define STR_(x) #x
#define STR(x) STR_(x)

typedef struct result {
    store_stats st;
    double rss_per_trade;
    double add_ns, reserve_ns, commit_ns, fault_ns; /* per trade */
    double scan_ns;   /* per trade, store_scan over every symbol, whole range */
    double load_mtps; /* snapshot load, millions of trades per second (in memory) */
} result;

typedef struct scan_sum {
    uint64_t n;
    int64_t px;
} scan_sum;

static void scan_visit(void *ctx, const kind *k, const void *slot)
{
    scan_sum *z = ctx;
    (void)k;
    z->n++;
    z->px += (int64_t)kind_trade_of(slot)->px;
}

typedef struct membuf {
    unsigned char *b;
    size_t len, cap, pos;
} membuf;

static int mem_write(void *ctx, const void *p, size_t n)
{
    membuf *m = ctx;
    if (m->len + n > m->cap) {
        size_t c = m->cap ? m->cap * 2 : (size_t)1 << 20;
        while (c < m->len + n)
            c *= 2;
        unsigned char *b = realloc(m->b, c);
        if (!b)
            return -1;
        m->b = b;
        m->cap = c;
    }
    memcpy(m->b + m->len, p, n);
    m->len += n;
    return 0;
}

static int mem_read(void *ctx, void *p, size_t n)
{
    membuf *m = ctx;
    if (n > m->len - m->pos)
        return -1;
    memcpy(p, m->b + m->pos, n);
    m->pos += n;
    return 0;
}

/* A checksum is the caller's (snapshot.h); a cheap one keeps the load's
 * own work in view. */
static uint32_t sum32(uint32_t c, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        c = c * 31 + b[i];
    return c;
}

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/* Resident bytes, from /proc/self/statm (second field, in pages). */
static long rss_bytes(void)
{
    long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return -1;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2)
        resident = -1;
    fclose(f);
    return resident < 0 ? -1 : resident * sysconf(_SC_PAGESIZE);
}

static long minor_faults(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

/* What one first-touch page fault costs here (the kernel zeroes a fresh
 * page): touch every page of a scratch mapping once. */
static double fault_ns(void)
{
    size_t len = (size_t)64 << 20, pg = (size_t)sysconf(_SC_PAGESIZE);
    unsigned char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return 0;
    double t0 = now_ns();
    for (size_t i = 0; i < len; i += pg)
        m[i] = 1;
    double t = (now_ns() - t0) / (double)(len / pg);
    munmap(m, len);
    return t;
}

static int run(uint32_t nsym, uint64_t trades, uint64_t seed, int plain, result *r)
{
    workload w;
    store *s = NULL;
    store_batch b;
    store_config cfg = {.plain = plain};
    workload_trade *batch = NULL;
    char (*names)[16] = NULL;
    uint8_t *lens = NULL;
    int rc = -1;
    if (workload_init(&w, nsym, 1.1, seed) != 0)
        return -1;
    store_batch_init(&b);
    batch = malloc(BATCH * sizeof *batch);
    names = malloc((size_t)nsym * sizeof *names);
    lens = malloc(nsym);
    if (!batch || !names || !lens || store_open(&s, &cfg) != STORE_OK)
        goto out;
    for (uint32_t i = 0; i < nsym; i++)
        lens[i] = (uint8_t)workload_symbol(i, names[i]);
    double per_fault = fault_ns();
    long rss0 = rss_bytes(), flt0 = minor_faults();
    double t_add = 0, t_reserve = 0, t_commit = 0;
    for (uint64_t done = 0; done < trades;) {
        uint64_t n = trades - done < BATCH ? trades - done : BATCH;
        for (uint64_t i = 0; i < n; i++) /* generated outside the timed part */
            workload_next(&w, &batch[i]);
        double t0 = now_ns();
        for (uint64_t i = 0; i < n; i++) {
            const workload_trade *t = &batch[i];
            int64_t v[TRADE_NFIELDS];
            v[TRADE_ts] = t->ts;
            v[TRADE_px] = t->px;
            v[TRADE_qty] = t->qty;
            v[TRADE_side] = t->side;
            v[TRADE_id] = (int64_t)t->id;
            if (store_batch_add(s, &b, names[t->sym], lens[t->sym], &kind_trade, v) != STORE_OK) {
                fprintf(stderr, "storebench: add failed\n");
                goto out;
            }
        }
        double t1 = now_ns();
        if (store_batch_reserve(s, &b) != STORE_OK) {
            fprintf(stderr, "storebench: store full after %llu trades\n",
                    (unsigned long long)done);
            goto out;
        }
        double t2 = now_ns();
        store_batch_commit(s, &b);
        double t3 = now_ns();
        t_add += t1 - t0;
        t_reserve += t2 - t1;
        t_commit += t3 - t2;
        done += n;
    }
    long rss1 = rss_bytes();
    store_get_stats(s, &r->st);
    r->rss_per_trade = (double)(rss1 - rss0) / (double)trades;
    r->add_ns = t_add / (double)trades;
    r->reserve_ns = t_reserve / (double)trades;
    r->commit_ns = t_commit / (double)trades;
    r->fault_ns = (double)(minor_faults() - flt0) * per_fault / (double)trades;
    /* Range scan: every symbol, whole range, paged as the server pages;
     * the best of SCANS passes (on shared cores the fastest pass is the one
     * least disturbed; the pages are the same every pass). */
    r->scan_ns = 0;
    for (int pass = 0; pass < SCANS; pass++) {
        scan_sum z = {0, 0};
        double t4 = now_ns();
        for (uint32_t i = 0; i < nsym; i++) {
            uint64_t cur = 0, next;
            do {
                if (store_scan(s, names[i], lens[i], 0, INT64_MAX, cur, STORE_MAX_TRADES,
                               scan_visit, &z, &next) != STORE_OK)
                    break;
                cur = next;
            } while (cur != STORE_CURSOR_END);
        }
        double ns = (now_ns() - t4) / (double)(z.n ? z.n : 1);
        if (pass == 0 || ns < r->scan_ns)
            r->scan_ns = ns;
    }
    /* Snapshot load rate, in memory, into a store of the same mode. */
    membuf m = {0};
    snapshot_io io = {mem_write, mem_read, sum32, &m};
    store *l = NULL;
    if (snapshot_save(s, NULL, 0, &io, NULL) == SNAPSHOT_OK && store_open(&l, &cfg) == STORE_OK) {
        double t5 = now_ns();
        if (snapshot_load(l, &io, NULL, NULL, NULL) == SNAPSHOT_OK)
            r->load_mtps = (double)trades / ((now_ns() - t5) / 1e3);
    }
    store_close(l);
    free(m.b);
    rc = 0;
out:
    store_batch_free(&b);
    store_close(s);
    free(batch);
    free(names);
    free(lens);
    workload_free(&w);
    return rc;
}

static void row(const char *name, int plain, uint32_t nsym, const result *r)
{
    const store_stats *st = &r->st;
    const double mib = 1024.0 * 1024.0;
    printf("%-8s %-7s %7u %9llu %8.2f %8.2f %7.2f %8.2f %6.3f %8.2f | %6.1f %6.1f %6.1f %6.1f | "
           "%5.2f %6.1f\n",
           name, plain ? "plain" : "compact", nsym, (unsigned long long)st->trades,
           st->bytes_reserved / mib, st->bytes_used / mib, st->bytes_index / mib,
           (double)st->bytes_reserved / (double)st->trades, st->fill, r->rss_per_trade, r->add_ns,
           r->reserve_ns, r->commit_ns, r->fault_ns, r->scan_ns, r->load_mtps);
}

int main(int argc, char **argv)
{
    uint64_t trades = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 10) : 1;
    static const struct {
        const char *name;
        uint32_t nsym;
    } wl[] = {{"W1", 1000}, {"W1-10k", 10000}};
    if (trades == 0) {
        fprintf(stderr, "usage: storebench [trades] [seed]\n");
        return 2;
    }
    printf("store accounting at %llu trades, batches of %d, seed %llu; max page %zu B, "
           "slot %u B\n\n",
           (unsigned long long)trades, BATCH, (unsigned long long)seed, slab_max_page(),
           (unsigned)kind_trade.size);
    printf("%-8s %-7s %7s %9s %8s %8s %7s %8s %6s %8s | %6s %6s %6s %6s | %5s %6s\n",
           "workload", "pages", "symbols", "trades", "rsv MiB", "used MiB", "idx MiB", "B/trade",
           "fill", "RSS B/t", "add", "rsv", "commit", "faults", "scan", "load");
    fflush(stdout);
    int status = 0;
    for (size_t j = 0; j < 2 * sizeof wl / sizeof wl[0]; j++) {
        size_t i = j / 2;
        int plain = (int)(j % 2);
        int fd[2];
        if (pipe(fd) != 0)
            return 1;
        pid_t pid = fork();
        if (pid < 0)
            return 1;
        if (pid == 0) {
            result r;
            close(fd[0]);
            int rc = run(wl[i].nsym, trades, seed, plain, &r);
            ssize_t w = rc == 0 ? write(fd[1], &r, sizeof r) : -1;
            _exit(w == (ssize_t)sizeof r ? 0 : 1);
        }
        close(fd[1]);
        result r;
        ssize_t got = read(fd[0], &r, sizeof r);
        close(fd[0]);
        int ws = 0;
        waitpid(pid, &ws, 0);
        if (got != (ssize_t)sizeof r || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
            printf("%-8s failed\n", wl[i].name);
            status = 1;
            continue;
        }
        row(wl[i].name, plain, wl[i].nsym, &r);
    }
    printf("\nB/trade  store bytes_reserved (pages carved, free-listed ones included, + index)"
           " / trades\n"
           "RSS B/t  resident-set growth over the load / trades\n"
           "add, rsv, commit: ns per trade in store_batch_add, _reserve, _commit (wall clock)\n"
           "faults   ns per trade of first-touch page faults (count x measured cost of one),\n"
           "         nearly all taken inside commit as it writes fresh slab pages\n"
           "pages    compact: sealed pages re-encoded (the default); plain: every page wide\n"
           "scan     ns per trade, store_scan of every symbol's whole range (trivial visitor),\n"
           "         best of " STR(SCANS) " passes\n"
           "load     snapshot_load from memory, millions of trades per second\n");
    return status;
}
