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
    bool html = !strcmp(fmt, "html");
    if (!strcmp(fmt, "dot") || !strcmp(fmt, "gv") || html) {
        loom_atomic out;
        loom_error e = {0};
        if (loom_atomic_open(&out, path, &e)) return loom_error_set(err, e.status, "%s", e.msg);
        loom_status st = html ? loom_dot_html(g, out.f, opts, err) : loom_dot_write(g, out.f, opts, err);
        if (st) {
            loom_atomic_abort(&out);
            return st;
        }
        return loom_atomic_commit(&out, &e) ? loom_error_set(err, e.status, "%s", e.msg) : LOOM_OK;
    }
    if (strcmp(fmt, "svg") && strcmp(fmt, "png") && strcmp(fmt, "pdf"))
        return loom_error_set(err, LOOM_ERR_ARG, "dot: cannot tell the format of '%s': use .dot, .gv, .html, .svg, .png or .pdf",
                              path);
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
#include <sys/wait.h>
#include <unistd.h>

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

/* What can fail, in order: the stages of parse_layout_render (and of
 * reading a child's picture back); 0 is none. */
enum { STAGE_OK = 0, STAGE_PARSE = 4, STAGE_LAYOUT, STAGE_FORMAT, STAGE_PIPE };
static const char *const stage_what[] = {"Graphviz cannot parse the DOT text", "Graphviz layout failed",
                                     "Graphviz cannot render this format (is it supported?)", "the picture could not be read back"};
static loom_status stage_status(int k) { return k == STAGE_PARSE ? LOOM_ERR_FORMAT : k == STAGE_FORMAT ? LOOM_ERR_ARG : k == STAGE_PIPE ? LOOM_ERR_IO : LOOM_ERR_STATE; }

/* Parses, lays out and renders; `straight`: edges as straight lines (the
 * router no picture crashes). STAGE_OK with the picture in *d (Graphviz's:
 * gvFreeRenderData), else the stage that failed. */
static int parse_layout_render(GVC_t *gvc, const char *dot, const char *format, bool straight, char **d, unsigned int *n)
{
    Agraph_t *gr = agmemread(dot);
    if (!gr) return STAGE_PARSE;
    if (straight) agsafeset(gr, "splines", "line", "");
    int rc = gvLayout(gvc, gr, layout_of(gr)) != 0 ? STAGE_LAYOUT : gvRenderData(gvc, gr, format, d, n) != 0 ? STAGE_FORMAT : STAGE_OK;
    if (rc != STAGE_LAYOUT) gvFreeLayout(gvc, gr);
    agclose(gr);
    return rc;
}

/* Lays out and renders the DOT text in a child process and reads the
 * result back through a pipe: Graphviz 2.42's edge routers abort the
 * process (a failed assertion in the orthogonal router's maze) or crash on
 * some layouts, and that must not take the caller down (nor may Graphviz's
 * own file output, which exits the process when a write fails). 0: *data
 * (malloc'd, *len bytes); 1: the text or the format is wrong, *why says
 * how; 2: the layout failed or Graphviz crashed (another router may do);
 * −1: no child could be made. */
static int render_in_child(GVC_t *gvc, const char *dot, const char *format, bool straight, char **data, size_t *len,
                           loom_status *st, char *why, size_t why_n)
{
    int fd[2];
    FILE *log = tmpfile(); /* what Graphviz says on stderr: the reason of a failure */
    if (!log) return -1;
    if (pipe(fd)) return fclose(log), -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]), close(fd[1]), fclose(log);
        return -1;
    }
    if (pid == 0) { /* the child: its exit status is the stage that failed, or 0 */
        close(fd[0]);
        dup2(fileno(log), 2);
        char *d = NULL;
        unsigned int n = 0;
        int rc = parse_layout_render(gvc, dot, format, straight, &d, &n);
        for (unsigned int at = 0; !rc && at < n;) {
            ssize_t w = write(fd[1], d + at, n - at);
            if (w <= 0 && errno != EINTR) rc = STAGE_PIPE;
            if (w > 0) at += (unsigned int)w;
        }
        _exit(rc);
    }
    close(fd[1]);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (ssize_t r = 1; buf && r != 0;) {
        if (n == cap) {
            char *b = realloc(buf, cap *= 2);
            if (!b) {
                free(buf), buf = NULL;
                break;
            }
            buf = b;
        }
        r = read(fd[0], buf + n, cap - n);
        if (r < 0 && errno != EINTR) break;
        if (r > 0) n += (size_t)r;
    }
    close(fd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (buf && WIFEXITED(status) && WEXITSTATUS(status) == STAGE_OK) {
        *data = buf, *len = n, *st = LOOM_OK;
        fclose(log);
        return 0;
    }
    free(buf);
    char said[256] = "", line[256];
    rewind(log);
    while (fgets(line, sizeof line, log)) /* its last line */
        if (line[0] != '\n') snprintf(said, sizeof said, "%.*s", (int)strcspn(line, "\n"), line);
    fclose(log);
    if (!buf) {
        *st = LOOM_ERR_NOMEM, snprintf(why, why_n, "out of memory reading the picture");
        return 1;
    }
    int k = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
    *st = stage_status(k);
    if (k == STAGE_PARSE || k == STAGE_FORMAT || k == STAGE_PIPE) { /* the text, the format, the pipe: the same again would fail the same way */
        snprintf(why, why_n, "%s%s%s", stage_what[k - STAGE_PARSE], said[0] ? ": " : "", said);
        return 1;
    }
    /* the layout failed, or Graphviz died (a signal; an exit of its own, as a sanitizer's) */
    if (WIFSIGNALED(status)) snprintf(why, why_n, "Graphviz crashed (signal %d%s%s)", WTERMSIG(status), said[0] ? ": " : "", said);
    else if (k == STAGE_LAYOUT) snprintf(why, why_n, "%s%s%s", stage_what[k - STAGE_PARSE], said[0] ? ": " : "", said);
    else snprintf(why, why_n, "Graphviz crashed (exit status %d%s%s)", k, said[0] ? ": " : "", said);
    return 2;
}

/* In-process, where no child can be made. */
static loom_status render_here(GVC_t *gvc, const char *dot, const char *format, char **data, size_t *len, loom_error *err)
{
    char *d = NULL;
    unsigned int n = 0;
    int rc = parse_layout_render(gvc, dot, format, false, &d, &n);
    loom_status st = rc ? loom_error_set(err, stage_status(rc), "render: %s", stage_what[rc - STAGE_PARSE]) : LOOM_OK;
    if (!st && !(*data = malloc(n + 1))) st = loom_error_set(err, LOOM_ERR_NOMEM, "render: out of memory");
    else if (!st) memcpy(*data, d, n), *len = n;
    if (d) gvFreeRenderData(d);
    return st;
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
    char *data = NULL, why[400] = "";
    size_t len = 0;
    loom_status st = LOOM_OK;
    int rc = render_in_child(gvc, dot, format, false, &data, &len, &st, why, sizeof why);
    /* a router that fails on a picture whose edges loom chose (loom_edges=auto)
     * is replaced by straight lines; one the caller chose is an error */
    if (rc == 2 && strstr(dot, "loom_edges=auto"))
        rc = render_in_child(gvc, dot, format, true, &data, &len, &st, why, sizeof why);
    if (rc < 0) st = render_here(gvc, dot, format, &data, &len, err);
    else if (rc > 0)
        st = loom_error_set(err, st, "render: %s%s", why, rc == 2 ? ": draw the edges another way (loom dot --edges curved or straight)" : "");
    pthread_mutex_unlock(&gvc_lock);
    if (!st && fwrite(data, 1, len, out.f) != len) st = loom_error_set(err, LOOM_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    free(data);
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
