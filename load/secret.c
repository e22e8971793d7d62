/* secret — see secret.h. */
#include "secret.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int secret_read(const char *path, char *buf, size_t cap, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    int rc = 0;
    if (!fgets(buf, (int)cap, f)) {
        snprintf(err, errlen, "%s: empty", path);
        rc = -1;
    } else {
        size_t n = strcspn(buf, "\r\n");
        if (buf[n] == '\0' && !feof(f) && n + 1 == cap) {
            snprintf(err, errlen, "%s: the secret is longer than %zu bytes", path, cap - 2);
            rc = -1;
        }
        buf[n] = '\0';
        if (rc == 0 && n == 0) {
            snprintf(err, errlen, "%s: the first line is empty", path);
            rc = -1;
        }
    }
    fclose(f);
    if (rc != 0)
        memset(buf, 0, cap);
    return rc;
}
