/* First-error recording shared by every object that can fail. */
#include "graph/error.h"

#include <stdio.h>

loom_status loom_error_setv(loom_error *e, loom_status s, const char *fmt, va_list ap)
{
    if (e && e->status == LOOM_OK && s != LOOM_OK) {
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        e->status = s;
    }
    return s;
}

loom_status loom_error_set(loom_error *e, loom_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    loom_error_setv(e, s, fmt, ap);
    va_end(ap);
    return s;
}
