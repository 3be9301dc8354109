/* Internal: recording an object's first error (see loom_error in
 * loom/graph.h). */
#ifndef LOOM_GRAPH_ERROR_H
#define LOOM_GRAPH_ERROR_H

#include "loom/graph.h"

#include <stdarg.h>

loom_status loom_error_setv(loom_error *e, loom_status s, const char *fmt, va_list ap);
static inline void loom_error_clear(loom_error *e)
{
    e->status = LOOM_OK;
    e->msg[0] = 0;
}
/* The message, or "" when there is no error. */
static inline const char *loom_error_msg(const loom_error *e) { return e->status ? e->msg : ""; }

#endif
