/* log — one line per event on stderr: time, level, event, key=value pairs.
 *   2026-11-24T21:40:00.123Z INFO conn_open peer=127.0.0.1:5123 conns=3 */
#ifndef SLOTD_LOG_H
#define SLOTD_LOG_H

#include <stddef.h>

enum { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

extern int log_level;

/* Parse "error|warn|info|debug"; -1 if unknown. */
int log_level_parse(const char *s);
/* Write s[0..len) into buf as a log value: printable ASCII as it is;
 * '"', '\\', '=', space, control and non-ASCII bytes as \xNN, so a peer-chosen string can neither break the line nor
 * forge a key. Truncated to fit (n >= 1). Returns buf. */
#define LOG_ESC_MAX(len) ((len) * 4 + 1)
const char *log_esc(char *buf, size_t n, const char *s, size_t len);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) do { if (log_level >= LOG_INFO) log_msg(LOG_INFO, __VA_ARGS__); } while (0)
#define log_debug(...) do { if (log_level >= LOG_DEBUG) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
