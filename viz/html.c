/* The interactive page of an unrolled graph (see loom_dot_html in
 * loom/dot.h): viz/page.html, compiled in, with the graph's DOT texts —
 * the cell view and the op view, as loom_dot_write writes them — as its
 * data. The page parses the same text the .dot file has, so it draws no
 * node or edge the DOT does not. */
#include "loom/dot.h"
#include "loom/rnn.h"
#include "graph/error.h"
#include "page_html.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <zlib.h>

/* A DOT text as the text of a <script type="text/plain"> element: "</"
 * written "<\/" (the page turns it back) so that no text ends it. */
static void script_text(FILE *f, const char *id, const char *s, size_t n)
{
    fprintf(f, "<script type=\"text/plain\" id=\"%s\">", id);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '/' && i > 0 && s[i - 1] == '<') fputc('\\', f);
        fputc(s[i], f);
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

/* The equations of the equation cells g's nodes come from, as JSON
 * {"cell": ["statement 1", ...], ...}: a node's loom_eq="cell:k" names one. */
static void equations_json(FILE *f, const loom_graph *g)
{
    bool seen[256] = {false};
    int n = 0;
    fputc('{', f);
    for (int32_t i = 0, size = loom_graph_size(g); i < size; i++) {
        int id = loom_graph_node(g, loom_at(i))->tags.cell;
        if (seen[id]) continue;
        seen[id] = true;
        const char *name = loom_graph_label_text(g, id);
        const loom_cell_def *cell = name ? loom_cell_by_name(name) : NULL;
        int k = loom_cell_equations(cell);
        if (!k) continue;
        fputs(n++ ? ", " : "", f);
        json_str(f, name);
        fputs(": [", f);
        for (int s = 0; s < k; s++) {
            char eq[1024];
            fputs(s ? ", " : "", f);
            json_str(f, loom_cell_equation(cell, s, eq, sizeof eq));
        }
        fputc(']', f);
    }
    fputc('}', f);
}

/* The attention map as JSON {"rows": R, "cols": C, "w": [...], "rowLabels": [...], "colLabels": [...]} */
static void attention_json(FILE *f, const loom_dot_opts *o)
{
    int R = o->attention_rows, C = o->attention_cols;
    fprintf(f, "{\"rows\": %d, \"cols\": %d, \"w\": [", R, C);
    for (int64_t k = 0; k < (int64_t)R * C; k++) {
        float w = o->attention[k];
        fprintf(f, k ? ", %.4g" : "%.4g", isfinite(w) ? w : 0.0);
    }
    const char *const *labels[2] = {o->attention_row_labels, o->attention_col_labels};
    for (int side = 0; side < 2; side++) {
        fprintf(f, "], \"%s\": [", side ? "colLabels" : "rowLabels");
        for (int k = 0; labels[side] && k < (side ? C : R); k++) {
            fputs(k ? ", " : "", f);
            json_str(f, labels[side][k] ? labels[side][k] : "");
        }
    }
    fputs("]}", f);
}

/* ---- the op view's steps, opened on demand ----
 * The page's op view is the layout of every step (steps_shown 0). Of its
 * DOT text the page gets as text the lines the command's op view draws —
 * parameters, inputs, the loss, and the steps the elided op view keeps —
 * and each other step's lines (its nodes, and the edges that reach one of
 * them) gzip-compressed, inflated by the page when the step is opened. The
 * pieces together are the DOT text, line for line. */

/* A DOT statement line "    id [k=v, ...];" or "    a -> b [...];": its
 * id, or an edge's two; false for any other line. */
static bool stmt_ids(const char *l, const char *end, const char **a, size_t *na, const char **b, size_t *nb)
{
    while (l < end && *l == ' ') l++;
    const char *br = memchr(l, '[', (size_t)(end - l));
    if (!br || br - l < 2 || br[-1] != ' ' || end - br < 3 || end[-1] != ';' || end[-2] != ']') return false;
    const char *arrow = NULL;
    for (const char *p = l; p + 4 < br; p++)
        if (!memcmp(p, " -> ", 4)) { arrow = p; break; }
    *a = l, *na = (size_t)((arrow ? arrow : br - 1) - l);
    *b = arrow ? arrow + 4 : NULL, *nb = arrow ? (size_t)(br - 1 - *b) : 0;
    return *na && !memchr(*a, ' ', *na) && (!arrow || (*nb && !memchr(*b, ' ', *nb)));
}

/* The number after attribute `key` ("loom_step=", "pos=\"") on the line, or def. */
static double line_num(const char *l, const char *end, const char *key, double def)
{
    size_t k = strlen(key);
    for (const char *p = l + 1; p + k < end; p++)
        if ((p[-1] == ' ' || p[-1] == ',' || p[-1] == '[') && !memcmp(p, key, k)) return strtod(p + k, NULL);
    return def;
}

/* The lines of a text: line i is [at[i], end of line) */
typedef struct {
    const char **at;
    size_t n;
} lines;

static bool split_lines(const char *s, lines *ls)
{
    size_t n = 1;
    for (const char *p = s; *p; p++) n += *p == '\n';
    if (!(ls->at = malloc((n + 1) * sizeof *ls->at))) return false;
    ls->n = 0;
    for (const char *p = s; *p;) {
        ls->at[ls->n++] = p;
        const char *nl = strchr(p, '\n');
        p = nl ? nl + 1 : p + strlen(p);
    }
    ls->at[ls->n] = s + strlen(s);
    return true;
}

static const char *line_end(const lines *ls, size_t i)
{
    const char *e = ls->at[i + 1];
    return e > ls->at[i] && e[-1] == '\n' ? e - 1 : e;
}

/* node id → step, open addressing */
typedef struct {
    const char *id;
    size_t len;
    int step;
} id_step;

static id_step *id_slot(id_step *map, size_t mask, const char *s, size_t n)
{
    for (size_t i = XXH3_64bits(s, n) & mask;; i = (i + 1) & mask)
        if (!map[i].id || (map[i].len == n && !memcmp(map[i].id, s, n))) return &map[i];
}

typedef struct {
    char *head;    /* the lines parsed at once */
    size_t head_len;
    int T;         /* steps */
    int n;         /* steps sent compressed: step[k], their lines in text[off[k] .. off[k + 1]) */
    int *step;
    size_t *off;
    char *text;
    double *box;   /* x0, x1, y0, y1 of each one's node centres (points) */
} op_pieces;

static void pieces_free(op_pieces *p) { free(p->head), free(p->step), free(p->off), free(p->text), free(p->box); }

/* Splits `full` (every step) by the steps `shown` (the elided op view)
 * draws. */
static loom_status op_split(const char *full, const char *shown, op_pieces *p, loom_error *err)
{
    memset(p, 0, sizeof *p);
    lines ls;
    if (!split_lines(full, &ls)) return loom_error_set(err, LOOM_ERR_NOMEM, "html: out of memory");
    size_t mask = 64;
    while (mask < 2 * ls.n) mask *= 2;
    id_step *map = calloc(mask--, sizeof *map);
    int *where = malloc((ls.n + 1) * sizeof *where);
    loom_status st = LOOM_OK;
    uint8_t *keep = NULL;
    int *chunk_of = NULL;
    if (!map || !where) goto oom;
    for (size_t i = 0; i < ls.n; i++) { /* each node's step */
        const char *a, *b, *e = line_end(&ls, i);
        size_t na, nb;
        if (!stmt_ids(ls.at[i], e, &a, &na, &b, &nb) || b) continue;
        id_step *s = id_slot(map, mask, a, na);
        s->id = a, s->len = na, s->step = (int)line_num(ls.at[i], e, "loom_step=", -1);
        if (s->step + 1 > p->T) p->T = s->step + 1;
    }
    keep = calloc((size_t)p->T + 1, 1);
    chunk_of = malloc(((size_t)p->T + 1) * sizeof *chunk_of);
    if (!keep || !chunk_of) goto oom;
    for (const char *l = shown; *l;) { /* the steps the elided view draws */
        const char *nl = strchr(l, '\n'), *e = nl ? nl : l + strlen(l), *a, *b;
        size_t na, nb;
        if (stmt_ids(l, e, &a, &na, &b, &nb) && !b) {
            double t = line_num(l, e, "loom_step=", -1);
            if (t >= 0 && t < p->T) keep[(int)t] = 1;
        }
        l = nl ? nl + 1 : e;
    }
    for (int t = 0; t < p->T; t++) chunk_of[t] = keep[t] ? -1 : p->n++;
    p->step = malloc(((size_t)p->n + 1) * sizeof *p->step);
    p->off = calloc((size_t)p->n + 2, sizeof *p->off);
    p->box = malloc(((size_t)p->n + 1) * 4 * sizeof *p->box);
    if (!p->step || !p->off || !p->box) goto oom;
    for (int t = 0; t < p->T; t++)
        if (chunk_of[t] >= 0) {
            int k = chunk_of[t];
            p->step[k] = t;
            p->box[4 * k] = p->box[4 * k + 2] = 1e300, p->box[4 * k + 1] = p->box[4 * k + 3] = -1e300;
        }
    size_t head = 0;
    for (size_t i = 0; i < ls.n; i++) { /* each line's piece: a node's step, an edge's later opened end */
        const char *a, *b, *e = line_end(&ls, i);
        size_t na, nb;
        int k = -1;
        if (stmt_ids(ls.at[i], e, &a, &na, &b, &nb)) {
            id_step *sa = id_slot(map, mask, a, na), *sb = b ? id_slot(map, mask, b, nb) : NULL;
            int ta = sa->id ? sa->step : -1, tb = sb && sb->id ? sb->step : -1;
            int ka = ta >= 0 ? chunk_of[ta] : -1, kb = tb >= 0 ? chunk_of[tb] : -1;
            k = ka > kb ? ka : kb;
            double x = line_num(ls.at[i], e, "pos=\"", NAN);
            if (!b && k >= 0 && x == x) {
                const char *comma = memchr(strstr(ls.at[i], "pos=\""), ',', (size_t)(e - ls.at[i]));
                double y = comma ? strtod(comma + 1, NULL) : 0, *bx = &p->box[4 * k];
                if (x < bx[0]) bx[0] = x;
                if (x > bx[1]) bx[1] = x;
                if (y < bx[2]) bx[2] = y;
                if (y > bx[3]) bx[3] = y;
            }
        }
        where[i] = k;
        size_t len = (size_t)(ls.at[i + 1] - ls.at[i]);
        if (k < 0) head += len;
        else p->off[k + 1] += len;
    }
    for (int k = 0; k < p->n; k++) p->off[k + 1] += p->off[k];
    p->head = malloc(head + 1);
    p->text = malloc(p->off[p->n] + 1);
    if (!p->head || !p->text) goto oom;
    size_t *fill = calloc((size_t)p->n + 1, sizeof *fill);
    if (!fill) goto oom;
    for (size_t i = 0; i < ls.n; i++) {
        size_t len = (size_t)(ls.at[i + 1] - ls.at[i]);
        int k = where[i];
        if (k < 0) memcpy(p->head + p->head_len, ls.at[i], len), p->head_len += len;
        else memcpy(p->text + p->off[k] + fill[k], ls.at[i], len), fill[k] += len;
    }
    p->head[p->head_len] = 0;
    free(fill);
    goto done;
oom:
    st = loom_error_set(err, LOOM_ERR_NOMEM, "html: out of memory");
    pieces_free(p);
    memset(p, 0, sizeof *p);
done:
    free(ls.at), free(map), free(where), free(keep), free(chunk_of);
    return st;
}

/* n bytes gzip-compressed, as base64, in a <script type="text/plain"> element */
static loom_status script_gzip(FILE *f, const char *id, const char *s, size_t n, loom_error *err)
{
    z_stream z = {0};
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return loom_error_set(err, LOOM_ERR_NOMEM, "html: zlib: %s", z.msg ? z.msg : "cannot start");
    uLong cap = deflateBound(&z, (uLong)n);
    unsigned char *out = malloc(cap);
    if (!out) return deflateEnd(&z), loom_error_set(err, LOOM_ERR_NOMEM, "html: out of memory");
    z.next_in = (Bytef *)s, z.avail_in = (uInt)n, z.next_out = out, z.avail_out = (uInt)cap;
    int r = deflate(&z, Z_FINISH);
    size_t len = z.total_out;
    deflateEnd(&z);
    if (r != Z_STREAM_END) return free(out), loom_error_set(err, LOOM_ERR_STATE, "html: zlib could not compress a step");
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    fprintf(f, "<script type=\"text/plain\" id=\"%s\">", id);
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)out[i] << 16 | (i + 1 < len ? (uint32_t)out[i + 1] << 8 : 0) | (i + 2 < len ? out[i + 2] : 0);
        char q[4] = {b64[v >> 18], b64[v >> 12 & 63], i + 1 < len ? b64[v >> 6 & 63] : '=', i + 2 < len ? b64[v & 63] : '='};
        fwrite(q, 1, 4, f);
    }
    fputs("</script>\n", f);
    free(out);
    return LOOM_OK;
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
    /* the cell view and the op view with every step (the page draws what is on screen), and the
     * op view as the command elides it: the steps the page parses at once */
    char *text[3] = {NULL, NULL, NULL};
    size_t len;
    loom_status st = LOOM_OK;
    for (int k = 0; k < 3 && !st; k++) {
        v.view = k ? LOOM_DOT_OPS : LOOM_DOT_CELLS;
        v.steps_shown = k == 2 ? o->steps_shown : 0;
        if (k < 2 || o->steps_shown > 0) st = loom_dot_string(g, &v, &text[k], &len, err);
    }
    op_pieces ops = {0};
    if (!st && text[2]) st = op_split(text[1], text[2], &ops, err);
    if (!st) {
        fwrite(loom_page_html, 1, (size_t)(views - loom_page_html), f);
        script_text(f, "view_cell", text[0], strlen(text[0])); /* text, not script: the browser reads it without compiling it */
        if (ops.head) script_text(f, "view_op", ops.head, ops.head_len);
        else script_text(f, "view_op", text[1], strlen(text[1]));
        for (int k = 0; k < ops.n && !st; k++) {
            char id[32];
            if (ops.off[k] == ops.off[k + 1]) continue; /* a step not drawn (outside first_step .. last_step) */
            snprintf(id, sizeof id, "op_t%d", ops.step[k]);
            st = script_gzip(f, id, ops.text + ops.off[k], ops.off[k + 1] - ops.off[k], err);
        }
    }
    if (!st) {
        const char *after = views + strlen("<!--LOOM_VIEWS-->");
        fwrite(after, 1, (size_t)(mark - after), f);
        fputs("{\"title\": ", f);
        json_str(f, o->title ? o->title : "");
        fprintf(f, ", \"backward\": %s, \"part\": \"%s\", \"closed\": [", v.part == LOOM_DOT_BOTH ? "true" : "false",
                o->part == LOOM_DOT_BACKWARD ? "bwd" : v.part == LOOM_DOT_BOTH ? "both" : "fwd");
        for (int k = 0, first = 1; k < ops.n; k++) {
            const double *b = &ops.box[4 * k];
            if (ops.off[k] == ops.off[k + 1]) continue;
            fprintf(f, "%s[%d, %.1f, %.1f, %.1f, %.1f]", first ? "" : ", ", ops.step[k], b[0], b[1], b[2], b[3]);
            first = 0;
        }
        fputs("], \"equations\": ", f);
        equations_json(f, g);
        fputs(", \"attention\": ", f);
        if (o->attention && o->attention_rows > 0 && o->attention_cols > 0) attention_json(f, o);
        else fputs("null", f);
        fputc('}', f);
        fputs(mark + strlen("/*LOOM_DATA*/"), f);
        if (ferror(f)) st = loom_error_set(err, LOOM_ERR_IO, "html: write error");
    }
    pieces_free(&ops);
    free(text[0]), free(text[1]), free(text[2]);
    return st;
}
