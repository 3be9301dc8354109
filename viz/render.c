/* In-process rendering of DOT text with Graphviz's libgvc. */
#include "loom/dot.h"
#include "graph/error.h"
#include "viz/viz.h"

#include <stdio.h>
#include <string.h>

/* Calls without an object keep their error per thread, as errno does. */
static _Thread_local loom_error dot_err;

const char *loom_dot_error(void) { return loom_error_msg(&dot_err); }
void loom_dot_clear(void) { loom_error_clear(&dot_err); }

loom_status loom_dot_fail(loom_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    loom_error_setv(&dot_err, s, fmt, ap);
    va_end(ap);
    return s;
}

#ifdef LOOM_HAVE_GVC
#include <graphviz/cgraph.h>
#include <graphviz/gvc.h>
#include <pthread.h>

bool loom_dot_can_render(void) { return true; }

/* One Graphviz context for the whole process, never freed: Graphviz 2.42's
 * pango plugin keeps a pointer to the last font it measured in a static
 * cache, which a freed context would leave dangling for the next one. */
static GVC_t *gvc_shared;
static pthread_once_t gvc_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t gvc_lock = PTHREAD_MUTEX_INITIALIZER;
static void gvc_start(void) { gvc_shared = gvContext(); }

/* The engine the DOT text asks for (loom's own pictures say "nop"), else dot. */
static char *layout_of(Agraph_t *gr)
{
    char *l = agget(gr, "layout");
    return l && *l ? l : "dot";
}

loom_status loom_dot_render(const char *dot, const char *format, const char *path)
{
    loom_error_clear(&dot_err);
    if (!dot || !format || !path) {
        return loom_error_set(&dot_err, LOOM_ERR_ARG, "render: missing DOT text, format or path");
    }
    pthread_once(&gvc_once, gvc_start);
    GVC_t *gvc = gvc_shared;
    if (!gvc) {
        return loom_error_set(&dot_err, LOOM_ERR_STATE, "render: cannot start Graphviz");
    }
    pthread_mutex_lock(&gvc_lock); /* Graphviz is not thread-safe */
    loom_status st = LOOM_OK;
    Agraph_t *gr = agmemread(dot);
    if (!gr) {
        st = loom_error_set(&dot_err, LOOM_ERR_FORMAT, "render: Graphviz cannot parse the DOT text");
    } else if (gvLayout(gvc, gr, layout_of(gr)) != 0) {
        st = loom_error_set(&dot_err, LOOM_ERR_STATE, "render: Graphviz layout failed");
    } else {
        if (gvRenderFilename(gvc, gr, format, path) != 0) {
            st = loom_error_set(&dot_err, LOOM_ERR_IO, "render: Graphviz cannot write %s as '%s' (is the format supported?)",
                                path, format);
        }
        gvFreeLayout(gvc, gr);
    }
    if (gr) agclose(gr);
    pthread_mutex_unlock(&gvc_lock);
    return st;
}
#else
bool loom_dot_can_render(void) { return false; }

loom_status loom_dot_render(const char *dot, const char *format, const char *path)
{
    loom_error_clear(&dot_err);
    (void)dot, (void)format, (void)path;
    snprintf(err, n, "render: loom was built without Graphviz (meson option -Dgraphviz); write .dot and run `dot`");
    return LOOM_ERR_STATE;
}
#endif
