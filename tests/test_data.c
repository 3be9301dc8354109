/* Data: UTF-8 tokenisers, vocabularies, the two minibatch iterators'
 * exact semantics, the synthetic tasks. */
#include "helpers.h"

static loom_text *parse(const char *s, loom_text_opts o)
{
    loom_text *t = loom_text_new(&o);
    cr_assert_eq(loom_text_parse(t, s, strlen(s)), LOOM_OK, "%s", loom_text_error(t));
    return t;
}

static const char *tok(loom_text *t, int64_t i)
{
    int64_t n;
    const int32_t *ids = loom_text_ids(t, &n);
    cr_assert_lt(i, n);
    return loom_vocab_token(loom_text_vocab(t), ids[i]);
}

Test(text, characters_are_code_points)
{
    loom_text *t = parse("Été 北京, été!", (loom_text_opts){.kind = LOOM_TOKENS_CHAR, .lower = true});
    int64_t n;
    loom_text_ids(t, &n);
    cr_assert_eq(n, 12, "one token per code point, not per byte");
    cr_assert_str_eq(tok(t, 0), "é", "lower-casing is Unicode's");
    cr_assert_str_eq(tok(t, 4), "北");
    cr_assert_str_eq(tok(t, 5), "京");
    /* é (4×) is the most frequent, then t (2×) and ' ' (2×) in order of first occurrence */
    const loom_vocab *v = loom_text_vocab(t);
    cr_assert_str_eq(loom_vocab_token(v, 0), "<unk>");
    cr_assert_str_eq(loom_vocab_token(v, 1), "é");
    cr_assert_str_eq(loom_vocab_token(v, 2), "t");
    cr_assert_str_eq(loom_vocab_token(v, 3), " ");
    cr_assert_eq(loom_vocab_count(v, 1), 4);
    char buf[64];
    int64_t k;
    const int32_t *ids = loom_text_ids(t, &k);
    loom_vocab_decode(v, ids, k, buf, sizeof buf);
    cr_assert_str_eq(buf, "été 北京, été!", "decoding gives the (lower-cased) text back");
    loom_text_free(t);
}

Test(text, invalid_utf8_is_refused_with_its_offset)
{
    const char *bad[] = {"ab\xff", "ab\xc3", "ab\xc0\xaf", "ab\xed\xa0\x80", "ab\xf4\x90\x80\x80", "ab\xe2\x28\xa1"};
    for (unsigned i = 0; i < sizeof bad / sizeof *bad; i++) {
        loom_text *t = loom_text_new(&(loom_text_opts){0});
        cr_assert_eq(loom_text_parse(t, bad[i], strlen(bad[i])), LOOM_ERR_FORMAT, "case %u", i);
        cr_assert(strstr(loom_text_error(t), "line 1: invalid UTF-8 at byte 3"), "case %u: %s", i, loom_text_error(t));
        loom_text_free(t);
    }
    /* the line of a bad byte; a NUL is refused, not cut into a token (characters, words, letters only) */
    loom_text *t = loom_text_new(&(loom_text_opts){0});
    cr_assert_eq(loom_text_parse(t, "ab\ncd\n\xff" "e", 8), LOOM_ERR_FORMAT);
    cr_assert(strstr(loom_text_error(t), "line 3: invalid UTF-8 at byte 7"), "%s", loom_text_error(t));
    loom_text_free(t);
    for (int k = 0; k < 3; k++) {
        t = loom_text_new(&(loom_text_opts){.kind = k == 1 ? LOOM_TOKENS_WORD : LOOM_TOKENS_CHAR, .letters_only = k == 2});
        cr_assert_eq(loom_text_parse(t, "ab\ncd\0e", 7), LOOM_ERR_FORMAT, "kind %d", k);
        cr_assert(strstr(loom_text_error(t), "line 2: a NUL byte at byte 6"), "%s", loom_text_error(t));
        loom_text_free(t);
    }
}

/* A special's own text in the text ("<pad>") is that special however rare,
 * whether the vocabulary is built from the text or the text read with it
 * (found by fuzz_text: the first gave <unk>, the second <pad>). */
Test(text, special_tokens_in_the_text_read_the_same_both_ways)
{
    loom_text *t = loom_text_new(&(loom_text_opts){.kind = LOOM_TOKENS_SPACE, .min_freq = 4, .specials = true});
    cr_assert_eq(loom_text_parse(t, "a a a a <pad> <eos> b", 21), LOOM_OK);
    int64_t n;
    const int32_t *ids = loom_text_ids(t, &n);
    cr_assert_eq(n, 7);
    cr_assert(ids[4] == LOOM_PAD && ids[5] == LOOM_EOS && ids[6] == LOOM_UNK, "%d %d %d", ids[4], ids[5], ids[6]);
    loom_text *again = loom_text_new(NULL);
    cr_assert_eq(loom_text_parse_with(again, "a a a a <pad> <eos> b", 21, loom_text_vocab(t)), LOOM_OK);
    int64_t m;
    const int32_t *ids2 = loom_text_ids(again, &m);
    cr_assert(m == n && !memcmp(ids, ids2, (size_t)n * sizeof *ids));
    loom_text_free(again);
    loom_text_free(t);
}

Test(text, words_and_punctuation)
{
    loom_text *t = parse("The cat, the Hat.\n“Cat!”", (loom_text_opts){.kind = LOOM_TOKENS_WORD, .lower = true});
    const char *want[] = {"the", "cat", ",", "the", "hat", ".", "“", "cat", "!", "”"};
    int64_t n;
    loom_text_ids(t, &n);
    cr_assert_eq(n, 10);
    for (int i = 0; i < 10; i++) cr_assert_str_eq(tok(t, i), want[i], "token %d", i);
    const loom_vocab *v = loom_text_vocab(t);
    cr_assert_str_eq(loom_vocab_token(v, 1), "the");
    cr_assert_str_eq(loom_vocab_token(v, 2), "cat");
    cr_assert_eq(loom_vocab_id(v, "dog"), LOOM_UNK);
    int32_t ids[8];
    cr_assert_eq(loom_vocab_encode(v, "the dog.", 8, ids, 8), 3);
    cr_assert(ids[0] == 1 && ids[1] == LOOM_UNK && ids[2] == loom_vocab_id(v, "."));
    loom_text_free(t);
}

Test(text, min_freq_and_specials)
{
    loom_text *t = parse("a a a b b c", (loom_text_opts){.kind = LOOM_TOKENS_WORD, .min_freq = 2, .specials = true});
    const loom_vocab *v = loom_text_vocab(t);
    cr_assert_eq(loom_vocab_size(v), 6, "<unk> <pad> <bos> <eos> a b");
    cr_assert_str_eq(loom_vocab_token(v, LOOM_PAD), "<pad>");
    cr_assert_str_eq(loom_vocab_token(v, LOOM_EOS), "<eos>");
    cr_assert_str_eq(loom_vocab_token(v, 4), "a");
    cr_assert_str_eq(loom_vocab_token(v, 5), "b");
    cr_assert_str_eq(tok(t, 5), "<unk>", "c is rarer than min_freq");
    cr_assert_eq(loom_vocab_count(v, LOOM_UNK), 1);
    /* a vocabulary survives a round trip through its string */
    char *s = loom_vocab_to_string(v);
    loom_vocab *back = loom_vocab_from_string(s);
    cr_assert(back);
    cr_assert_eq(loom_vocab_size(back), 6);
    for (int i = 0; i < 6; i++) {
        cr_assert_str_eq(loom_vocab_token(back, i), loom_vocab_token(v, i));
        cr_assert_eq(loom_vocab_count(back, i), loom_vocab_count(v, i));
    }
    /* held-out text with the same vocabulary */
    loom_text *h = loom_text_new(NULL);
    cr_assert_eq(loom_text_parse_with(h, "b z a", 5, back), LOOM_OK);
    int64_t n;
    const int32_t *ids = loom_text_ids(h, &n);
    cr_assert(n == 3 && ids[0] == 5 && ids[1] == LOOM_UNK && ids[2] == 4);
    cr_assert_null(loom_vocab_from_string("{\"kind\":\"char\"}"));
    cr_assert_null(loom_vocab_from_string("not json"));
    /* numbers and tokens are range-checked */
    const char *bad[] = {"{\"kind\":\"char\",\"tokens\":[\"<unk>\",\"a\"],\"counts\":[0,1e20]}",
                         "{\"kind\":\"char\",\"tokens\":[\"<unk>\",\"a\"],\"counts\":[0,-1]}",
                         "{\"kind\":\"char\",\"tokens\":[\"<unk>\",\"a\"],\"counts\":[0,1.5]}",
                         "{\"kind\":\"char\",\"tokens\":[\"<unk>\",\"\"],\"counts\":[0,1]}",
                         "{\"kind\":\"char\",\"tokens\":[\"<unk>\",\"\\udc00\"],\"counts\":[0,1]}",
                         "{\"kind\":\"bytes\",\"tokens\":[\"<unk>\",\"a\"],\"counts\":[0,1]}"};
    for (unsigned i = 0; i < sizeof bad / sizeof *bad; i++) cr_assert_null(loom_vocab_from_string(bad[i]), "case %u", i);
    loom_vocab *ok = loom_vocab_from_string("{\"kind\":\"char\",\"tokens\":[\"<unk>\",\"a\"],\"counts\":[0,9007199254740992]}");
    cr_assert(ok);
    cr_assert_eq(loom_vocab_count(ok, 1), 9007199254740992LL);
    loom_vocab_free(ok);
    loom_text_free(h);
    loom_vocab_free(back);
    free(s);
    loom_text_free(t);
}

/* d2l's Time Machine preprocessing: per line, runs of non-letters become
 * one space, trimmed, lower-cased; lines joined without a separator. */
Test(text, letters_only_as_d2l)
{
    loom_text *t = parse("The Time-Machine,  by H. G. Wells\n  [1898]\nI\n", (loom_text_opts){.letters_only = true});
    int64_t n;
    const int32_t *ids = loom_text_ids(t, &n);
    char buf[128];
    loom_vocab_decode(loom_text_vocab(t), ids, n, buf, sizeof buf);
    cr_assert_str_eq(buf, "the time machine by h g wellsi");
    loom_text_free(t);
    t = parse("Hello, world\nagain", (loom_text_opts){.kind = LOOM_TOKENS_WORD, .letters_only = true});
    loom_text_ids(t, &n);
    cr_assert_eq(n, 3, "words: lines are joined with a space");
    loom_text_free(t);
}

/* ---- minibatches ---- */

static int32_t *ramp(int64_t n)
{
    int32_t *v = malloc((size_t)n * sizeof *v);
    for (int64_t i = 0; i < n; i++) v[i] = (int32_t)i;
    return v;
}

Test(batches, random_sampling)
{
    enum { N = 1000, T = 7, B = 4 };
    int32_t *ids = ramp(N), x[T * B], y[T * B];
    loom_batches *b = loom_batches_new(ids, N, T, B, LOOM_SAMPLE_RANDOM, 5);
    cr_assert(b);
    for (int epoch = 0; epoch < 3; epoch++) {
        int64_t per = loom_batches_per_epoch(b);
        bool *used = calloc(N, 1);
        int32_t first_start = -1;
        for (int64_t k = 0; k < per; k++) {
            cr_assert_eq(loom_batches_next(b, x, y), k == 0, "the first batch of an epoch says so");
            for (int j = 0; j < B; j++) {
                int32_t s = x[j];
                if (first_start < 0) first_start = s;
                cr_assert_eq(s % T, first_start % T, "every window starts on the epoch's offset grid");
                for (int t = 0; t < T; t++) {
                    cr_assert_eq(x[t * B + j], s + t, "a window is T consecutive tokens, time-major");
                    cr_assert_eq(y[t * B + j], s + t + 1, "targets are the inputs shifted by one");
                    cr_assert(!used[s + t], "windows do not overlap");
                    used[s + t] = true;
                }
            }
            if (k == 0) cr_assert_neq(x[1] - x[0], T, "windows of a batch are not adjacent (random order)");
        }
        int offset = first_start % T;
        cr_assert_eq(per, (N - offset - 1) / T / B, "epoch %d: all full batches of the windows", epoch);
        free(used);
    }
    /* the same seed gives the same batches; tell/seek resumes exactly */
    loom_batches *c = loom_batches_new(ids, N, T, B, LOOM_SAMPLE_RANDOM, 5);
    int64_t e, k;
    loom_batches_tell(b, &e, &k);
    loom_batches_seek(c, e, k);
    int32_t x2[T * B], y2[T * B];
    for (int i = 0; i < 50; i++) {
        loom_batches_next(b, x, y);
        loom_batches_next(c, x2, y2);
        cr_assert_arr_eq(x, x2, sizeof x);
    }
    loom_batches_free(c);
    loom_batches_free(b);
    cr_assert_null(loom_batches_new(ids, 20, T, B, LOOM_SAMPLE_RANDOM, 1), "too short for one batch");
    free(ids);
}

Test(batches, sequential_partitioning)
{
    enum { N = 1000, T = 5, B = 3 };
    int32_t *ids = ramp(N), x[T * B], y[T * B], prev[T * B];
    loom_batches *b = loom_batches_new(ids, N, T, B, LOOM_SAMPLE_SEQUENTIAL, 9);
    int64_t per = loom_batches_per_epoch(b);
    for (int64_t k = 0; k < per; k++) {
        loom_batches_next(b, x, y);
        for (int j = 0; j < B; j++)
            for (int t = 0; t < T; t++) {
                cr_assert_eq(y[t * B + j], x[t * B + j] + 1);
                if (t) cr_assert_eq(x[t * B + j], x[(t - 1) * B + j] + 1);
            }
        if (k)
            for (int j = 0; j < B; j++)
                cr_assert_eq(x[j], prev[(T - 1) * B + j] + 1, "stream %d continues where the last batch ended", j);
        memcpy(prev, x, sizeof x);
    }
    int offset = (int)(x[0] - (per - 1) * T);
    cr_assert(offset >= 0 && offset <= T);
    cr_assert_eq(per, (N - offset - 1) / B / T);
    cr_assert(loom_batches_next(b, x, y), "then the next epoch starts");
    loom_batches_free(b);
    free(ids);
}

/* Data parallelism: rank r of R sees columns r·B/R … of the global batch,
 * batch after batch, across epochs, with both samplings; a shard that
 * cannot be is refused and changes nothing. */
Test(batches, shards_make_the_global_batch)
{
    enum { N = 700, T = 4, B = 6 };
    int32_t *ids = ramp(N), gx[T * B], gy[T * B], x[T * B], y[T * B];
    for (int s = 0; s < 2; s++)
        for (int R = 1; R <= 3; R++) {
            loom_sampling how = s ? LOOM_SAMPLE_SEQUENTIAL : LOOM_SAMPLE_RANDOM;
            loom_batches *all = loom_batches_new(ids, N, T, B, how, 7), *part[3];
            for (int r = 0; r < R; r++) {
                part[r] = loom_batches_new(ids, N, T, B, how, 7);
                cr_assert(loom_batches_shard(part[r], r, R));
                cr_assert_eq(loom_batches_columns(part[r]), B / R);
            }
            for (int k = 0; k < 3 * loom_batches_per_epoch(all); k++) {
                bool first = loom_batches_next(all, gx, gy);
                for (int r = 0; r < R; r++) {
                    int C = B / R;
                    cr_assert_eq(loom_batches_next(part[r], x, y), first);
                    for (int t = 0; t < T; t++)
                        for (int c = 0; c < C; c++) {
                            cr_assert_eq(x[t * C + c], gx[t * B + r * C + c], "rank %d of %d, batch %d", r, R, k);
                            cr_assert_eq(y[t * C + c], gy[t * B + r * C + c]);
                        }
                }
            }
            for (int r = 0; r < R; r++) loom_batches_free(part[r]);
            loom_batches_free(all);
        }
    loom_batches *b = loom_batches_new(ids, N, T, B, LOOM_SAMPLE_SEQUENTIAL, 7);
    cr_assert_not(loom_batches_shard(b, 0, 4), "6 columns do not split in 4");
    cr_assert_not(loom_batches_shard(b, 2, 2), "rank out of range");
    cr_assert_not(loom_batches_shard(b, -1, 2));
    cr_assert_eq(loom_batches_columns(b), B, "unchanged");
    loom_batches_free(b);
    free(ids);
}

/* The pairs' batches, sharded: rank r's rows of every global batch, with
 * the scheduled-sampling draws one process makes; held-out rows are the
 * model's batch (a rank's columns) from any row. */
Test(batches, pair_shards_make_the_global_batch)
{
    char *text = loom_task_reverse_pairs(40, 2, 5, 3);
    loom_pairs *p = loom_pairs_new(&(loom_pairs_opts){.num_steps = 7, .chars = true, .valid_frac = 0.2});
    cr_assert_eq(loom_pairs_parse(p, text, strlen(text)), LOOM_OK, "%s", loom_pairs_error(p));
    enum { B = 6 };
    int Ts = loom_pairs_steps(p, 0), Tt = loom_pairs_steps(p, 1);
    for (int R = 1; R <= 3; R++) {
        loom_pair_batches *all = loom_pair_batches_new(p, B, 0.6, 9), *part[3];
        for (int r = 0; r < R; r++) {
            cr_assert(part[r] = loom_pair_batches_new(p, B, 0.6, 9));
            cr_assert(loom_pair_batches_shard(part[r], r, R));
            cr_assert_eq(loom_pair_batches_columns(part[r]), B / R);
        }
        for (int step = 0; step < 20; step++) { /* across epochs (32 training pairs) */
            loom_pair_batches_next(all);
            const loom_pair_batch *g = loom_pair_batches_buffers(all);
            int64_t tokens[2] = {0, 0}, want[2] = {0, 0}; /* the shards' valid tokens add up to the batch's */
            for (int k = 0; k < B; k++)
                want[0] += g->src_len[k] < Ts ? g->src_len[k] : Ts, want[1] += g->tgt_len[k] < Tt ? g->tgt_len[k] : Tt;
            for (int r = 0; r < R; r++) {
                loom_pair_batches_next(part[r]);
                for (int side = 0; side < 2; side++) tokens[side] += loom_pair_batches_tokens(part[r], side);
                const loom_pair_batch *x = loom_pair_batches_buffers(part[r]);
                int C = B / R;
                for (int c = 0; c < C; c++) {
                    int k = r * C + c;
                    cr_assert_eq(x->src_len[c], g->src_len[k]);
                    cr_assert_eq(x->tgt_len[c], g->tgt_len[k]);
                    for (int j = 0; j < Ts; j++) cr_assert_eq(x->src[j * C + c], g->src[j * B + k]);
                    for (int j = 0; j < Tt; j++) {
                        cr_assert_eq(x->tgt[j * C + c], g->tgt[j * B + k]);
                        cr_assert_eq(x->dec_in[j * C + c], g->dec_in[j * B + k]);
                        cr_assert_eq(x->gold[j * C + c], g->gold[j * B + k], "rank %d of %d, step %d: the same draw", r, R, step);
                    }
                }
            }
            cr_assert(tokens[0] == want[0] && tokens[1] == want[1] && want[1] > B, "tokens: %lld, %lld", (long long)tokens[0],
                      (long long)tokens[1]);
        }
        loom_pair_batches_rows(part[R - 1], p, true, 1); /* held-out rows 1, 2, ... of the model's batch */
        const loom_pair_batch *x = loom_pair_batches_buffers(part[R - 1]);
        int32_t len;
        for (int c = 0; c < B / R; c++) {
            cr_assert(loom_pairs_get(p, true, (1 + c) % loom_pairs_count(p, true), NULL, &len, NULL, NULL));
            cr_assert_eq(x->src_len[c], len);
        }
        for (int r = 0; r < R; r++) loom_pair_batches_free(part[r]);
        loom_pair_batches_free(all);
    }
    loom_pair_batches *b = loom_pair_batches_new(p, B, 1, 1);
    cr_assert_not(loom_pair_batches_shard(b, 0, 4));
    cr_assert_not(loom_pair_batches_shard(b, 3, 3));
    cr_assert_eq(loom_pair_batches_columns(b), B);
    loom_pair_batches_free(b);
    loom_pairs_free(p);
    free(text);
}

/* ---- synthetic tasks ---- */

Test(tasks, adding_problem)
{
    enum { T = 50, B = 64 };
    float x[T * B * 2], y[B];
    loom_task_adding(T, B, 3, x, y);
    double mean = 0;
    for (int b = 0; b < B; b++) {
        int marks = 0, first = -1, second = -1;
        float sum = 0;
        for (int t = 0; t < T; t++) {
            float v = x[(t * B + b) * 2], m = x[(t * B + b) * 2 + 1];
            cr_assert(v >= 0 && v < 1);
            if (m == 1.0f) {
                marks++, sum += v;
                *(first < 0 ? &first : &second) = t;
            } else {
                cr_assert_eq(m, 0.0f);
            }
        }
        cr_assert_eq(marks, 2);
        cr_assert(first < T / 2 && second >= T / 2, "one marker in each half (%d, %d)", first, second);
        cr_assert_float_eq(y[b], sum, 1e-6);
        mean += y[b] / B;
    }
    cr_assert(mean > 0.7 && mean < 1.3, "the target averages 1: %g", mean);
}

/* The temporal order: B first, E last, distractors between, X or Y at one
 * step of [T/10, 2T/10] and one of [T/2, T/2 + T/10], the class their
 * order (XX 0, XY 1, YX 2, YY 3); every class drawn. */
Test(tasks, temporal_order)
{
    enum { T = 100, B = 400 };
    int32_t *x = malloc(T * B * sizeof *x), y[B];
    loom_task_order(T, B, 5, x, y);
    int seen[4] = {0};
    for (int b = 0; b < B; b++) {
        cr_assert(x[b] == 6 && x[(T - 1) * B + b] == 7);
        int marks = 0, first = -1, second = -1;
        for (int t = 1; t < T - 1; t++) {
            int32_t s = x[t * B + b];
            cr_assert(s >= 0 && s <= 5);
            if (s >= 4) (marks++ ? (second = t) : (first = t));
        }
        cr_assert_eq(marks, 2);
        cr_assert(first >= 10 && first <= 20 && second >= 50 && second <= 60, "%d %d", first, second);
        cr_assert_eq(y[b], 2 * (x[first * B + b] - 4) + (x[second * B + b] - 4));
        seen[y[b]]++;
    }
    for (int k = 0; k < 4; k++) cr_assert(seen[k] > 60, "class %d drawn %d times", k, seen[k]);
    free(x);
}

/* d2l's noisy sine: the residual from sin(0.01 t) has mean ≈ 0 and
 * standard deviation ≈ 0.2; the same seed, the same series. */
Test(tasks, sine_series)
{
    enum { N = 20000 };
    float *x = malloc(N * sizeof *x), *again = malloc(N * sizeof *x);
    loom_task_sine_series(3, N, x);
    loom_task_sine_series(3, N, again);
    cr_assert(!memcmp(x, again, N * sizeof *x));
    double m = 0, v = 0;
    for (int t = 0; t < N; t++) m += x[t] - sin(0.01 * (t + 1));
    m /= N;
    for (int t = 0; t < N; t++) v += pow(x[t] - sin(0.01 * (t + 1)) - m, 2);
    cr_assert(fabs(m) < 0.01 && fabs(sqrt(v / N) - 0.2) < 0.005, "mean %g, sd %g", m, sqrt(v / N));
    free(x), free(again);
}

Test(tasks, copy_task)
{
    enum { T = 20, K = 10, A = 8, B = 4, L = K + T + K };
    int32_t x[L * B], y[L * B];
    loom_task_copy(T, K, A, B, 3, x, y);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < L; t++) {
            int32_t xi = x[t * B + b], yi = y[t * B + b];
            if (t < K) cr_assert(xi >= 1 && xi <= A);
            else if (t == K + T - 1) cr_assert_eq(xi, A + 1, "the delimiter");
            else cr_assert_eq(xi, 0);
            if (t < K + T) cr_assert_eq(yi, 0);
            else cr_assert_eq(yi, x[(t - K - T) * B + b], "the last K steps repeat the symbols");
        }
}

/* ---- parallel text ---- */

static const char *pair_word(const loom_pairs *p, int side, int32_t id)
{
    return loom_vocab_token(loom_pairs_vocab(p, side), id);
}

Test(pairs, d2l_preprocessing)
{
    char out[64];
    const char *in = "Va\xe2\x80\xaf!\xc2\xa0Go.Hi, you?";
    loom_d2l_preprocess(in, strlen(in), out, sizeof out);
    cr_assert_str_eq(out, "Va ! Go .Hi , you ?");
}

Test(pairs, pairs_pad_and_report_bad_lines)
{
    const char *text = "Go.\tVa !\tCC-BY 2.0 (France) Attribution\r\n"
                       "no tab here\n"
                       "I lost.\tJ'ai perdu.\n"
                       "Empty target\t  \n"
                       "\n"
                       "Run! Run! Run! Run! Run! Run!\tCours ! Cours ! Cours !\n";
    loom_pairs *p = loom_pairs_new(&(loom_pairs_opts){.num_steps = 5});
    cr_assert_eq(loom_pairs_parse(p, text, strlen(text)), LOOM_OK, "%s", loom_pairs_error(p));
    cr_assert_eq(loom_pairs_count(p, false), 3);
    cr_assert_eq(loom_pairs_count(p, true), 0);
    const int64_t *bad;
    cr_assert_eq(loom_pairs_bad_lines(p, &bad), 3, "no tab, empty side, empty line");
    cr_assert_eq(bad[0], 2);
    cr_assert_eq(bad[1], 4);
    cr_assert_eq(bad[2], 5);
    cr_assert_neq(loom_vocab_id(loom_pairs_vocab(p, 1), "j'ai"), LOOM_UNK, "split at spaces only");
    cr_assert_eq(loom_vocab_token(loom_pairs_vocab(p, 0), LOOM_PAD)[1], 'p');
    bool seen_go = false, seen_run = false;
    for (int64_t i = 0; i < 3; i++) {
        int32_t src[5], tgt[5], sl, tl;
        cr_assert(loom_pairs_get(p, false, i, src, &sl, tgt, &tl));
        if (!strcmp(pair_word(p, 0, src[0]), "go")) { /* "go ." → go . <eos> <pad> <pad> */
            seen_go = true;
            cr_assert_eq(sl, 3);
            cr_assert_eq(tl, 3);
            cr_assert_str_eq(pair_word(p, 0, src[1]), ".");
            cr_assert_eq(src[2], LOOM_EOS);
            cr_assert_eq(src[3], LOOM_PAD);
            cr_assert_eq(src[4], LOOM_PAD);
            cr_assert_str_eq(pair_word(p, 1, tgt[0]), "va");
            cr_assert_str_eq(pair_word(p, 1, tgt[1]), "!");
        }
        if (!strcmp(pair_word(p, 0, src[0]), "run")) { /* 12 tokens cut to 5: no room for <eos> */
            seen_run = true;
            cr_assert_eq(sl, 5);
            cr_assert_eq(tl, 5);
            for (int k = 0; k < 5; k++) cr_assert_neq(src[k], LOOM_EOS);
        }
    }
    cr_assert(seen_go && seen_run);
    cr_assert_not(loom_pairs_get(p, false, 3, NULL, NULL, NULL, NULL));
    char *saved = loom_vocab_to_string(loom_pairs_vocab(p, 1)); /* a checkpoint keeps the kind */
    loom_vocab *back = loom_vocab_from_string(saved);
    cr_assert(back);
    cr_assert_eq(loom_vocab_kind(back), LOOM_TOKENS_SPACE);
    cr_assert_eq(loom_vocab_id(back, "j'ai"), loom_vocab_id(loom_pairs_vocab(p, 1), "j'ai"));
    free(saved);
    loom_vocab_free(back);
    loom_pairs_free(p);
}

/* Labelled lines: the label is one token, whole and as written (spaces
 * inside kept, case kept, ends trimmed), the text a source sentence; the
 * label vocabulary is <unk> and the labels; a checkpoint keeps it. */
Test(pairs, labelled_lines)
{
    const char *text = "positive\tWhat a film!\n"
                       "  very negative \tDull, dull.\n"
                       "no text\t \n"
                       "Positive\tGood.\n";
    loom_pairs *p = loom_pairs_new(&(loom_pairs_opts){.kind = LOOM_PAIRS_LABELLED, .num_steps = 6, .target_steps = 4, .keep_order = true});
    cr_assert_eq(loom_pairs_parse(p, text, strlen(text)), LOOM_OK, "%s", loom_pairs_error(p));
    cr_assert_eq(loom_pairs_count(p, false), 3);
    cr_assert_eq(loom_pairs_bad_lines(p, NULL), 1);
    cr_assert_eq(loom_pairs_steps(p, 1), 1, "one label per line");
    const loom_vocab *labels = loom_pairs_vocab(p, 1);
    cr_assert_eq(loom_vocab_size(labels), 4, "<unk>, positive, very negative, Positive");
    cr_assert_eq(loom_vocab_first_word(labels), 1, "past <unk> only");
    cr_assert_eq(loom_vocab_first_word(loom_pairs_vocab(p, 0)), 4, "past <unk> <pad> <bos> <eos>");
    cr_assert_neq(loom_vocab_id(labels, "very negative"), LOOM_UNK);
    cr_assert_neq(loom_vocab_id(labels, "Positive"), loom_vocab_id(labels, "positive"));
    int32_t src[6], tgt[1], sl, tl;
    cr_assert(loom_pairs_get(p, false, 1, src, &sl, tgt, &tl));
    cr_assert_str_eq(loom_vocab_token(labels, tgt[0]), "very negative");
    cr_assert_eq(tl, 1);
    cr_assert_str_eq(pair_word(p, 0, src[0]), "dull");
    cr_assert_str_eq(pair_word(p, 0, src[1]), ",", "the text preprocessed as a source sentence");
    cr_assert_eq(sl, 5);
    char *saved = loom_vocab_to_string(labels);
    loom_vocab *back = loom_vocab_from_string(saved);
    cr_assert(back && loom_vocab_kind(back) == LOOM_TOKENS_LINE);
    cr_assert_eq(loom_vocab_id(back, "very negative"), loom_vocab_id(labels, "very negative"));
    free(saved), loom_vocab_free(back);
    loom_pairs_free(p);
}

/* Tagged lines: as many tags as tokens (else a bad line), both split at
 * white space only; tags keep their case; <eos> ends both sides. */
Test(pairs, tagged_lines)
{
    const char *text = "The dog barks.\tDET NOUN VERB\n"
                       "The dog\tDET\n"
                       "Dogs bark\tNOUN VERB\n";
    loom_pairs *p = loom_pairs_new(&(loom_pairs_opts){.kind = LOOM_PAIRS_TAGGED, .num_steps = 5, .target_steps = 2, .keep_order = true});
    cr_assert_eq(loom_pairs_parse(p, text, strlen(text)), LOOM_OK, "%s", loom_pairs_error(p));
    const int64_t *bad;
    cr_assert_eq(loom_pairs_bad_lines(p, &bad), 1);
    cr_assert_eq(bad[0], 2, "two tokens, one tag");
    cr_assert_eq(loom_pairs_steps(p, 1), 5, "a tag per step");
    int32_t src[5], tgt[5], sl, tl;
    cr_assert(loom_pairs_get(p, false, 0, src, &sl, tgt, &tl));
    cr_assert_eq(sl, 4);
    cr_assert_eq(tl, 4);
    cr_assert_str_eq(pair_word(p, 0, src[2]), "barks.", "no punctuation split: one token per tag");
    cr_assert_str_eq(pair_word(p, 1, tgt[1]), "NOUN");
    cr_assert_eq(src[3], LOOM_EOS);
    cr_assert_eq(tgt[3], LOOM_EOS);
    loom_pairs_free(p);
    p = loom_pairs_new(&(loom_pairs_opts){.kind = LOOM_PAIRS_TAGGED, .chars = true});
    cr_assert_eq(loom_pairs_parse(p, text, strlen(text)), LOOM_ERR_ARG);
    cr_assert(strstr(loom_pairs_error(p), "not characters"), "%s", loom_pairs_error(p));
    loom_pairs_free(p);
}

Test(pairs, seeded_split)
{
    char text[4096];
    size_t k = 0;
    for (int i = 0; i < 40; i++) k += (size_t)snprintf(text + k, sizeof text - k, "w%d x\tv%d y\n", i, i);
    int64_t order[2][40];
    for (int run = 0; run < 2; run++) {
        loom_pairs *p = loom_pairs_new(&(loom_pairs_opts){.num_steps = 4, .valid_frac = 0.25, .seed = 7});
        cr_assert_eq(loom_pairs_parse(p, text, k), LOOM_OK);
        cr_assert_eq(loom_pairs_count(p, false), 30);
        cr_assert_eq(loom_pairs_count(p, true), 10);
        bool seen[40] = {false};
        for (int part = 0; part < 2; part++)
            for (int64_t i = 0; i < loom_pairs_count(p, part); i++) {
                int32_t src[4], tgt[4];
                cr_assert(loom_pairs_get(p, part, i, src, NULL, tgt, NULL));
                int w = atoi(pair_word(p, 0, src[0]) + 1), v = atoi(pair_word(p, 1, tgt[0]) + 1);
                cr_assert_eq(w, v, "source and target stay paired");
                cr_assert_not(seen[w], "pair %d twice", w);
                seen[w] = true;
                order[run][part * 30 + i] = w;
            }
        loom_pairs_free(p);
    }
    cr_assert_eq(memcmp(order[0], order[1], sizeof order[0]), 0, "the same seed, the same split");
    bool shuffled = false;
    for (int i = 0; i < 40; i++) shuffled |= order[0][i] != i;
    cr_assert(shuffled);
}

Test(pairs, errors)
{
    loom_pairs *p = loom_pairs_new(NULL);
    cr_assert_eq(loom_pairs_parse(p, "only\nbad lines\n", 15), LOOM_ERR_VALUE);
    cr_assert(strstr(loom_pairs_error(p), "no pair"), "%s", loom_pairs_error(p));
    cr_assert_eq(loom_pairs_read(p, "/nonexistent/pairs.tsv"), LOOM_ERR_ARG);
    cr_assert(strstr(loom_pairs_error(p), "cannot open"), "%s", loom_pairs_error(p));
    cr_assert_eq(loom_pairs_parse(p, "a\t\xff\n", 4), LOOM_ERR_FORMAT, "invalid UTF-8");
    cr_assert(strstr(loom_pairs_error(p), "line 1: invalid UTF-8 at byte 3 of the line (byte 3 of the text)"), "%s",
              loom_pairs_error(p));
    loom_pairs_free(p);
    /* a sequence cut by a newline, in character pairs (it read uninitialised ids); a NUL in a sentence */
    p = loom_pairs_new(&(loom_pairs_opts){.chars = true});
    const char split[] = "24 nov 2026\xc3\t2026-11-24\n\xa9 11/24/26\t2026-11-24\n";
    cr_assert_eq(loom_pairs_parse(p, split, sizeof split - 1), LOOM_ERR_FORMAT);
    cr_assert(strstr(loom_pairs_error(p), "line 1: invalid UTF-8 at byte 12"), "%s", loom_pairs_error(p));
    cr_assert_eq(loom_pairs_parse(p, "ok\tfine\nab\0c\td\n", 16), LOOM_ERR_FORMAT);
    cr_assert(strstr(loom_pairs_error(p), "line 2: a NUL byte at byte 3 of the line (byte 11 of the text)"), "%s",
              loom_pairs_error(p));
    loom_pairs_free(p);
}

/* Character pairs of the reversal task: keep_order holds the held-out share at the end. */
Test(pairs, reversal_task_as_characters)
{
    char *text = loom_task_reverse_pairs(50, 3, 8, 5);
    cr_assert(text);
    loom_pairs *p = loom_pairs_new(&(loom_pairs_opts){.num_steps = 9, .target_steps = 10, .valid_frac = 0.2,
                                                      .keep_order = true, .chars = true});
    cr_assert_eq(loom_pairs_parse(p, text, strlen(text)), LOOM_OK, "%s", loom_pairs_error(p));
    cr_assert_eq(loom_pairs_steps(p, 0), 9);
    cr_assert_eq(loom_pairs_steps(p, 1), 10);
    cr_assert_eq(loom_pairs_count(p, true), 10);
    cr_assert_leq(loom_vocab_size(loom_pairs_vocab(p, 0)), 4 + 26);
    const char *line = text;
    for (int64_t i = 0; i < 50; i++) {
        bool valid = i >= 40;
        int32_t src[9], tgt[10], sl, tl;
        cr_assert(loom_pairs_get(p, valid, valid ? i - 40 : i, src, &sl, tgt, &tl));
        int len = (int)(strchr(line, '\t') - line);
        cr_assert(len >= 3 && len <= 8);
        cr_assert_eq(sl, len + 1, "the letters and <eos>");
        cr_assert_eq(tl, len + 1);
        cr_assert_eq(src[len], LOOM_EOS);
        for (int k = 0; k < len; k++) {
            cr_assert_eq(*pair_word(p, 0, src[k]), line[k], "pair %lld in order", (long long)i);
            cr_assert_eq(tgt[k], loom_vocab_id(loom_pairs_vocab(p, 1), (char[2]){line[len - 1 - k], 0}));
        }
        for (int k = len + 1; k < 9; k++) cr_assert_eq(src[k], LOOM_PAD);
        line = strchr(line, '\n') + 1;
    }
    loom_pairs_free(p);
    free(text);
    cr_assert_null(loom_task_reverse_pairs(3, 5, 4, 1), "min_len > max_len");
}

/* Every day of 1950..2049 follows the one before it (month lengths, leap
 * years), with the right weekday; each format names the date; held-out
 * dates never appear in the training part. */
Test(pairs, date_task)
{
    char iso[32], prev[32] = "1949-12-31", s[64];
    for (int d = 0; d < 36525; d++) {
        loom_task_date_text(d, 8, iso, sizeof iso);
        int y, m, day, py, pm, pd;
        cr_assert_eq(sscanf(iso, "%d-%d-%d", &y, &m, &day), 3);
        sscanf(prev, "%d-%d-%d", &py, &pm, &pd);
        int mdays[] = {31, (py % 4 == 0 && (py % 100 || py % 400 == 0)) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        bool next = (y == py && m == pm && day == pd + 1) || (y == py && m == pm + 1 && day == 1 && pd == mdays[pm - 1]) ||
                    (y == py + 1 && m == 1 && day == 1 && pm == 12 && pd == 31);
        cr_assert(next, "%s follows %s", iso, prev);
        strcpy(prev, iso);
    }
    cr_assert_str_eq(prev, "2049-12-31");
    loom_task_date_text(28086, 1, s, sizeof s);
    cr_assert_str_eq(s, "tuesday, november 24, 2026");
    const char *want[] = {"24 nov 2026", NULL, "11/24/26", "24.11.2026", "november 24, 2026", "24 november 2026",
                          "nov 24, 2026", "the 24th of november 2026", "2026-11-24", "24/11/2026", "tue 24 nov 2026",
                          "november 24th, 2026", "24-nov-2026", "20261124", "tuesday 24 november 2026", "nov 24th 2026"};
    for (int f = 0; f < LOOM_DATE_FORMATS; f++) {
        if (!want[f]) continue;
        loom_task_date_text(28086, f, s, sizeof s);
        cr_assert_str_eq(s, want[f]);
    }
    char *train = loom_task_date_pairs(3000, false, 1), *held = loom_task_date_pairs(300, true, 2);
    cr_assert(train && held);
    for (const char *h = held; *h; h = strchr(h, '\n') + 1) {
        const char *tab = strchr(h, '\t');
        char key[16];
        snprintf(key, sizeof key, "\t%.10s\n", tab + 1);
        cr_assert_null(strstr(train, key), "held-out date %s is in the training part", key + 1);
    }
    free(train), free(held);
}

/* ---- n-gram statistics ---- */

/* Counts, totals, distinct and the ranking (ties: first to occur first) of
 * a text small enough to count by eye: a b c a b c a. */
Test(ngrams, counts_and_ranks)
{
    const int32_t ids[7] = {0, 1, 2, 0, 1, 2, 0};
    loom_error err = {0};
    loom_ngrams *g = loom_ngrams_new(ids, 7, 3, 4, &err);
    cr_assert(g, "%s", err.msg);
    int32_t a = 0, ab[2] = {0, 1}, ca[2] = {2, 0}, abc[3] = {0, 1, 2}, bca[3] = {1, 2, 0}, cc[2] = {2, 2};
    cr_assert_eq(loom_ngrams_count(g, &a, 1), 3);
    cr_assert_eq(loom_ngrams_count(g, ab, 2), 2);
    cr_assert_eq(loom_ngrams_count(g, ca, 2), 2);
    cr_assert_eq(loom_ngrams_count(g, cc, 2), 0);
    cr_assert_eq(loom_ngrams_count(g, abc, 3), 2);
    cr_assert_eq(loom_ngrams_count(g, bca, 3), 2);
    cr_assert_eq(loom_ngrams_count(g, abc, 4), 0, "past the order");
    cr_assert_eq(loom_ngrams_total(g, 1), 7);
    cr_assert_eq(loom_ngrams_total(g, 3), 5);
    cr_assert_eq(loom_ngrams_distinct(g, 1), 3, "token 3 never occurs");
    cr_assert_eq(loom_ngrams_distinct(g, 2), 3);
    int32_t top[6];
    int64_t counts[3];
    cr_assert_eq(loom_ngrams_top(g, 2, 3, top, counts), 3);
    cr_assert(top[0] == 0 && top[1] == 1 && counts[0] == 2, "a b first (2, first at 0)");
    cr_assert(top[2] == 1 && top[3] == 2 && counts[1] == 2, "then b c (2, first at 1)");
    cr_assert(top[4] == 2 && top[5] == 0 && counts[2] == 2, "then c a");
    cr_assert_eq(loom_ngrams_top(g, 1, 10, top, counts), 3, "only what occurs");
    cr_assert(top[0] == 0 && counts[0] == 3 && top[2] == 2 && counts[2] == 2);
    loom_ngrams_free(g);
    /* bad input */
    cr_assert_null(loom_ngrams_new(ids, 7, 0, 4, &err));
    cr_assert(strstr(err.msg, "an order in 1"), "%s", err.msg);
    err = (loom_error){0};
    cr_assert_null(loom_ngrams_new(ids, 7, 2, 2, &err));
    cr_assert(strstr(err.msg, "token 2 is 2, not in the vocabulary of 2"), "%s", err.msg);
}

/* Against counting by brute force on a random text, and the smoothed model
 * by d2l's formulas written out: P(x), P(x | c), P(x | c' c); every
 * conditional sums to 1 over the vocabulary — the text's last context (one
 * fewer continuation) and a context never seen included. */
Test(ngrams, laplace_model_by_hand)
{
    enum { N = 400, V = 5 };
    int32_t ids[N];
    uint64_t rng = 7;
    for (int i = 0; i < N; i++) ids[i] = (int32_t)loom_below(&rng, i % 3 ? V : 2); /* uneven */
    loom_ngrams *g = loom_ngrams_new(ids, N, 3, V + 1, NULL); /* token V never occurs */
    cr_assert(g);
    for (int k = 1; k <= 3; k++)
        for (int i = 0; i + k <= N; i += 37) {
            int64_t want = 0;
            for (int j = 0; j + k <= N; j++) want += !memcmp(ids + j, ids + i, (size_t)k * sizeof *ids);
            cr_assert_eq(loom_ngrams_count(g, ids + i, k), want, "k = %d at %d", k, i);
        }
    double eps = 0.5, m = V + 1;
    int32_t c1 = ids[N - 1], c2[2] = {ids[N - 2], ids[N - 1]}; /* the text's last context */
    for (int32_t x = 0; x <= V; x++) {
        int32_t bx[2] = {c1, x}, tx[3] = {c2[0], c2[1], x};
        double p1 = (loom_ngrams_count(g, &x, 1) + eps / m) / (N + eps);
        double p2 = (loom_ngrams_count(g, bx, 2) + eps * p1) / (loom_ngrams_count(g, &c1, 1) - 1 + eps);
        double p3 = (loom_ngrams_count(g, tx, 3) + eps * p2) / (loom_ngrams_count(g, c2, 2) - 1 + eps);
        cr_assert_float_eq(loom_ngrams_prob(g, NULL, 0, x, eps), p1, 1e-12);
        cr_assert_float_eq(loom_ngrams_prob(g, &c1, 1, x, eps), p2, 1e-12);
        cr_assert_float_eq(loom_ngrams_prob(g, c2, 2, x, eps), p3, 1e-12);
    }
    int32_t contexts[4][2] = {{c2[0], c2[1]}, {ids[10], ids[11]}, {V, V}, {0, V}};
    for (int c = 0; c < 4; c++)
        for (int k = 0; k <= 2; k++) {
            double sum = 0;
            for (int32_t x = 0; x <= V; x++) sum += loom_ngrams_prob(g, contexts[c] + 2 - k, k, x, eps);
            cr_assert_float_eq(sum, 1.0, 1e-12, "context %d, k = %d: %.15g", c, k, sum);
        }
    /* perplexity: the mean −log P of each token from what precedes it (at most 2 tokens) */
    double nll = 0;
    for (int t = 0; t < 50; t++) {
        int k = t < 2 ? t : 2;
        nll -= log(loom_ngrams_prob(g, ids + t - k, k, ids[t], eps));
    }
    cr_assert_float_eq(loom_ngrams_perplexity(g, 3, eps, ids, 50), exp(nll / 50), 1e-9);
    double uni = loom_ngrams_perplexity(g, 1, eps, ids, N), tri = loom_ngrams_perplexity(g, 3, eps, ids, N);
    cr_assert(tri < uni && uni < m, "on its own text the trigram model beats the unigram one (%g < %g)", tri, uni);
    cr_assert(isnan(loom_ngrams_perplexity(g, 4, eps, ids, N)) && isnan(loom_ngrams_prob(g, NULL, 0, V + 1, eps)));
    loom_ngrams_free(g);
}

/* Zipf's law recovered from a text made to follow it: token r occurs
 * about 1200 / r times, so s ≈ 1 and c ≈ 1200. */
Test(ngrams, zipf_exponent)
{
    enum { R = 30 };
    int64_t n = 0;
    for (int r = 1; r <= R; r++) n += 1200 / r;
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    int64_t at = 0;
    for (int r = 1; r <= R; r++)
        for (int i = 0; i < 1200 / r; i++) ids[at++] = r - 1;
    loom_ngrams *g = loom_ngrams_new(ids, n, 1, R, NULL);
    double s, c;
    cr_assert_eq(loom_ngrams_zipf(g, 1, 1, 0, &s, &c), LOOM_OK);
    cr_assert(fabs(s - 1) < 0.01 && fabs(c / 1200 - 1) < 0.02, "s %g c %g", s, c);
    cr_assert_eq(loom_ngrams_zipf(g, 1, 5, 5, &s, &c), LOOM_ERR_ARG, "one rank fits no line");
    loom_ngrams_free(g);
    free(ids);
}

/* The baseline is its parts: counted on the training tokens, ε chosen on
 * them (or given), each order scored on the other tokens. */
Test(ngrams, baseline_is_count_choose_score)
{
    enum { N = 600, V = 6 };
    int32_t ids[N];
    uint64_t rng = 3;
    for (int i = 0; i < N; i++) ids[i] = (int32_t)loom_below(&rng, i % 2 ? V : 3);
    double ppl[3], eps[3];
    loom_error err = {0};
    cr_assert_eq(loom_ngrams_baseline(ids, 500, V, 3, 0, ids + 500, 100, ppl, eps, &err), LOOM_OK, "%s", err.msg);
    loom_ngrams *g = loom_ngrams_new(ids, 500, 3, V, NULL);
    for (int k = 1; k <= 3; k++) {
        cr_assert_eq(eps[k - 1], loom_ngrams_choose_eps(ids, 500, k, V, NULL), "order %d: ε chosen on the counted text", k);
        cr_assert_eq(ppl[k - 1], loom_ngrams_perplexity(g, k, eps[k - 1], ids + 500, 100), "order %d", k);
    }
    cr_assert_eq(loom_ngrams_baseline(ids, 500, V, 2, 0.5, ids + 500, 100, ppl, eps, NULL), LOOM_OK);
    cr_assert(eps[0] == 0.5 && eps[1] == 0.5 && ppl[1] == loom_ngrams_perplexity(g, 2, 0.5, ids + 500, 100), "ε given");
    loom_ngrams_free(g);
    int32_t bad[2] = {0, V};
    cr_assert_eq(loom_ngrams_baseline(ids, 500, V, 2, 0, bad, 2, ppl, eps, &err), LOOM_ERR_VALUE);
    cr_assert(strstr(err.msg, "not in the vocabulary"), "%s", err.msg);
}
