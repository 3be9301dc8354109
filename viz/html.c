/* The interactive page of an unrolled graph (see loom_dot_html in
 * loom/dot.h): viz/page.html, compiled in, with the graph's DOT texts —
 * the cell view and the op view, as loom_dot_write writes them — as its
 * data. The page parses the same text the .dot file has, so it draws no
 * node or edge the DOT does not. */
#include "loom/dot.h"
#include "graph/error.h"
#include "page_html.h"

#include <stdlib.h>
#include <string.h>

/* A DOT text as the text of a <script type="text/plain"> element: "</"
 * written "<\/" (the page turns it back) so that no text ends it. */
static void script_text(FILE *f, const char *id, const char *s)
{
    fprintf(f, "<script type=\"text/plain\" id=\"%s\">", id);
    for (const char *p = s; *p; p++) {
        if (*p == '/' && p > s && p[-1] == '<') fputc('\\', f);
        fputc(*p, f);
    }
    fputs("</script>\n", f);
}

/* s as a JSON string; "</" written "<\/" so that no text ends the script. */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p == '\n') fputs("\\n", f);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else if (*p == '/' && p > (const unsigned char *)s && p[-1] == '<') fputs("\\/", f);
        else fputc(*p, f);
    }
    fputc('"', f);
}

static bool has_backward(const loom_graph *g)
{
    for (int32_t i = 0, n = loom_graph_size(g); i < n; i++)
        if (loom_graph_node(g, loom_at(i))->tags.role == LOOM_ROLE_BACKWARD) return true;
    return false;
}

loom_status loom_dot_html(const loom_graph *g, FILE *f, const loom_dot_opts *opts, loom_error *err)
{
    static const loom_dot_opts defaults;
    if (!g || !f) return loom_error_set(err, LOOM_ERR_ARG, "html: no graph or no file");
    const loom_dot_opts *o = opts ? opts : &defaults;
    const char *views = strstr(loom_page_html, "<!--LOOM_VIEWS-->"), *mark = strstr(loom_page_html, "/*LOOM_DATA*/");
    if (!mark || !views || views > mark) return loom_error_set(err, LOOM_ERR_STATE, "html: the page has no place for its data");
    /* both views, the diagram style (the page lays out its own labels), every part: the page filters */
    bool bwd = has_backward(g);
    loom_dot_opts v = *o;
    v.style = LOOM_DOT_STYLE_DIAGRAM;
    v.part = o->part == LOOM_DOT_FORWARD || !bwd ? LOOM_DOT_FORWARD : LOOM_DOT_BOTH;
    char *text[2] = {NULL, NULL};
    size_t len;
    loom_status st = LOOM_OK;
    for (int k = 0; k < 2 && !st; k++) { /* every step in the cell view (the page draws what is on screen) */
        v.view = k ? LOOM_DOT_OPS : LOOM_DOT_CELLS;
        v.steps_shown = k ? o->steps_shown : 0;
        st = loom_dot_string(g, &v, &text[k], &len, err);
    }
    if (!st) {
        fwrite(loom_page_html, 1, (size_t)(views - loom_page_html), f);
        script_text(f, "view_cell", text[0]); /* text, not script: the browser reads it without compiling it */
        script_text(f, "view_op", text[1]);
        const char *after = views + strlen("<!--LOOM_VIEWS-->");
        fwrite(after, 1, (size_t)(mark - after), f);
        fputs("{\"title\": ", f);
        json_str(f, o->title ? o->title : "");
        fprintf(f, ", \"backward\": %s, \"part\": \"%s\"}", v.part == LOOM_DOT_BOTH ? "true" : "false",
                o->part == LOOM_DOT_BACKWARD ? "bwd" : v.part == LOOM_DOT_BOTH ? "both" : "fwd");
        fputs(mark + strlen("/*LOOM_DATA*/"), f);
        if (ferror(f)) st = loom_error_set(err, LOOM_ERR_IO, "html: write error");
    }
    free(text[0]), free(text[1]);
    return st;
}
