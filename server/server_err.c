/* server_err — server_strerror and server_err_name over the one list in
 * server_err.h. */
#include "server_err.h"

#include <string.h>
#include <uv.h>

/* libuv's own codes (UV_EOF, UV_EAI_*, UV_ECHARSET...) lie in -4095 ..
 * -3000 on Unix; every other UV_E* there is -errno. */
#define SERVER_UV_OWN_FIRST (-3000)

static const struct {
    const char *name, *msg;
} server_errs[SERVER_ERR_COUNT] = {
#define SERVER_ERR__ROW(code, log, text) [SERVER_ERR__I_##code] = {log, text},
    SERVER_ERRORS(SERVER_ERR__ROW)
#undef SERVER_ERR__ROW
};

const char *server_strerror(int rc)
{
    /* uv_strerror would leak a copy for a code it does not know. */
    static _Thread_local char uvbuf[64];

    if (rc == SERVER_OK)
        return "ok";
    if (server_err_is(rc))
        return server_errs[SERVER_ERR_FIRST - rc].msg;
    if (core_err_is(rc))
        return core_strerror(rc);
    if (rc < 0 && rc > SERVER_UV_OWN_FIRST)
        return strerror(-rc);
    if (rc < 0 && rc >= UV_EOF)
        return uv_strerror_r(rc, uvbuf, sizeof uvbuf);
    return "unknown error";
}

const char *server_err_name(int rc)
{
    if (rc == SERVER_OK)
        return "ok";
    if (server_err_is(rc))
        return server_errs[SERVER_ERR_FIRST - rc].name;
    return "unknown";
}
