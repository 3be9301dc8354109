/* Internal: the per-thread error of the DOT functions (loom_dot_error). */
#ifndef LOOM_VIZ_H
#define LOOM_VIZ_H

#include "loom/graph.h"

void loom_dot_clear(void);
loom_status loom_dot_fail(loom_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
