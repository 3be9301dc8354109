/* `loom embed`: a checkpoint's word vectors (word2vec's, or a language
 * model's embedding) — nearest words by cosine, analogies, and export as
 * the word2vec text format or safetensors. */
#include "tool.h"

#include "loom/loom.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

const char embed_help[] = "a checkpoint's word vectors (loom word2vec's, or a language model's embedding): the\n"
                          "nearest words by cosine, analogies (a is to b as c is to ?), export\n";

typedef struct {
    const char *load, *neighbours, *analogy, *word2vec, *safetensors;
    long k;
} embed_args;

#define M(field) offsetof(embed_args, field)
const tool_opt embed_opts[] = {
    {"--load", OPT_PATH, M(load), .arg = "CKPT", .help = "the checkpoint (required)"},
    {"--neighbours", OPT_TEXT, M(neighbours), .arg = "WORD,...", .help = "the nearest words of each"},
    {"--analogy", OPT_TEXT, M(analogy), .arg = "A,B,C", .help = "the words nearest to B − A + C (A is to B as C is to ?)"},
    {"-k", OPT_INT, M(k), 1, 1000, .arg = "N", .help = "how many (default 10)"},
    {"--export-word2vec", OPT_PATH, M(word2vec), .arg = "FILE", .help = "the vectors in word2vec's text format"},
    {"--export-safetensors", OPT_PATH, M(safetensors), .arg = "FILE",
     .help = "the vectors as safetensors: embedding.weight (V, E), the vocabulary in\nits metadata (loom.vocab)"},
};
#undef M
const int n_embed_opts = (int)(sizeof embed_opts / sizeof *embed_opts);

static const char cmd[] = "loom embed";

/* Each comma-separated word's id into ids (at most max); -1 and a message
 * for a word the vocabulary does not know. */
static int words(const loom_vocab *v, const char *list, int32_t *ids, int max)
{
    int n = 0;
    for (const char *p = list; *p && n < max;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char w[256];
        snprintf(w, sizeof w, "%.*s", (int)(len < sizeof w ? len : sizeof w - 1), p);
        int32_t id = loom_vocab_id(v, w);
        if (id == LOOM_UNK) return fprintf(stderr, "%s: '%s' is not in the vocabulary\n", cmd, w), -1;
        ids[n++] = id;
        p = e ? e + 1 : p + len;
    }
    return n;
}

static void print_words(const loom_vocab *v, const int32_t *ids, const float *sims, int n)
{
    for (int i = 0; i < n; i++) printf("  %-16s %.3f\n", loom_vocab_token(v, ids[i]), sims[i]);
}

int cmd_embed(int argc, char **argv)
{
    embed_args a = {.k = 10};
    bool help = false;
    int rc = tool_opts(cmd, embed_opts, n_embed_opts, &a, NULL, argc, argv, &help);
    if (rc || help) {
        if (help) tool_help("embed --load CKPT [options]", embed_help, embed_opts, n_embed_opts, false);
        return rc;
    }
    if (!a.load) return fprintf(stderr, "%s: --load CKPT is required (see 'loom embed --help')\n", cmd), 2;
    if (!a.neighbours && !a.analogy && !a.word2vec && !a.safetensors)
        return fprintf(stderr, "%s: nothing to do: give --neighbours, --analogy or an --export\n", cmd), 2;
    if (!tool_outputs_ok(cmd, (tool_file[]){{"--export-word2vec", a.word2vec}, {"--export-safetensors", a.safetensors}}, 2,
                         &(tool_file){"--load", a.load}, 1))
        return 2;
    loom_vocab *v = NULL;
    float *E = NULL;
    int V = 0, D = 0, k = (int)a.k;
    loom_error err = {0};
    int32_t *ids = malloc((size_t)k * sizeof *ids);
    float *sims = malloc((size_t)k * sizeof *sims);
    if (!ids || !sims) {
        rc = tool_fail_st(cmd, LOOM_ERR_NOMEM, "out of memory", NULL);
        goto done;
    }
    if (loom_embed_load(a.load, &v, &E, &V, &D, &err)) {
        rc = tool_fail_st(cmd, err.status, err.msg, NULL);
        goto done;
    }
    if (a.neighbours) {
        int32_t q[64];
        int n = words(v, a.neighbours, q, 64);
        if (n < 0) {
            rc = 2;
            goto done;
        }
        for (int i = 0; i < n; i++) {
            printf("%s:\n", loom_vocab_token(v, q[i]));
            print_words(v, ids, sims, loom_embed_nearest(E, V, D, E + (size_t)q[i] * D, k, &q[i], 1, ids, sims));
        }
    }
    if (a.analogy) {
        int32_t q[4];
        int n = words(v, a.analogy, q, 4);
        if (n != 3) {
            rc = n < 0 ? 2 : tool_fail(cmd, "--analogy", "takes three words, A,B,C");
            goto done;
        }
        printf("%s is to %s as %s is to:\n", loom_vocab_token(v, q[0]), loom_vocab_token(v, q[1]), loom_vocab_token(v, q[2]));
        print_words(v, ids, sims, loom_embed_analogy(E, V, D, q[0], q[1], q[2], k, ids, sims));
    }
    if (a.word2vec && loom_embed_save_word2vec(a.word2vec, v, E, V, D, &err)) {
        rc = tool_fail_st(cmd, err.status, err.msg, NULL);
        goto done;
    }
    if (a.safetensors) {
        loom_st *f = loom_st_new();
        char *vs = loom_vocab_to_string(v);
        loom_status st = !f || !vs ? LOOM_ERR_NOMEM : loom_st_add(f, "embedding.weight", LOOM_F32, loom_shape2(V, D), E);
        if (!st) st = loom_st_set_meta(f, "loom.vocab", vs);
        if (!st) st = loom_st_write(f, a.safetensors);
        if (st) rc = tool_fail_st(cmd, st, f && st != LOOM_ERR_NOMEM ? loom_st_error(f) : "out of memory", NULL);
        free(vs), loom_st_free(f);
    }
done:
    free(ids), free(sims), free(E);
    loom_vocab_free(v);
    return rc;
}
