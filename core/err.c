/* err — core_strerror over the one list in err.h. */
#include "err.h"

static const char *const core_err_msgs[CORE_ERR_COUNT] = {
#define CORE_ERR__MSG(name, msg) [CORE_ERR__I_##name] = msg,
    CORE_ERRORS(CORE_ERR__MSG)
#undef CORE_ERR__MSG
};

const char *core_strerror(int rc)
{
    if (rc == CORE_OK)
        return "ok";
    if (!core_err_is(rc))
        return "unknown error";
    return core_err_msgs[CORE_ERR_FIRST - rc];
}
