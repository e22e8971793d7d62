/* secret — a token read from a file (--token-file), so a secret never
 * stands on a command line where `ps` shows it. The file holds the secret
 * on its first line; the line end is not part of it. */
#ifndef SLOTD_LOAD_SECRET_H
#define SLOTD_LOAD_SECRET_H

#include <stddef.h>

/* The secret from path into buf: 0, or -1 with why in err (the file's name
 * and the reason, never its content). */
int secret_read(const char *path, char *buf, size_t cap, char *err, size_t errlen);

#endif
