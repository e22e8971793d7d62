/* drive_common — what the C client's test drivers (client_drive.c,
 * sub_drive.c) share: the JSON string writer for the output the
 * integration tests parse, and the connection flags. */
#ifndef SLOTD_TEST_DRIVE_COMMON_H
#define SLOTD_TEST_DRIVE_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Flag `a` with value v into o (a slotd_sender_opts or slotd_sub_opts: the
 * same field names) if it is a connection flag: 1, else 0. */
#define DRIVE_CONN_OPT(o, a, v)                                                                    \
    (!strcmp(a, "--host")              ? ((o).host = (v), 1)                                       \
     : !strcmp(a, "--port")            ? ((o).port = atoi(v), 1)                                   \
     : !strcmp(a, "--client")          ? ((o).client = (v), 1)                                     \
     : !strcmp(a, "--token")           ? ((o).token = (v), 1)                                      \
     : !strcmp(a, "--tls-ca")          ? ((o).tls_ca = (v), 1)                                     \
     : !strcmp(a, "--tls-cert")        ? ((o).tls_cert = (v), 1)                                   \
     : !strcmp(a, "--tls-key")         ? ((o).tls_key = (v), 1)                                    \
     : !strcmp(a, "--tls-server-name") ? ((o).tls_server_name = (v), 1)                            \
                                       : 0)

static inline void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

#endif
