/* slotctl — arguments and the export and clients commands (slotctl.h). */
#include <stdlib.h>
#include <string.h>

#include "secret.h"
#include "slotctl.h"

static void usage(FILE *f)
{
    fputs("usage: slotctl [flags] export|import FILE|clients\n"
          "Data in and out of a running slotd.\n\n"
          "  export             GET /export to --out (stdout by default): every trade\n"
          "                     of --syms in [--from, --to) as CSV or JSON Lines\n"
          "  import FILE        send FILE (an export, CSV or JSONL) as trades through\n"
          "                     libslotd-client under a stable client name with a spool\n"
          "                     (FILE.spool): a rerun after a kill resumes exactly once\n"
          "  clients            each client name with its last durable seq (GET /clients)\n\n"
          "  --host HOST        slotd address                       [127.0.0.1]\n"
          "  --port N           msgpack/TCP port (import)            [7400]\n"
          "  --http-port N      HTTP port (export, clients)          [7401]\n"
          "  --token TOKEN      slotd's --token (or SLOTD_TOKEN in the environment)\n"
          "  --token-file FILE  the token from FILE's first line (not shown by ps)\n"
          "  --syms LIST        export: A,B,... or *                 [*]\n"
          "  --from T, --to T   export: ns since the epoch or RFC 3339\n"
          "  --format F         export: csv or jsonl                 [csv]\n"
          "  --out FILE, -o     export: where to write               [stdout]\n"
          "  --client NAME      import: client name                  [import-<file name>]\n"
          "  --spool PATH       import: spool file                   [FILE.spool]\n"
          "  --tls              both ports speak TLS (slotd --tls-port, --tls-http-port)\n"
          "  --tls-ca FILE      CA that signed slotd's certificate   [the system's]\n"
          "  --tls-cert FILE, --tls-key FILE   client certificate (mutual TLS)\n"
          "  --tls-server-name NAME            name to verify        [--host]\n"
          "Exit status: 0 done; 1 slotd refused or the transfer failed; 2 usage.\n",
          f);
}

/* Query-string text: unreserved bytes as they are, the rest %XX (so '+' of
 * an RFC 3339 offset and ',' between symbols reach slotd as meant). */
static void pct(char *out, size_t cap, const char *s, int keep_comma)
{
    size_t n = strlen(out);
    for (; *s && n + 4 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            strchr("-._~*:", c) || (keep_comma && c == ','))
            out[n++] = (char)c;
        else
            n += (size_t)snprintf(out + n, cap - n, "%%%02X", c);
    }
    out[n] = 0;
}

static int cmd_export(const slotctl_opts *o, const char *syms, const char *from, const char *to,
                      const char *format)
{
    char path[4096] = "/export?syms=";
    pct(path, sizeof path, syms, 1);
    strcat(path, "&format=");
    pct(path, sizeof path, format, 0);
    if (from) {
        strcat(path, "&from=");
        pct(path, sizeof path, from, 0);
    }
    if (to) {
        strcat(path, "&to=");
        pct(path, sizeof path, to, 0);
    }
    FILE *out = o->out ? fopen(o->out, "w") : stdout;
    if (!out) {
        perror(o->out);
        return 1;
    }
    /* An error answer is JSON, written where the export would go: say so. */
    int status = slotctl_http_get(o, path, out);
    if (o->out && fclose(out) != 0)
        status = -1;
    if (status != 200) {
        if (status > 0)
            fprintf(stderr, "slotctl: export refused: HTTP %d%s%s\n", status,
                    o->out ? ", the answer is in " : "", o->out ? o->out : "");
        return 1;
    }
    return 0;
}

/* GET /clients as "NAME<TAB>LAST_SEQ" lines. */
static int cmd_clients(const slotctl_opts *o)
{
    char *body = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&body, &len);
    if (!mem)
        return 1;
    int status = slotctl_http_get(o, "/clients", mem);
    fclose(mem);
    int rc = 1;
    const char *p = body ? strstr(body, "\"clients\":[") : NULL;
    if (status != 200 || !p) {
        fprintf(stderr, "slotctl: GET /clients: HTTP %d %s\n", status, body ? body : "");
        goto cleanup;
    }
    p += 11;
    jflat *j = malloc(sizeof *j);
    if (!j)
        goto cleanup;
    rc = 0;
    while (*p == '{') {
        if (jflat_parse(&p, j) < 0 || !jflat_get(j, "name") || !jflat_get(j, "last_seq")) {
            fprintf(stderr, "slotctl: GET /clients: an answer slotctl cannot read\n");
            rc = 1;
            break;
        }
        printf("%s\t%s\n", jflat_get(j, "name"), jflat_get(j, "last_seq"));
        if (*p == ',')
            p++;
    }
    free(j);
cleanup:
    free(body);
    return rc;
}

int main(int argc, char **argv)
{
    slotctl_opts o = {.host = "127.0.0.1", .port = 7400, .http_port = 7401};
    const char *syms = "*", *from = NULL, *to = NULL, *format = "csv", *cmd = NULL, *file = NULL;
    const char *token_file = NULL;
    static char token[256];
    o.token = getenv("SLOTD_TOKEN");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        const char **str = !strcmp(a, "--host")                         ? &o.host
                           : !strcmp(a, "--token")                      ? &o.token
                           : !strcmp(a, "--token-file")                 ? &token_file
                           : !strcmp(a, "--syms")                       ? &syms
                           : !strcmp(a, "--from")                       ? &from
                           : !strcmp(a, "--to")                         ? &to
                           : !strcmp(a, "--format")                     ? &format
                           : !strcmp(a, "--out") || !strcmp(a, "-o")    ? &o.out
                           : !strcmp(a, "--client")                     ? &o.client
                           : !strcmp(a, "--spool")                      ? &o.spool
                           : !strcmp(a, "--tls-ca")                     ? &o.tls_ca
                           : !strcmp(a, "--tls-cert")                   ? &o.tls_cert
                           : !strcmp(a, "--tls-key")                    ? &o.tls_key
                           : !strcmp(a, "--tls-server-name")            ? &o.tls_server_name
                                                                        : NULL;
        int *num = !strcmp(a, "--port") ? &o.port : !strcmp(a, "--http-port") ? &o.http_port : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--tls")) {
            o.tls = 1;
            continue;
        }
        if ((str || num) && !v) {
            fprintf(stderr, "slotctl: %s needs a value\n", a);
            return 2;
        }
        if (str) {
            *str = argv[++i];
        } else if (num) {
            char *end;
            long n = strtol(argv[++i], &end, 10);
            if (*end || n <= 0 || n > 65535) {
                fprintf(stderr, "slotctl: %s: '%s' is not a port\n", a, argv[i]);
                return 2;
            }
            *num = (int)n;
        } else if (a[0] == '-') {
            fprintf(stderr, "slotctl: unknown flag %s (slotctl --help)\n", a);
            return 2;
        } else if (!cmd) {
            cmd = a;
        } else if (!file) {
            file = a;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (!o.tls && (o.tls_ca || o.tls_cert || o.tls_key || o.tls_server_name)) {
        fprintf(stderr, "slotctl: --tls-ca, --tls-cert, --tls-key and --tls-server-name need --tls\n");
        return 2;
    }
    if (token_file) {
        char err[512];
        if (secret_read(token_file, token, sizeof token, err, sizeof err) != 0) {
            fprintf(stderr, "slotctl: --token-file %s\n", err);
            return 2;
        }
        o.token = token;
    }
    if (cmd && !strcmp(cmd, "export") && !file)
        return cmd_export(&o, syms, from, to, format);
    if (cmd && !strcmp(cmd, "import") && file)
        return slotctl_import(&o, file);
    if (cmd && !strcmp(cmd, "clients") && !file)
        return cmd_clients(&o);
    usage(stderr);
    return 2;
}
