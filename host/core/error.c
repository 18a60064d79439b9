/* error.c — formatting of eh_error and of the messages handed to callbacks. */
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

void eh_message(eh_message_fn fn, void *ud, const char *fmt, ...)
{
    if (!fn)
        return;
    char msg[EH_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fn(ud, msg);
}

void eh_error_clear(eh_error *err)
{
    if (err) {
        err->code = EH_OK;
        err->msg[0] = '\0';
    }
}

/* One table for both spellings of a status. */
static const struct {
    eh_status code;
    const char *name, *short_code;
} k_status[] = {
    { EH_OK, "ok", "OK" },
    { EH_EINVAL, "invalid data", "EINVAL" },
    { EH_ENOMEM, "out of memory", "ENOMEM" },
    { EH_EIO, "i/o error", "EIO" },
    { EH_ELIMIT, "limit exceeded", "ELIMIT" },
    { EH_EFORMAT, "unsupported format", "EFORMAT" },
    { EH_ESTATE, "bad state", "ESTATE" },
    { EH_EMODEL, "model error", "EMODEL" },
    { EH_ENET, "network error", "ENET" },
};

const char *eh_status_name(eh_status code)
{
    for (size_t i = 0; i < sizeof k_status / sizeof k_status[0]; i++)
        if (k_status[i].code == code)
            return k_status[i].name;
    return "unknown error";
}

const char *eh_status_code(eh_status code)
{
    for (size_t i = 0; i < sizeof k_status / sizeof k_status[0]; i++)
        if (k_status[i].code == code)
            return k_status[i].short_code;
    return "EUNKNOWN";
}
