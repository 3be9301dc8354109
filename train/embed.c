/* Using word vectors (loom/embed.h): nearest neighbours and analogies by
 * cosine, the word2vec text format, and t-SNE maps. */
#include "loom/embed.h"
#include "loom/plot.h"
#include "loom/random.h"
#include "io/atomic.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double norm(const float *x, int E)
{
    double s = 0;
    for (int k = 0; k < E; k++) s += (double)x[k] * x[k];
    return sqrt(s);
}

int loom_embed_nearest(const float *vectors, int V, int E, const float *q, int k, const int32_t *skip, int n_skip, int32_t *ids,
                       float *sims)
{
    double nq = norm(q, E);
    int m = 0;
    for (int w = LOOM_UNK + 1; w < V && k > 0; w++) {
        bool skipped = false;
        for (int i = 0; i < n_skip; i++) skipped = skipped || skip[i] == w;
        const float *x = vectors + (size_t)w * E;
        double nx = norm(x, E), dot = 0;
        if (skipped || nx == 0 || nq == 0) continue;
        for (int j = 0; j < E; j++) dot += (double)q[j] * x[j];
        float c = (float)(dot / (nq * nx));
        if (m == k && c <= sims[k - 1]) continue;
        int at = m < k ? m++ : k - 1; /* insertion: most similar first, ties by the lower id */
        for (; at > 0 && sims[at - 1] < c; at--) sims[at] = sims[at - 1], ids[at] = ids[at - 1];
        sims[at] = c, ids[at] = w;
    }
    return m;
}

int loom_embed_analogy(const float *vectors, int V, int E, int32_t a, int32_t b, int32_t c, int k, int32_t *ids, float *sims)
{
    if (a < 0 || b < 0 || c < 0 || a >= V || b >= V || c >= V) return 0;
    float *q = calloc((size_t)E, sizeof *q);
    if (!q) return 0;
    const int32_t w[3] = {a, b, c};
    const double sign[3] = {-1, 1, 1};
    for (int i = 0; i < 3; i++) { /* b − a + c of unit vectors */
        const float *x = vectors + (size_t)w[i] * E;
        double n = norm(x, E);
        for (int j = 0; n > 0 && j < E; j++) q[j] += (float)(sign[i] * x[j] / n);
    }
    int m = loom_embed_nearest(vectors, V, E, q, k, w, 3, ids, sims);
    free(q);
    return m;
}

loom_status loom_embed_load(const char *path, loom_vocab **v, float **vectors, int *V, int *E, loom_error *err)
{
    *v = NULL, *vectors = NULL;
    loom_st *f = loom_st_new();
    if (!f) return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    loom_status st = loom_st_read(f, path);
    if (st) loom_error_set(err, st, "%s", loom_st_error(f));
    const loom_st_tensor *t = st ? NULL : loom_st_get(f, "embedding.weight");
    const char *vs = st ? NULL : loom_st_meta(f, "loom.vocab") ? loom_st_meta(f, "loom.vocab") : loom_st_meta(f, "loom.src_vocab");
    if (!st && (!t || t->dtype != LOOM_F32 || t->shape.rank != 2 || t->shape.d[0] < 2 || t->shape.d[1] < 1))
        st = loom_error_set(err, LOOM_ERR_FORMAT, "%s: no word vectors in it (an f32 'embedding.weight' of (words, size): a word2vec "
                                                  "model's, or a language model's trained with --embed)", path);
    if (!st && !(*v = loom_vocab_from_string(vs)))
        st = loom_error_set(err, LOOM_ERR_FORMAT, "%s: no vocabulary (loom.vocab) names its vectors", path);
    if (!st && loom_vocab_size(*v) != t->shape.d[0])
        st = loom_error_set(err, LOOM_ERR_FORMAT, "%s: %d vectors for a vocabulary of %d words", path, t->shape.d[0], loom_vocab_size(*v));
    size_t n = st ? 0 : (size_t)t->shape.d[0] * (size_t)t->shape.d[1];
    if (!st && !(*vectors = malloc(n * sizeof **vectors))) st = loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !st && i < n; i++)
        if (!isfinite(((const float *)t->data)[i])) st = loom_error_set(err, LOOM_ERR_VALUE, "%s: its vectors are not all finite", path);
    if (!st) memcpy(*vectors, t->data, n * sizeof **vectors), *V = t->shape.d[0], *E = t->shape.d[1];
    if (st) loom_vocab_free(*v), free(*vectors), *v = NULL, *vectors = NULL;
    loom_st_free(f);
    return st;
}

loom_status loom_embed_save_word2vec(const char *path, const loom_vocab *v, const float *vectors, int V, int E, loom_error *err)
{
    if (!v || loom_vocab_size(v) != V || E < 1) return loom_error_set(err, LOOM_ERR_ARG, "word2vec format: a vocabulary of %d words", V);
    int first = loom_vocab_first_word(v), words = V > first ? V - first : 0; /* <unk> and the specials are not words */
    loom_atomic a;
    loom_status st = loom_atomic_open(&a, path, err);
    if (st) return st;
    fprintf(a.f, "%d %d\n", words, E);
    for (int w = first; w < V; w++) {
        for (const char *t = loom_vocab_token(v, w); *t; t++) fputc(*t == ' ' || *t == '\n' || *t == '\t' ? '_' : *t, a.f);
        for (int j = 0; j < E; j++) fprintf(a.f, " %.6g", vectors[(size_t)w * E + j]);
        fputc('\n', a.f);
    }
    return loom_atomic_commit(&a, err);
}

loom_status loom_embed_plot_tsne(const float *vectors, const loom_vocab *v, int E, int words, double perplexity, const char *title,
                                 const char *path, int *mapped, double *kl, loom_error *err)
{
    int V = v ? loom_vocab_size(v) : 0, first = v ? loom_vocab_first_word(v) : 0;
    int n = V - first < words ? V - first : words;
    if (!vectors || n < 2 || E < 1)
        return loom_error_set(err, LOOM_ERR_ARG, "t-SNE: fewer than 2 words to map (%d of a vocabulary of %d)", n > 0 ? n : 0, V);
    float *X = malloc((size_t)n * E * sizeof *X), *Y = malloc(2 * (size_t)n * sizeof *Y);
    const char **labels = malloc((size_t)n * sizeof *labels);
    loom_status st = X && Y && labels ? LOOM_OK : loom_error_set(err, LOOM_ERR_NOMEM, "t-SNE: out of memory");
    for (int i = 0; !st && i < n; i++) /* the n most frequent words */
        memcpy(X + (size_t)i * E, vectors + (size_t)(first + i) * E, (size_t)E * sizeof *X), labels[i] = loom_vocab_token(v, first + i);
    if (!st && (st = loom_tsne(X, n, E, &(loom_tsne_opts){.perplexity = perplexity}, Y, kl)))
        loom_error_set(err, st, "t-SNE: out of memory");
    char full[512];
    snprintf(full, sizeof full, "%s: t-SNE of the %d most frequent words (perplexity %g)", title ? title : "word vectors", n,
             perplexity > 0 ? perplexity : 30);
    if (!st) st = loom_plot_points(&(loom_points){Y, n, labels, full}, path, err);
    if (mapped) *mapped = n;
    free(X), free(Y), free(labels);
    return st;
}

/* ---- t-SNE ---- */

/* Row i's conditional affinities p_j|i = exp(−β d_ij) / Σ, β found by
 * bisection so that the entropy is log(perplexity). */
static void affinities(const double *D, int n, int i, double perplexity, double *p)
{
    double lo = 0, hi = INFINITY, beta = 1, target = log(perplexity);
    for (int it = 0; it < 100; it++) {
        double z = 0, h = 0;
        for (int j = 0; j < n; j++) z += p[j] = j == i ? 0 : exp(-beta * D[(size_t)i * n + j]);
        if (z <= 0) z = 1e-300;
        for (int j = 0; j < n; j++) h += beta * D[(size_t)i * n + j] * p[j];
        h = log(z) + h / z; /* the entropy H = log Z + β Σ p d / Z */
        for (int j = 0; j < n; j++) p[j] /= z;
        if (fabs(h - target) < 1e-5) break;
        if (h > target) lo = beta, beta = isinf(hi) ? beta * 2 : (beta + hi) / 2;
        else hi = beta, beta = (beta + lo) / 2;
    }
}

loom_status loom_tsne(const float *X, int n, int d, const loom_tsne_opts *opts, float *Y, double *kl)
{
    if (n < 2 || n > LOOM_TSNE_MAX || d < 1 || !X || !Y) return LOOM_ERR_ARG;
    loom_tsne_opts o = opts ? *opts : (loom_tsne_opts){0};
    double perp = o.perplexity > 0 ? o.perplexity : 30, most = (n - 1) / 3.0;
    if (perp > most) perp = most > 1 ? most : 1;
    int iters = o.iterations > 0 ? o.iterations : 1000;
    double lr = o.learning_rate > 0 ? o.learning_rate : fmax((double)n / 12 / 4, 50);
    size_t nn = (size_t)n * n;
    double *P = malloc(nn * sizeof *P), *D = malloc(nn * sizeof *D), *Q = malloc(nn * sizeof *Q);
    double *y = malloc(2 * (size_t)n * sizeof *y), *vel = calloc(2 * (size_t)n, sizeof *vel), *gain = malloc(2 * (size_t)n * sizeof *gain);
    double *grad = malloc(2 * (size_t)n * sizeof *grad);
    loom_status st = P && D && Q && y && vel && gain && grad ? LOOM_OK : LOOM_ERR_NOMEM;
    if (st) goto done;
    /* squared distances, scaled by the largest (the bisection's β starts at 1 either way) */
    double dmax = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int k = 0; k < d; k++) {
                double t = (double)X[(size_t)i * d + k] - X[(size_t)j * d + k];
                s += t * t;
            }
            D[(size_t)i * n + j] = s, dmax = s > dmax ? s : dmax;
        }
    for (size_t k = 0; dmax > 0 && k < nn; k++) D[k] /= dmax;
    for (int i = 0; i < n; i++) affinities(D, n, i, perp, P + (size_t)i * n);
    for (int i = 0; i < n; i++) /* p_ij = (p_j|i + p_i|j) / 2n */
        for (int j = i + 1; j < n; j++) {
            double p = fmax((P[(size_t)i * n + j] + P[(size_t)j * n + i]) / (2.0 * n), 1e-12);
            P[(size_t)i * n + j] = P[(size_t)j * n + i] = p;
        }
    for (int i = 0; i < n; i++) P[(size_t)i * n + i] = 0;
    uint64_t s = o.seed * 0x9E3779B97F4A7C15ull + 31;
    for (int k = 0; k < 2 * n; k++) { /* N(0, 1e-4) */
        double u = 1 - loom_uniform(&s), v = loom_uniform(&s);
        y[k] = 1e-2 * sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
        gain[k] = 1;
    }
    double divergence = 0;
    for (int it = 0; it < iters; it++) {
        double exaggeration = it < 250 ? 12 : 1, momentum = it < 250 ? 0.5 : 0.8, z = 0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                double dx = y[2 * i] - y[2 * j], dy = y[2 * i + 1] - y[2 * j + 1];
                double q = i == j ? 0 : 1 / (1 + dx * dx + dy * dy);
                Q[(size_t)i * n + j] = q, z += q;
            }
        /* ∂C/∂y_i = 4 Σ_j (e p_ij − q_ij) (1 + ‖y_i − y_j‖²)⁻¹ (y_i − y_j), q_ij = w_ij / Z */
        for (int i = 0; i < n; i++) {
            double gx = 0, gy = 0;
            for (int j = 0; j < n; j++) {
                double w = Q[(size_t)i * n + j], f = (exaggeration * P[(size_t)i * n + j] - w / z) * w;
                gx += f * (y[2 * i] - y[2 * j]), gy += f * (y[2 * i + 1] - y[2 * j + 1]);
            }
            grad[2 * i] = 4 * gx, grad[2 * i + 1] = 4 * gy;
        }
        for (int k = 0; k < 2 * n; k++) { /* gains: grow while the step keeps its sign, shrink when it turns */
            gain[k] = (grad[k] > 0) != (vel[k] > 0) ? gain[k] + 0.2 : fmax(gain[k] * 0.8, 0.01);
            vel[k] = momentum * vel[k] - lr * gain[k] * grad[k];
            y[k] += vel[k];
        }
        double mx = 0, my = 0; /* centred */
        for (int i = 0; i < n; i++) mx += y[2 * i], my += y[2 * i + 1];
        for (int i = 0; i < n; i++) y[2 * i] -= mx / n, y[2 * i + 1] -= my / n;
        if (it == iters - 1) {
            divergence = 0;
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++)
                    if (i != j) {
                        double p = P[(size_t)i * n + j], q = fmax(Q[(size_t)i * n + j] / z, 1e-12);
                        divergence += p * log(p / q);
                    }
        }
    }
    for (int k = 0; k < 2 * n; k++) Y[k] = (float)y[k];
    if (kl) *kl = divergence;
done:
    free(P), free(D), free(Q), free(y), free(vel), free(gain), free(grad);
    return st;
}
