/* The task models (loom/model.h): a stack of any cell with the head of its
 * task — one number, a class per sequence, a label or a symbol per step,
 * the next value of a series — and their batches, accuracies and the
 * sine's k-step-ahead forecasts. */
#include "loom/model.h"
#include "loom/data.h"
#include "loom/plot.h"
#include "loom/random.h"
#include "graph/error.h"
#include "train/exchange.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t task_seed(uint64_t seed, int64_t step)
{
    return step < 0 ? seed * 7919 + (uint64_t)-step : seed * 1000003u + (uint64_t)step + 2;
}

/* The unrolled length. */
static int task_len(const loom_task_opts *o)
{
    return o->kind == LOOM_MODEL_COPY ? LOOM_COPY_SYMBOLS + o->steps + LOOM_COPY_SYMBOLS : o->steps;
}

bool loom_task_reads_data(loom_model_kind k) { return k == LOOM_MODEL_CLASSIFY || k == LOOM_MODEL_TAG; }

/* What is wrong with o, or NULL. */
static const char *bad_opts(const loom_task_opts *o)
{
    if (!o->cell || o->steps < 1 || o->batch < 1 || o->hidden < 1 || o->layers < 0)
        return "needs a cell, steps, batch and hidden >= 1";
    if (o->kind < LOOM_MODEL_ADDING || o->kind > LOOM_MODEL_TAG) return "needs a task: adding, copy, sine, temporal-order, classify or tag";
    if (o->kind == LOOM_MODEL_SINE && o->steps > LOOM_SINE_MAX_STEPS) return "sine: windows of at most 300 steps";
    if (o->kind == LOOM_MODEL_ORDER && o->steps < 10) return "temporal-order: sequences of at least 10 steps";
    if (loom_task_reads_data(o->kind) && (o->vocab < 1 || o->classes < 1 || o->embed < 0))
        return "classify, tag: needs a vocabulary and classes >= 1, embed >= 0";
    if (o->bidirectional && o->kind != LOOM_MODEL_ORDER && !loom_task_reads_data(o->kind))
        return "only temporal-order, classify and tag read both directions";
    if (o->pool != LOOM_POOL_LAST && o->pool != LOOM_POOL_MEAN) return "pool: last or mean";
    return NULL;
}

loom_status loom_task_build(loom_graph *g, loom_task_model *m, const loom_task_opts *o)
{
    memset(m, 0, sizeof *m);
    const char *bad = o ? bad_opts(o) : "needs options";
    if (bad) return loom_graph_fail(g, LOOM_ERR_ARG, "task: %s", bad), LOOM_ERR_ARG;
    m->o = *o;
    loom_model_kind k = o->kind;
    bool data = loom_task_reads_data(k);
    int T = task_len(o), B = o->batch, H = o->hidden;
    int C = k == LOOM_MODEL_COPY ? LOOM_COPY_ALPHABET + 2 : k == LOOM_MODEL_ORDER ? LOOM_ORDER_CLASSES : o->classes;
    int in = k == LOOM_MODEL_ADDING ? 2
             : k == LOOM_MODEL_SINE ? 1
             : k == LOOM_MODEL_COPY ? C
             : k == LOOM_MODEL_ORDER ? LOOM_ORDER_SYMBOLS
             : o->embed ? o->embed : o->vocab;
    loom_rnn_init(g, &m->rnn, &(loom_rnn_opts){.cell = o->cell, .input_size = in, .hidden_size = H,
                                               .layers = o->layers ? o->layers : 1, .stacking = o->stacking,
                                               .bidirectional = o->bidirectional, .unit_forget_bias = o->unit_forget_bias,
                                               .prefix = "rnn."});
    loom_tensor feat;
    if (k == LOOM_MODEL_ADDING || k == LOOM_MODEL_SINE) {
        feat = m->x = loom_input(g, "x", loom_shape3(T, B, in));
        m->y = k == LOOM_MODEL_ADDING ? loom_input(g, "y", loom_shape1(B)) : loom_input(g, "y", loom_shape2(T, B));
    } else {
        m->x = loom_input_i32(g, "x", loom_shape2(T, B));
        bool per_step = k == LOOM_MODEL_COPY || k == LOOM_MODEL_TAG;
        m->y = loom_input_i32(g, "y", per_step ? loom_shape2(T, B) : loom_shape1(B));
        if (data) m->lengths = loom_input_i32(g, "lengths", loom_shape1(B));
        feat = data && o->embed ? loom_embedding(g, "embedding", m->x, o->vocab, o->embed) : loom_one_hot(g, m->x, in);
    }
    loom_rnn_out r = loom_rnn_apply(g, &m->rnn, feat, &(loom_rnn_args){.lengths = m->lengths});
    switch (k) {
    case LOOM_MODEL_ADDING: {
        loom_tensor last = loom_reshape(g, loom_slice(g, r.output, 0, T - 1, 1), loom_shape2(B, H));
        m->out = loom_reshape(g, loom_linear(g, "decoder", last, 1), loom_shape1(B));
        m->loss = loom_mse(g, m->out, m->y);
        break;
    }
    case LOOM_MODEL_SINE:
        m->out = loom_reshape(g, loom_linear(g, "decoder", r.output, 1), loom_shape2(T, B));
        m->loss = loom_mse(g, m->out, m->y);
        break;
    case LOOM_MODEL_COPY:
        m->out = loom_linear(g, "decoder", r.output, C);
        m->loss = loom_cross_entropy(g, m->out, m->y, LOOM_NO_MASK);
        break;
    case LOOM_MODEL_TAG:
        m->out = loom_linear(g, "decoder", r.output, C);
        m->loss = loom_cross_entropy(g, m->out, m->y, loom_sequence_mask(g, m->lengths, T));
        break;
    default: /* one class per sequence */
        m->out = loom_linear(g, "decoder", loom_rnn_pool(g, &m->rnn, &r, m->lengths, o->pool), C);
        m->loss = loom_cross_entropy(g, m->out, m->y, LOOM_NO_MASK);
    }
    return loom_graph_status(g);
}

size_t loom_task_x_bytes(const loom_task_opts *o)
{
    size_t n = (size_t)task_len(o) * (size_t)o->batch;
    return o->kind == LOOM_MODEL_ADDING ? n * 2 * sizeof(float) : n * 4;
}

size_t loom_task_y_bytes(const loom_task_opts *o)
{
    bool per_step = o->kind == LOOM_MODEL_COPY || o->kind == LOOM_MODEL_TAG || o->kind == LOOM_MODEL_SINE;
    return (per_step ? (size_t)task_len(o) : 1) * (size_t)o->batch * 4; /* f32 or i32 */
}

/* Windows of T + 1 points of the series starting in [lo, hi], time-major:
 * x the first T, y the last T. */
static void sine_windows(const float *series, int T, int B, int lo, int hi, uint64_t *s, float *x, float *y)
{
    for (int b = 0; b < B; b++) {
        int i = lo + (int)loom_below(s, (uint64_t)(hi - lo + 1));
        for (int t = 0; t < T; t++) x[(size_t)t * B + b] = series[i + t], y[(size_t)t * B + b] = series[i + t + 1];
    }
}

void loom_task_batch(const loom_task_opts *o, uint64_t seed, int64_t step, void *x, void *y)
{
    uint64_t s = task_seed(seed, step);
    switch (o->kind) {
    case LOOM_MODEL_ADDING: loom_task_adding(o->steps, o->batch, s, x, y); break;
    case LOOM_MODEL_COPY: loom_task_copy(o->steps, LOOM_COPY_SYMBOLS, LOOM_COPY_ALPHABET, o->batch, s, x, y); break;
    case LOOM_MODEL_ORDER: loom_task_order(o->steps, o->batch, s, x, y); break;
    case LOOM_MODEL_SINE: {
        float series[LOOM_SINE_POINTS];
        loom_task_sine_series(seed, LOOM_SINE_POINTS, series);
        int T = o->steps;
        uint64_t pick = loom_mix(s);
        if (step < 0) sine_windows(series, T, o->batch, LOOM_SINE_TRAIN, LOOM_SINE_POINTS - T - 1, &pick, x, y);
        else sine_windows(series, T, o->batch, 0, LOOM_SINE_TRAIN - T - 1, &pick, x, y);
        break;
    }
    default: break; /* read from a file */
    }
}

/* A rank's columns of a buffer of rows × B_all × inner 4-byte elements. */
static void columns(const char *all, char *mine, size_t bytes, int B_all, int B, int rank, int inner)
{
    size_t row = (size_t)B_all * (size_t)inner * 4, part = (size_t)B * (size_t)inner * 4;
    for (size_t r = 0; r < bytes / row; r++) memcpy(mine + r * part, all + r * row + (size_t)rank * part, part);
}

loom_status loom_task_batch_shard(const loom_task_opts *o, uint64_t seed, int64_t step, int rank, int ranks, void *x, void *y)
{
    if (ranks <= 1) return loom_task_batch(o, seed, step, x, y), LOOM_OK;
    loom_task_opts g = *o;
    g.batch = o->batch * ranks;
    size_t xb = loom_task_x_bytes(&g), yb = loom_task_y_bytes(&g);
    char *gx = malloc(xb), *gy = malloc(yb);
    if (gx && gy) {
        loom_task_batch(&g, seed, step, gx, gy); /* x (rows, B, 1 or 2), y (rows or 1, B): time-major */
        columns(gx, x, xb, g.batch, o->batch, rank, o->kind == LOOM_MODEL_ADDING ? 2 : 1);
        columns(gy, y, yb, g.batch, o->batch, rank, 1);
    }
    free(gx), free(gy);
    return gx && gy ? LOOM_OK : LOOM_ERR_NOMEM;
}

static int argmax(const float *l, int C)
{
    int best = 0;
    for (int k = 1; k < C; k++) best = l[k] > l[best] ? k : best;
    return best;
}

double loom_task_accuracy(const loom_task_opts *o, const float *out, const void *y, const int32_t *lengths)
{
    int B = o->batch, L = task_len(o);
    const int32_t *yi = y;
    int64_t hits = 0, total = 0;
    switch (o->kind) {
    case LOOM_MODEL_SINE: return NAN;
    case LOOM_MODEL_ADDING:
        for (int b = 0; b < B; b++) hits += fabsf(out[b] - ((const float *)y)[b]) < 0.04f, total++;
        break;
    case LOOM_MODEL_COPY:
        for (int t = L - LOOM_COPY_SYMBOLS; t < L; t++)
            for (int b = 0; b < B; b++)
                hits += argmax(out + ((size_t)t * B + b) * (LOOM_COPY_ALPHABET + 2), LOOM_COPY_ALPHABET + 2) == yi[t * B + b], total++;
        break;
    case LOOM_MODEL_TAG:
        for (int b = 0; b < B; b++)
            for (int t = 0; t < L && lengths && t < lengths[b]; t++) {
                int32_t gold = yi[(size_t)t * B + b];
                if (gold == LOOM_EOS) continue;
                hits += argmax(out + ((size_t)t * B + b) * o->classes, o->classes) == gold, total++;
            }
        break;
    default: {
        int C = o->kind == LOOM_MODEL_ORDER ? LOOM_ORDER_CLASSES : o->classes;
        for (int b = 0; b < B; b++) hits += argmax(out + (size_t)b * C, C) == yi[b], total++;
    }
    }
    return total ? (double)hits / (double)total : 0;
}

loom_status loom_task_evaluate(loom_trainer *t, const loom_task_model *m, uint64_t seed, int batches, void *x, void *y,
                               double *loss, double *accuracy)
{
    if (batches < 1 || loom_task_reads_data(m->o.kind)) return LOOM_ERR_ARG;
    loom_comm *c = loom_trainer_comm(t);
    double sum = 0, hits = 0;
    loom_status st = LOOM_OK;
    for (int k = 0; k < batches && !st; k++) {
        double l;
        if (!(st = loom_task_batch_shard(&m->o, seed, LOOM_TASK_HELD_OUT - k, loom_comm_rank(c), loom_comm_size(c), x, y))) {
            loom_trainer_eval_begin(t);
            st = loom_trainer_eval_batch(t, &l);
        }
        if (!st) sum += l, hits += loom_task_accuracy(&m->o, loom_trainer_output(t, m->out), y, NULL);
    }
    /* batches of one size: the mean of the means; with ranks, over the ranks too (shares of one size) */
    double mean_loss = sum / batches, mean_hits = hits / batches;
    bool stop = false;
    if (c && ((st = loom_comm_step(c, st, &mean_loss, NULL, &stop, NULL)) || (st = loom_comm_step(c, st, &mean_hits, NULL, &stop, NULL))))
        return st;
    if (st) return st;
    *loss = mean_loss, *accuracy = mean_hits;
    return LOOM_OK;
}

/* ---- classify, tag: the lines ---- */

loom_status loom_task_lines_read(loom_task_lines *l, loom_model_kind kind, const loom_task_data *d, const loom_vocab *const *vocab,
                                 bool whole, loom_error *err)
{
    memset(l, 0, sizeof *l);
    if (!loom_task_reads_data(kind) || !d || !d->path) return loom_error_set(err, LOOM_ERR_ARG, "task lines: a classify or tag model's file");
    loom_pairs_opts po = {.kind = kind == LOOM_MODEL_CLASSIFY ? LOOM_PAIRS_LABELLED : LOOM_PAIRS_TAGGED, .num_steps = d->steps,
                          .min_freq = d->min_freq, .valid_frac = d->valid || whole ? 0 : 0.1, .keep_order = whole,
                          .chars = d->chars, .seed = d->seed};
    if (vocab) po.vocab[0] = vocab[0], po.vocab[1] = vocab[1];
    if (!(l->pairs = loom_pairs_new(&po))) return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    loom_status st = loom_pairs_read(l->pairs, d->path);
    if (st) return loom_error_set(err, st, "%s", loom_pairs_error(l->pairs));
    l->held = l->pairs, l->held_part = !whole;
    if (whole) return LOOM_OK; /* every line scored */
    if (d->valid) {
        po.vocab[0] = loom_pairs_vocab(l->pairs, 0), po.vocab[1] = loom_pairs_vocab(l->pairs, 1), po.keep_order = true;
        if (!(l->valid = loom_pairs_new(&po))) return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
        if ((st = loom_pairs_read(l->valid, d->valid))) return loom_error_set(err, st, "%s", loom_pairs_error(l->valid));
        l->held = l->valid, l->held_part = false;
    }
    if (loom_pairs_count(l->pairs, false) < 1 || loom_pairs_count(l->held, l->held_part) < 1)
        return loom_error_set(err, LOOM_ERR_VALUE, "%s: too few lines for a training and a held-out part", d->path);
    return LOOM_OK;
}

void loom_task_lines_free(loom_task_lines *l)
{
    if (l) loom_pairs_free(l->pairs), loom_pairs_free(l->valid), memset(l, 0, sizeof *l);
}

char *loom_task_data_json(const loom_task_data *d)
{
    cJSON *o = cJSON_CreateObject();
    bool ok = o && d->path && cJSON_AddStringToObject(o, "path", d->path) &&
              (!d->valid || cJSON_AddStringToObject(o, "valid", d->valid)) && cJSON_AddNumberToObject(o, "min_freq", d->min_freq) &&
              cJSON_AddStringToObject(o, "tokens", d->chars ? "char" : "word");
    char *s = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}

loom_status loom_task_data_parse(const char *json, loom_task_data *d, char *paths, size_t n, loom_error *err)
{
    cJSON *o = json ? cJSON_Parse(json) : NULL;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "path"), *v = cJSON_GetObjectItemCaseSensitive(o, "valid");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "tokens"), *f = cJSON_GetObjectItemCaseSensitive(o, "min_freq");
    bool ok = cJSON_IsString(p) && strlen(p->valuestring) < n && (!v || (cJSON_IsString(v) && strlen(v->valuestring) < n)) &&
              cJSON_IsString(t) && (!strcmp(t->valuestring, "char") || !strcmp(t->valuestring, "word")) && cJSON_IsNumber(f) &&
              f->valuedouble >= 1 && f->valuedouble <= (double)(1 << 30) && f->valuedouble == floor(f->valuedouble);
    if (ok) {
        strcpy(paths, p->valuestring), d->path = paths;
        d->valid = v ? strcpy(paths + n, v->valuestring) : NULL;
        d->chars = !strcmp(t->valuestring, "char"), d->min_freq = (int)f->valuedouble;
    }
    cJSON_Delete(o);
    return ok ? LOOM_OK : loom_error_set(err, LOOM_ERR_FORMAT, "its data description (loom.data) is missing or bad");
}

loom_status loom_task_bind_pairs(loom_trainer *t, const loom_task_model *m, const loom_pair_batch *buf)
{
    if (!loom_task_reads_data(m->o.kind) || !buf) return LOOM_ERR_ARG;
    loom_status st = loom_trainer_bind(t, m->x, buf->src);
    if (!st) st = loom_trainer_bind(t, m->lengths, buf->src_len);
    if (!st) st = loom_trainer_bind(t, m->y, buf->tgt); /* CLASSIFY: the first B entries, step 0 */
    return st;
}

/* −log softmax(l)[k] */
static double nll(const float *l, int C, int k)
{
    float m = l[0];
    for (int c = 1; c < C; c++) m = l[c] > m ? l[c] : m;
    double z = 0;
    for (int c = 0; c < C; c++) z += exp((double)l[c] - m);
    return log(z) + m - l[k];
}

loom_status loom_task_evaluate_pairs(loom_trainer *t, const loom_task_model *m, loom_pair_batches *b, const loom_pairs *p,
                                     bool valid, double *loss, double *accuracy)
{
    const loom_task_opts *o = &m->o;
    int64_t n = loom_pairs_count(p, valid);
    if (!loom_task_reads_data(o->kind) || n < 1 || loom_pairs_steps(p, 0) != o->steps) return LOOM_ERR_ARG;
    const loom_pair_batch *buf = loom_pair_batches_buffers(b);
    int B = o->batch, T = o->steps, C = o->classes;
    double sum = 0, count = 0, hits = 0, scored = 0;
    for (int64_t first = 0; first < n; first += B) {
        loom_pair_batches_rows(b, p, valid, first);
        double l;
        loom_trainer_eval_begin(t);
        loom_status st = loom_trainer_eval_batch(t, &l);
        if (st) return st;
        const float *out = loom_trainer_output(t, m->out);
        for (int r = 0; r < B && first + r < n; r++) { /* the rows of the part, each once (the last batch wraps) */
            if (o->kind == LOOM_MODEL_CLASSIFY) {
                const float *lr = out + (size_t)r * C;
                int best = 0;
                for (int c = 1; c < C; c++) best = lr[c] > lr[best] ? c : best;
                sum += nll(lr, C, buf->tgt[r]), count++;
                hits += best == buf->tgt[r], scored++;
                continue;
            }
            for (int s = 0; s < T && s < buf->src_len[r]; s++) {
                const float *ls = out + ((size_t)s * B + r) * C;
                int32_t gold = buf->tgt[(size_t)s * B + r];
                sum += nll(ls, C, gold), count++;
                if (gold == LOOM_EOS) continue;
                int best = 0;
                for (int c = 1; c < C; c++) best = ls[c] > ls[best] ? c : best;
                hits += best == gold, scored++;
            }
        }
    }
    *loss = count ? sum / count : NAN, *accuracy = scored ? hits / scored : NAN;
    return LOOM_OK;
}

loom_status loom_task_forecast(loom_trainer *t, const loom_task_model *m, uint64_t seed, const int *ks, int n_ks, float *pred,
                               double *mse)
{
    const loom_task_opts *o = &m->o;
    if (o->kind != LOOM_MODEL_SINE || n_ks < 1 || !ks || !pred || !mse) return LOOM_ERR_ARG;
    int T = o->steps, B = o->batch, K = 0;
    for (int h = 0; h < n_ks; h++) {
        if (ks[h] < 1 || ks[h] > LOOM_SINE_TRAIN - T + 1) return LOOM_ERR_ARG; /* x_{j−k} and a whole window before it */
        K = ks[h] > K ? ks[h] : K;
    }
    float *series = malloc(LOOM_SINE_POINTS * sizeof *series), *x = calloc((size_t)T * B, sizeof *x);
    float *y = calloc((size_t)T * B, sizeof *y);
    loom_status st = series && x && y ? LOOM_OK : LOOM_ERR_NOMEM;
    if (!st) st = loom_trainer_bind(t, m->x, x);
    if (!st) st = loom_trainer_bind(t, m->y, y);
    if (st) goto done;
    loom_task_sine_series(seed, LOOM_SINE_POINTS, series);
    for (int64_t i = 0; i < (int64_t)n_ks * LOOM_SINE_POINTS; i++) pred[i] = NAN;
    /* every last observed point i whose forecasts reach a held-out point */
    int first = LOOM_SINE_TRAIN - K > T - 1 ? LOOM_SINE_TRAIN - K : T - 1, last = LOOM_SINE_POINTS - 2;
    for (int i0 = first; i0 <= last && !st; i0 += B) {
        for (int b = 0; b < B; b++) {
            int i = i0 + b <= last ? i0 + b : last; /* rows past the end repeat the last one */
            for (int s = 0; s < T; s++) x[(size_t)s * B + b] = series[i - T + 1 + s];
        }
        loom_trainer_eval_begin(t);
        for (int k = 1; k <= K && !st; k++) {
            double loss;
            if ((st = loom_trainer_eval_batch(t, &loss))) break;
            const float *out = loom_trainer_output(t, m->out);
            for (int b = 0; b < B; b++) {
                float p = out[(size_t)(T - 1) * B + b];
                int j = i0 + b + k;
                for (int h = 0; h < n_ks && i0 + b <= last; h++)
                    if (ks[h] == k && j >= LOOM_SINE_TRAIN && j < LOOM_SINE_POINTS) pred[(size_t)h * LOOM_SINE_POINTS + j] = p;
                /* the window moves on by the prediction: x_{i+k} is not observed */
                for (int s = 0; s + 1 < T; s++) x[(size_t)s * B + b] = x[(size_t)(s + 1) * B + b];
                x[(size_t)(T - 1) * B + b] = p;
            }
        }
    }
    for (int h = 0; h < n_ks && !st; h++) {
        double sum = 0;
        for (int j = LOOM_SINE_TRAIN; j < LOOM_SINE_POINTS; j++) {
            double d = pred[(size_t)h * LOOM_SINE_POINTS + j] - series[j];
            sum += d * d;
        }
        mse[h] = sum / (LOOM_SINE_POINTS - LOOM_SINE_TRAIN);
    }
done:
    free(series), free(x), free(y);
    return st;
}

loom_status loom_task_forecast_plot(uint64_t seed, const int *ks, int n_ks, const float *pred, const char *path, loom_error *err)
{
    enum { N = LOOM_SINE_POINTS, H = LOOM_SINE_POINTS - LOOM_SINE_TRAIN };
    if (n_ks < 1 || !ks || !pred) return loom_error_set(err, LOOM_ERR_ARG, "forecast plot: no horizons");
    double *t = malloc(N * sizeof *t), *x = malloc(N * sizeof *x), *p = malloc((size_t)n_ks * H * sizeof *p);
    float *series = malloc(N * sizeof *series);
    loom_series *s = malloc(((size_t)n_ks + 1) * sizeof *s);
    char(*names)[32] = malloc((size_t)n_ks * sizeof *names);
    loom_status st = t && x && p && series && s && names ? LOOM_OK : loom_error_set(err, LOOM_ERR_NOMEM, "forecast plot: out of memory");
    if (!st) {
        loom_task_sine_series(seed, N, series);
        for (int j = 0; j < N; j++) t[j] = j + 1, x[j] = series[j];
        s[0] = (loom_series){"data", t, x, N};
        for (int h = 0; h < n_ks; h++) { /* each horizon's forecasts of the held-out points */
            for (int j = 0; j < H; j++) p[(size_t)h * H + j] = pred[(size_t)h * N + LOOM_SINE_TRAIN + j];
            snprintf(names[h], sizeof names[h], "%d-step preds", ks[h]);
            s[h + 1] = (loom_series){names[h], t + LOOM_SINE_TRAIN, p + (size_t)h * H, H};
        }
        st = loom_plot_series(s, n_ks + 1,
                              &(loom_plot_opts){.title = "k-step-ahead predictions of the held-out points", .xlabel = "time",
                                                .ylabel = "x", .linear_y = true},
                              path, err);
    }
    free(t), free(x), free(p), free(series), free(s), free(names);
    return st;
}
