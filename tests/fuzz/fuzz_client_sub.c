/* fuzz_client_sub — the C client's subscription decoder (sub_decode.c) and
 * cursor (sub_cursor.c) on arbitrary bytes, read through the reply reader
 * as slotd_sub_next reads them.
 *
 * The first byte picks the mode (bit 0: slot names known from a schema,
 * bit 1: after UNSUB). Checks, for every message: no crash, overread or
 * leak (ASan/UBSan); a refused message leaves the cursor as it was; an
 * event is consistent (counts, value types, texts NUL-terminated at their
 * length, the cursor at the event's `next`); the cursor's text parses
 * back to the same cursor. The same bytes as cursor text (what
 * slotd_sub_opts.from takes from a file): refused with a message, or a
 * cursor whose own text parses back to it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const char *const SLOTS[] = {"ts", "px", "qty", "side", "id"};

static void same(const slotd__cursor *a, const slotd__cursor *b)
{
    if (a->n != b->n)
        abort();
    for (size_t i = 0; i < a->cap; i++) {
        int found;
        if (a->e[i].len &&
            (slotd__cursor_get(b, a->e[i].sym, a->e[i].len, &found) != a->e[i].pos || !found))
            abort();
    }
}

/* The cursor's text parses back to it. */
static void round_trip(const slotd__cursor *c)
{
    int64_t n = slotd__cursor_text(c, NULL, 0);
    char *t = malloc((size_t)n + 1);
    if (!t || slotd__cursor_text(c, t, (size_t)n + 1) != n || strlen(t) != (size_t)n)
        abort();
    slotd__cursor back = {0};
    char err[128];
    if (slotd__cursor_parse(&back, t, err, sizeof err) != 0)
        abort();
    same(c, &back);
    slotd__cursor_free(&back);
    free(t);
}

/* A copy of c (to compare after a refused message). */
static void copy(slotd__cursor *dst, const slotd__cursor *c)
{
    memset(dst, 0, sizeof *dst);
    for (size_t i = 0; i < c->cap; i++)
        if (c->e[i].len && slotd__cursor_set(dst, c->e[i].sym, c->e[i].len, c->e[i].pos) != 0)
            abort();
}

static void check_event(const slotd__subdec *d, const slotd_sub_event *ev)
{
    int found;
    uint64_t at = slotd__cursor_get(&d->cur, ev->sym, strlen(ev->sym), &found);
    if (!found || at != ev->next)
        abort();
    if (ev->type == SLOTD_SUB_GAP) {
        if (ev->first > ev->next)
            abort();
        return;
    }
    if (ev->type != SLOTD_SUB_TRADES || ev->ntrades == 0 || ev->nslots == 0 ||
        ev->next - ev->first < ev->ntrades || ev->exact != (ev->next - ev->first == ev->ntrades) ||
        (d->named && (!ev->slot_names || ev->nslots != 5)))
        abort();
    for (size_t i = 0; i < (size_t)ev->ntrades * ev->nslots; i++) {
        const slotd_value *v = &ev->values[i];
        if (v->type == SLOTD_TEXT) {
            if (!v->text || v->text[v->len] != '\0')
                abort();
        } else if ((v->type != SLOTD_UINT && v->type != SLOTD_INT) || v->text) {
            abort();
        }
    }
}

static void as_text(const uint8_t *data, size_t size)
{
    char *t = malloc(size + 1);
    if (!t)
        abort();
    memcpy(t, data, size);
    t[size] = '\0';
    slotd__cursor c = {0};
    char err[128];
    err[0] = '\0';
    int rc = slotd__cursor_parse(&c, t, err, sizeof err);
    if (rc == 0)
        round_trip(&c);
    else if (rc != SLOTD_EINVAL || !strstr(err, "cursor text, byte "))
        abort();
    slotd__cursor_free(&c);
    free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    as_text(data + 1, size - 1);
    slotd__subdec d;
    slotd__subdec_init(&d, 1);
    if (data[0] & 1) { /* names known, as after the schema */
        slotd__kindnames *k = &d.kinds[0];
        strcpy(k->name, "trade");
        k->nslots = 5;
        for (int i = 0; i < 5; i++) {
            strcpy(k->slot[i], SLOTS[i]);
            k->ptr[i] = k->slot[i];
        }
        d.nkinds = 1;
        d.named = 1;
    }
    d.dropping = (data[0] & 2) != 0;
    slotd__reader rd;
    slotd__reader_init(&rd);
    size_t cap;
    char *space = slotd__reader_space(&rd, size, &cap);
    if (!space)
        abort();
    memcpy(space, data + 1, size - 1);
    slotd__reader_commit(&rd, size - 1);
    const char *msg;
    size_t n;
    for (int k = 0; k < 64 && slotd__reader_msg(&rd, &msg, &n) == 1; k++) {
        slotd__cursor before;
        copy(&before, &d.cur);
        uint64_t trades = d.trades;
        slotd_sub_event ev;
        slotd_batch_error e;
        int rc = slotd__subdec_msg(&d, msg, n, &ev, &e);
        if (rc < 0) {
            if (e.code != rc || !memchr(e.message, '\0', sizeof e.message) ||
                !memchr(e.wire_code, '\0', sizeof e.wire_code) || d.trades != trades)
                abort();
            same(&d.cur, &before);
        } else if (rc == SLOTD__SUB_EVENT) {
            if (d.dropping)
                abort();
            check_event(&d, &ev);
        } else if (rc == SLOTD__SUB_DROPPED) {
            if (!d.dropping)
                abort();
            same(&d.cur, &before);
        } else if (rc != SLOTD__SUB_SUBOK && rc != SLOTD__SUB_UNSUBOK) {
            abort();
        }
        slotd__cursor_free(&before);
        round_trip(&d.cur);
    }
    slotd__reader_destroy(&rd);
    slotd__subdec_free(&d);
    return 0;
}
