/* `loom translate` and `loom eval` of an encoder–decoder: its checkpoint
 * read into a decoding graph with its weights; sentences translated
 * (greedy, beam search or sampling) with an attention map; held-out BLEU,
 * exact match and perplexity. */
#include "tool.h"

#include "loom/loom.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* ---- loom translate ---- */

const char translate_help[] =
    "translate sentences with an encoder–decoder checkpoint of loom train, one per line\n"
    "(from the arguments, else from standard input)\n";

typedef struct {
    const char *load, *map, *tree;
    long beam, max_len, seed;
    double length_norm, temperature, coverage;
    bool exhaustive;
} translate_args;

#define T(field) offsetof(translate_args, field)
const tool_opt translate_opts[] = {
    {"--load", OPT_PATH, T(load), .arg = "CKPT", .help = "the checkpoint (required)"},
    {"--beam", OPT_INT, T(beam), 1, 1024, .arg = "K", .help = "beam search of width K (default 1: greedy)"},
    {"--length-norm", OPT_REAL, T(length_norm), 0, 100, .arg = "A", .help = "beam scores divided by length^A (default 0)"},
    {"--coverage", OPT_REAL, T(coverage), 0, 100, .arg = "B",
     .help = "beam search's coverage penalty (GNMT): a translation scores B·Σ log min(attention\n"
             "paid to a source word, 1) more — leaving source words unattended costs (default 0)"},
    {"--exhaustive", OPT_FLAG, T(exhaustive),
     .help = "exhaustive search: every sequence of up to --max-len tokens scored (d2l 9.8;\n"
             "a small target vocabulary and a short --max-len only: (V − 1)^(max-len − 1)\n"
             "hypotheses kept at once, at most 1024)"},
    {"--temperature", OPT_REAL, T(temperature), 0, 100, .arg = "T", .help = "sample with temperature T instead (beam 1)"},
    {"--seed", OPT_INT, T(seed), 0, 1L << 30, .arg = "S", .help = "sampling seed (default 1)"},
    {"--max-len", OPT_INT, T(max_len), 1, 100000, .arg = "N", .help = "tokens at most (default: the model's target length)"},
    {"--attention-map", OPT_PATH, T(map), .arg = "FILE",
     .help = "the first sentence's attention weights as a heat map (.svg or .png)"},
    {"--beam-tree", OPT_PATH, T(tree), .arg = "FILE",
     .help = "the first sentence's search as a tree: every continuation weighed, kept,\n"
             "finished or pruned, the winner's path in bold (.dot, .svg, .png or .pdf)"},
};
#undef T
const int n_translate_opts = (int)(sizeof translate_opts / sizeof *translate_opts);

/* Every line of standard input. */
static char **read_lines(const char *cmd, int *n)
{
    char **lines = NULL, *line = NULL;
    size_t cap = 0;
    int k = 0;
    for (ssize_t len; (len = getline(&line, &cap, stdin)) >= 0;) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if ((ssize_t)strlen(line) != len) { /* a NUL would cut the sentence */
            fprintf(stderr, "%s: line %d of the input holds a NUL byte\n", cmd, k + 1);
            for (int i = 0; i < k; i++) free(lines[i]);
            free(lines), free(line);
            return *n = -2, NULL;
        }
        char **nl = realloc(lines, (size_t)(k + 1) * sizeof *nl);
        if (!nl || !(nl[k] = strdup(line))) {
            free(nl ? nl : lines);
            free(line);
            return *n = -1, NULL;
        }
        lines = nl, k++;
    }
    free(line);
    *n = k;
    return lines;
}

/* The first sentence's search tree, as DOT text or rendered (by the extension). */
static int beam_tree(const char *cmd, const s2s_ckpt *l, const loom_search_tree *tree, const char *path, const char *sentence,
                     long beam)
{
    int V = loom_vocab_size(l->v[1]);
    const char **labels = malloc((size_t)V * sizeof *labels);
    if (!labels) return tool_fail_st(cmd, LOOM_ERR_NOMEM, "out of memory", NULL);
    for (int v = 0; v < V; v++) labels[v] = tool_token_label(l->v[1], v);
    char title[512];
    snprintf(title, sizeof title, "%s of width %ld: “%s”", beam > 1 ? "beam search" : "greedy search", beam, sentence);
    loom_error err = {0};
    loom_status st = loom_search_tree_save(tree, labels, V, title, path, &err);
    free(labels);
    return st ? tool_fail_st(cmd, st, "--beam-tree", err.msg) : 0;
}

/* The first sentence's weights: one row per output token (and <eos>), one
 * column per source token (and <eos>). */
static int attention_map(const char *cmd, const s2s_ckpt *l, const char *path, const int32_t *src, int sl, const int32_t *out, int ol,
                         const float *w, int max_len)
{
    if (!l->mo.attention) return tool_fail(cmd, "--attention-map", "the model has no attention");
    int rows = ol < max_len ? ol + 1 : ol, Ts = l->mo.src_steps;
    float *m = malloc((size_t)rows * (size_t)sl * sizeof *m);
    const char **rl = malloc((size_t)rows * sizeof *rl), **cl = malloc((size_t)sl * sizeof *cl);
    if (!m || !rl || !cl) {
        free(m), free(rl), free(cl);
        return tool_fail_st(cmd, LOOM_ERR_NOMEM, "out of memory", NULL);
    }
    for (int i = 0; i < rows; i++) {
        rl[i] = i < ol ? tool_token_label(l->v[1], out[i]) : "<eos>";
        for (int j = 0; j < sl; j++) m[i * sl + j] = w[i * Ts + j];
    }
    for (int j = 0; j < sl; j++) cl[j] = tool_token_label(l->v[0], src[j]);
    loom_error err = {0};
    loom_status st = loom_plot_heatmap(&(loom_heatmap){m, rows, sl, rl, cl, "attention: output (rows) × source (columns)"}, path, &err);
    free(m), free(rl), free(cl);
    return st ? tool_fail_st(cmd, st, err.msg, NULL) : 0;
}

int cmd_translate(int argc, char **argv)
{
    static const char cmd[] = "loom translate";
    translate_args a = {.beam = 1, .seed = 1};
    int n = 0;
    char **text = malloc(((size_t)argc + 1) * sizeof *text);
    if (!text) return tool_fail_st(cmd, LOOM_ERR_NOMEM, "out of memory", NULL);
    for (int i = 0; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--")) { /* the rest are sentences, even those that start with '-' */
            while (++i < argc) text[n++] = argv[i];
            break;
        }
        if (f[0] != '-' || !f[1]) { /* a sentence */
            text[n++] = argv[i];
            continue;
        }
        if (tool_is_help(f)) {
            free(text);
            tool_help("translate --load CKPT [options] [TEXT...]", translate_help, translate_opts, n_translate_opts, false);
            return 0;
        }
        int r = tool_opt_parse(cmd, translate_opts, n_translate_opts, &a, argc, argv, &i);
        if (!r) fprintf(stderr, "%s: unknown option '%s' (see '%s --help')\n", cmd, f, cmd);
        if (r <= 0) return free(text), 2;
    }
    const char *ck = a.load, *map = a.map;
    long beam = a.beam, max_len = a.max_len, seed = a.seed;
    double norm = a.length_norm, temperature = a.temperature;
    if (temperature > 0 && beam > 1) return free(text), tool_fail(cmd, "--temperature", "samples one hypothesis: not with --beam");
    if (a.coverage > 0 && temperature > 0) return free(text), tool_fail(cmd, "--coverage", "ranks hypotheses: not with --temperature");
    if (a.exhaustive && (beam > 1 || temperature > 0 || norm > 0 || a.coverage > 0))
        return free(text), tool_fail(cmd, "--exhaustive", "scores every sequence: not with --beam, --temperature, --length-norm or --coverage");
    if (!tool_outputs_ok(cmd, (tool_file[]){{"--attention-map", map}, {"--beam-tree", a.tree}}, 2, &(tool_file){"--load", ck}, 1))
        return free(text), 2;
    char **lines = NULL;
    if (!n && (lines = read_lines(cmd, &n)) == NULL && n < 0) return free(text), n == -1 ? (tool_fail_st(cmd, LOOM_ERR_NOMEM, "out of memory", NULL), 1) : 2;
    const char *const *sent = lines ? (const char *const *)lines : (const char *const *)text;
    s2s_ckpt l;
    char err[512];
    int batch = n < 32 ? (n > 0 ? n : 1) : 32;
    int rc = s2s_load(&l, cmd, a.load, batch, batch * (int)a.beam);
    int Ts = l.mo.src_steps, L = max_len ? (int)max_len : l.mo.tgt_steps;
    if (!rc && a.exhaustive) { /* the beam that keeps every hypothesis, and a decoder of that many rows */
        int V = l.mo.tgt_vocab, k = loom_search_exhaustive_beam(V, L);
        if (k < 0) {
            snprintf(err, sizeof err, "over %d target tokens and %d steps it would keep %.3g hypotheses at once (at most 1024): "
                                      "give a shorter --max-len", V, L, pow(V - 1, L - 1));
            rc = tool_fail(cmd, "--exhaustive", err);
        } else {
            s2s_unload(&l);
            rc = s2s_load(&l, cmd, a.load, batch, batch * k);
            beam = k;
        }
    }
    int32_t *src = NULL, *sl = NULL, *out = NULL, *ol = NULL;
    float *att = NULL;
    loom_translator *tr = NULL;
    if (!rc && n) {
        src = malloc((size_t)n * (size_t)Ts * sizeof *src), sl = malloc((size_t)n * sizeof *sl);
        out = malloc((size_t)n * (size_t)L * sizeof *out), ol = malloc((size_t)n * sizeof *ol);
        att = map ? malloc((size_t)n * (size_t)L * (size_t)Ts * sizeof *att) : NULL;
        if (!src || !sl || !out || !ol || (map && !att)) rc = tool_fail_st(cmd, LOOM_ERR_NOMEM, "out of memory", NULL);
        for (int i = 0; !rc && i < n; i++)
            if ((sl[i] = loom_pairs_encode(l.v[0], sent[i], strlen(sent[i]), Ts, src + (size_t)i * Ts)) < 0) {
                snprintf(err, sizeof err, "sentence %d", i + 1);
                rc = tool_fail_st(cmd, sl[i] == -1 ? LOOM_ERR_VALUE : LOOM_ERR_NOMEM, err, sl[i] == -1 ? "invalid UTF-8" : "out of memory");
            }
        loom_error e = {0};
        if (!rc && !(tr = loom_translator_new(&l.mo, l.store, (int)beam, &e))) rc = tool_fail_st(cmd, e.status, e.msg, NULL);
        loom_search_node *nodes = a.tree ? malloc(4096 * sizeof *nodes) : NULL;
        loom_search_tree tree = {nodes, nodes ? 4096 : 0, 0, -1};
        loom_search_opts so = {.beam = (int)beam, .temperature = temperature, .length_norm = norm, .max_len = L, .exhaustive = a.exhaustive,
                               .seed = (uint64_t)seed, .tree = a.tree ? &tree : NULL, .coverage = a.coverage};
        if (a.tree && !nodes) rc = tool_fail_st(cmd, LOOM_ERR_NOMEM, "out of memory", NULL);
        if (!rc && loom_translate(tr, src, sl, n, &so, out, ol, NULL, att, &e)) rc = tool_fail_st(cmd, e.status, e.msg, NULL);
        for (int i = 0; !rc && i < n; i++) {
            size_t k = loom_vocab_decode(l.v[1], out + (size_t)i * L, ol[i], NULL, 0);
            char *s = malloc(k + 1);
            if (!s) rc = tool_fail_st(cmd, LOOM_ERR_NOMEM, "out of memory", NULL);
            else loom_vocab_decode(l.v[1], out + (size_t)i * L, ol[i], s, k + 1), printf("%s\n", s);
            free(s);
        }
        if (!rc && map) rc = attention_map(cmd, &l, a.map, src, sl[0], out, ol[0], att, L);
        if (!rc && a.tree) rc = beam_tree(cmd, &l, &tree, a.tree, sent[0], beam);
        free(nodes);
    }
    loom_translator_free(tr);
    free(src), free(sl), free(out), free(ol), free(att), free(text);
    for (int i = 0; lines && i < n; i++) free(lines[i]);
    free(lines);
    s2s_unload(&l);
    return rc;
}

/* ---- loom eval of an encoder–decoder ---- */

int eval_seq2seq(const char *ckpt, const char *data, long beam)
{
    static const char cmd[] = "loom eval";
    s2s_ckpt l;
    int B = 64, rc = s2s_load(&l, cmd, ckpt, B, B * (int)beam);
    s2s_data held = {0};
    loom_pairs *p = NULL;
    loom_translator *tr = NULL;
    if (rc) goto done;
    bool synthetic = l.task.task == TASK_REVERSE || l.task.task == TASK_DATES;
    if (!data && !synthetic) {
        rc = tool_fail(cmd, "--data PAIRS.tsv is required for an encoder–decoder not trained on --task reverse or dates", NULL);
        goto done;
    }
    /* a synthetic task's own held-out pairs, regenerated; or every pair of the file */
    bool part = !data;
    if (!data) {
        if ((rc = s2s_pairs(cmd, &l.task, (const loom_vocab *const *)l.v, &held))) goto done;
        p = held.pairs, held.pairs = NULL;
    } else {
        p = loom_pairs_new(&(loom_pairs_opts){.num_steps = l.mo.src_steps, .target_steps = l.mo.tgt_steps,
                                              .keep_order = true, .vocab = {l.v[0], l.v[1]}});
        if (!p || loom_pairs_read(p, data)) {
            rc = tool_fail(cmd, p ? loom_pairs_error(p) : "out of memory", NULL);
            goto done;
        }
        s2s_report_bad_lines(cmd, p, data);
    }
    int64_t n = loom_pairs_count(p, part);
    double bleu = NAN, exact = NAN, ppl = NAN;
    loom_error e = {0};
    if (!(tr = loom_translator_new(&l.mo, l.store, (int)beam, &e))) rc = tool_fail_st(cmd, e.status, e.msg, NULL);
    if (!rc && loom_translate_score(tr, p, part, n, &(loom_search_opts){.beam = (int)beam, .max_len = l.mo.tgt_steps}, &bleu,
                                    &exact, &e))
        rc = tool_fail_st(cmd, e.status, e.msg, NULL);
    if (!rc && loom_seq2seq_perplexity(&l.mo, l.store, p, part, &ppl, &e)) rc = tool_fail_st(cmd, e.status, e.msg, NULL);
    if (!rc)
        printf("%lld %spairs%s: BLEU %.4f, exact match %.2f%%, perplexity %s\n", (long long)n, part ? "held-out " : "",
               beam > 1 ? " (beam search)" : "", bleu, 100 * exact, tool_num((char[32]){0}, 32, ppl, 4));
done:
    loom_translator_free(tr);
    loom_pairs_free(p);
    s2s_data_free(&held);
    s2s_unload(&l);
    return rc;
}

