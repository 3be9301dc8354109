/* Training curves with Cairo (see loom/plot.h). */
#include "loom/plot.h"
#include "graph/error.h"
#include "io/atomic.h"
#include "data/read.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One curve: the rows of one file with the same values in the "by"
 * columns; the column drawn, and the dashed one. */
enum { MAX_BY = 8, MAX_WHERE = 8 };
typedef struct {
    int file;
    char val[MAX_BY][32]; /* its values of the by columns */
    char name[160];       /* the legend's */
    double *x, *y, *x2, *y2;
    int n, n2, cap, cap2;
} curve;

typedef struct {
    curve *c;
    int n, cap;
    const char *col, *dcol, *xcol; /* the columns drawn (the first file's names) */
} curves;

static bool push(double **x, double **y, int *n, int *cap, double a, double b)
{
    if (*n == *cap) {
        int c = *cap ? 2 * *cap : 256;
        double *nx = realloc(*x, (size_t)c * sizeof *nx);
        if (nx) *x = nx;
        double *ny = nx ? realloc(*y, (size_t)c * sizeof *ny) : NULL;
        if (ny) *y = ny;
        if (!nx || !ny) return false;
        *cap = c;
    }
    (*x)[*n] = a, (*y)[(*n)++] = b;
    return true;
}

/* Field k of line[0..n) as text (at most size − 1 bytes; "" past the line's end). */
static void field_text(const char *line, size_t n, int k, char *buf, size_t size)
{
    size_t a = 0;
    for (; k > 0 && a <= n; k--) {
        while (a < n && line[a] != ',') a++;
        a++;
    }
    buf[0] = 0;
    if (a > n) return;
    size_t b = a;
    while (b < n && line[b] != ',') b++;
    size_t len = b - a < size ? b - a : size - 1;
    memcpy(buf, line + a, len);
    buf[len] = 0;
}

/* The index of `name` among the comma-separated fields of line[0..n), or -1. */
static int column_of(const char *line, size_t n, const char *name)
{
    size_t len = strlen(name);
    int k = 0;
    for (size_t a = 0; a <= n; k++) {
        size_t b = a;
        while (b < n && line[b] != ',') b++;
        if (b - a == len && !memcmp(line + a, name, len)) return k;
        a = b + 1;
    }
    return -1;
}

/* Field k of line[0..n): *v its number, or NAN for an empty field or one
 * past the line's end; false for text that is not a number ("abc", "1x"). */
static bool field(const char *line, size_t n, int k, double *v)
{
    char num[64], *end;
    size_t a = 0;
    for (; k > 0 && a <= n; k--) {
        while (a < n && line[a] != ',') a++;
        a++;
    }
    *v = NAN;
    if (a > n) return true;
    size_t b = a;
    while (b < n && line[b] != ',') b++;
    if (b == a) return true;
    if (b - a >= sizeof num) return false;
    memcpy(num, line + a, b - a);
    num[b - a] = 0;
    *v = strtod(num, &end);
    return end != num && !*end;
}

/* "a=b,c=d" into column names and values (pointers into buf). */
static int parse_where(const char *where, char *buf, size_t size, const char **col, const char **val, loom_error *err)
{
    int n = 0;
    if (!where || !*where) return 0;
    snprintf(buf, size, "%s", where);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(t, '=');
        if (!eq || eq == t || n == MAX_WHERE)
            return loom_error_set(err, LOOM_ERR_ARG, "plot: where: '%s' is not COLUMN=VALUE (at most %d, comma-separated)",
                                  t, MAX_WHERE), -1;
        *eq = 0;
        col[n] = t, val[n++] = eq + 1;
    }
    return n;
}

/* Reads one file into curves (a header line naming the columns, then a row
 * per line; empty cells, nan and inf are not drawn; any other text where
 * a number belongs is an error naming its line). */
static loom_status read_curves(int file, const char *path, const loom_plot_opts *o, curves *cs, loom_error *err)
{
    loom_error e = {0};
    size_t len;
    char *text = loom_read_all(path, &len, &e);
    if (!text) return loom_error_set(err, e.status, "plot: %s", e.msg);
    size_t hl = 0;
    while (hl < len && text[hl] != '\n') hl++;
    size_t hn = hl && text[hl - 1] == '\r' ? hl - 1 : hl;
    if (!hn) {
        free(text);
        return loom_error_set(err, LOOM_ERR_FORMAT, "plot: %s: %s", path, len ? "the first line names no columns" : "empty");
    }
    const char *xname = o->x ? o->x : column_of(text, hn, "step") >= 0 || column_of(text, hn, "t") < 0 ? "step" : "t";
    static const char *const defaults[] = {"perplexity", "loss", "norm64", "norm"};
    const char *want = o->column;
    for (int k = 0; !want && k < 4; k++)
        if (column_of(text, hn, defaults[k]) >= 0) want = defaults[k];
    if (!want) want = "loss";
    int xs = column_of(text, hn, xname), ys = column_of(text, hn, want);
    const char *dash = o->dashed ? o->dashed : !strcmp(want, "perplexity") ? "valid_perplexity" : NULL;
    int ds = dash ? column_of(text, hn, dash) : -1;
    if (xs < 0 || ys < 0) {
        free(text);
        return loom_error_set(err, LOOM_ERR_FORMAT, "plot: %s: needs the columns %s and %s", path, xname, want);
    }
    if (!cs->col) cs->col = want, cs->xcol = xname;
    if (ds >= 0) cs->dcol = dash;
    /* the by columns this file has (other than x), and the where conditions */
    int by[MAX_BY], nby = 0;
    char bybuf[256], wbuf[256];
    snprintf(bybuf, sizeof bybuf, "%s", o->by ? o->by : "step,layer,direction,state,gate");
    for (char *save = NULL, *t = strtok_r(bybuf, ",", &save); t && nby < MAX_BY; t = strtok_r(NULL, ",", &save)) {
        int k = column_of(text, hn, t);
        if (k >= 0 && k != xs && k != ys && k != ds) by[nby++] = k;
    }
    const char *wcol[MAX_WHERE], *wval[MAX_WHERE];
    int wk[MAX_WHERE], nw = parse_where(o->where, wbuf, sizeof wbuf, wcol, wval, err);
    if (nw < 0) return free(text), LOOM_ERR_ARG;
    for (int i = 0; i < nw; i++)
        if ((wk[i] = column_of(text, hn, wcol[i])) < 0) {
            free(text);
            return loom_error_set(err, LOOM_ERR_FORMAT, "plot: %s: no column '%s' (where %s=%s)", path, wcol[i], wcol[i], wval[i]);
        }
    int first = cs->n;
    loom_status st = LOOM_OK;
    long line_no = 1;
    for (size_t a = hl + 1; !st && a < len; line_no++) {
        size_t b = a;
        while (b < len && text[b] != '\n') b++;
        size_t n = b > a && text[b - 1] == '\r' ? b - 1 - a : b - a;
        const char *line = text + a;
        a = b + 1;
        if (!n) continue;
        char v[MAX_BY][32];
        bool keep = true;
        for (int i = 0; keep && i < nw; i++) {
            char w[64];
            field_text(line, n, wk[i], w, sizeof w);
            keep = !strcmp(w, wval[i]);
        }
        if (!keep) continue;
        double x, y, z = NAN;
        int bad = !field(line, n, xs, &x) ? xs : !field(line, n, ys, &y) ? ys : ds >= 0 && !field(line, n, ds, &z) ? ds : -1;
        if (bad >= 0) {
            st = loom_error_set(err, LOOM_ERR_FORMAT, "plot: %s: line %ld: field %d (%s) is not a number", path, line_no + 1,
                                bad + 1, bad == xs ? xname : bad == ys ? want : dash);
            break;
        }
        for (int i = 0; i < nby; i++) field_text(line, n, by[i], v[i], sizeof v[i]);
        int c = first;
        for (; c < cs->n; c++) {
            int i = 0;
            while (i < nby && !strcmp(cs->c[c].val[i], v[i])) i++;
            if (i == nby) break;
        }
        if (c == cs->n) { /* a new curve */
            if (cs->n == cs->cap) {
                int cap = cs->cap ? 2 * cs->cap : 8;
                curve *nc = cap <= 4096 ? realloc(cs->c, (size_t)cap * sizeof *nc) : NULL;
                if (!nc) {
                    st = loom_error_set(err, cap > 4096 ? LOOM_ERR_FORMAT : LOOM_ERR_NOMEM,
                                        cap > 4096 ? "plot: more than 4096 curves" : "plot: out of memory");
                    break;
                }
                cs->c = nc, cs->cap = cap;
            }
            cs->c[c] = (curve){.file = file};
            memcpy(cs->c[c].val, v, sizeof v);
            cs->n++;
        }
        curve *s = &cs->c[c];
        if (isfinite(x) && isfinite(y) && (!o->log_y || y > 0) && !push(&s->x, &s->y, &s->n, &s->cap, x, y))
            st = loom_error_set(err, LOOM_ERR_NOMEM, "plot: out of memory");
        if (!st && isfinite(x) && isfinite(z) && (!o->log_y || z > 0) && !push(&s->x2, &s->y2, &s->n2, &s->cap2, x, z))
            st = loom_error_set(err, LOOM_ERR_NOMEM, "plot: out of memory");
    }
    /* names: the file's label, then the by values that differ between its curves */
    const char *label = o->labels && o->labels[file] ? o->labels[file] : path;
    const char *base = strrchr(label, '/');
    if (base && !(o->labels && o->labels[file])) label = base + 1;
    bool any = false;
    for (int c = first; !st && c < cs->n; c++) {
        curve *s = &cs->c[c];
        any |= s->n > 0;
        size_t at = (size_t)snprintf(s->name, sizeof s->name, "%s", label);
        for (int i = 0; i < nby; i++) {
            bool differs = false;
            for (int d = first; d < cs->n && !differs; d++) differs = strcmp(cs->c[d].val[i], s->val[i]) != 0;
            if (!differs || at >= sizeof s->name) continue;
            char head[32];
            field_text(text, hn, by[i], head, sizeof head);
            bool word = !strcmp(head, "step") || !strcmp(head, "layer") || !strcmp(head, "t");
            at += (size_t)snprintf(s->name + at, sizeof s->name - at, " %s%s%s", word ? head : "", word ? " " : "", s->val[i]);
        }
    }
    free(text);
    if (!st && !any) st = loom_error_set(err, LOOM_ERR_FORMAT, "plot: %s: no finite values of %s%s", path, want, nw ? " where asked" : "");
    return st;
}

#ifdef LOOM_HAVE_CAIRO
#include <cairo-svg.h>
#include <cairo.h>

bool loom_plot_available(void) { return true; }

/* Cairo's output stream: the file, and the first write error's errno. */
typedef struct {
    FILE *f;
    int err;
} sink;

static cairo_status_t to_file(void *closure, const unsigned char *data, unsigned int len)
{
    sink *k = closure;
    if (k->err) return CAIRO_STATUS_WRITE_ERROR;
    if (fwrite(data, 1, len, k->f) == len) return CAIRO_STATUS_SUCCESS;
    k->err = errno ? errno : EIO;
    return CAIRO_STATUS_WRITE_ERROR;
}

/* Tick step: 1, 2 or 5 × a power of ten, giving about `want` ticks. */
static double nice_step(double range, int want)
{
    double raw = range / want, p = pow(10, floor(log10(raw))), r = raw / p;
    return (r < 1.5 ? 1 : r < 3.5 ? 2 : r < 7.5 ? 5 : 10) * p;
}

static const double palette[][3] = {{0.12, 0.47, 0.71}, {1.00, 0.50, 0.05}, {0.17, 0.63, 0.17}, {0.84, 0.15, 0.16},
                                    {0.58, 0.40, 0.74}, {0.55, 0.34, 0.29}, {0.89, 0.47, 0.76}, {0.50, 0.50, 0.50}};

static void text(cairo_t *cr, double x, double y, const char *s, double align)
{
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    cairo_move_to(cr, x - align * e.width, y);
    cairo_show_text(cr, s);
}

static void draw(cairo_t *cr, const loom_plot_opts *opts, const curves *cs, double W, double H)
{
    const curve *s = cs->c;
    const char *col = cs->col, *dcol = cs->dcol;
    double L = 70, R = 190, T = 40, B = 50; /* margins: the legend on the right */
    double xmin = 0, xmax = 1, ymin = INFINITY, ymax = -INFINITY, xpos = INFINITY;
    for (int k = 0; k < cs->n; k++) {
        for (int i = 0; i < s[k].n; i++) {
            xmax = fmax(xmax, s[k].x[i]), ymin = fmin(ymin, s[k].y[i]), ymax = fmax(ymax, s[k].y[i]);
            if (s[k].x[i] > 0) xpos = fmin(xpos, s[k].x[i]);
        }
        for (int i = 0; i < s[k].n2; i++) ymin = fmin(ymin, s[k].y2[i]), ymax = fmax(ymax, s[k].y2[i]);
    }
    if (opts->log_x) { /* decades: the positive x only */
        xmin = isfinite(xpos) ? log10(xpos) : 0, xmax = log10(xmax);
        if (!(xmax > xmin)) xmin -= 0.5, xmax += 0.5;
    }
    /* values spanning more than a factor of 30 read better on a log scale */
    loom_plot_opts view = *opts;
    const loom_plot_opts *o = &view;
    if (ymin > 0 && ymax / ymin > 30 && !o->linear_y) view.log_y = true;
    if (o->linear_y) view.log_y = false;
    bool nonneg = ymin >= 0;
    if (o->log_y) ymin = log10(ymin), ymax = log10(ymax);
    /* a range too narrow to tell its ends apart in print (1e16 and 1e16 + 2; denormals) is widened */
    double mag = fmax(fabs(ymin), fabs(ymax));
    if (!(ymax - ymin > 1e-6 * mag) || !isnormal(ymax - ymin)) {
        double mid = ymin / 2 + ymax / 2, half = isnormal(mag) && mag > 1e-300 ? 0.01 * mag : 1;
        ymin = mid - half, ymax = mid + half;
    }
    double pad = (ymax - ymin) * 0.05;
    ymin -= pad, ymax += pad;
    if (nonneg && !o->log_y && ymin < 0) ymin = 0;
    double pw = W - L - R, ph = H - T - B;
#define PX(v) (L + ((o->log_x ? log10(v) : (v)) - xmin) / (xmax - xmin) * pw)
#define PY(v) (T + ph - ((o->log_y ? log10(v) : (v)) - ymin) / (ymax - ymin) * ph)
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, 11);
    /* grid and ticks */
    cairo_set_line_width(cr, 0.6);
    double xs = o->log_x ? fmax(1, ceil((xmax - xmin) / 10)) : nice_step(xmax - xmin, 8); /* log x: every decade or so */
    char buf[64];
    /* at most 50 ticks an axis, counted: a step too small for the values' floats must not stall the loop */
    for (int i = 0; i < 50 && xs > 0; i++) {
        double v = (ceil(xmin / xs) + i) * xs;
        if (v > xmax + xs * 1e-6) break;
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        double px = L + (v - xmin) / (xmax - xmin) * pw;
        cairo_move_to(cr, px, T), cairo_line_to(cr, px, T + ph), cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        if (o->log_x) snprintf(buf, sizeof buf, v >= 0 && v <= 4 ? "%.0f" : "1e%.0f", v >= 0 && v <= 4 ? pow(10, v) : v);
        else snprintf(buf, sizeof buf, "%g", v);
        text(cr, px, T + ph + 16, buf, 0.5);
    }
    double ys = nice_step(ymax - ymin, 6);
    for (int i = 0; i < 50 && ys > 0; i++) {
        double v = (ceil(ymin / ys) + i) * ys;
        if (v > ymax + ys * 1e-6) break;
        double y = T + ph - (v - ymin) / (ymax - ymin) * ph;
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_move_to(cr, L, y), cairo_line_to(cr, L + pw, y), cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        /* enough digits that neighbouring ticks read differently */
        int digits = o->log_y ? 3 : (int)fmin(17, fmax(3, ceil(log10(fmax(fabs(ymin), fabs(ymax)) / ys)) + 1));
        if (o->log_y && fabs(v - round(v)) < 1e-9) snprintf(buf, sizeof buf, "1e%d", (int)round(v)); /* a decade */
        else snprintf(buf, sizeof buf, "%.*g", digits, o->log_y ? pow(10, v) : fabs(v) < ys * 1e-6 ? 0.0 : v);
        text(cr, L - 6, y + 4, buf, 1);
    }
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, L, T, pw, ph), cairo_stroke(cr);
    text(cr, L + pw / 2, H - 12, o->xlabel ? o->xlabel : cs->xcol, 0.5);
    if (o->ylabel) snprintf(buf, sizeof buf, "%s", o->ylabel);
    else snprintf(buf, sizeof buf, "%s%s%s%s", col ? col : "", dcol ? " (solid), " : "", dcol ? dcol : "", dcol ? " (dashed)" : "");
    cairo_save(cr);
    cairo_translate(cr, 16, T + ph / 2), cairo_rotate(cr, -M_PI / 2);
    text(cr, 0, 0, buf, 0.5);
    cairo_restore(cr);
    if (o->title) {
        cairo_set_font_size(cr, 14);
        text(cr, L + pw / 2, 24, o->title, 0.5);
        cairo_set_font_size(cr, 11);
    }
    /* curves, clipped to the plot area, and the legend (as many rows as fit) */
    int rows = (int)((ph - 12) / 18);
    for (int k = 0; k < cs->n; k++) {
        const double *c = palette[k % 8];
        cairo_save(cr);
        cairo_rectangle(cr, L, T, pw, ph), cairo_clip(cr);
        cairo_set_source_rgb(cr, c[0], c[1], c[2]);
        cairo_set_line_width(cr, 1.6);
        bool first = true;
        for (int i = 0; i < s[k].n; i++) { /* a log axis skips what it cannot place */
            if ((o->log_x && !(s[k].x[i] > 0)) || (o->log_y && !(s[k].y[i] > 0))) continue;
            (first ? cairo_move_to : cairo_line_to)(cr, PX(s[k].x[i]), PY(s[k].y[i]));
            first = false;
        }
        cairo_stroke(cr);
        double dash[2] = {5, 3};
        cairo_set_dash(cr, dash, 2, 0);
        for (int i = 0; i < s[k].n2; i++) (i ? cairo_line_to : cairo_move_to)(cr, PX(s[k].x2[i]), PY(s[k].y2[i]));
        cairo_stroke(cr);
        cairo_restore(cr);
        if (k > rows || (k == rows && cs->n > rows + 1)) continue;
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        if (k == rows) { /* the last row says how many more */
            snprintf(buf, sizeof buf, "… %d more", cs->n - rows);
            text(cr, L + pw + 42, T + 16 + 18 * k, buf, 0);
            continue;
        }
        cairo_set_source_rgb(cr, c[0], c[1], c[2]);
        cairo_set_line_width(cr, 2);
        cairo_move_to(cr, L + pw + 12, T + 12 + 18 * k), cairo_line_to(cr, L + pw + 36, T + 12 + 18 * k), cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        text(cr, L + pw + 42, T + 16 + 18 * k, s[k].name, 0);
    }
#undef PX
#undef PY
}

/* Draws into an SVG or PNG surface of W × H and writes it atomically. */
static loom_status render(loom_error *err, const char *path, bool svg, double W, double H, void (*paint)(cairo_t *, const void *, double, double),
                          const void *ctx)
{
    loom_error e = {0};
    loom_atomic out = {0};
    if (loom_atomic_open(&out, path, &e)) return loom_error_set(err, e.status, "%s", e.msg);
    sink k = {out.f, 0};
    cairo_surface_t *surf = svg ? cairo_svg_surface_create_for_stream(to_file, &k, W, H)
                                : cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)W, (int)H);
    cairo_t *cr = cairo_create(surf);
    paint(cr, ctx, W, H);
    cairo_destroy(cr);
    if (!svg) cairo_surface_write_to_png_stream(surf, to_file, &k);
    cairo_surface_finish(surf);
    loom_status st = LOOM_OK;
    if (k.err) st = loom_error_set(err, LOOM_ERR_IO, "plot: %s: write failed: %s", path, strerror(k.err));
    else if (cairo_surface_status(surf) != CAIRO_STATUS_SUCCESS)
        st = loom_error_set(err, LOOM_ERR_IO, "plot: %s: %s", path, cairo_status_to_string(cairo_surface_status(surf)));
    cairo_surface_destroy(surf);
    if (st) loom_atomic_abort(&out);
    else if (loom_atomic_commit(&out, &e)) st = loom_error_set(err, e.status, "%s", e.msg);
    return st;
}

typedef struct {
    const loom_plot_opts *o;
    const curves *cs;
} plot_ctx;

static void draw_plot(cairo_t *cr, const void *ctx, double W, double H)
{
    const plot_ctx *c = ctx;
    draw(cr, c->o, c->cs, W, H);
}

/* The format of a path by its extension: 1 SVG, 0 PNG, −1 neither (a message recorded). */
static int format_of(const char *path, loom_error *err)
{
    const char *ext = strrchr(path, '.');
    if (ext && !strcmp(ext, ".svg")) return 1;
    if (ext && !strcmp(ext, ".png")) return 0;
    loom_error_set(err, LOOM_ERR_ARG, "plot: cannot tell the format of '%s': use .svg or .png", path);
    return -1;
}

loom_status loom_plot(const loom_plot_opts *o, const char *path, loom_error *err)
{
    if (!o || o->n < 1 || !o->files || !path) return loom_error_set(err, LOOM_ERR_ARG, "plot: no metrics files or no output");
    int svg = format_of(path, err);
    if (svg < 0) return LOOM_ERR_ARG;
    curves cs = {0};
    loom_status st = LOOM_OK;
    for (int k = 0; !st && k < o->n; k++) st = read_curves(k, o->files[k], o, &cs, err);
    if (!st) {
        plot_ctx c = {o, &cs};
        st = render(err, path, svg, 900, 520, draw_plot, &c);
    }
    for (int k = 0; k < cs.n; k++) free(cs.c[k].x), free(cs.c[k].y), free(cs.c[k].x2), free(cs.c[k].y2);
    free(cs.c);
    return st;
}

loom_status loom_plot_series(const loom_series *series, int n, const loom_plot_opts *opts, const char *path, loom_error *err)
{
    static const loom_plot_opts defaults;
    const loom_plot_opts *o = opts ? opts : &defaults;
    if (!series || n < 1 || !path) return loom_error_set(err, LOOM_ERR_ARG, "plot: no curves or no output");
    int svg = format_of(path, err);
    if (svg < 0) return LOOM_ERR_ARG;
    curves cs = {.c = calloc((size_t)n, sizeof *cs.c), .n = n, .col = o->column, .xcol = o->x ? o->x : "x"};
    loom_status st = cs.c ? LOOM_OK : loom_error_set(err, LOOM_ERR_NOMEM, "plot: out of memory");
    for (int k = 0; !st && k < n; k++) {
        curve *c = &cs.c[k];
        snprintf(c->name, sizeof c->name, "%s", series[k].name ? series[k].name : "");
        for (int64_t i = 0; !st && i < series[k].n; i++)
            if (isfinite(series[k].x[i]) && isfinite(series[k].y[i]) && !push(&c->x, &c->y, &c->n, &c->cap, series[k].x[i], series[k].y[i]))
                st = loom_error_set(err, LOOM_ERR_NOMEM, "plot: out of memory");
    }
    if (!st) {
        plot_ctx c = {o, &cs};
        st = render(err, path, svg, 900, 520, draw_plot, &c);
    }
    for (int k = 0; cs.c && k < n; k++) free(cs.c[k].x), free(cs.c[k].y);
    free(cs.c);
    return st;
}

/* ---- heat maps ---- */

typedef struct {
    const loom_heatmap *h;
    double cell, left, top; /* a cell's side; where the matrix starts */
} heat_ctx;

static void draw_heatmap(cairo_t *cr, const void *ctx, double W, double H)
{
    const heat_ctx *c = ctx;
    const loom_heatmap *h = c->h;
    double cs = c->cell, L = c->left, T = c->top;
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, 12);
    float mx = 0;
    for (int i = 0; i < h->rows * h->cols; i++) mx = isfinite(h->w[i]) && h->w[i] > mx ? h->w[i] : mx;
    for (int i = 0; i < h->rows; i++)
        for (int j = 0; j < h->cols; j++) {
            double v = mx > 0 && isfinite(h->w[i * h->cols + j]) ? h->w[i * h->cols + j] / mx : 0;
            /* white (0) to dark blue (the largest weight) */
            cairo_set_source_rgb(cr, 1 - 0.9 * v, 1 - 0.75 * v, 1 - 0.4 * v);
            cairo_rectangle(cr, L + j * cs, T + i * cs, cs, cs);
            cairo_fill(cr);
        }
    cairo_set_source_rgb(cr, 0.6, 0.6, 0.6);
    cairo_set_line_width(cr, 0.5);
    cairo_rectangle(cr, L, T, h->cols * cs, h->rows * cs);
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    for (int i = 0; i < h->rows; i++) text(cr, L - 6, T + (i + 0.5) * cs + 4, h->row_labels[i], 1);
    for (int j = 0; j < h->cols; j++) { /* column labels turned upwards */
        cairo_save(cr);
        cairo_move_to(cr, L + (j + 0.5) * cs + 4, T - 6);
        cairo_rotate(cr, -M_PI / 2);
        cairo_show_text(cr, h->col_labels[j]);
        cairo_restore(cr);
    }
    if (h->title) {
        cairo_set_font_size(cr, 13);
        text(cr, W / 2, H - 12, h->title, 0.5);
    }
}

loom_status loom_plot_heatmap(const loom_heatmap *h, const char *path, loom_error *err)
{
    if (!h || !h->w || h->rows < 1 || h->cols < 1 || !h->row_labels || !h->col_labels || !path)
        return loom_error_set(err, LOOM_ERR_ARG, "plot: an empty heat map or no output");
    int svg = format_of(path, err);
    if (svg < 0) return LOOM_ERR_ARG;
    /* room for the longest labels: about 7 px a character */
    size_t lr = 0, lc = 0;
    for (int i = 0; i < h->rows; i++) lr = strlen(h->row_labels[i]) > lr ? strlen(h->row_labels[i]) : lr;
    for (int j = 0; j < h->cols; j++) lc = strlen(h->col_labels[j]) > lc ? strlen(h->col_labels[j]) : lc;
    double cell = h->rows > 40 || h->cols > 40 ? 12 : 24;
    double W = 20 + 7.0 * (double)lr + 12 + h->cols * cell + 20, H = 60 + 7.0 * (double)lc + h->rows * cell + 40;
    heat_ctx c = {h, cell, 20 + 7.0 * (double)lr + 12, 60 + 7.0 * (double)lc};
    return render(err, path, svg, W, H, draw_heatmap, &c);
}
/* ---- labelled points ---- */

static void draw_points(cairo_t *cr, const void *ctx, double W, double H)
{
    const loom_points *p = ctx;
    double M = 40, T = p->title ? 44 : 20, xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (int i = 0; i < p->n; i++) {
        xmin = fmin(xmin, p->xy[2 * i]), xmax = fmax(xmax, p->xy[2 * i]);
        ymin = fmin(ymin, p->xy[2 * i + 1]), ymax = fmax(ymax, p->xy[2 * i + 1]);
    }
    double sx = xmax > xmin ? (W - 2 * M - 60) / (xmax - xmin) : 1, sy = ymax > ymin ? (H - T - M) / (ymax - ymin) : 1;
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, 11);
    cairo_set_source_rgb(cr, 0.8, 0.8, 0.8);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, M / 2, T - 10, W - M, H - T - M / 2 + 10);
    cairo_stroke(cr);
    for (int i = 0; i < p->n; i++) {
        double x = M + (p->xy[2 * i] - xmin) * sx, y = H - M + 10 - (p->xy[2 * i + 1] - ymin) * sy;
        cairo_set_source_rgb(cr, palette[0][0], palette[0][1], palette[0][2]);
        cairo_new_path(cr); /* no line from the last label's end to this dot */
        cairo_arc(cr, x, y, 2.5, 0, 2 * M_PI);
        cairo_fill(cr);
        if (p->labels && p->labels[i]) {
            cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
            cairo_move_to(cr, x + 4, y + 4);
            cairo_show_text(cr, p->labels[i]);
        }
    }
    if (p->title) {
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_set_font_size(cr, 14);
        text(cr, W / 2, 24, p->title, 0.5);
    }
}

loom_status loom_plot_points(const loom_points *p, const char *path, loom_error *err)
{
    if (!p || !p->xy || p->n < 1 || !path) return loom_error_set(err, LOOM_ERR_ARG, "plot: no points or no output");
    for (int i = 0; i < 2 * p->n; i++)
        if (!isfinite(p->xy[i])) return loom_error_set(err, LOOM_ERR_VALUE, "plot: point %d is not finite", i / 2 + 1);
    int svg = format_of(path, err);
    if (svg < 0) return LOOM_ERR_ARG;
    double side = p->n > 300 ? 1400 : 1000;
    return render(err, path, svg, side, side * 0.75, draw_points, p);
}
#else
bool loom_plot_available(void) { return false; }

loom_status loom_plot(const loom_plot_opts *o, const char *path, loom_error *err)
{
    (void)o, (void)path, (void)read_curves;
    return loom_error_set(err, LOOM_ERR_STATE, "plot: loom was built without Cairo (libcairo2-dev)");
}

loom_status loom_plot_series(const loom_series *series, int n, const loom_plot_opts *o, const char *path, loom_error *err)
{
    (void)series, (void)n, (void)o, (void)path;
    return loom_error_set(err, LOOM_ERR_STATE, "plot: loom was built without Cairo");
}

loom_status loom_plot_heatmap(const loom_heatmap *h, const char *path, loom_error *err)
{
    (void)h, (void)path;
    return loom_error_set(err, LOOM_ERR_STATE, "plot: loom was built without Cairo (libcairo2-dev)");
}

loom_status loom_plot_points(const loom_points *p, const char *path, loom_error *err)
{
    (void)p, (void)path;
    return loom_error_set(err, LOOM_ERR_STATE, "plot: loom was built without Cairo (libcairo2-dev)");
}
#endif
