/* `loom stats`: a text's n-gram statistics (d2l 8.3) — the most frequent
 * unigrams, bigrams and trigrams, Zipf's law fitted and drawn on a log–log
 * plot, and the Laplace-smoothed n-gram models' perplexity on the text's
 * last tenth: the baseline a recurrent language model must beat. */
#include "tool.h"

#include "loom/loom.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

const char stats_help[] = "a text's n-gram statistics: the most frequent unigrams, bigrams, trigrams; Zipf's law\n"
                          "(frequency against rank, fitted and plotted log–log); the Laplace-smoothed n-gram\n"
                          "models' perplexity on its last tenth, counted on the rest\n";

typedef struct {
    const char *data, *plot;
    int tokens;
    bool letters_only;
    long order, top;
    double eps;
} stats_args;

#define S(field) offsetof(stats_args, field)
const tool_opt stats_opts[] = {
    {"--data", OPT_PATH, S(data), .arg = "FILE", .help = "the text (required)"},
    {"--tokens", OPT_CHOICE, S(tokens), .choices = (const char *const[]){"char", "word", NULL}, .arg = "char|word",
     .help = "character (code point) or word tokens (default char)"},
    {"--letters-only", OPT_FLAG, S(letters_only), .help = "d2l's preprocessing: runs of non-letters become one space, lower case"},
    {"--order", OPT_INT, S(order), 1, LOOM_NGRAM_MAX_ORDER, .arg = "N", .help = "n-grams up to N tokens (default 3)"},
    {"--top", OPT_INT, S(top), 0, 1000, .arg = "K", .help = "the K most frequent of each (default 10)"},
    {"--eps", OPT_REAL, S(eps), 1e-9, 1e9, .arg = "E",
     .help = "Laplace smoothing's ε (default: for each order, the best of 1e-3 … 1e5\n"
             "on the counted text's own last tenth)"},
    {"--plot", OPT_PATH, S(plot), .arg = "FILE", .help = "Zipf's law: frequency against rank, log–log (.svg or .png)"},
};
#undef S
const int n_stats_opts = (int)(sizeof stats_opts / sizeof *stats_opts);

/* A k-gram as text: its tokens (a space shown as ␣, words separated by spaces). */
static void gram_text(const loom_vocab *v, const int32_t *gram, int k, char *buf, size_t n)
{
    size_t at = 0;
    buf[0] = 0;
    for (int i = 0; i < k && at < n; i++) {
        at += (size_t)snprintf(buf + at, n - at, "%s%s", i && loom_vocab_kind(v) != LOOM_TOKENS_CHAR ? " " : "",
                               tool_token_label(v, gram[i]));
    }
}

/* Each order's counts against their ranks, log–log. */
static int zipf_plot(const char *cmd, const loom_ngrams *g, const char *path, const char *title)
{
    static const char *const names[] = {"unigrams", "bigrams", "trigrams", "4-grams", "5-grams", "6-grams", "7-grams", "8-grams"};
    int order = loom_ngrams_order(g);
    loom_series s[LOOM_NGRAM_MAX_ORDER];
    double *buf[LOOM_NGRAM_MAX_ORDER] = {0};
    int64_t *counts = NULL;
    int rc = 0;
    for (int k = 1; k <= order && !rc; k++) {
        int64_t m = loom_ngrams_distinct(g, k);
        free(counts);
        counts = malloc(((size_t)m + 1) * sizeof *counts);
        buf[k - 1] = malloc(2 * ((size_t)m + 1) * sizeof *buf[k - 1]);
        if (!counts || !buf[k - 1]) {
            rc = tool_fail_st(cmd, LOOM_ERR_NOMEM, "out of memory", NULL);
            break;
        }
        m = loom_ngrams_top(g, k, m, NULL, counts);
        double *x = buf[k - 1], *y = x + m;
        for (int64_t r = 0; r < m; r++) x[r] = (double)(r + 1), y[r] = (double)counts[r];
        s[k - 1] = (loom_series){names[k - 1], x, y, m};
    }
    loom_error err = {0};
    if (!rc && loom_plot_series(s, order, &(loom_plot_opts){.log_x = true, .log_y = true, .title = title, .xlabel = "rank",
                                                            .ylabel = "frequency"},
                                path, &err))
        rc = tool_fail_st(cmd, err.status, err.msg, NULL);
    for (int k = 0; k < order; k++) free(buf[k]);
    free(counts);
    return rc;
}

int cmd_stats(int argc, char **argv)
{
    static const char cmd[] = "loom stats";
    stats_args a = {.order = 3, .top = 10};
    bool help = false;
    int rc = tool_opts(cmd, stats_opts, n_stats_opts, &a, NULL, argc, argv, &help);
    if (rc || help) {
        if (help) tool_help("stats --data FILE [options]", stats_help, stats_opts, n_stats_opts, false);
        return rc;
    }
    if (!a.data) return tool_fail(cmd, "--data FILE is required", NULL);
    if (!tool_outputs_ok(cmd, &(tool_file){"--plot", a.plot}, 1, &(tool_file){"--data", a.data}, 1)) return 2;
    loom_text *text = loom_text_new(&(loom_text_opts){.kind = (loom_token_kind)a.tokens, .letters_only = a.letters_only});
    if (!text) return tool_fail_st(cmd, LOOM_ERR_NOMEM, "out of memory", NULL);
    if (loom_text_read(text, a.data)) {
        rc = tool_fail(cmd, loom_text_error(text), NULL);
        loom_text_free(text);
        return rc;
    }
    int64_t n;
    const int32_t *ids = loom_text_ids(text, &n);
    const loom_vocab *v = loom_text_vocab(text);
    int order = (int)a.order, V = loom_vocab_size(v);
    loom_error err = {0};
    loom_ngrams *g = n > 0 ? loom_ngrams_new(ids, n, order, V, &err) : NULL;
    if (!g) {
        rc = n > 0 ? tool_fail_st(cmd, err.status, err.msg, NULL) : tool_fail(cmd, a.data, "no tokens");
        loom_text_free(text);
        return rc;
    }
    static const char *const kinds[] = {"characters", "words"};
    printf("%s: %lld tokens (%s), %d distinct\n", a.data, (long long)n, kinds[a.tokens], V - 1); /* <unk> is no token of it */
    int32_t *grams = malloc((size_t)(a.top + 1) * LOOM_NGRAM_MAX_ORDER * sizeof *grams);
    int64_t *counts = malloc((size_t)(a.top + 1) * sizeof *counts);
    if (!grams || !counts) rc = tool_fail_st(cmd, LOOM_ERR_NOMEM, "out of memory", NULL);
    for (int k = 1; !rc && k <= order; k++) {
        int64_t m = loom_ngrams_top(g, k, a.top, grams, counts);
        printf("%d-grams: %lld, %lld distinct", k, (long long)loom_ngrams_total(g, k), (long long)loom_ngrams_distinct(g, k));
        double s, c;
        /* Zipf's law holds best away from the few most frequent and the many seen once */
        int64_t distinct = loom_ngrams_distinct(g, k), lo = distinct >= 100 ? 10 : 1, hi = distinct >= 100 ? distinct / 2 : 0;
        if (!loom_ngrams_zipf(g, k, lo, hi, &s, &c))
            printf("; Zipf: frequency ≈ %.4g · rank^−%.3f (ranks %lld–%lld)", c, s + 0.0 /* not −0 */, (long long)lo, (long long)(hi ? hi : distinct));
        printf("\n");
        for (int64_t r = 0; r < m; r++) {
            char t[256];
            gram_text(v, grams + r * k, k, t, sizeof t);
            int width = 0; /* code points, for the column */
            for (const char *p = t; *p; p++) width += ((unsigned char)*p & 0xC0) != 0x80;
            printf("  %s%*s %lld\n", t, width < 24 ? 24 - width : 0, "", (long long)counts[r]);
        }
    }
    free(grams), free(counts);
    /* the baseline: counted on the first nine tenths, scored on the last (as loom train holds it out);
     * ε chosen on the counted part's own last tenth unless given */
    int64_t held = n - n / 10;
    double ppl[LOOM_NGRAM_MAX_ORDER], eps[LOOM_NGRAM_MAX_ORDER];
    if (!rc && held >= 10 && n - held > 0) {
        if (loom_ngrams_baseline(ids, held, V, order, a.eps, ids + held, n - held, ppl, eps, &err))
            rc = tool_fail_st(cmd, err.status, err.msg, NULL);
        else printf("Laplace n-gram perplexity on the last tenth (%lld tokens), counted on the rest:\n", (long long)(n - held));
        for (int k = 1; !rc && k <= order; k++)
            printf("  %d-gram %.4g (ε = %g%s)\n", k, ppl[k - 1], eps[k - 1], a.eps > 0 ? "" : ", chosen on the counted text");
    }
    if (!rc && a.plot) {
        char title[512];
        snprintf(title, sizeof title, "Zipf's law: %s of %s", kinds[a.tokens], a.data);
        rc = zipf_plot(cmd, g, a.plot, title);
    }
    loom_ngrams_free(g);
    loom_text_free(text);
    return rc;
}
