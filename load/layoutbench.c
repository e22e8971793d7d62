/* layoutbench — the comparison that motivated slotd, in C.
 *
 * The same W1 trades kept three ways:
 *   (a) fixed slots: the real core store (store_batch_add/reserve/commit in
 *       batches of 1000), 32-byte slots in per-symbol slab pages; twice:
 *       with compact pages (the default: full pages re-encoded narrow,
 *       core/cpage.h) and with every page wide (store_config.plain);
 *   (b) one malloc'd struct per trade behind a pointer array, with a pointer
 *       to a shared (interned) symbol string: how a typical OO program keeps
 *       a record;
 *   (c) one key/value "dict" per trade: a small open-addressing hash table
 *       whose entries point to a malloc'd key and a malloc'd boxed value
 *       (strings boxed once more), the way a generic decoder (jansson,
 *       cJSON, a Python dict of decoded objects) keeps a record.
 *
 * plus (a'), the same slots in one flat array, to show what the layout
 * itself costs to scan apart from the store's query API.
 *
 * For each: bytes per trade by allocator accounting (malloc's in-use bytes
 * for b and c, the store's own reserved bytes for a), resident-memory growth
 * from /proc/self/statm, and the time to scan every record summing qty
 * (median of 3). Each layout is built in its own forked child so memory one
 * layout freed cannot flatter the next one's numbers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fixp.h"
#include "kind.h"
#include "store.h"
#include "workload.h"

#define BATCH 1000
#define SCANS 3

typedef unsigned __int128 u128;

typedef struct opts {
    uint64_t trades;
    uint32_t symbols;
    double zipf;
    uint64_t seed;
} opts;

/* What a child reports back to the parent through a pipe. */
typedef struct result {
    int ok;
    double alloc_bytes;  /* allocator accounting */
    double rss_bytes;    /* resident growth */
    double build_ns;     /* total */
    double scan_ns;      /* median of SCANS full scans */
    u128 qty_sum;        /* the scan's answer, checked against the others */
    char note[160];      /* layout-specific detail */
} result;

/* ---- measuring ---------------------------------------------------------- */

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static uint64_t rss_bytes(void)
{
    unsigned long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    if (fscanf(f, "%lu %lu", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* In-use heap bytes, chunk headers included. Big blocks (the pointer
 * arrays) are mmap'ed by malloc and counted in hblkhd, not uordblks. */
static uint64_t heap_bytes(void)
{
    struct mallinfo2 mi = mallinfo2();
    return (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Run scan() SCANS times; keep the median time and check the answers agree. */
typedef u128 (*scan_fn)(void *ctx);
static void time_scans(result *r, scan_fn scan, void *ctx)
{
    double t[SCANS];
    for (int i = 0; i < SCANS; i++) {
        double t0 = now_ns();
        u128 sum = scan(ctx);
        t[i] = now_ns() - t0;
        if (i > 0 && sum != r->qty_sum)
            r->ok = 0;
        r->qty_sum = sum;
    }
    qsort(t, SCANS, sizeof t[0], cmp_double);
    r->scan_ns = t[SCANS / 2];
}

static void die(const char *what, const char *why)
{
    fprintf(stderr, "layoutbench: %s: %s\n", what, why);
    exit(1);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p)
        die("malloc", strerror(errno));
    return p;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}

/* Symbol names, made before any measurement: they are the input, not a
 * layout's memory. */
static char (*symbol_names(uint32_t n))[16]
{
    char(*names)[16] = xmalloc(n * sizeof *names);
    for (uint32_t i = 0; i < n; i++)
        workload_symbol(i, names[i]);
    return names;
}

static void start_workload(workload *w, const opts *o)
{
    if (workload_init(w, o->symbols, o->zipf, o->seed) != 0)
        die("workload_init", "bad parameters or out of memory");
}

/* ---- (a) fixed slots: the core store ------------------------------------ */

typedef struct slots_ctx {
    store *s;
    char (*names)[16];
    uint32_t nsym;
} slots_ctx;

static void visit_sum(void *ctx, const kind *k, const void *slot)
{
    (void)k;
    *(u128 *)ctx += kind_trade_of(slot)->qty;
}

/* Every record of every symbol through the store's own bounded scan, page
 * by page, resuming at the cursor it hands back. */
static u128 slots_scan(void *vctx)
{
    slots_ctx *c = vctx;
    u128 sum = 0;
    for (uint32_t i = 0; i < c->nsym; i++) {
        size_t len = strlen(c->names[i]);
        uint64_t cursor = 0, next = 0;
        do {
            int rc = store_scan(c->s, c->names[i], len, 0, INT64_MAX, cursor, STORE_MAX_TRADES,
                                visit_sum, &sum, &next);
            if (rc == STORE_ENOTFOUND) /* a symbol Zipf never drew */
                break;
            if (rc != STORE_OK)
                die("store_scan", core_strerror(rc));
            cursor = next;
        } while (next != STORE_CURSOR_END);
    }
    return sum;
}

static void slots_add(store *s, store_batch *b, const char *sym, const workload_trade *t)
{
    int64_t v[TRADE_NFIELDS];
    v[TRADE_ts] = t->ts;
    v[TRADE_px] = t->px;
    v[TRADE_qty] = t->qty;
    v[TRADE_side] = t->side;
    v[TRADE_id] = (int64_t)t->id;
    int bad;
    if (kind_check(&kind_trade, v, (1u << TRADE_NFIELDS) - 1, &bad) != KIND_OK)
        die("kind_check", kind_trade.fields[bad].key);
    int rc = store_batch_add(s, b, sym, strlen(sym), &kind_trade, v);
    if (rc != STORE_OK)
        die("store_batch_add", core_strerror(rc));
}

static void slots_flush(store *s, store_batch *b)
{
    int rc = store_batch_reserve(s, b);
    if (rc != STORE_OK)
        die("store_batch_reserve", core_strerror(rc));
    store_batch_commit(s, b);
    store_batch_reset(b);
}

static void run_slots(const opts *o, result *r, int plain)
{
    slots_ctx c = {.names = symbol_names(o->symbols), .nsym = o->symbols};
    workload w;
    start_workload(&w, o);
    store_config cfg = {.max_memory = (size_t)o->trades * 128 + ((size_t)1 << 30),
                        .max_symbols = o->symbols,
                        .plain = plain};
    store_batch b;
    store_batch_init(&b);
    uint64_t rss0 = rss_bytes();
    double t0 = now_ns();
    int rc = store_open(&c.s, &cfg);
    if (rc != STORE_OK)
        die("store_open", core_strerror(rc));
    for (uint64_t i = 0; i < o->trades; i++) {
        workload_trade t;
        workload_next(&w, &t);
        slots_add(c.s, &b, c.names[t.sym], &t);
        if (b.n == BATCH)
            slots_flush(c.s, &b);
    }
    if (b.n)
        slots_flush(c.s, &b);
    r->build_ns = now_ns() - t0;
    /* The staging buffer is the ingest path's, not the layout's: free it
     * before reading RSS. (It is malloc'd, so never in the store's bytes.) */
    store_batch_free(&b);
    r->rss_bytes = (double)(rss_bytes() - rss0);

    store_stats st;
    store_get_stats(c.s, &st);
    r->alloc_bytes = (double)st.bytes_reserved;
    r->ok = st.trades == o->trades;
    snprintf(r->note, sizeof r->note,
             "store: %" PRIu64 " pages, %.1f B/trade used (%.1f slots + %.1f headers/index), "
             "fill %.1f%%",
             st.pages, (double)st.bytes_used / (double)o->trades,
             (double)st.bytes_slots / (double)o->trades,
             (double)(st.bytes_used - st.bytes_slots) / (double)o->trades, st.fill * 100);
    time_scans(r, slots_scan, &c);
    store_close(c.s);
    workload_free(&w);
    free(c.names);
}

static void run_compact(const opts *o, result *r) { run_slots(o, r, 0); }
static void run_wide(const opts *o, result *r) { run_slots(o, r, 1); }

/* ---- (a') the slot layout alone ----------------------------------------- */

/* The same 32-byte slots in one flat array with a bare loop: no pages, no
 * range check, no visitor call. Not a store — it separates what the layout
 * costs from what the store's bounded query API adds. */
typedef struct flat_ctx {
    trade *recs;
    uint64_t n;
} flat_ctx;

static u128 flat_scan(void *vctx)
{
    flat_ctx *c = vctx;
    u128 sum = 0;
    for (uint64_t i = 0; i < c->n; i++)
        sum += c->recs[i].qty;
    return sum;
}

static void run_flat(const opts *o, result *r)
{
    workload w;
    start_workload(&w, o);
    uint64_t rss0 = rss_bytes(), heap0 = heap_bytes();
    double t0 = now_ns();
    flat_ctx c = {.recs = xmalloc(o->trades * sizeof *c.recs), .n = o->trades};
    for (uint64_t i = 0; i < o->trades; i++) {
        workload_trade t;
        workload_next(&w, &t);
        int64_t v[TRADE_NFIELDS] = {t.ts, t.px, t.qty, t.side, (int64_t)t.id};
        kind_trade.pack(&c.recs[i], v);
    }
    r->build_ns = now_ns() - t0;
    r->alloc_bytes = (double)(heap_bytes() - heap0);
    r->rss_bytes = (double)(rss_bytes() - rss0);
    r->ok = 1;
    snprintf(r->note, sizeof r->note,
             "flat: the slot layout in one array, bare loop (no symbol partitions, no API)");
    time_scans(r, flat_scan, &c);
    free(c.recs);
    workload_free(&w);
}

/* ---- (b) one heap struct per trade -------------------------------------- */

/* What `class Trade: def __init__(self, sym, ts, px, qty, side, id)` is in
 * C: one allocation per record, the symbol a pointer to a shared string. */
typedef struct heap_trade {
    const char *sym;
    int64_t ts;
    int64_t px;
    int64_t qty;
    uint64_t id;
    char side;
} heap_trade;

typedef struct heap_ctx {
    heap_trade **recs;
    uint64_t n;
} heap_ctx;

static u128 heap_scan(void *vctx)
{
    heap_ctx *c = vctx;
    u128 sum = 0;
    for (uint64_t i = 0; i < c->n; i++)
        sum += (uint64_t)c->recs[i]->qty;
    return sum;
}

static void run_heap(const opts *o, result *r)
{
    workload w;
    start_workload(&w, o);
    char(*names)[16] = symbol_names(o->symbols);
    uint64_t rss0 = rss_bytes(), heap0 = heap_bytes();
    double t0 = now_ns();
    /* Interned symbols and the pointer array are part of this layout. */
    char **interned = xmalloc(o->symbols * sizeof *interned);
    for (uint32_t i = 0; i < o->symbols; i++)
        interned[i] = xstrdup(names[i]);
    heap_ctx c = {.recs = xmalloc(o->trades * sizeof *c.recs), .n = o->trades};
    for (uint64_t i = 0; i < o->trades; i++) {
        workload_trade t;
        workload_next(&w, &t);
        heap_trade *h = xmalloc(sizeof *h);
        *h = (heap_trade){interned[t.sym], t.ts, t.px, t.qty, t.id,
                          t.side == KIND_SIDE_BUY ? 'B' : 'S'};
        c.recs[i] = h;
    }
    r->build_ns = now_ns() - t0;
    r->alloc_bytes = (double)(heap_bytes() - heap0);
    r->rss_bytes = (double)(rss_bytes() - rss0);
    r->ok = 1;
    snprintf(r->note, sizeof r->note,
             "heap: %zu-byte struct (%zu-byte malloc chunk) + 8-byte pointer per trade",
             sizeof(heap_trade), malloc_usable_size(c.recs[0]) + sizeof(size_t));
    time_scans(r, heap_scan, &c);
    for (uint64_t i = 0; i < c.n; i++)
        free(c.recs[i]);
    free(c.recs);
    for (uint32_t i = 0; i < o->symbols; i++)
        free(interned[i]);
    free(interned);
    free(names);
    workload_free(&w);
}

/* ---- (c) one key/value dict per trade ----------------------------------- */

/* A boxed, tagged value: what a dynamic language or a generic decoder hands
 * back for each field (json_t, cJSON item, PyObject). */
typedef enum { VAL_INT, VAL_REAL, VAL_STR } val_tag;
typedef struct boxed {
    val_tag tag;
    union {
        int64_t i;
        double d;
        char *s; /* a separate allocation, as the decoder copies it */
    } u;
} boxed;

typedef struct dict_entry {
    uint64_t hash; /* 0 = empty */
    char *key;     /* copied per record, as jansson and cJSON do */
    boxed *val;
} dict_entry;

/* Open addressing, capacity a power of two kept at most 2/3 full (CPython's
 * load factor): six keys live in a table of 16. */
typedef struct dict {
    uint32_t n, cap;
    dict_entry *tab;
} dict;

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h | 1; /* never 0 */
}

static dict *dict_new(uint32_t cap)
{
    dict *d = xmalloc(sizeof *d);
    d->n = 0;
    d->cap = cap;
    d->tab = calloc(cap, sizeof *d->tab);
    if (!d->tab)
        die("calloc", strerror(errno));
    return d;
}

static void dict_set(dict *d, const char *key, boxed *val)
{
    uint64_t h = hash_str(key);
    uint32_t i = (uint32_t)h & (d->cap - 1);
    while (d->tab[i].hash) /* keys are distinct here: no replace needed */
        i = (i + 1) & (d->cap - 1);
    d->tab[i] = (dict_entry){h, xstrdup(key), val};
    d->n++;
}

/* Lookup with the key's hash computed once by the caller, as CPython
 * caches a str's hash: the honest cost is the probe and the compare. */
static const boxed *dict_get(const dict *d, const char *key, uint64_t h)
{
    uint32_t i = (uint32_t)h & (d->cap - 1);
    for (; d->tab[i].hash; i = (i + 1) & (d->cap - 1))
        if (d->tab[i].hash == h && strcmp(d->tab[i].key, key) == 0)
            return d->tab[i].val;
    return NULL;
}

static void dict_free(dict *d)
{
    for (uint32_t i = 0; i < d->cap; i++) {
        dict_entry *e = &d->tab[i];
        if (!e->hash)
            continue;
        if (e->val->tag == VAL_STR)
            free(e->val->u.s);
        free(e->val);
        free(e->key);
    }
    free(d->tab);
    free(d);
}

static boxed *box_int(int64_t i)
{
    boxed *b = xmalloc(sizeof *b);
    b->tag = VAL_INT;
    b->u.i = i;
    return b;
}

static boxed *box_real(double d)
{
    boxed *b = xmalloc(sizeof *b);
    b->tag = VAL_REAL;
    b->u.d = d;
    return b;
}

static boxed *box_str(const char *s)
{
    boxed *b = xmalloc(sizeof *b);
    b->tag = VAL_STR;
    b->u.s = xstrdup(s);
    return b;
}

/* A decoded wire map {"sym", "ts", "px", "qty", "side", "id"}: px arrives as
 * a float, qty as an integer count of whole units. */
static dict *dict_of(const char *sym, const workload_trade *t)
{
    dict *d = dict_new(16);
    dict_set(d, "sym", box_str(sym));
    dict_set(d, "ts", box_int(t->ts));
    dict_set(d, "px", box_real(fixp_to_double(t->px)));
    dict_set(d, "qty", box_int(t->qty / FIXP_SCALE));
    dict_set(d, "side", box_str(t->side == KIND_SIDE_BUY ? "B" : "S"));
    dict_set(d, "id", box_int((int64_t)t->id));
    return d;
}

typedef struct dict_ctx {
    dict **recs;
    uint64_t n;
} dict_ctx;

static u128 dict_scan(void *vctx)
{
    dict_ctx *c = vctx;
    uint64_t h = hash_str("qty");
    u128 sum = 0;
    for (uint64_t i = 0; i < c->n; i++) {
        const boxed *v = dict_get(c->recs[i], "qty", h);
        if (v && v->tag == VAL_INT) /* a dynamic record must be checked */
            sum += (uint64_t)v->u.i * (uint64_t)FIXP_SCALE;
    }
    return sum;
}

static void run_dict(const opts *o, result *r)
{
    workload w;
    start_workload(&w, o);
    char(*names)[16] = symbol_names(o->symbols);
    uint64_t rss0 = rss_bytes(), heap0 = heap_bytes();
    double t0 = now_ns();
    dict_ctx c = {.recs = xmalloc(o->trades * sizeof *c.recs), .n = o->trades};
    for (uint64_t i = 0; i < o->trades; i++) {
        workload_trade t;
        workload_next(&w, &t);
        c.recs[i] = dict_of(names[t.sym], &t);
    }
    r->build_ns = now_ns() - t0;
    r->alloc_bytes = (double)(heap_bytes() - heap0);
    r->rss_bytes = (double)(rss_bytes() - rss0);
    r->ok = 1;
    snprintf(r->note, sizeof r->note,
             "dict: 2 + 6 keys + 6 boxes + 2 strings = 16 mallocs per trade, 16-entry table");
    time_scans(r, dict_scan, &c);
    for (uint64_t i = 0; i < c.n; i++)
        dict_free(c.recs[i]);
    free(c.recs);
    free(names);
    workload_free(&w);
}

/* ---- driver ------------------------------------------------------------- */

typedef void (*layout_fn)(const opts *o, result *r);

static const struct layout {
    const char *name;
    layout_fn run;
} layouts[] = {
    {"(a) slots, compact pages", run_compact},
    {"(a) slots, 32-byte pages", run_wide},
    {"(a') slot layout, flat array", run_flat},
    {"(b) heap struct per trade", run_heap},
    {"(c) key/value dict per trade", run_dict},
};
#define NLAYOUTS (sizeof layouts / sizeof layouts[0])

/* Build and measure one layout in a fresh child process. */
static int run_child(const struct layout *l, const opts *o, result *r)
{
    int fd[2];
    if (pipe(fd) != 0)
        die("pipe", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        die("fork", strerror(errno));
    if (pid == 0) {
        close(fd[0]);
        result mine;
        memset(&mine, 0, sizeof mine);
        l->run(o, &mine);
        ssize_t n = write(fd[1], &mine, sizeof mine);
        _exit(n == (ssize_t)sizeof mine ? 0 : 1);
    }
    close(fd[1]);
    memset(r, 0, sizeof *r);
    ssize_t n = read(fd[0], r, sizeof *r);
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return n == (ssize_t)sizeof *r && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: layoutbench [--trades N] [--symbols N] [--zipf S] [--seed N]\n"
            "  --trades N    W1 trades per layout (default 1000000)\n"
            "  --symbols N   symbols (default 1000; W1-10k: 10000)\n"
            "  --zipf S      Zipf exponent of symbol popularity (default 1.1)\n"
            "  --seed N      workload seed (default 1)\n");
}

static void parse_args(int argc, char **argv, opts *o)
{
    static const struct option lo[] = {
        {"trades", required_argument, 0, 't'}, {"symbols", required_argument, 0, 's'},
        {"zipf", required_argument, 0, 'z'},   {"seed", required_argument, 0, 'r'},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        char *end = NULL;
        errno = 0;
        switch (c) {
        case 't': o->trades = strtoull(optarg, &end, 10); break;
        case 's': o->symbols = (uint32_t)strtoul(optarg, &end, 10); break;
        case 'z': o->zipf = strtod(optarg, &end); break;
        case 'r': o->seed = strtoull(optarg, &end, 10); break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
        if (errno || !end || *end) {
            fprintf(stderr, "layoutbench: bad value '%s'\n", optarg);
            exit(2);
        }
    }
    if (optind < argc || o->trades == 0 || o->symbols == 0 || o->symbols > 1000000) {
        usage(stderr);
        exit(2);
    }
}

static void print_table(const opts *o, const result *r)
{
    double n = (double)o->trades;
    double base_alloc = r[0].alloc_bytes / n, base_rss = r[0].rss_bytes / n;
    printf("\n%-30s %12s %9s %11s %9s %9s %10s %9s\n", "layout", "alloc B/tr", "x slots",
           "RSS B/tr", "x slots", "scan ms", "scan ns/tr", "build s");
    for (size_t i = 0; i < NLAYOUTS; i++) {
        double a = r[i].alloc_bytes / n, m = r[i].rss_bytes / n;
        printf("%-30s %12.1f %8.1fx %11.1f %8.1fx %9.2f %10.2f %9.2f\n", layouts[i].name, a,
               a / base_alloc, m, base_rss > 0 ? m / base_rss : 0.0, r[i].scan_ns / 1e6,
               r[i].scan_ns / n, r[i].build_ns / 1e9);
    }
    printf("\n");
    for (size_t i = 0; i < NLAYOUTS; i++)
        printf("  %s\n", r[i].note);
    printf("  alloc: (a) store bytes_reserved (slab chunks carved + symbol index); others\n"
           "  malloc in-use bytes incl. chunk headers (mallinfo2 uordblks + hblkhd delta).\n"
           "  RSS: /proc/self/statm resident growth while building. x slots: against the\n"
           "  first row. scan: sum of qty over every record, median of %d. (b)'s structs\n"
           "  are malloc'd back to back, so its scan is a best case: a long-running\n"
           "  program's records scatter.\n",
           SCANS);
    if (r[3].alloc_bytes == 0) /* (b) */
        printf("  warning: malloc accounting reads 0 (a sanitizer's allocator?)\n");
}

int main(int argc, char **argv)
{
    opts o = {.trades = 1000000, .symbols = 1000, .zipf = 1.1, .seed = 1};
    parse_args(argc, argv, &o);
    printf("layoutbench: %" PRIu64 " W1 trades, %u symbols, Zipf s=%.2f, seed %" PRIu64
           ", sizeof(trade) = %zu\n",
           o.trades, o.symbols, o.zipf, o.seed, sizeof(trade));

    result r[NLAYOUTS];
    int failed = 0;
    for (size_t i = 0; i < NLAYOUTS; i++) {
        if (run_child(&layouts[i], &o, &r[i]) != 0 || !r[i].ok) {
            fprintf(stderr, "layoutbench: %s failed\n", layouts[i].name);
            failed = 1;
            r[i].ok = 0;
        }
    }
    if (failed)
        return 1;
    /* All three must have stored the same trades. */
    for (size_t i = 1; i < NLAYOUTS; i++)
        if (r[i].qty_sum != r[0].qty_sum) {
            fprintf(stderr, "layoutbench: %s scan disagrees with fixed slots\n",
                    layouts[i].name);
            return 1;
        }
    print_table(&o, r);
    return 0;
}
