/* What the subcommands share: the example cell's registration, integer
 * flags, and the model flags of gradcheck and dot. */
#include "tool.h"
#include "loom/checkpoint.h"
#include "loom/model.h"

#include "mgu_cell.h"

#include <cjson/cJSON.h>
#include <time.h>

#include <ctype.h>
#include <signal.h>
#include <omp.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <math.h>

void tools_init(void) { loom_cell_register(&mgu_cell); }

/* The built-in corpus: installed with loom, or in the source tree it was
 * built from (set by meson). */
#ifndef LOOM_CORPUS
#define LOOM_CORPUS "/usr/local/share/loom/timemachine.txt"
#endif
#ifndef LOOM_CORPUS_SRC
#define LOOM_CORPUS_SRC "data/corpus/timemachine.txt"
#endif

const char *tool_corpus(void) { return access(LOOM_CORPUS_SRC, R_OK) == 0 ? LOOM_CORPUS_SRC : LOOM_CORPUS; }

bool tool_is_corpus(const char *path) { return !strcmp(path, LOOM_CORPUS_SRC) || !strcmp(path, LOOM_CORPUS); }

int tool_fail(const char *cmd, const char *what, const char *why)
{
    fprintf(stderr, "%s: %s%s%s\n", cmd, what, why && *why ? ": " : "", why ? why : "");
    return 2;
}

int tool_fail_st(const char *cmd, loom_status st, const char *what, const char *why)
{
    tool_fail(cmd, what, why);
    return tool_exit(st ? st : LOOM_ERR_ARG);
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
    case OPT_REAL: return tool_real(cmd, f, v, o->lo, o->hi, (double *)at) ? 1 : -1;
    case OPT_TEXT:
        if (!tool_text(cmd, f, v)) return -1;
        /* fall through */
    case OPT_PATH: *(const char **)at = v; return 1;
    case OPT_CELL:
        if ((*(const loom_cell_def **)at = loom_cell_by_name(v))) return 1;
        char names[256];
        fprintf(stderr, "loom: --cell must be %s, got '%s'\n", tool_cell_names(names, sizeof names), v);
        return -1;
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
            fprintf(f, "%s ", tool_cell_names(names, sizeof names));
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

bool tool_int(const char *flag, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    /* digits only, with an optional minus: strtol would also take " 3" and "+3" */
    bool digits = s && (isdigit((unsigned char)s[0]) || (s[0] == '-' && isdigit((unsigned char)s[1])));
    long v = digits ? strtol(s, &end, 10) : 0;
    if (!digits || errno || *end || v < lo || v > hi) {
        fprintf(stderr, "loom: %s needs an integer in [%ld, %ld], got '%s'\n", flag, lo, hi, s ? s : "");
        return false;
    }
    *out = v;
    return true;
}

const char *tool_cell_names(char *buf, size_t n)
{
    int k;
    const loom_cell_def *const *cells = loom_cells(&k);
    size_t at = 0;
    buf[0] = 0;
    for (int i = 0; i < k && at < n; i++)
        at += (size_t)snprintf(buf + at, n - at, "%s%s", i == 0 ? "" : i == k - 1 ? " or " : ", ", cells[i]->name);
    return buf;
}

#define M(field) offsetof(tool_model, field)
static const tool_opt model_opts[] = {
    {"--cell", OPT_CELL, M(cell), .arg = "C", .help = "(default lstm)"},
    {"--layers", OPT_INT, M(layers), 1, LOOM_RNN_MAX_LAYERS, .arg = "N", .help = "stacked layers (default 1)"},
    {"--bidirectional", OPT_FLAG, M(bidirectional), .help = "a reverse direction too"},
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

int tool_exit(loom_status st)
{
    return st == LOOM_OK ? 0 : st == LOOM_ERR_NOMEM || st == LOOM_ERR_IO ? 1 : 2;
}

bool tool_same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (!strcmp(a, b)) return true;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

bool tool_outputs_ok(const char *cmd, const tool_file *out, int n_out, const tool_file *in, int n_in)
{
    for (int i = 0; i < n_out; i++) {
        if (!out[i].path || !strcmp(out[i].path, "-")) continue;
        for (int j = 0; j < n_in + i; j++) {
            const tool_file *o = j < n_in ? &in[j] : &out[j - n_in];
            if (!o->path || !tool_same_file(out[i].path, o->path)) continue;
            fprintf(stderr, "%s: %s %s would replace %s %s%s\n", cmd, out[i].flag, out[i].path,
                    j < n_in ? "its input" : "the output", o->flag,
                    j < n_in ? " (an output never replaces an input)" : " (give each output a file of its own)");
            return false;
        }
    }
    return true;
}

int tool_open_outputs(const char *cmd, const char *save, const char *metrics, const char *columns, int64_t resumed,
                           loom_metrics **out)
{
    loom_error err = {0};
    *out = NULL;
    if (save && loom_checkpoint_writable(save, &err)) {
        fprintf(stderr, "%s: --save: %s\n", cmd, err.msg);
        return 1;
    }
    if (metrics && !(*out = loom_metrics_open(metrics, columns, resumed, &err))) {
        fprintf(stderr, "%s: --metrics: %s\n", cmd, err.msg);
        return tool_exit(err.status);
    }
    return 0;
}

int tool_flush_metrics(const char *cmd, loom_metrics **m)
{
    loom_error err = {0};
    if (!*m || !loom_metrics_flush(*m, &err)) return 0;
    loom_metrics_free(*m); /* said once; the run stops */
    *m = NULL;
    fprintf(stderr, "%s: %s\n", cmd, err.msg);
    return 1;
}

bool tool_finite_weights(const char *cmd, const char *path, const loom_store *s)
{
    int64_t count, first;
    int i = loom_store_non_finite(s, &count, &first);
    if (i >= 0)
        fprintf(stderr, "%s: %s: parameter '%s' holds %lld NaN or infinite values (the first at element %lld): these "
                        "weights come from a run that diverged\n", cmd, path, loom_store_name(s, i), (long long)count,
                (long long)first);
    return i < 0;
}

static volatile sig_atomic_t caught;

static void on_signal(int sig)
{
    if (!caught) caught = sig;
}

void tool_catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int tool_caught(void) { return caught; }

int tool_interrupted(const char *cmd, long step, long steps, const char *save, int saved)
{
    int sig = caught;
    fprintf(stderr, "\n%s: stopped by %s after step %ld of %ld", cmd, sig == SIGINT ? "SIGINT" : "SIGTERM", step, steps);
    if (save && !saved) fprintf(stderr, "; checkpoint %s: resume with\n  loom train --resume %s --steps %ld --save %s\n", save,
                                save, steps, save);
    else fprintf(stderr, "%s\n", save ? "; the checkpoint could not be written" : " (no --save: nothing to resume from)");
    return saved ? saved : 128 + sig;
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

bool tool_threads(long flag)
{
    long n = flag;
    const char *env = getenv("LOOM_NUM_THREADS");
    if (!n && env && *env && !tool_int("LOOM_NUM_THREADS", env, 1, 1024, &n)) return false;
    if (n) omp_set_num_threads((int)n);
    return true;
}

task_kind tool_checkpoint_kind(const char *path)
{
    loom_st *f = loom_st_new();
    loom_model_desc m = {.kind = LOOM_MODEL_LM};
    if (f && !loom_checkpoint_read(f, path) && loom_checkpoint_model(f, &m, NULL, NULL)) m.kind = LOOM_MODEL_LM;
    loom_st_free(f);
    return m.kind == LOOM_MODEL_SEQ2SEQ ? TASK_SEQ2SEQ : m.kind == LOOM_MODEL_LM ? TASK_LM : TASK_ADDING;
}

int64_t tool_checkpoint_step(const loom_st *ck)
{
    int64_t v;
    return loom_st_meta_int(ck, "loom.step", 0, TOOL_MAX_STEPS, &v) ? v : -1;
}

double tool_jnum(const struct cJSON *o, const char *k, double lo, double hi, bool *ok)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi)) {
        *ok = false;
        return lo;
    }
    return v->valuedouble;
}

double tool_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
