/* slotctl_import — a CSV or JSON Lines export (GET /export, either format)
 * sent back as trades through libslotd-client, exactly once across kills.
 *
 * Exactly once is the library's (docs/clients.md): one stable client name
 * and a spool. Sealed batches are in the spool before they are sent and
 * are resent after a restart; slotd_sender_sealed() says how many records
 * were sealed, so a rerun skips that many records of the file (one record a
 * line, the CSV header excepted) and sends the rest. A finished import
 * rerun sends nothing. Values travel as text: fixed point by
 * slotd_record_decimal (the exact "<key>_s" of a JSONL line, the CSV cell),
 * so nothing is rounded on the way.
 */
#define _GNU_SOURCE /* getline */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <slotd/client.h>

#include "kind.h"
#include "slotctl.h"

#define MAX_COLS 64

typedef struct importer {
    slotd_sender *s;
    int jsonl;
    /* CSV: the header's columns */
    char *cols[MAX_COLS];
    int ncols;
    char *header;
    /* the current CSV row's cells (pointers into row) */
    char *cell[MAX_COLS];
    int ncells;
    uint64_t line;
} importer;

static void on_error(void *user, const slotd_batch_error *e)
{
    (void)user;
    fprintf(stderr, "slotctl: batch %" PRIu64 " refused: %s %s\n", e->seq, e->wire_code,
            e->message);
}

/* Split one CSV record (RFC 4180: quoted cells, "" inside quotes) in place.
 * A quoted cell may hold newlines: then the record continues on the next
 * line(s), read here. -1 on a malformed record. */
static int csv_split(importer *im, char **buf, size_t *cap, FILE *f, char **cells, int *n)
{
    char *p = *buf;
    *n = 0;
    for (;;) {
        if (*n == MAX_COLS)
            return -1;
        char *out = p, *cellp = p;
        if (*p == '"') {
            p++;
            for (;;) {
                if (*p == 0) { /* the line ended inside quotes: join the next one
                                * (the newline, kept by getline, is in the cell) */
                    size_t off = (size_t)(p - *buf), o2 = (size_t)(out - *buf),
                           c2 = (size_t)(cellp - *buf), co[MAX_COLS];
                    for (int i = 0; i < *n; i++)
                        co[i] = (size_t)(cells[i] - *buf);
                    char *more = NULL;
                    size_t mcap = 0;
                    ssize_t m = getline(&more, &mcap, f);
                    char *nb = m < 0 ? NULL : realloc(*buf, off + (size_t)m + 1);
                    if (!nb) {
                        free(more);
                        return -1;
                    }
                    im->line++;
                    memcpy(nb + off, more, (size_t)m + 1);
                    free(more);
                    *buf = nb;
                    *cap = off + (size_t)m + 1;
                    p = nb + off;
                    out = nb + o2;
                    cellp = nb + c2;
                    for (int i = 0; i < *n; i++) /* rebase the cells found so far */
                        cells[i] = nb + co[i];
                }
                if (*p == '"' && p[1] == '"') {
                    *out++ = '"';
                    p += 2;
                } else if (*p == '"') {
                    p++;
                    break;
                } else {
                    *out++ = *p++;
                }
            }
        } else {
            while (*p && *p != ',' && *p != '\n' && *p != '\r')
                out++, p++;
        }
        char end = *p;
        if (end != ',' && end != 0 && end != '\n' && end != '\r')
            return -1;
        *out = 0;
        cells[(*n)++] = cellp;
        if (end != ',')
            return 0;
        p++;
    }
}

static const char *csv_get(const importer *im, const char *key)
{
    for (int i = 0; i < im->ncols && i < im->ncells; i++)
        if (strcmp(im->cols[i], key) == 0)
            return im->cell[i];
    return NULL;
}

/* One record through the sender, slot by slot as its kind declares them;
 * an empty or absent value leaves the slot out (the server refuses a
 * missing required one). 0, or -1 with a message. */
static int send_record(importer *im, const char *sym, const char *kname, const jflat *j)
{
    const kind *k = kind_by_name(kname && *kname ? kname : "trade",
                                 kname && *kname ? strlen(kname) : 5);
    if (!sym || !*sym || !k) {
        fprintf(stderr, "slotctl: line %" PRIu64 ": %s\n", im->line,
                !k ? "unknown kind" : "no symbol");
        return -1;
    }
    int rc = slotd_record_begin(im->s, k->name, sym);
    for (int i = 0; rc == 0 && i < k->nfields; i++) {
        const kind_field *f = &k->fields[i];
        const char *v = NULL;
        if (j && f->type == KIND_FIX) {
            char key_s[64];
            snprintf(key_s, sizeof key_s, "%s_s", f->key);
            v = jflat_get(j, key_s);
        }
        if (!v)
            v = j ? jflat_get(j, f->key) : csv_get(im, f->key);
        if (!v || !*v || strcmp(v, "null") == 0)
            continue;
        switch ((kind_type)f->type) {
        case KIND_FIX:
            rc = slotd_record_decimal(im->s, f->key, v);
            break;
        case KIND_U64:
            rc = slotd_record_u64(im->s, f->key, strtoull(v, NULL, 10));
            break;
        case KIND_SIDE:
        case KIND_RIGHT:
            rc = slotd_record_str(im->s, f->key, v);
            break;
        case KIND_TS:
        default:
            rc = slotd_record_i64(im->s, f->key, strtoll(v, NULL, 10));
            break;
        }
    }
    if (rc == 0)
        rc = slotd_record_end(im->s);
    if (rc != 0) {
        fprintf(stderr, "slotctl: line %" PRIu64 ": %s: %s\n", im->line, slotd_strerror(rc),
                slotd_sender_last_error(im->s)->message);
        return -1;
    }
    return 0;
}

/* The default client name: "import-" and the file's base name (64 bytes). */
static void default_client(const char *file, char *out, size_t cap)
{
    const char *base = strrchr(file, '/');
    snprintf(out, cap, "import-%s", base ? base + 1 : file);
}

int slotctl_import(const slotctl_opts *o, const char *file)
{
    importer im = {0};
    char client[65], spool[4096];
    char *buf = NULL;
    size_t cap = 0;
    jflat *j = malloc(sizeof *j);
    uint64_t rec = 0, skip = 0, sent = 0;
    int status = 1;
    FILE *f = fopen(file, "r");
    if (!f || !j) {
        fprintf(stderr, "slotctl: %s: %s\n", file, strerror(errno));
        goto cleanup;
    }
    default_client(file, client, sizeof client);
    snprintf(spool, sizeof spool, "%s.spool", file);
    slotd_sender_opts so;
    slotd_sender_opts_init(&so);
    so.host = o->host;
    so.port = o->port;
    so.token = o->token;
    so.tls = o->tls;
    so.tls_ca = o->tls_ca;
    so.tls_cert = o->tls_cert;
    so.tls_key = o->tls_key;
    so.tls_server_name = o->tls_server_name;
    so.client = o->client ? o->client : client;
    so.spool = o->spool ? o->spool : spool;
    so.on_error = on_error;
    char errbuf[256] = "";
    so.errbuf = errbuf;
    so.errbuf_len = sizeof errbuf;
    int rc = slotd_sender_new(&so, &im.s);
    if (rc != 0) {
        fprintf(stderr, "slotctl: %s: %s\n", slotd_strerror(rc), errbuf);
        goto cleanup;
    }
    skip = slotd_sender_sealed(im.s); /* sealed before: the spool delivers them */
    ssize_t n;
    while ((n = getline(&buf, &cap, f)) >= 0) {
        im.line++;
        if (n == 0 || buf[0] == '\n' || (buf[0] == '\r' && buf[1] == '\n'))
            continue;
        if (im.line == 1) {
            im.jsonl = buf[0] == '{';
            if (!im.jsonl) { /* the CSV header */
                size_t hcap = (size_t)n + 1;
                im.header = strdup(buf);
                if (!im.header || csv_split(&im, &im.header, &hcap, f, im.cols, &im.ncols) < 0) {
                    fprintf(stderr, "slotctl: %s: not a CSV header or a JSON line\n", file);
                    goto cleanup;
                }
                continue;
            }
        }
        if (rec++ < skip)
            continue;
        const char *p = buf;
        int bad;
        if (im.jsonl)
            bad = jflat_parse(&p, j) < 0 ||
                  send_record(&im, jflat_get(j, "symbol"), jflat_get(j, "kind"), j) < 0;
        else
            bad = csv_split(&im, &buf, &cap, f, im.cell, &im.ncells) < 0 ||
                  send_record(&im, csv_get(&im, "symbol"), csv_get(&im, "kind"), NULL) < 0;
        if (bad) {
            fprintf(stderr, "slotctl: %s:%" PRIu64 ": cannot import this line\n", file, im.line);
            goto cleanup;
        }
        sent++;
    }
    rc = slotd_flush(im.s, -1);
    if (rc != 0) {
        fprintf(stderr, "slotctl: %s: %s\n", slotd_strerror(rc),
                slotd_sender_last_error(im.s)->message);
        goto cleanup;
    }
    fprintf(stderr, "slotctl: %" PRIu64 " records stored (%" PRIu64 " sent now, %" PRIu64
                    " sealed by an earlier run) as client '%s'\n",
            rec, sent, skip < rec ? skip : rec, so.client);
    status = 0;
cleanup:
    if (im.s)
        slotd_sender_close(im.s, status == 0 ? 10000 : 0);
    if (f)
        fclose(f);
    free(im.header);
    free(buf);
    free(j);
    return status;
}
