/* Word embeddings (loom/embed.h): word2vec's graph (gradients checked),
 * its batches, that it learns which words go together, nearest words and
 * analogies, the word2vec text format, t-SNE, and the linear schedule. */
#include "helpers.h"
#include "loom/embed.h"

#include <unistd.h>

/* The loss's gradients with respect to both tables check, for skip-gram
 * and CBOW (a partly empty context too). */
static void check_w2v(loom_w2v_kind kind)
{
    enum { V = 7, E = 4, B = 3, W = 2, K = 2 };
    loom_graph *g = loom_graph_new();
    loom_w2v m;
    cr_assert_eq(loom_w2v_build(g, &m, &(loom_w2v_opts){.kind = kind, .vocab = V, .dim = E, .window = W, .negatives = K, .batch = B}),
                 LOOM_OK, "%s", loom_graph_error(g));
    int32_t in_sg[B] = {1, 4, 6}, in_cb[B * 2 * W] = {1, 2, 3, 0, 4, 5, 0, 0, 6, 1, 2, 3}, out[B * (1 + K)] = {2, 3, 5, 1, 6, 6, 3, 2, 1};
    float mask[B * 2 * W] = {1, 1, 1, 0, 1, 1, 0, 0, 1, 1, 1, 1};
    loom_binding fixed[3] = {{m.in, kind == LOOM_W2V_CBOW ? in_cb : in_sg}, {m.out, out}, {m.in_mask, mask}};
    loom_binding wrt[2] = {{m.embedding, rnd_buf(V * E, -1, 1)}, {m.output, rnd_buf(V * E, -1, 1)}};
    loom_gradcheck_result r;
    cr_assert_eq(loom_gradcheck(g, m.loss, wrt, 2, fixed, kind == LOOM_W2V_CBOW ? 3 : 2, NULL, &r), LOOM_OK, "%s", loom_graph_error(g));
    cr_assert(r.passed, "wrt[%d] element %lld: analytic %g numeric %g", r.worst_tensor, (long long)r.worst_index, r.worst_analytic,
              r.worst_numeric);
    free(wrt[0].data), free(wrt[1].data);
    loom_graph_free(g);
}
Test(gradcheck, word2vec_skipgram) { check_w2v(LOOM_W2V_SKIPGRAM); }
Test(gradcheck, word2vec_cbow) { check_w2v(LOOM_W2V_CBOW); }

/* A text of two kinds of sentences: words a0..a5 only with each other, b0..b5 with each other. */
static loom_text *two_topics(int sentences)
{
    size_t cap = (size_t)sentences * 64, n = 0;
    char *s = malloc(cap);
    uint64_t z = 5;
    for (int i = 0; i < sentences; i++) {
        char topic = i % 2 ? 'b' : 'a';
        for (int k = 0; k < 6; k++) n += (size_t)snprintf(s + n, cap - n, "%c%d ", topic, (int)loom_below(&z, 6));
        n += (size_t)snprintf(s + n, cap - n, ". ");
    }
    loom_text *t = loom_text_new(&(loom_text_opts){.kind = LOOM_TOKENS_WORD});
    cr_assert_eq(loom_text_parse(t, s, n), LOOM_OK);
    free(s);
    return t;
}

/* Batches: from (seed, step) alone; skip-gram's context within the window
 * of its centre's position; CBOW's slots and mask; noise words never the
 * word to predict; subsampling drops the most frequent word most. */
Test(word2vec, batches)
{
    loom_text *t = two_topics(400);
    int64_t n;
    const int32_t *ids = loom_text_ids(t, &n);
    const loom_vocab *v = loom_text_vocab(t);
    loom_w2v_opts o = {.vocab = loom_vocab_size(v), .dim = 8, .window = 2, .negatives = 3, .batch = 512, .subsample = 0};
    loom_error err = {0};
    loom_w2v_data *d = loom_w2v_data_new(ids, n, v, &o, &err);
    cr_assert(d, "%s", err.msg);
    int32_t in[512], out[512 * 4], again[512 * 4];
    loom_w2v_batch(d, &o, 3, 7, in, NULL, out);
    loom_w2v_batch(d, &o, 3, 7, in, NULL, again);
    cr_assert(!memcmp(out, again, sizeof out), "the same step, the same batch");
    int32_t dot = loom_vocab_id(v, ".");
    for (int b = 0; b < 512; b++)
        for (int k = 1; k < 4; k++) cr_assert_neq(out[b * 4 + k], out[b * 4], "a noise word is not the word to predict");
    /* the same sentence: a word's context within distance 1 is never the other topic unless a full stop is between */
    o.window = 1;
    loom_w2v_batch(d, &o, 3, 8, in, NULL, out);
    for (int b = 0; b < 512; b++) {
        const char *c = loom_vocab_token(v, in[b]), *x = loom_vocab_token(v, out[b * 4]);
        if (in[b] != dot && out[b * 4] != dot) cr_assert_eq(c[0], x[0], "%s next to %s", c, x);
    }
    /* CBOW */
    o.kind = LOOM_W2V_CBOW, o.window = 2;
    int32_t cin[512 * 4];
    float mask[512 * 4];
    loom_w2v_batch(d, &o, 3, 9, cin, mask, out);
    for (int b = 0; b < 512; b++) {
        int k = 0;
        for (int s = 0; s < 4; s++) k += mask[b * 4 + s] == 1;
        cr_assert(k >= 1 && k <= 4);
        for (int s = k; s < 4; s++) cr_assert(mask[b * 4 + s] == 0 && cin[b * 4 + s] == 0, "empty slots last");
    }
    loom_w2v_data_free(d);
    /* subsampling: '.' is 1/7 of the text; at t = 1e-3 it is kept with (√(f/t) + 1)·t/f ≈ 0.09 */
    o.kind = LOOM_W2V_SKIPGRAM, o.subsample = 1e-3;
    d = loom_w2v_data_new(ids, n, v, &o, &err);
    int dots = 0;
    for (int s = 0; s < 20; s++) {
        loom_w2v_batch(d, &o, 1, s, in, NULL, out);
        for (int b = 0; b < 512; b++) dots += in[b] == dot;
    }
    double f = (double)loom_vocab_count(v, dot) / (double)n, keep = (sqrt(f / 1e-3) + 1) * 1e-3 / f;
    double share = f * keep / (f * keep + (1 - f) * fmin(1, (sqrt((1 - f) / 12 / 1e-3) + 1) * 1e-3 / ((1 - f) / 12)));
    cr_assert(fabs(dots / (20.0 * 512) - share) < 0.03, "centres that are '.': %g, expected about %g", dots / (20.0 * 512), share);
    loom_w2v_data_free(d);
    /* too little text */
    cr_assert_null(loom_w2v_data_new(ids, 1, v, &o, &err));
    cr_assert(strstr(err.msg, "too few"), "%s", err.msg);
    loom_text_free(t);
}

/* Trained through the trainer, skip-gram puts each a-word's nearest words
 * among the a-words (and b's among b's). */
Test(word2vec, learns_which_words_go_together)
{
    loom_text *t = two_topics(600);
    int64_t n;
    const int32_t *ids = loom_text_ids(t, &n);
    const loom_vocab *v = loom_text_vocab(t);
    for (int kind = 0; kind < 2; kind++) {
        loom_w2v_opts o = {.kind = (loom_w2v_kind)kind, .vocab = loom_vocab_size(v), .dim = 16, .window = 2, .negatives = 4,
                           .batch = 64, .subsample = 0};
        loom_error err = {0};
        loom_w2v_data *d = loom_w2v_data_new(ids, n, v, &o, &err);
        loom_graph *g = loom_graph_new();
        loom_w2v m;
        cr_assert_eq(loom_w2v_build(g, &m, &o), LOOM_OK);
        loom_store *s = loom_store_new(g);
        loom_store_init(s, 2);
        loom_trainer *tr = loom_trainer_new(g, s, &(loom_trainer_opts){.loss = m.loss, .optim = {.kind = LOOM_OPT_ADAM, .lr = 0.02f}}, &err);
        cr_assert(tr, "%s", err.msg);
        int32_t in[64 * 4], out[64 * 5];
        float mask[64 * 4];
        loom_trainer_bind(tr, m.in, in), loom_trainer_bind(tr, m.out, out);
        if (kind) loom_trainer_bind(tr, m.in_mask, mask);
        for (int step = 0; step < 400; step++) {
            loom_w2v_batch(d, &o, 1, step, in, mask, out);
            cr_assert_eq(loom_trainer_step(tr, NULL), LOOM_OK, "%s", loom_trainer_error(tr));
        }
        const float *E = loom_store_data(s, m.embedding);
        for (int w = 1; w < o.vocab; w++) {
            const char *word = loom_vocab_token(v, w);
            if (word[0] != 'a' && word[0] != 'b') continue;
            int32_t near[3];
            float sims[3];
            cr_assert_eq(loom_embed_nearest(E, o.vocab, o.dim, E + (size_t)w * o.dim, 3, &(int32_t){w}, 1, near, sims), 3);
            for (int k = 0; k < 3; k++)
                cr_assert_eq(loom_vocab_token(v, near[k])[0], word[0], "%s: %s near %s (%g)", kind ? "CBOW" : "skip-gram", word,
                             loom_vocab_token(v, near[k]), sims[k]);
        }
        loom_trainer_free(tr), loom_store_free(s), loom_graph_free(g), loom_w2v_data_free(d);
    }
    loom_text_free(t);
}

/* Nearest by cosine (most similar first, the query's own word and <unk>
 * skipped), and the analogy man : king :: woman : queen on hand-made
 * vectors (royalty, gender, noise). */
Test(embed, nearest_and_analogy)
{
    enum { V = 6, E = 3 };
    /* <unk>, man, woman, king, queen, apple */
    const float vec[V * E] = {5, 5, 5, 1, 0, 0.1f, 0, 1, 0.1f, 1, 0, 1, 0, 1, 1.05f, 0.3f, 0.3f, -1};
    int32_t ids[5];
    float sims[5];
    int k = loom_embed_nearest(vec, V, E, vec + 3 * E, 5, &(int32_t){3}, 1, ids, sims);
    cr_assert_eq(k, 4, "every word but <unk> and king");
    for (int i = 1; i < k; i++) cr_assert(sims[i] <= sims[i - 1]);
    k = loom_embed_analogy(vec, V, E, 1, 3, 2, 2, ids, sims);
    cr_assert_eq(k, 2);
    cr_assert_eq(ids[0], 4, "man : king :: woman : queen (got %d)", ids[0]);
    cr_assert_eq(loom_embed_analogy(vec, V, E, 1, 3, 9, 2, ids, sims), 0, "an id out of range");
}

/* The word2vec text format: "V E", then a word and its numbers per line,
 * specials left out; and loom_embed_load reads vectors back from a file
 * holding embedding.weight and a vocabulary. */
Test(embed, word2vec_format_and_load)
{
    loom_text *t = loom_text_new(&(loom_text_opts){.kind = LOOM_TOKENS_WORD});
    cr_assert_eq(loom_text_parse(t, "b a b c b", 9), LOOM_OK);
    const loom_vocab *v = loom_text_vocab(t);
    int V = loom_vocab_size(v); /* <unk> b a c */
    float vec[4 * 2] = {0, 0, 1, 2, 3, 4, 5.5f, -6};
    char path[] = "/tmp/loom_w2v_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    loom_error err = {0};
    cr_assert_eq(loom_embed_save_word2vec(path, v, vec, V, 2, &err), LOOM_OK, "%s", err.msg);
    FILE *f = fopen(path, "r");
    char line[128];
    cr_assert(fgets(line, sizeof line, f) && !strcmp(line, "3 2\n"), "%s", line);
    cr_assert(fgets(line, sizeof line, f) && !strcmp(line, "b 1 2\n"), "%s", line);
    cr_assert(fgets(line, sizeof line, f) && !strcmp(line, "a 3 4\n"), "%s", line);
    cr_assert(fgets(line, sizeof line, f) && !strcmp(line, "c 5.5 -6\n"), "%s", line);
    fclose(f);
    loom_st *st = loom_st_new();
    char *vs = loom_vocab_to_string(v);
    loom_st_add(st, "embedding.weight", LOOM_F32, loom_shape2(V, 2), vec);
    loom_st_set_meta(st, "loom.vocab", vs);
    cr_assert_eq(loom_st_write(st, path), LOOM_OK);
    loom_vocab *back;
    float *bv;
    int bV, bE;
    cr_assert_eq(loom_embed_load(path, &back, &bv, &bV, &bE, &err), LOOM_OK, "%s", err.msg);
    cr_assert(bV == V && bE == 2 && !memcmp(bv, vec, sizeof vec) && loom_vocab_id(back, "c") == loom_vocab_id(v, "c"));
    loom_vocab_free(back), free(bv);
    loom_st_free(st);
    st = loom_st_new(); /* vectors without a vocabulary */
    loom_st_add(st, "embedding.weight", LOOM_F32, loom_shape2(V, 2), vec);
    loom_st_write(st, path);
    cr_assert_eq(loom_embed_load(path, &back, &bv, &bV, &bE, &err), LOOM_ERR_FORMAT);
    cr_assert(strstr(err.msg, "no vocabulary"), "%s", err.msg);
    loom_st_free(st), free(vs);
    unlink(path);
    loom_text_free(t);
}

/* t-SNE keeps clusters apart: three tight clusters in 10 dimensions map to
 * three groups, every point nearer its own group's than any other's. */
Test(embed, tsne_separates_clusters)
{
    enum { N = 60, D = 10 };
    float X[N * D], Y[N * 2];
    uint64_t z = 3;
    for (int i = 0; i < N; i++)
        for (int k = 0; k < D; k++) X[i * D + k] = (float)(k == i % 3 ? 10 : 0) + (float)(loom_uniform(&z) - 0.5);
    double kl;
    cr_assert_eq(loom_tsne(X, N, D, &(loom_tsne_opts){.perplexity = 10, .iterations = 500, .seed = 1}, Y, &kl), LOOM_OK);
    cr_assert(isfinite(kl) && kl >= 0, "KL %g", kl);
    for (int i = 0; i < N; i++) {
        double own = INFINITY, other = INFINITY;
        for (int j = 0; j < N; j++) {
            if (j == i) continue;
            double d = hypot(Y[2 * i] - Y[2 * j], Y[2 * i + 1] - Y[2 * j + 1]);
            if (j % 3 == i % 3) own = fmin(own, d);
            else other = fmin(other, d);
        }
        cr_assert(own < other, "point %d: nearest of its cluster %g, of another %g", i, own, other);
    }
    cr_assert_eq(loom_tsne(X, 1, D, NULL, Y, NULL), LOOM_ERR_ARG);
    cr_assert_eq(loom_tsne(X, LOOM_TSNE_MAX + 1, D, NULL, Y, NULL), LOOM_ERR_ARG);
}

/* word2vec's schedule: linear from lr to min_lr over total steps, then min_lr. */
Test(embed, linear_schedule)
{
    loom_schedule s = {.kind = LOOM_SCHED_LINEAR, .total = 100, .min_lr = 0.001f};
    cr_assert_float_eq(loom_schedule_lr(&s, 0.1f, 0), 0.1, 1e-7);
    cr_assert_float_eq(loom_schedule_lr(&s, 0.1f, 50), 0.0505, 1e-6);
    cr_assert_float_eq(loom_schedule_lr(&s, 0.1f, 100), 0.001, 1e-7);
    cr_assert_float_eq(loom_schedule_lr(&s, 0.1f, 500), 0.001, 1e-7);
}

/* A labelled map draws each point as a dot alone: no path from one label's
 * end to the next dot (every filled path of the SVG is an arc, no line). */
Test(embed, points_are_dots_not_lines)
{
    const float xy[6] = {0, 0, 1, 2, 3, 1};
    const char *labels[3] = {"one", "two", "three"};
    char path[] = "/tmp/loom_points_XXXXXX.svg";
    int fd = mkstemps(path, 4);
    close(fd);
    loom_error err = {0};
    cr_assert_eq(loom_plot_points(&(loom_points){xy, 3, labels, "t"}, path, &err), LOOM_OK, "%s", err.msg);
    FILE *f = fopen(path, "r");
    char line[4096];
    int dots = 0;
    while (fgets(line, sizeof line, f)) {
        const char *d = strstr(line, "fill:rgb(12%,47%,71%)");
        if (!d || !(d = strstr(line, " d=\""))) continue;
        dots++;
        cr_assert_null(strstr(d, " L "), "a dot's path draws a line: %s", d);
    }
    fclose(f);
    unlink(path);
    cr_assert_eq(dots, 3);
    /* a vocabulary's most frequent words mapped: as many as it has past <unk> when fewer than asked */
    loom_text *t = loom_text_new(&(loom_text_opts){.kind = LOOM_TOKENS_WORD});
    cr_assert_eq(loom_text_parse(t, "a b c a b a", 11), LOOM_OK);
    float vec[4 * 2] = {0, 0, 1, 0, 0, 1, 1, 1};
    int mapped = 0;
    double kl;
    cr_assert_eq(loom_embed_plot_tsne(vec, loom_text_vocab(t), 2, 300, 1, "w", path, &mapped, &kl, &err), LOOM_OK, "%s", err.msg);
    cr_assert_eq(mapped, 3);
    cr_assert_eq(loom_embed_plot_tsne(vec, loom_text_vocab(t), 2, 1, 1, "w", path, &mapped, &kl, &err), LOOM_ERR_ARG);
    cr_assert(strstr(err.msg, "fewer than 2 words"), "%s", err.msg);
    loom_text_free(t);
    unlink(path);
    float bad[2] = {NAN, 0};
    cr_assert_eq(loom_plot_points(&(loom_points){bad, 1, NULL, NULL}, "/tmp/x.svg", &err), LOOM_ERR_VALUE);
}

/* ---- sampled softmax ---- */

/* The sampled loss by hand for 2 rows, 3 samples (one an accidental hit),
 * and its gradients through h, the decoder's weight and bias. */
Test(sampled_softmax, value_and_gradients)
{
    enum { N = 2, H = 3, V = 6, K = 3 };
    loom_graph *g = loom_graph_new();
    loom_tensor h = loom_input(g, "h", loom_shape2(N, H)), y = loom_input_i32(g, "y", loom_shape1(N));
    loom_dense dec = loom_dense_new(g, "decoder", H, V, true);
    loom_sampled s;
    loom_tensor loss = loom_sampled_softmax(g, dec, h, y, K, &s);
    cr_assert(!loom_graph_failed(g), "%s", loom_graph_error(g));
    cr_assert(s.k == K && s.vocab == V && s.rows == N);
    int32_t yv[N] = {2, 5}, sv[K];
    float slq[K], tlq[N], hits[N * K];
    loom_sampled_draw(&s, 4, 0, yv, sv, slq, tlq, hits);
    sv[0] = 2, sv[1] = 0, sv[2] = 4; /* fixed: sample 0 is row 0's target */
    for (int j = 0; j < K; j++) slq[j] = (float)log(K * log((sv[j] + 2.0) / (sv[j] + 1.0)) / log(V + 1.0));
    for (int n = 0; n < N; n++)
        for (int j = 0; j < K; j++) hits[n * K + j] = sv[j] == yv[n] ? -1e9f : 0;
    float *hv = rnd_buf(N * H, -1, 1), *W = rnd_buf(V * H, -1, 1), *b = rnd_buf(V, -1, 1);
    loom_binding fixed[6] = {{y, yv}, {s.sampled, sv}, {s.sampled_logq, slq}, {s.target_logq, tlq}, {s.hits, hits}};
    loom_binding all[8] = {{h, hv}, {dec.weight, W}, {dec.bias, b}, {y, yv}, {s.sampled, sv}, {s.sampled_logq, slq},
                           {s.target_logq, tlq}, {s.hits, hits}};
    float *got = eval(g, loss, all, 8);
    double want = 0;
    for (int n = 0; n < N; n++) {
        double z[1 + K];
        for (int j = 0; j <= K; j++) {
            int c = j ? sv[j - 1] : yv[n];
            double d = b[c];
            for (int k = 0; k < H; k++) d += (double)hv[n * H + k] * W[c * H + k];
            z[j] = d - (j ? slq[j - 1] : tlq[n]) + (j ? hits[n * K + j - 1] : 0);
        }
        double m = z[0], sum = 0;
        for (int j = 1; j <= K; j++) m = fmax(m, z[j]);
        for (int j = 0; j <= K; j++) sum += exp(z[j] - m);
        want += log(sum) + m - z[0];
    }
    cr_assert_float_eq(got[0], want / N, 1e-5, "%g against %g", got[0], want / N);
    free(got);
    loom_binding wrt[3] = {{h, hv}, {dec.weight, W}, {dec.bias, b}};
    loom_gradcheck_result r;
    cr_assert_eq(loom_gradcheck(g, loss, wrt, 3, fixed, 5, NULL, &r), LOOM_OK, "%s", loom_graph_error(g));
    cr_assert(r.passed, "wrt[%d] element %lld: analytic %g numeric %g", r.worst_tensor, (long long)r.worst_index, r.worst_analytic,
              r.worst_numeric);
    free(hv), free(W), free(b);
    loom_graph_free(g);
}

/* The draw: log-uniform (class 0 with probability log 2 / log(V + 1)),
 * its log expected counts, accidental hits marked; the same step, the same draw. */
Test(sampled_softmax, draw)
{
    enum { V = 1000, K = 64, N = 4 };
    loom_sampled s = {.k = K, .vocab = V, .rows = N};
    int32_t y[N] = {0, 1, 999, 3}, sv[K], again[K];
    float slq[K], tlq[N], hits[N * K], x[K], xt[N], xh[N * K];
    int zeros = 0, draws = 0;
    for (int step = 0; step < 200; step++) {
        loom_sampled_draw(&s, 7, step, y, sv, slq, tlq, hits);
        for (int j = 0; j < K; j++) {
            cr_assert(sv[j] >= 0 && sv[j] < V);
            cr_assert_float_eq(slq[j], log(K * log((sv[j] + 2.0) / (sv[j] + 1.0)) / log(V + 1.0)), 1e-5);
            zeros += sv[j] == 0, draws++;
            for (int n = 0; n < N; n++) cr_assert_eq(hits[n * K + j], sv[j] == y[n] ? -1e9f : 0.0f);
        }
    }
    double p0 = log(2.0) / log(V + 1.0);
    cr_assert(fabs((double)zeros / draws - p0) < 0.01, "class 0 drawn %g of the time, expected %g", (double)zeros / draws, p0);
    loom_sampled_draw(&s, 7, 5, y, sv, slq, tlq, hits);
    loom_sampled_draw(&s, 7, 5, y, again, x, xt, xh);
    cr_assert(!memcmp(sv, again, sizeof sv));
}

/* A language model trained on a sampled softmax through the trainer: its
 * full held-out loss falls; the trainer refuses a sampled softmax without
 * its own batches. */
Test(sampled_softmax, language_model_learns)
{
    const char *text = "the cat sat on the mat and the dog sat on the log and the cat saw the dog on the mat ";
    size_t n = strlen(text);
    char *big = malloc(n * 40 + 1);
    for (int i = 0; i < 40; i++) memcpy(big + i * n, text, n);
    loom_text *t = loom_text_new(&(loom_text_opts){.kind = LOOM_TOKENS_WORD});
    cr_assert_eq(loom_text_parse(t, big, n * 40), LOOM_OK);
    free(big);
    int64_t m;
    const int32_t *ids = loom_text_ids(t, &m);
    int V = loom_vocab_size(loom_text_vocab(t));
    loom_graph *g = loom_graph_new();
    loom_lm lm;
    cr_assert_eq(loom_lm_build(g, &lm, &(loom_lm_opts){.cell = &loom_cell_gru, .vocab = V, .embed = 8, .hidden = 16, .steps = 8,
                                                       .batch = 4, .sampled_softmax = 4}),
                 LOOM_OK, "%s", loom_graph_error(g));
    cr_assert_neq(lm.train_loss.id, lm.loss.id);
    loom_store *s = loom_store_new(g);
    loom_store_init(s, 1);
    loom_batches *b = loom_batches_new(ids, m, 8, 4, LOOM_SAMPLE_RANDOM, 1);
    loom_error err = {0};
    cr_assert_null(loom_trainer_new(g, s, &(loom_trainer_opts){.loss = lm.train_loss, .sampled = &lm.sampled}, &err));
    cr_assert(strstr(err.msg, "sampled softmax needs the trainer's own batches"), "%s", err.msg);
    loom_trainer *tr = loom_trainer_new(g, s,
                                        &(loom_trainer_opts){.loss = lm.train_loss, .eval_loss = lm.loss, .sampled = &lm.sampled,
                                                             .state_in = lm.init, .state_out = lm.out.final, .n_states = 1,
                                                             .optim = {.kind = LOOM_OPT_ADAM, .lr = 0.02f}, .batches = b,
                                                             .tokens = lm.tokens, .targets = lm.targets, .fresh_states = true},
                                        &err);
    cr_assert(tr, "%s", err.msg);
    double before, after;
    cr_assert_eq(loom_trainer_eval_stream(tr, ids, 400, &before), LOOM_OK);
    for (int k = 0; k < 150; k++) cr_assert_eq(loom_trainer_step(tr, NULL), LOOM_OK, "%s", loom_trainer_error(tr));
    cr_assert_eq(loom_trainer_eval_stream(tr, ids, 400, &after), LOOM_OK);
    cr_assert(after < 0.6 * before, "full held-out loss %g → %g", before, after);
    loom_trainer_free(tr), loom_batches_free(b), loom_store_free(s), loom_graph_free(g), loom_text_free(t);
}
