/* `loom generate`: text from a language model's checkpoint; and what the
 * commands that use a trained language model share (loom eval): its
 * checkpoint read into a model with its weights. */
#include "tool.h"

#include "loom/loom.h"

#include <cjson/cJSON.h>

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- a language model's checkpoint ---- */

void lm_ckpt_free(lm_ckpt *l)
{
    loom_store_free(l->store);
    loom_graph_free(l->g);
    loom_vocab_free(l->vocab);
    loom_st_free(l->ck);
    free(l->data);
    *l = (lm_ckpt){0};
}

const char *lm_ckpt_text(const lm_ckpt *l, char *buf, size_t n)
{
    cJSON *o = cJSON_Parse(l->data ? l->data : "");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "path");
    bool ok = cJSON_IsString(p) && strlen(p->valuestring) < n && access(p->valuestring, R_OK) == 0;
    if (ok) strcpy(buf, p->valuestring);
    cJSON_Delete(o);
    return ok ? buf : NULL;
}

int lm_ckpt_load(lm_ckpt *l, const char *cmd, const char *path, int T, int B)
{
    *l = (lm_ckpt){0};
    if (!path) return tool_fail(cmd, "--load CKPT is required", NULL);
    if (!(l->ck = loom_st_new()) || !(l->g = loom_graph_new())) return tool_fail_st(cmd, LOOM_ERR_NOMEM, "out of memory", NULL);
    if (loom_checkpoint_read(l->ck, path)) return tool_fail(cmd, loom_st_error(l->ck), NULL);
    loom_model_desc m;
    loom_error err = {0};
    if (loom_checkpoint_model(l->ck, &m, NULL, &err)) return tool_fail(cmd, path, err.msg);
    if (m.kind == LOOM_MODEL_SEQ2SEQ)
        return tool_fail(cmd, path, "an encoder–decoder's checkpoint, not a language model's: use loom translate or loom eval");
    if (m.kind != LOOM_MODEL_LM)
        return tool_fail(cmd, path, "a synthetic task's checkpoint (--task adding or copy), not a language model's: loom eval "
                                    "and loom train --resume read it");
    if (!(l->vocab = loom_vocab_from_string(loom_st_meta(l->ck, "loom.vocab"))) || loom_vocab_size(l->vocab) != m.lm.vocab)
        return tool_fail(cmd, path, "its vocabulary is missing, bad, or not its model's");
    if (!(l->data = loom_checkpoint_data(l->ck))) return tool_fail_st(cmd, LOOM_ERR_NOMEM, "out of memory", NULL);
    loom_lm_opts o = m.lm; /* for evaluation and generation: no dropout, no truncation */
    o.steps = T ? T : o.steps, o.batch = B ? B : o.batch, o.dropout = 0, o.trunc = LOOM_TRUNC_NONE, o.truncate = 0;
    loom_lm_build(l->g, &l->lm, &o);
    if (!loom_graph_failed(l->g) && loom_store_fits(l->g, l->ck, &err)) return tool_fail(cmd, path, err.msg);
    l->store = loom_store_new(l->g);
    if (loom_graph_failed(l->g)) return tool_fail_st(cmd, loom_graph_status(l->g), loom_graph_error(l->g), NULL);
    if (loom_store_status(l->store) || loom_store_load(l->store, l->ck, false))
        return tool_fail_st(cmd, loom_store_status(l->store), loom_store_error(l->store), NULL);
    return tool_finite_weights(cmd, path, l->store) ? 0 : 2;
}

/* ---- generation ---- */

/* Tokens → text on stdout after a label. */
static void print_text(const char *label, const loom_vocab *v, const int32_t *ids, int64_t n)
{
    size_t len = loom_vocab_decode(v, ids, n, NULL, 0);
    char *buf = malloc(len + 1);
    if (!buf) return;
    loom_vocab_decode(v, ids, n, buf, len + 1);
    printf("%s%s\n", label, buf);
    free(buf);
}

int generate_text(const char *cmd, const loom_lm_opts *model, const loom_store *store, const loom_vocab *v, const char *prefix,
                  long length, const loom_search_opts *so)
{
    loom_error err = {0};
    loom_generator *gen = loom_generator_new(model, store, &err);
    if (!gen) return tool_fail_st(cmd, err.status, err.msg, NULL);
    int64_t np = loom_vocab_encode(v, prefix, strlen(prefix), NULL, 0);
    if (np < 1) {
        loom_generator_free(gen);
        return tool_fail(cmd, "--prefix", np < 0 ? "not valid UTF-8 text" : "holds no token the model reads (it starts from one)");
    }
    int32_t *seq = malloc((size_t)(np + length) * sizeof *seq);
    int rc = 0;
    if (!seq) {
        rc = tool_fail_st(cmd, LOOM_ERR_NOMEM, "out of memory", NULL);
    } else {
        loom_vocab_encode(v, prefix, strlen(prefix), seq, np);
        if (loom_generate(gen, seq, np, length, so, seq + np, &err) < 0) rc = tool_fail_st(cmd, err.status, err.msg, NULL);
        else {
            char label[96];
            if (so->beam > 1) snprintf(label, sizeof label, "generated (beam %d): ", so->beam);
            else snprintf(label, sizeof label, "generated (temperature %.2g): ", so->temperature);
            print_text(label, v, seq, np + length);
        }
    }
    free(seq);
    loom_generator_free(gen);
    return rc;
}

typedef struct {
    const char *load, *prefix;
    long length, top_k, beam, seed;
    double temperature, top_p, length_norm;
} generate_args;

#define G(field) offsetof(generate_args, field)
const tool_opt generate_opts[] = {
    {"--load", OPT_PATH, G(load), .arg = "CKPT", .help = "the checkpoint (required)"},
    {"--prefix", OPT_TEXT, G(prefix), .arg = "TEXT", .help = "what the model reads first (default \"time traveller\")"},
    {"--length", OPT_INT, G(length), 1, 1000000, .arg = "N", .help = "tokens to generate (default 200)"},
    {"--temperature", OPT_REAL, G(temperature), 0, 100, .arg = "T", .help = "sampling temperature (default 0.6; 0: greedy)"},
    {"--top-k", OPT_INT, G(top_k), 0, 1L << 30, .arg = "K", .help = "sample among the K most likely tokens (default: all)"},
    {"--top-p", OPT_REAL, G(top_p), 0, 1, .arg = "P", .help = "sample among the most likely tokens that reach probability P"},
    {"--beam", OPT_INT, G(beam), 1, 1024, .arg = "W", .help = "beam search of width W instead of sampling"},
    {"--length-norm", OPT_REAL, G(length_norm), 0, 10, .arg = "A", .help = "beam scores divided by length^A (default 0)"},
    {"--seed", OPT_INT, G(seed), 0, 1L << 30, .arg = "S", .help = "sampling seed (default 1)"},
};
#undef G
const int n_generate_opts = (int)(sizeof generate_opts / sizeof *generate_opts);
const char generate_help[] = "text from a checkpoint of loom train\n";

int cmd_generate(int argc, char **argv)
{
    static const char cmd[] = "loom generate";
    generate_args a = {.prefix = "time traveller", .length = 200, .seed = 1, .temperature = 0.6};
    bool help = false;
    int rc = tool_opts(cmd, generate_opts, n_generate_opts, &a, NULL, argc, argv, &help);
    if (rc || help) {
        if (help) tool_help("generate --load CKPT [options]", generate_help, generate_opts, n_generate_opts, false);
        return rc;
    }
    lm_ckpt l;
    rc = lm_ckpt_load(&l, cmd, a.load, 1, 1);
    if (!rc)
        rc = generate_text(cmd, &l.lm.o, l.store, l.vocab, a.prefix, a.length,
                           &(loom_search_opts){.temperature = a.temperature, .top_k = (int)a.top_k, .top_p = a.top_p,
                                               .beam = (int)a.beam, .length_norm = a.length_norm, .seed = (uint64_t)a.seed});
    lm_ckpt_free(&l);
    return rc;
}
