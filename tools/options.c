/* The command's options: one table per command (tool_opt rows: name,
 * kind, range, choices, help), parsed and printed here; the model flags
 * that gradcheck, dot and train share are one such table. */
#include "tool.h"

#include "loom/loom.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* An integer in [lo, hi], written as one: digits only, with an optional
 * minus (strtol would also take " 3" and "+3"). */
static bool whole_in(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    bool digits = s && (isdigit((unsigned char)s[0]) || (s[0] == '-' && isdigit((unsigned char)s[1])));
    long v = digits ? strtol(s, &end, 10) : 0;
    if (!digits || errno || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

const char *const tool_precisions[] = {"f32", "bf16", NULL};

bool tool_int(const char *flag, const char *s, long lo, long hi, long *out)
{
    if (whole_in(s, lo, hi, out)) return true;
    fprintf(stderr, "loom: %s needs an integer in [%ld, %ld], got '%s'\n", flag, lo, hi, s ? s : "");
    return false;
}

bool tool_real(const char *cmd, const char *flag, const char *v, double lo, double hi, double *out)
{
    char *end = NULL;
    double x = v ? strtod(v, &end) : NAN;
    if (!v || !*v || *end || !(x >= lo && x <= hi)) {
        fprintf(stderr, "%s: %s needs a number in [%g, %g], got '%s'\n", cmd, flag, lo, hi, v ? v : "");
        return false;
    }
    *out = x;
    return true;
}

bool tool_text(const char *cmd, const char *flag, const char *v)
{
    int64_t bad = loom_utf8_check(v, strlen(v));
    if (bad >= 0)
        fprintf(stderr, "%s: %s is not valid UTF-8 text (byte %lld is 0x%02x)\n", cmd, flag, (long long)bad + 1,
                (unsigned char)v[bad]);
    return bad < 0;
}

bool tool_is_help(const char *arg) { return !strcmp(arg, "--help") || !strcmp(arg, "-h"); }

/* ---- options by table ---- */

int tool_opt_parse(const char *cmd, const tool_opt *t, int n, void *args, int argc, char **argv, int *i)
{
    const char *f = argv[*i];
    const tool_opt *o = NULL;
    for (int k = 0; k < n && !o; k++)
        if (!strcmp(f, t[k].name)) o = &t[k];
    if (!o) return 0;
    char *at = (char *)args + o->at;
    if (o->kind == OPT_FLAG) return *(bool *)at = true, 1;
    const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    if (!v) return fprintf(stderr, "%s: %s needs a value\n", cmd, f), -1;
    (*i)++;
    switch (o->kind) {
    case OPT_INT: return tool_int(f, v, (long)o->lo, (long)o->hi, (long *)at) ? 1 : -1;
    case OPT_AUTO:
        if (!strcmp(v, "auto")) return *(long *)at = -1, 1;
        if (whole_in(v, (long)o->lo, (long)o->hi, (long *)at)) return 1;
        fprintf(stderr, "%s: %s needs an integer in [%ld, %ld] or 'auto', got '%s'\n", cmd, f, (long)o->lo, (long)o->hi, v);
        return -1;
    case OPT_REAL: return tool_real(cmd, f, v, o->lo, o->hi, (double *)at) ? 1 : -1;
    case OPT_TEXT:
        if (!tool_text(cmd, f, v)) return -1;
        /* fall through */
    case OPT_PATH: *(const char **)at = v; return 1;
    case OPT_CELL: {
        loom_error e = {0};
        if ((*(const loom_cell_def **)at = loom_cell_find(v, &e))) return 1;
        char names[256];
        fprintf(stderr, "loom: --cell must be %s, a cell of the cells folder or a FILE.cell: %s\n",
                tool_cell_names(names, sizeof names), e.msg);
        return -1;
    }
    case OPT_CHOICE:
        for (int k = 0; o->choices[k]; k++)
            if (!strcmp(v, o->choices[k])) return *(int *)at = k, 1;
        fprintf(stderr, "%s: %s must be one of", cmd, f);
        for (int k = 0; o->choices[k]; k++) fprintf(stderr, " %s", o->choices[k]);
        fprintf(stderr, ", got '%s'\n", v);
        return -1;
    default: return -1;
    }
}

int tool_opts(const char *cmd, const tool_opt *t, int n, void *args, tool_model *m, int argc, char **argv, bool *help)
{
    return tool_opts_pos(cmd, t, n, args, m, argc, argv, help, NULL, NULL);
}

int tool_opts_pos(const char *cmd, const tool_opt *t, int n, void *args, tool_model *m, int argc, char **argv, bool *help,
                  const char **pos, int *n_pos)
{
    for (int i = 0; i < argc; i++) {
        if (tool_is_help(argv[i])) return *help = true, 0;
        if (pos && (argv[i][0] != '-' || !argv[i][1])) { /* an argument, not an option ("-" is one) */
            pos[(*n_pos)++] = argv[i];
            continue;
        }
        int r = m ? tool_model_flag(m, argc, argv, &i) : 0;
        if (!r) r = tool_opt_parse(cmd, t, n, args, argc, argv, &i);
        if (r < 0) return 2;
        if (!r) return fprintf(stderr, "%s: unknown option '%s' (see '%s --help')\n", cmd, argv[i], cmd), 2;
    }
    return 0;
}

void tool_opt_help(FILE *f, const tool_opt *t, int n)
{
    for (int k = 0; k < n; k++) {
        char head[64];
        snprintf(head, sizeof head, "%s%s%s", t[k].name, t[k].arg ? " " : "", t[k].arg ? t[k].arg : "");
        fprintf(f, "  %-22s", head);
        if (strlen(head) > 21) fprintf(f, "\n  %-22s", "");
        if (t[k].kind == OPT_CELL) {
            char names[256];
            fprintf(f, "%s,\n  %-22sa cell of the cells folder (mgu, indrnn, ln_lstm, ...) or a FILE.cell ", tool_cell_names(names, sizeof names), "");
        }
        for (const char *line = t[k].help; *line;) { /* the help's lines, each under the first */
            const char *end = strchr(line, '\n');
            int len = end ? (int)(end - line) : (int)strlen(line);
            fprintf(f, "%.*s\n", len, line);
            line += len + (end != NULL);
            if (*line) fprintf(f, "  %-22s", "");
        }
    }
}

#define M(field) offsetof(tool_model, field)
static const tool_opt model_opts[] = {
    {"--cell", OPT_CELL, M(cell), .arg = "C", .help = "(default lstm)"},
    {"--layers", OPT_INT, M(layers), 1, LOOM_RNN_MAX_LAYERS, .arg = "N", .help = "stacked layers (default 1)"},
    {"--bidirectional", OPT_FLAG, M(bidirectional), .help = "a reverse direction too"},
    {"--stacking", OPT_CHOICE, M(stacking), .choices = (const char *const[]){"plain", "residual", "highway", "dense", NULL},
     .arg = "S", .help = "how stacked layers join: plain (default), residual (x + f(x)),\nhighway (a gate between x and f(x)), dense (each reads all below)"},
    {"--seq-len", OPT_INT, M(steps), 1, TOOL_MAX_SEQ, .arg = "T", .help = "time steps (default 4)"},
    {"--batch", OPT_INT, M(batch), 1, TOOL_MAX_BATCH, .arg = "B", .help = "sequences (gradcheck 3, dot 2)"},
    {"--input", OPT_INT, M(input), 1, TOOL_MAX_WIDTH, .arg = "I", .help = "input features (gradcheck 5, dot 3)"},
    {"--hidden", OPT_INT, M(hidden), 1, TOOL_MAX_WIDTH, .arg = "H", .help = "hidden units (gradcheck 6, dot 4)"},
    {"--seed", OPT_INT, M(seed), 0, 1L << 30, .arg = "S", .help = "random seed (default 1)"},
};
#undef M

int tool_model_flag(tool_model *m, int argc, char **argv, int *a)
{
    return tool_opt_parse("loom", model_opts, (int)(sizeof model_opts / sizeof *model_opts), m, argc, argv, a);
}

void tool_model_help(FILE *f)
{
    fprintf(f, "model options (gradcheck and dot):\n");
    tool_opt_help(f, model_opts, (int)(sizeof model_opts / sizeof *model_opts));
}

void tool_help(const char *synopsis, const char *help, const tool_opt *opts, int n_opts, bool model_flags)
{
    printf("usage: loom %s\n\n%s", synopsis, help);
    if (opts) tool_opt_help(stdout, opts, n_opts);
    if (model_flags) {
        printf("\n");
        tool_model_help(stdout);
    }
}

