/* A beam search's tree as DOT (see loom_search_tree_dot in loom/dot.h). */
#include "loom/dot.h"
#include "graph/error.h"
#include "io/atomic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* s as the text of a DOT string ("…"): quotes and backslashes escaped. */
static void dot_str(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        fputc(*s == '\n' ? ' ' : *s, f);
    }
}

loom_status loom_search_tree_dot(const loom_search_tree *t, const char *const *labels, int n_labels, const char *title, char **out,
                                 size_t *len, loom_error *err)
{
    if (!t || !out || !len || t->n < 0 || (t->n && !t->nodes)) return loom_error_set(err, LOOM_ERR_ARG, "search tree: no tree");
    int n = t->n < t->cap ? t->n : t->cap;
    bool *on_best = calloc((size_t)n + 1, sizeof *on_best);
    FILE *f = open_memstream(out, len);
    if (!on_best || !f) {
        free(on_best);
        if (f) fclose(f), free(*out);
        return loom_error_set(err, LOOM_ERR_NOMEM, "search tree: out of memory");
    }
    for (int k = t->best; k >= 0 && k < n; k = t->nodes[k].parent) on_best[k] = true; /* the winner's path */
    fputs("digraph search {\n  graph [rankdir=LR, nodesep=0.12, ranksep=0.35, fontname=\"Helvetica\", labelloc=t, fontsize=13, label=\"", f);
    dot_str(f, title ? title : "beam search");
    fputs("\"];\n  node [fontname=\"Helvetica\", fontsize=10, shape=box, style=\"rounded,filled\", height=0.3];\n"
          "  edge [arrowsize=0.5];\n  bos [label=\"<bos>\", fillcolor=\"#e2f0d9\", color=\"#548235\"];\n", f);
    static const char *const fill[] = {"#e8f0fb", "#e2f0d9", "#f2f2f2"}, *const line[] = {"#4a78b5", "#548235", "#aaaaaa"};
    for (int k = 0; k < n; k++) {
        const loom_search_node *d = &t->nodes[k];
        int fate = d->fate >= LOOM_CAND_KEPT && d->fate <= LOOM_CAND_PRUNED ? (int)d->fate : LOOM_CAND_PRUNED;
        char num[32];
        const char *tok = d->token >= 0 && d->token < n_labels && labels && labels[d->token] ? labels[d->token] : num;
        snprintf(num, sizeof num, "%d", d->token);
        fprintf(f, "  c%d [label=\"", k);
        dot_str(f, tok);
        fprintf(f, "\\n%.2f\", fillcolor=\"%s\", color=\"%s\"%s%s%s];\n", d->score, fill[fate], line[fate],
                fate == LOOM_CAND_PRUNED ? ", style=\"rounded,filled,dashed\", fontcolor=\"#888888\"" : "",
                fate == LOOM_CAND_FINISHED ? ", peripheries=2" : "", on_best[k] ? ", penwidth=2.5, color=\"#c0504d\"" : "");
        if (d->parent >= 0) fprintf(f, "  c%d -> c%d", d->parent, k);
        else fprintf(f, "  bos -> c%d", k);
        fprintf(f, " [color=\"%s\"%s];\n", on_best[k] ? "#c0504d" : line[fate], on_best[k] ? ", penwidth=2.5" : fate == LOOM_CAND_PRUNED ? ", style=dashed" : "");
    }
    if (t->n > t->cap) fprintf(f, "  more [shape=plain, style=\"\", label=\"… %d more not recorded\"];\n", t->n - t->cap);
    fputs("}\n", f);
    bool bad = ferror(f) != 0;
    fclose(f);
    free(on_best);
    if (bad) {
        free(*out), *out = NULL;
        return loom_error_set(err, LOOM_ERR_NOMEM, "search tree: out of memory");
    }
    return LOOM_OK;
}

loom_status loom_search_tree_save(const loom_search_tree *t, const char *const *labels, int n_labels, const char *title,
                                  const char *path, loom_error *err)
{
    if (!path) return loom_error_set(err, LOOM_ERR_ARG, "search tree: no file");
    const char *ext = strrchr(path, '.');
    ext = ext && !strchr(ext, '/') ? ext + 1 : "";
    bool text = !strcmp(ext, "dot") || !strcmp(ext, "gv");
    if (!text && strcmp(ext, "svg") && strcmp(ext, "png") && strcmp(ext, "pdf"))
        return loom_error_set(err, LOOM_ERR_ARG, "search tree: cannot tell the format of '%s': use .dot, .svg, .png or .pdf", path);
    char *dot = NULL;
    size_t n;
    loom_status st = loom_search_tree_dot(t, labels, n_labels, title, &dot, &n, err);
    if (!st && text) { /* replaced whole, or not at all */
        loom_atomic out = {0};
        loom_error e = {0};
        if ((st = loom_atomic_open(&out, path, &e))) loom_error_set(err, st, "%s", e.msg);
        else if (fwrite(dot, 1, n, out.f) != n) st = loom_error_set(err, LOOM_ERR_IO, "%s: write error", path), loom_atomic_abort(&out);
        else if ((st = loom_atomic_commit(&out, &e))) loom_error_set(err, st, "%s", e.msg);
    } else if (!st) {
        st = loom_dot_render(dot, ext, path, err);
    }
    free(dot);
    return st;
}
