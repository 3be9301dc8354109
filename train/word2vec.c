/* word2vec (loom/embed.h): skip-gram and CBOW with negative sampling as a
 * graph the trainer trains, and their batches drawn from (seed, step). */
#include "loom/embed.h"
#include "loom/layers.h"
#include "loom/ops.h"
#include "loom/random.h"
#include "graph/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int context_slots(const loom_w2v_opts *o) { return 2 * o->window; }

loom_status loom_w2v_build(loom_graph *g, loom_w2v *m, const loom_w2v_opts *o)
{
    memset(m, 0, sizeof *m);
    if (!o || o->vocab < 2 || o->dim < 1 || o->window < 1 || o->negatives < 0 || o->batch < 1 ||
        (o->kind != LOOM_W2V_SKIPGRAM && o->kind != LOOM_W2V_CBOW) || !(o->subsample >= 0))
        return loom_graph_fail(g, LOOM_ERR_ARG, "word2vec: needs vocab >= 2, dim, window, batch >= 1, negatives >= 0"),
               LOOM_ERR_ARG;
    m->o = *o;
    int B = o->batch, E = o->dim, K1 = 1 + o->negatives, C = context_slots(o);
    m->embedding = loom_param_init(g, "embedding.weight", loom_shape2(o->vocab, E), LOOM_INIT_UNIFORM, 0.5f / (float)E);
    m->output = loom_param_init(g, "output.weight", loom_shape2(o->vocab, E), LOOM_INIT_ZEROS, 0);
    loom_tensor v;
    if (o->kind == LOOM_W2V_SKIPGRAM) {
        m->in = loom_input_i32(g, "in", loom_shape1(B));
        v = loom_gather(g, m->embedding, m->in); /* (B, E) */
    } else { /* the mean of the context slots that hold a word */
        m->in = loom_input_i32(g, "in", loom_shape2(B, C));
        m->in_mask = loom_input(g, "in_mask", loom_shape2(B, C));
        loom_tensor mask = loom_reshape(g, m->in_mask, loom_shape3(B, C, 1));
        loom_tensor sum = loom_sum(g, loom_mul(g, loom_gather(g, m->embedding, m->in), mask), 1, false);
        v = loom_div(g, sum, loom_sum(g, mask, 1, false));
    }
    m->out = loom_input_i32(g, "out", loom_shape2(B, K1));
    loom_tensor u = loom_gather(g, m->output, m->out); /* (B, 1 + K, E) */
    loom_tensor s = loom_reshape(g, loom_matmul(g, loom_reshape(g, v, loom_shape3(B, 1, E)), u, false, true), loom_shape2(B, K1));
    /* −log σ(s_0) − Σ_k log σ(−s_k) = softplus(−s_0) + Σ_k softplus(s_k) */
    float *sign = malloc((size_t)K1 * sizeof *sign);
    if (!sign) return loom_graph_fail(g, LOOM_ERR_NOMEM, "word2vec: out of memory"), LOOM_ERR_NOMEM;
    for (int k = 0; k < K1; k++) sign[k] = k ? 1.0f : -1.0f;
    loom_tensor c = loom_constant(g, loom_shape2(1, K1), sign);
    free(sign);
    m->loss = loom_scale(g, loom_sum_all(g, loom_softplus(g, loom_mul(g, s, c))), 1.0f / (float)B);
    return loom_graph_status(g);
}

/* ---- the data ---- */

struct loom_w2v_data {
    int32_t *ids; /* the text less <unk> */
    int64_t n;
    int V;
    float *keep;    /* V: the subsampling's probability of keeping each word */
    double *noise;  /* V: cumulative unigram^0.75 */
};

void loom_w2v_data_free(loom_w2v_data *d)
{
    if (d) free(d->ids), free(d->keep), free(d->noise);
    free(d);
}

int64_t loom_w2v_data_words(const loom_w2v_data *d) { return d ? d->n : 0; }

loom_w2v_data *loom_w2v_data_new(const int32_t *ids, int64_t n, const loom_vocab *v, const loom_w2v_opts *o, loom_error *err)
{
    int V = v ? loom_vocab_size(v) : 0;
    loom_w2v_data *d = calloc(1, sizeof *d);
    int64_t *count = calloc((size_t)V + 1, sizeof *count);
    if (d) d->ids = malloc(((size_t)n + 1) * sizeof *d->ids), d->keep = malloc(((size_t)V + 1) * sizeof *d->keep),
           d->noise = malloc(((size_t)V + 1) * sizeof *d->noise);
    if (!d || !count || !d->ids || !d->keep || !d->noise) {
        loom_error_set(err, LOOM_ERR_NOMEM, "word2vec: out of memory");
        goto fail;
    }
    d->V = V;
    for (int64_t i = 0; i < n; i++)
        if (ids[i] > LOOM_UNK && ids[i] < V) d->ids[d->n++] = ids[i], count[ids[i]]++;
    if (d->n < 2) {
        loom_error_set(err, LOOM_ERR_VALUE, "word2vec: %lld words besides <unk>: too few to train on (a lower --min-count?)",
                       (long long)d->n);
        goto fail;
    }
    double z = 0, t = o->subsample;
    for (int w = 0; w < V; w++) {
        double f = (double)count[w] / (double)d->n; /* word2vec: keep with (√(f/t) + 1)·t/f */
        d->keep[w] = t > 0 && f > 0 ? (float)fmin(1.0, (sqrt(f / t) + 1) * t / f) : 1.0f;
        d->noise[w] = z += pow((double)count[w], 0.75);
    }
    for (int w = 0; w < V; w++) d->noise[w] /= z;
    free(count);
    return d;
fail:
    free(count);
    loom_w2v_data_free(d);
    return NULL;
}

/* A word drawn from unigram^0.75 (binary search of the cumulative table). */
static int32_t noise_word(const loom_w2v_data *d, uint64_t *s)
{
    double u = loom_uniform(s);
    int lo = 0, hi = d->V - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (d->noise[mid] > u) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

/* Whether position i's word survives the subsampling. */
static bool kept(const loom_w2v_data *d, int64_t i, uint64_t *s) { return loom_uniform(s) < d->keep[d->ids[i]]; }

void loom_w2v_batch(const loom_w2v_data *d, const loom_w2v_opts *o, uint64_t seed, int64_t step, int32_t *in, float *in_mask,
                    int32_t *out)
{
    uint64_t s = loom_mix(seed * 0x9E3779B97F4A7C15ull + (uint64_t)step * 0xBF58476D1CE4E5B9ull + 29);
    int C = context_slots(o), K1 = 1 + o->negatives;
    for (int b = 0; b < o->batch; b++) {
        int32_t target = 0;
        for (int tries = 0;; tries++) { /* a kept centre with a kept context (every word after many tries) */
            bool any = tries > 1000;
            int64_t i = (int64_t)loom_below(&s, (uint64_t)d->n);
            if (!any && !kept(d, i, &s)) continue;
            int w = 1 + (int)loom_below(&s, (uint64_t)o->window); /* the window shrunk, as word2vec's */
            int64_t lo = i - w > 0 ? i - w : 0, hi = i + w < d->n - 1 ? i + w : d->n - 1;
            if (o->kind == LOOM_W2V_SKIPGRAM) {
                int64_t j = lo + (int64_t)loom_below(&s, (uint64_t)(hi - lo)); /* one of the hi − lo neighbours */
                if (j >= i) j++;
                if (!any && !kept(d, j, &s)) continue;
                in[b] = d->ids[i], target = d->ids[j];
                break;
            }
            int k = 0;
            for (int64_t j = lo; j <= hi; j++)
                if (j != i && (any || kept(d, j, &s))) in[b * C + k] = d->ids[j], in_mask[b * C + k++] = 1;
            if (!k) continue;
            for (; k < C; k++) in[b * C + k] = 0, in_mask[b * C + k] = 0;
            target = d->ids[i];
            break;
        }
        out[b * K1] = target;
        for (int k = 1; k < K1; k++) {
            int32_t x = noise_word(d, &s);
            for (int tries = 0; x == target && tries < 100; tries++) x = noise_word(d, &s);
            out[b * K1 + k] = x;
        }
    }
}
