/* fuzz_client_reply — the C client's reply reader on arbitrary bytes.
 *
 * Checks, for every input: no crash, overread or leak (ASan/UBSan); the
 * bytes fed in pieces (cut where the input's first bytes say) give the
 * same replies and the same verdict as fed at once; every reply's strings
 * are terminated within their buffers; an ACK, ERR or WELCOME carries what
 * its type needs. Each ERR's code is classed and its message searched for
 * a field, as the sender does. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define MAX_REPLIES 64

typedef struct run {
    slotd__reply r[MAX_REPLIES];
    int n, verdict; /* replies read; 0 or SLOTD_EPROTOCOL */
} run;

static void check(const slotd__reply *r)
{
    if (!memchr(r->code, '\0', sizeof r->code) || !memchr(r->message, '\0', sizeof r->message))
        abort();
    switch (r->type) {
    case SLOTD__R_ERR: {
        if (r->code[0] == '\0' || r->index < -1)
            abort();
        int rc;
        int cls = slotd__code_class(r->code, r->seq == 0, &rc);
        if (cls < SLOTD__C_BLOCKED || cls > SLOTD__C_FATAL || (cls == SLOTD__C_FATAL) != (rc != 0))
            abort();
        char field[64];
        slotd__error_field(r->message, field, sizeof field);
        if (!memchr(field, '\0', sizeof field) || (field[0] && !strstr(r->message, field)))
            abort();
        break;
    }
    case SLOTD__R_ACK:
    case SLOTD__R_WELCOME:
    case SLOTD__R_OTHER:
        if (r->index != -1 || r->code[0])
            abort();
        break;
    default:
        abort();
    }
}

static void feed(const uint8_t *data, size_t size, const uint8_t *cuts, size_t ncuts, run *out)
{
    slotd__reader rd;
    slotd__reader_init(&rd);
    memset(out, 0, sizeof *out);
    size_t off = 0, ci = 0;
    while (off < size && out->verdict == 0 && out->n < MAX_REPLIES) {
        size_t step = ncuts ? (size_t)cuts[ci++ % ncuts] % 23 + 1 : size;
        if (step > size - off)
            step = size - off;
        size_t cap;
        char *space = slotd__reader_space(&rd, step, &cap);
        if (!space || cap < step)
            abort();
        memcpy(space, data + off, step);
        slotd__reader_commit(&rd, step);
        off += step;
        int rc;
        while (out->n < MAX_REPLIES && (rc = slotd__reader_next(&rd, &out->r[out->n])) != 0) {
            if (rc < 0) {
                out->verdict = rc;
                break;
            }
            check(&out->r[out->n]);
            out->n++;
        }
    }
    slotd__reader_destroy(&rd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t ncuts = data[0] % 8; /* the first bytes pick the cuts */
    if (size < 1 + ncuts)
        return 0;
    const uint8_t *cuts = data + 1, *body = data + 1 + ncuts;
    size_t len = size - 1 - ncuts;
    static run whole, pieces;
    feed(body, len, NULL, 0, &whole);
    feed(body, len, cuts, ncuts, &pieces);
    if (whole.n != pieces.n || whole.verdict != pieces.verdict)
        abort();
    for (int i = 0; i < whole.n; i++) {
        const slotd__reply *a = &whole.r[i], *b = &pieces.r[i];
        if (a->type != b->type || a->seq != b->seq || a->n != b->n || a->index != b->index ||
            strcmp(a->code, b->code) != 0 || strcmp(a->message, b->message) != 0)
            abort();
    }
    return 0;
}
