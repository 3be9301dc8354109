/* In-process rendering of DOT text with Graphviz's libgvc. */
#include "loom/dot.h"

#include <stdio.h>
#include <string.h>

#ifdef LOOM_HAVE_GVC
#include <graphviz/cgraph.h>
#include <graphviz/gvc.h>

bool loom_dot_can_render(void) { return true; }

loom_status loom_dot_render(const char *dot, const char *format, const char *path, char *err, size_t n)
{
    if (!dot || !format || !path) {
        snprintf(err, n, "render: missing DOT text, format or path");
        return LOOM_ERR_ARG;
    }
    GVC_t *gvc = gvContext();
    if (!gvc) {
        snprintf(err, n, "render: cannot start Graphviz");
        return LOOM_ERR_STATE;
    }
    loom_status st = LOOM_OK;
    Agraph_t *gr = agmemread(dot);
    if (!gr) {
        snprintf(err, n, "render: Graphviz cannot parse the DOT text");
        st = LOOM_ERR_FORMAT;
    } else if (gvLayout(gvc, gr, "dot") != 0) {
        snprintf(err, n, "render: Graphviz layout failed");
        st = LOOM_ERR_STATE;
    } else {
        if (gvRenderFilename(gvc, gr, format, path) != 0) {
            snprintf(err, n, "render: Graphviz cannot write %s as '%s' (is the format supported?)", path, format);
            st = LOOM_ERR_IO;
        }
        gvFreeLayout(gvc, gr);
    }
    if (gr) agclose(gr);
    gvFreeContext(gvc);
    return st;
}
#else
bool loom_dot_can_render(void) { return false; }

loom_status loom_dot_render(const char *dot, const char *format, const char *path, char *err, size_t n)
{
    (void)dot, (void)format, (void)path;
    snprintf(err, n, "render: loom was built without Graphviz (meson option -Dgraphviz); write .dot and run `dot`");
    return LOOM_ERR_STATE;
}
#endif
