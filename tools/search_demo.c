/* `loom search-demo`: greedy, beam and exhaustive search (d2l 9.8) side by
 * side on a toy decoder over the vocabulary A, B, C, <eos> whose next-token
 * probabilities are a table — the searches are loom_search's, the table is
 * the demo's. */
#include "tool.h"

#include "loom/loom.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

const char search_demo_help[] = "greedy, beam and exhaustive search (d2l 9.8) side by side on a toy decoder over A, B, C, <eos>\n"
                                "(sequences of up to 3 tokens and <eos>): what each finds, how likely it is, how many\n"
                                "sequences each scored\n";

typedef struct {
    long beam;
} demo_args;

#define D(field) offsetof(demo_args, field)
const tool_opt search_demo_opts[] = {
    {"--beam", OPT_INT, D(beam), 1, 27, .arg = "K", .help = "beam search's width (default 2)"},
};
#undef D
const int n_search_demo_opts = (int)(sizeof search_demo_opts / sizeof *search_demo_opts);

enum { A, B, C, EOS, BOS, V = 4, MAX_LEN = 4 };

/* P(next | prefix) for the prefixes the table names; every other prefix:
 * A, B, C 0.3 each, <eos> 0.1. */
static const struct {
    const char *prefix;
    double p[V];
} table[] = {
    {"", {0.5, 0.3, 0.19, 0.01}},    {"A", {0.1, 0.45, 0.44, 0.01}}, {"AB", {0.2, 0.2, 0.5, 0.1}},
    {"ABC", {0.2, 0.1, 0.1, 0.6}},   {"AC", {0.1, 0.8, 0.09, 0.01}}, {"ACB", {0.1, 0.1, 0.1, 0.7}},
    {"B", {0.05, 0.04, 0.9, 0.01}}, {"BC", {0.2, 0.2, 0.1, 0.5}},   {"C", {0.005, 0.99, 0.004, 0.001}},
    {"CB", {0.004, 0.003, 0.003, 0.99}},
};

typedef struct {
    int R;
    char hist[1024][MAX_LEN + 1]; /* each row's prefix, "ACB" */
} toy;

static const double *probs(const char *prefix)
{
    static const double other[V] = {0.3, 0.3, 0.3, 0.1};
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        if (!strcmp(table[i].prefix, prefix)) return table[i].p;
    return other;
}

static loom_status toy_step(void *ctx, int t, const int32_t *tokens, const int32_t *parent, float *lp)
{
    toy *d = ctx;
    static char prev[1024][MAX_LEN + 1];
    memcpy(prev, d->hist, sizeof prev);
    for (int r = 0; r < d->R; r++) {
        if (parent) { /* row r continues row parent[r], which read tokens[r] */
            memcpy(d->hist[r], prev[parent[r]], sizeof prev[0]);
            size_t n = strlen(d->hist[r]);
            if (tokens[r] >= A && tokens[r] <= C && n < MAX_LEN) d->hist[r][n] = (char)('A' + tokens[r]), d->hist[r][n + 1] = 0;
        } else {
            d->hist[r][0] = 0;
        }
        const double *p = probs(d->hist[r]);
        for (int v = 0; v < V; v++) lp[r * V + v] = (float)log(p[v]);
    }
    (void)t;
    return LOOM_OK;
}

/* One search, printed: its sequence, probability and the sequences scored. */
static int run(const char *name, const loom_search_opts *o)
{
    toy *d = calloc(1, sizeof *d);
    if (!d) return tool_fail_st("loom search-demo", LOOM_ERR_NOMEM, "out of memory", NULL);
    d->R = o->beam;
    int32_t out[MAX_LEN], len;
    double score;
    loom_status st = loom_search(1, V, BOS, EOS, o, toy_step, d, out, &len, &score, NULL);
    if (st) return free(d), tool_fail_st("loom search-demo", st, name, "the search failed");
    char seq[32] = "";
    for (int i = 0; i < len; i++) seq[2 * i] = (char)('A' + out[i]), seq[2 * i + 1] = ' ';
    printf("  %-22s %-14s p = %.4f\n", name, strcat(seq, len < MAX_LEN ? "<eos>" : "(no <eos>)"), exp(score));
    free(d);
    return 0;
}

int cmd_search_demo(int argc, char **argv)
{
    demo_args a = {.beam = 2};
    bool help = false;
    int rc = tool_opts("loom search-demo", search_demo_opts, n_search_demo_opts, &a, NULL, argc, argv, &help);
    if (rc || help) {
        if (help) tool_help("search-demo [--beam K]", search_demo_help, search_demo_opts, n_search_demo_opts, false);
        return rc;
    }
    printf("P(next token | prefix), the prefixes the decoder knows (any other: A, B, C 0.3 each, <eos> 0.1):\n");
    printf("  %-8s %6s %6s %6s %6s\n", "prefix", "A", "B", "C", "<eos>");
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        printf("  %-8s %6.3f %6.3f %6.3f %6.3f\n", *table[i].prefix ? table[i].prefix : "(start)", table[i].p[A], table[i].p[B],
               table[i].p[C], table[i].p[EOS]);
    int ex = loom_search_exhaustive_beam(V, MAX_LEN);
    char beam[32];
    snprintf(beam, sizeof beam, "beam search, K = %ld", a.beam);
    printf("the likeliest sequence of up to %d tokens and <eos>, found by\n", MAX_LEN - 1);
    if ((rc = run("greedy search", &(loom_search_opts){.beam = 1, .max_len = MAX_LEN})) ||
        (rc = run(beam, &(loom_search_opts){.beam = (int)a.beam, .max_len = MAX_LEN})) ||
        (rc = run("exhaustive search", &(loom_search_opts){.beam = ex, .max_len = MAX_LEN, .exhaustive = true})))
        return rc;
    printf("prefixes extended at each step: greedy 1, beam search %ld, exhaustive search every one (1, 3, 9, %d):\n"
           "greedy and a narrow beam miss what a likely second or third token makes of an unlikely first\n",
           a.beam, ex);
    return 0;
}
