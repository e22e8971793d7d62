/* listen — one listening socket for ingest.c and http.c (plain and TLS). */
#include "server.h"

int server_listen(uv_loop_t *loop, uv_tcp_t *l, void *data, const char *host, int port,
                  int backlog, uv_connection_cb cb, int *open, int *bound)
{
    struct sockaddr_storage addr;
    int rc;
    if ((rc = uv_ip4_addr(host, port, (struct sockaddr_in *)&addr)) != 0 &&
        (rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr)) != 0)
        return rc;
    uv_tcp_init(loop, l);
    l->data = data;
    *open = 1; /* from here on the caller closes it, whatever happens next */
    if ((rc = uv_tcp_bind(l, (struct sockaddr *)&addr, 0)) != 0 ||
        (rc = uv_listen((uv_stream_t *)l, backlog, cb)) != 0)
        return rc;
    struct sockaddr_storage sa;
    int blen = sizeof sa;
    if ((rc = uv_tcp_getsockname(l, (struct sockaddr *)&sa, &blen)) != 0)
        return rc;
    *bound = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                            : ((struct sockaddr_in *)&sa)->sin_port);
    return 0;
}
