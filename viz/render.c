/* In-process rendering of DOT text with Graphviz's libgvc. */
#include "loom/dot.h"
#include "graph/error.h"
#include "io/atomic.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *ext_of(const char *path)
{
    const char *dot = strrchr(path, '.');
    return dot && !strchr(dot, '/') ? dot + 1 : "";
}

loom_status loom_dot_save(const loom_graph *g, const loom_dot_opts *opts, const char *path, loom_error *err)
{
    if (!path) return loom_error_set(err, LOOM_ERR_ARG, "dot: no file name");
    const char *fmt = ext_of(path);
    if (!strcmp(fmt, "dot") || !strcmp(fmt, "gv")) {
        loom_atomic out;
        loom_error e = {0};
        if (loom_atomic_open(&out, path, &e)) return loom_error_set(err, e.status, "%s", e.msg);
        loom_status st = loom_dot_write(g, out.f, opts, err);
        if (st) {
            loom_atomic_abort(&out);
            return st;
        }
        return loom_atomic_commit(&out, &e) ? loom_error_set(err, e.status, "%s", e.msg) : LOOM_OK;
    }
    if (strcmp(fmt, "svg") && strcmp(fmt, "png") && strcmp(fmt, "pdf"))
        return loom_error_set(err, LOOM_ERR_ARG, "dot: cannot tell the format of '%s': use .dot, .gv, .svg, .png or .pdf", path);
    char *text;
    size_t len;
    loom_status st = loom_dot_string(g, opts, &text, &len, err);
    if (st) return st;
    st = loom_dot_render(text, fmt, path, err);
    free(text);
    return st;
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

/* The engine the DOT text asks for (loom's own pictures say "nop2"), else dot. */
static char *layout_of(Agraph_t *gr)
{
    char *l = agget(gr, "layout");
    return l && *l ? l : "dot";
}

loom_status loom_dot_render(const char *dot, const char *format, const char *path, loom_error *err)
{
    if (!dot || !format || !path) return loom_error_set(err, LOOM_ERR_ARG, "render: missing DOT text, format or path");
    pthread_once(&gvc_once, gvc_start);
    GVC_t *gvc = gvc_shared;
    if (!gvc) return loom_error_set(err, LOOM_ERR_STATE, "render: cannot start Graphviz");
    loom_atomic out;
    loom_error e = {0};
    if (loom_atomic_open(&out, path, &e)) return loom_error_set(err, e.status, "%s", e.msg);
    pthread_mutex_lock(&gvc_lock); /* Graphviz is not thread-safe */
    loom_status st = LOOM_OK;
    Agraph_t *gr = agmemread(dot);
    if (!gr) {
        st = loom_error_set(err, LOOM_ERR_FORMAT, "render: Graphviz cannot parse the DOT text");
    } else if (gvLayout(gvc, gr, layout_of(gr)) != 0) {
        st = loom_error_set(err, LOOM_ERR_STATE, "render: Graphviz layout failed");
    } else {
        /* into memory, then written here: Graphviz's own file output exits
         * the process when a write fails */
        char *data = NULL;
        unsigned int len = 0;
        if (gvRenderData(gvc, gr, format, &data, &len) != 0)
            st = loom_error_set(err, LOOM_ERR_ARG, "render: Graphviz cannot render '%s' (is the format supported?)",
                                format);
        else if (fwrite(data, 1, len, out.f) != len)
            st = loom_error_set(err, LOOM_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        if (data) gvFreeRenderData(data);
        gvFreeLayout(gvc, gr);
    }
    if (gr) agclose(gr);
    pthread_mutex_unlock(&gvc_lock);
    if (st) loom_atomic_abort(&out);
    else if ((st = loom_atomic_commit(&out, &e))) loom_error_set(err, st, "%s", e.msg);
    return st;
}
#else
bool loom_dot_can_render(void) { return false; }

loom_status loom_dot_render(const char *dot, const char *format, const char *path, loom_error *err)
{
    (void)dot, (void)format, (void)path;
    return loom_error_set(err, LOOM_ERR_STATE,
                          "render: loom was built without Graphviz (meson option -Dgraphviz); write .dot and run `dot`");
}
#endif
