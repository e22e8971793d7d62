/* journal_seg — segment files by number: names, listing, removal.
 *
 * Plain directory work with no journal handle, so the checkpoint code can
 * run it on a worker thread (removing gigabytes of segments can take a
 * while on some filesystems) and at start-up before the journal is open.
 * Segment numbers are never reused (journal_writer.c), which is what makes
 * "every segment <= N" a stable description of a prefix of the journal.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "journal.h"

void journal_segment_name(char *buf, size_t n, uint64_t no)
{
    snprintf(buf, n, "journal-%016" PRIx64 ".log", no);
}

static int journal__cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* journal-<16 lowercase hex>.log exactly; anything else is not ours. */
static int journal__is_seg(const struct dirent *e)
{
    const char *s = e->d_name;
    if (strlen(s) != 28 || strncmp(s, "journal-", 8) || strcmp(s + 24, ".log"))
        return 0;
    for (int i = 8; i < 24; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

int journal_segments(const char *dir, uint64_t **out, size_t *nout)
{
    struct dirent **names;
    int n = scandir(dir, &names, journal__is_seg, NULL);
    uint64_t *v;

    *out = NULL, *nout = 0;
    if (n < 0)
        return -errno;
    v = malloc(((size_t)n + 1) * sizeof(*v));
    for (int i = 0; i < n; i++) {
        if (v)
            v[i] = strtoull(names[i]->d_name + 8, NULL, 16);
        free(names[i]);
    }
    free(names);
    if (!v)
        return -ENOMEM;
    qsort(v, (size_t)n, sizeof(*v), journal__cmp_u64);
    *out = v, *nout = (size_t)n;
    return 0;
}

int journal_remove_through(const char *dir, uint64_t through, uint64_t *removed)
{
    uint64_t *segs = NULL;
    size_t n = 0;
    int dfd, rc = journal_segments(dir, &segs, &n);

    if (removed)
        *removed = 0;
    if (rc < 0)
        return rc;
    if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        free(segs);
        return -errno;
    }
    /* Oldest first: a crash part way leaves a contiguous tail of segments,
     * never a hole that replay would have to explain. */
    for (size_t i = 0; i < n && segs[i] <= through; i++) {
        char name[64];
        journal_segment_name(name, sizeof name, segs[i]);
        if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT) {
            rc = -errno;
            break;
        }
        if (removed)
            (*removed)++;
    }
    if (fsync(dfd) < 0 && rc == 0)
        rc = -errno;
    close(dfd);
    free(segs);
    return rc;
}
