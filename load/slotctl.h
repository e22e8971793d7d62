/* slotctl — data in and out of a running slotd from the command line.
 *
 *   slotctl export  [--syms S] [--from T] [--to T] [--format csv|jsonl] [-o FILE]
 *   slotctl import  FILE [--client NAME] [--spool PATH]
 *   slotctl clients
 *
 * export streams GET /export to a file (HTTP or HTTPS, chunked); import sends
 * a CSV or JSON Lines export back as trades through libslotd-client, under
 * a stable client name and a spool so a rerun after a kill resumes exactly
 * once; clients lists GET /clients. Modules: slotctl.c (arguments, the
 * commands), slotctl_http.c (one GET), slotctl_json.c (flat JSON objects),
 * slotctl_import.c (reading exports, sending them).
 */
#ifndef SLOTD_SLOTCTL_H
#define SLOTD_SLOTCTL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct slotctl_opts {
    const char *host;    /* 127.0.0.1 */
    int port;            /* msgpack/TCP, 7400 */
    int http_port;       /* 7401 */
    const char *token;   /* NULL: none */
    const char *client;  /* import: client name (default from the file name) */
    const char *spool;   /* import: spool path (default FILE.spool) */
    const char *out;     /* export: output file, NULL = stdout */
    int tls;             /* --tls: both ports speak TLS (slotd --tls-port, --tls-http-port) */
    const char *tls_ca, *tls_cert, *tls_key, *tls_server_name; /* NULL: defaults */
} slotctl_opts;

/* ---- slotctl_http.c -------------------------------------------------------- */
/* GET `path` (query included); the body, de-chunked, goes to `out`.
 * Returns the HTTP status (>= 100), or -1 with a message on stderr
 * (connection, a malformed answer, a body cut short: an export that did
 * not end with its final chunk is incomplete). */
int slotctl_http_get(const slotctl_opts *o, const char *path, FILE *out);

/* ---- slotctl_json.c -------------------------------------------------------------
 * One flat JSON object ({"k": "string" | number | true | false | null, ...})
 * as (key, value) text pairs: strings unescaped (UTF-8), numbers and
 * literals as written. Enough for the exports' lines and /clients entries. */
#define JFLAT_MAX 32
typedef struct jflat {
    int n;
    char *key[JFLAT_MAX], *val[JFLAT_MAX];
    int is_str[JFLAT_MAX];
    char buf[8192];      /* the unescaped text both point into */
} jflat;
/* Parse the object at *p (leading spaces skipped); *p is left after it.
 * 0, or -1 (not a flat object, too many keys, too long). */
int jflat_parse(const char **p, jflat *j);
/* The value of key, or NULL. */
const char *jflat_get(const jflat *j, const char *key);

/* ---- slotctl_import.c -------------------------------------------------------- */
/* Send FILE's records; 0 when every one is stored, else 1 (message on
 * stderr). */
int slotctl_import(const slotctl_opts *o, const char *file);

#endif
