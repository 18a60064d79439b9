/* error.c — formatting of eh_error. */
#include "evalhost/error.h"

#include <stdio.h>

eh_status eh_vfail(eh_error *err, eh_status code, const char *fmt, va_list ap)
{
    if (err) {
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    }
    return code;
}

eh_status eh_fail(eh_error *err, eh_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    eh_vfail(err, code, fmt, ap);
    va_end(ap);
    return code;
}

void eh_error_clear(eh_error *err)
{
    if (err) {
        err->code = EH_OK;
        err->msg[0] = '\0';
    }
}

const char *eh_status_name(eh_status code)
{
    switch (code) {
    case EH_OK: return "ok";
    case EH_EINVAL: return "invalid data";
    case EH_ENOMEM: return "out of memory";
    case EH_EIO: return "i/o error";
    case EH_ELIMIT: return "limit exceeded";
    case EH_EFORMAT: return "unsupported format";
    case EH_ESTATE: return "bad state";
    case EH_EMODEL: return "model error";
    case EH_ENET: return "network error";
    }
    return "unknown error";
}
