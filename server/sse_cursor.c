/* sse_cursor — a "*" SSE cursor as a stored base plus moved entries
 * (sse_cursor.h). */
#include "sse_cursor.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crc32c.h"
#include "log.h"

#define MAGIC "slotd-sse-base 1 "
#define BASE_FILE_MAX (64u << 20) /* 2M symbols' worth: anything larger is not ours */

/* The bytes of ",sym:pos" in an id (subproto_cursor_append's encoding). */
static size_t entry_len(const char *sym, size_t len, uint64_t pos)
{
    size_t n = 2 + len; /* ',' and ':' */
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)sym[i];
        n += ch < 0x21 || ch == '%' || ch == ',' || ch == ':' ? 2 : 0;
    }
    do
        n++;
    while (pos /= 10);
    return n;
}

static void base_path(char *out, size_t cap, const char *dir, const char *tok, const char *ext)
{
    snprintf(out, cap, "%s/sse/%s.%s", dir, tok, ext);
}

void ssecur_init(ssecur *c, const char *data_dir)
{
    memset(c, 0, sizeof *c);
    c->dir = data_dir;
    char path[4096];
    snprintf(path, sizeof path, "%s/sse", data_dir);
    DIR *d = opendir(path);
    if (!d)
        return; /* none written yet */
    time_t now = time(NULL);
    for (struct dirent *e; (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        struct stat st;
        if (n < 4 || strcmp(e->d_name + n - 4, ".cur") != 0 ||
            fstatat(dirfd(d), e->d_name, &st, 0) < 0 || now - st.st_mtime < SSECUR_TTL_S)
            continue;
        if (unlinkat(dirfd(d), e->d_name, 0) == 0)
            log_info("sse: removed cursor base %s, unused for %d s", e->d_name, SSECUR_TTL_S);
    }
    closedir(d);
}

void ssecur_free(ssecur *c)
{
    free(c->moved.v);
    c->moved = (ssecur_syms){0};
}

int ssecur_is(const char *text, size_t n) { return n > 0 && text[0] == '*'; }

/* ---- parsing ------------------------------------------------------------------ */

typedef ssecur_syms symvec;

static int push(void *ctx, const subproto_sym *f, proto_error *err)
{
    symvec *a = ctx;
    if (a->n == a->cap) {
        uint32_t cap = a->cap ? a->cap * 2 : 64;
        subproto_sym *v = realloc(a->v, cap * sizeof *v);
        if (!v)
            return proto_error_set(err, PROTO_E_BAD_SUB, -1, "cursor: out of memory");
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = *f;
    return 0;
}

/* The positions of base file tok, appended to a. */
static int load_base(const char *dir, const char *tok, symvec *a, proto_error *err)
{
    char path[4096], head[64];
    char *body = NULL;
    int rc = -1;
    base_path(path, sizeof path, dir, tok, "cur");
    FILE *f = fopen(path, "rb");
    unsigned long long len = 0;
    unsigned crc = 0;
    if (!f) {
        proto_error_set(err, PROTO_E_CURSOR_GONE, -1,
                        "cursor: base %s is not stored here (removed after %d h unused, or "
                        "written by another server); subscribe again with from=now or start",
                        tok, SSECUR_TTL_S / 3600);
        return -1;
    }
    if (!fgets(head, sizeof head, f) || strncmp(head, MAGIC, sizeof MAGIC - 1) != 0 ||
        sscanf(head + sizeof MAGIC - 1, "%llu %x", &len, &crc) != 2 || len > BASE_FILE_MAX ||
        !(body = malloc(len + 1)) || fread(body, 1, len, f) != len ||
        crc32c(0, body, len) != crc) {
        proto_error_set(err, PROTO_E_CURSOR_GONE, -1,
                        "cursor: base %s is damaged (a crash while it was written?); subscribe "
                        "again with from=now or start", tok);
        goto cleanup;
    }
    rc = subproto_cursor_each(body, len, push, a, err);
cleanup:
    free(body);
    fclose(f);
    return rc;
}

/* -1 with err if a symbol is in a twice. */
static int twice(const symvec *a, proto_error *err)
{
    int rc = 0;
    subproto_sym *v = a->n ? malloc(a->n * sizeof *v) : NULL;
    if (a->n && !v)
        return proto_error_set(err, PROTO_E_BAD_QUERY, -1, "cursor: out of memory");
    if (a->n) {
        memcpy(v, a->v, a->n * sizeof *v);
        qsort(v, a->n, sizeof *v, subproto_sym_cmp);
    }
    for (uint32_t k = 1; k < a->n && rc == 0; k++)
        if (subproto_sym_cmp(&v[k - 1], &v[k]) == 0)
            rc = proto_error_set(err, PROTO_E_BAD_QUERY, -1, "cursor: '%s' is named twice",
                                 v[k].name);
    free(v);
    return rc;
}

static int bad(proto_error *err)
{
    return proto_error_set(err, PROTO_E_BAD_QUERY, -1,
                           "cursor: a '*' cursor is '*' or '*@' and %d hex digits, then "
                           ",sym:position entries", SSECUR_TOKEN);
}

int ssecur_parse(ssecur *c, const char *text, size_t n, subproto_sym **map, uint32_t *nmap,
                 proto_error *err)
{
    symvec base = {0}, moved = {0};
    size_t i = 1;
    assert(ssecur_is(text, n));
    c->base[0] = 0;
    if (n > 1 && text[1] == '@') {
        if (n < 2 + SSECUR_TOKEN)
            goto malformed;
        for (i = 2; i < 2 + SSECUR_TOKEN; i++) {
            char h = text[i];
            if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f')))
                goto malformed;
        }
        memcpy(c->base, text + 2, SSECUR_TOKEN);
        c->base[SSECUR_TOKEN] = 0;
    }
    if (i < n && (text[i] != ',' || i + 1 == n))
        goto malformed;
    if (i < n && subproto_cursor_each(text + i + 1, n - i - 1, push, &moved, err) < 0)
        goto fail;
    if (c->base[0] && load_base(c->dir, c->base, &base, err) < 0)
        goto fail;
    if (base.n)
        qsort(base.v, base.n, sizeof *base.v, subproto_sym_cmp);
    if (twice(&moved, err) < 0) /* moved keeps its order: the id goes on as it was */
        goto fail;
    uint32_t nbase = base.n; /* the moved ones replace their base entries */
    for (uint32_t k = 0; k < moved.n; k++) {
        subproto_sym *b = nbase ? bsearch(&moved.v[k], base.v, nbase, sizeof *b,
                                          subproto_sym_cmp) : NULL;
        if (b)
            b->pos = moved.v[k].pos;
        else if (push(&base, &moved.v[k], err) < 0)
            goto fail;
        c->moved_bytes += entry_len(moved.v[k].name, moved.v[k].len, moved.v[k].pos);
    }
    if (base.n) /* qsort wants a pointer even for nothing */
        qsort(base.v, base.n, sizeof *base.v, subproto_sym_cmp);
    free(c->moved.v);
    c->moved = moved;
    *map = base.v;
    *nmap = base.n;
    return 0;
malformed:
    bad(err);
fail:
    free(base.v);
    free(moved.v);
    c->base[0] = 0;
    return -1;
}

/* ---- writing ------------------------------------------------------------------ */

static int append_entry(void *ctx, const subproto_sym *f, proto_error *err)
{
    proto_buf *b = ctx;
    if (subproto_cursor_append(b, f->name, f->len, f->pos, b->len == 0) < 0)
        return proto_error_set(err, PROTO_E_BAD_SUB, -1, "out of memory for a cursor base");
    return 0;
}

static int write_file(const char *dir, const char *tok, const proto_buf *body, proto_error *err)
{
    char tmp[4096], path[4096], head[64];
    base_path(path, sizeof path, dir, tok, "cur");
    snprintf(tmp, sizeof tmp, "%s/sse", dir);
    if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
        goto fail;
    base_path(tmp, sizeof tmp, dir, tok, "tmp");
    int hn = snprintf(head, sizeof head, MAGIC "%zu %08x\n", body->len,
                      crc32c(0, body->data, body->len));
    FILE *f = fopen(tmp, "wb");
    if (!f)
        goto fail;
    int ok = fwrite(head, 1, (size_t)hn, f) == (size_t)hn &&
             fwrite(body->data, 1, body->len, f) == body->len;
    if (fclose(f) != 0 || !ok || rename(tmp, path) < 0) {
        unlink(tmp);
        goto fail;
    }
    return 0;
fail:
    log_warn("sse: cannot write cursor base %s: %s", path, strerror(errno));
    return proto_error_set(err, PROTO_E_BAD_SUB, -1,
                           "cannot store the cursor of this '*' stream (%s); resubscribe "
                           "from your last event id", strerror(errno));
}

int ssecur_rebase(ssecur *c, const sub *s, proto_error *err)
{
    proto_buf body = {0};
    uint64_t rnd;
    char tok[SSECUR_TOKEN + 1];
    int rc = -1;
    if (sub_each_pos(s, append_entry, &body, err) < 0)
        goto cleanup;
    if (body.len == 0) {
        tok[0] = 0; /* every position 0: the implicit base */
    } else {
        if (getrandom(&rnd, sizeof rnd, 0) != sizeof rnd) {
            proto_error_set(err, PROTO_E_BAD_SUB, -1, "no random bytes for a cursor base name");
            goto cleanup;
        }
        snprintf(tok, sizeof tok, "%016llx", (unsigned long long)rnd);
        if (write_file(c->dir, tok, &body, err) < 0)
            goto cleanup;
        char old[4096];
        char *slot = c->own[c->nown++ % SSECUR_KEEP];
        if (slot[0]) { /* the oldest of ours: no id in flight names it any more */
            base_path(old, sizeof old, c->dir, slot, "cur");
            unlink(old);
        }
        memcpy(slot, tok, sizeof tok);
    }
    memcpy(c->base, tok, sizeof tok);
    c->moved.n = 0;
    c->moved_bytes = 0;
    rc = 0;
cleanup:
    proto_buf_free(&body);
    return rc;
}

int ssecur_moved(ssecur *c, const sub *s, const char *sym, size_t len, uint64_t pos,
                 proto_error *err)
{
    subproto_sym f;
    size_t add = entry_len(sym, len, pos);
    for (uint32_t i = 0; i < c->moved.n; i++)
        if (c->moved.v[i].len == len && memcmp(c->moved.v[i].name, sym, len) == 0) {
            size_t was = entry_len(sym, len, c->moved.v[i].pos); /* more digits, maybe */
            if (c->moved_bytes - was + add > SSECUR_DELTA_MAX)
                return ssecur_rebase(c, s, err);
            c->moved_bytes = c->moved_bytes - was + add;
            c->moved.v[i].pos = pos;
            return 0;
        }
    if (c->moved_bytes + add > SSECUR_DELTA_MAX)
        return ssecur_rebase(c, s, err); /* s's positions include this move */
    memcpy(f.name, sym, len);
    f.name[len] = 0;
    f.len = (uint8_t)len;
    f.pos = pos;
    if (push(&c->moved, &f, err) < 0)
        return -1;
    c->moved_bytes += add;
    return 0;
}

int ssecur_text(const ssecur *c, proto_buf *out)
{
    if (proto_buf_append(out, "*", 1) < 0 ||
        (c->base[0] && (proto_buf_append(out, "@", 1) < 0 ||
                        proto_buf_append(out, c->base, SSECUR_TOKEN) < 0)))
        return -1;
    for (uint32_t i = 0; i < c->moved.n; i++)
        if (subproto_cursor_append(out, c->moved.v[i].name, c->moved.v[i].len, c->moved.v[i].pos,
                                   0) < 0)
            return -1;
    return 0;
}
