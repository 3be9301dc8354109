/* Sequence to sequence from the command line:
 *   loom train --task seq2seq --data PAIRS.tsv | --task reverse | --task dates
 *   loom translate --load CKPT [TEXT...]
 *   loom eval --load CKPT --data PAIRS.tsv (an encoder–decoder checkpoint)
 * Training draws shuffled minibatches of pairs, teacher-forces the decoder
 * (or samples its own tokens at a rate), and reports held-out loss, BLEU
 * and exact match from greedy translations. */
#include "seq2seq.h"

#include "loom/loom.h"


#include <cjson/cJSON.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char cmd[] = "loom train";

static int fail(const char *what, const char *why) { return tool_fail(cmd, what, why); }
static int fail_st(loom_status st, const char *what, const char *why) { return tool_fail_st(cmd, st, what, why); }

static const char *const attention_names[] = {"none", "additive", "dot", "plain"};
static const char *const task_names[] = {"seq2seq", "reverse", "dates"};


/* ---- the model ---- */

static int build(s2s *r)
{
    const train_args *a = r->a;
    int B = (int)a->m.batch;
    r->mo = (loom_seq2seq_opts){.cell = a->m.cell, .src_vocab = loom_vocab_size(loom_pairs_vocab(r->d.pairs, 0)),
                                .tgt_vocab = loom_vocab_size(loom_pairs_vocab(r->d.pairs, 1)), .embed = (int)a->embed,
                                .hidden = (int)a->m.hidden, .layers = (int)a->m.layers, .dec_layers = (int)a->dec_layers,
                                .stacking = (loom_stacking)a->m.stacking,
                                .bidirectional = a->m.bidirectional, .dropout = (float)a->dropout,
                                .attention = (loom_attention)a->attention, .src_steps = loom_pairs_steps(r->d.pairs, 0),
                                .tgt_steps = loom_pairs_steps(r->d.pairs, 1), .batch = B,
                                .sampled = a->teacher_forcing < 1, .seed = (uint64_t)a->m.seed};
    if (!(r->g = loom_graph_new())) return fail_st(LOOM_ERR_NOMEM, "out of memory", NULL);
    loom_seq2seq_build(r->g, &r->m, &r->mo);
    r->store = loom_store_new(r->g);
    if (loom_graph_failed(r->g)) return fail_st(loom_graph_status(r->g), loom_graph_error(r->g), NULL);
    if (loom_store_status(r->store)) return fail_st(loom_store_status(r->store), loom_store_error(r->store), NULL);
    loom_error err = {0};
    loom_train_desc *d = &r->train;
    *d = (loom_train_desc){.optim = {.kind = a->optimizer, .lr = (float)a->lr, .momentum = (float)a->momentum,
                                     .weight_decay = (float)a->weight_decay},
                           .schedule = {.kind = a->schedule, .gamma = 0.5f, .step_size = a->steps / 3 > 0 ? a->steps / 3 : 1,
                                        .total = a->steps, .warmup = a->warmup},
                           .clip_norm = a->clip, .teacher_forcing = a->teacher_forcing, .seed = (uint64_t)a->m.seed};
    r->t = loom_trainer_new(r->g, r->store,
                            &(loom_trainer_opts){.loss = r->m.loss, .optim = d->optim, .schedule = d->schedule,
                                                 .clip_norm = d->clip_norm, .seed = d->seed, .recompute = (int32_t)a->recompute,
                                                 .precision = (loom_precision)a->precision, .comm = r->comm,
                                                 .shares = r->comm != NULL}, /* ranks weighted by their target tokens */
                            &err);
    if (!r->t) return fail_st(err.status, err.msg, NULL);
    loom_store_init(r->store, (uint64_t)a->m.seed);
    /* the global batch; each process its rows */
    int ranks = loom_comm_size(r->comm);
    if (!(r->batches = loom_pair_batches_new(r->d.pairs, B * ranks, a->teacher_forcing, (uint64_t)a->m.seed)) ||
        !loom_pair_batches_shard(r->batches, loom_comm_rank(r->comm), ranks))
        return fail_st(LOOM_ERR_NOMEM, "out of memory", NULL);
    const loom_pair_batch *x = r->x = loom_pair_batches_buffers(r->batches);
    loom_tensor in[6] = {r->m.src, r->m.src_len, r->m.dec_in, r->m.tgt, r->m.tgt_len, r->m.gold};
    const void *data[6] = {x->src, x->src_len, x->dec_in, x->tgt, x->tgt_len, x->gold};
    for (int i = 0; i < (x->gold ? 6 : 5); i++)
        if (loom_trainer_bind(r->t, in[i], data[i])) return fail_st(LOOM_ERR_ARG, loom_trainer_error(r->t), NULL);
    if (a->init && loom_store_load_file(r->store, a->init, false)) return fail_st(loom_store_status(r->store), loom_store_error(r->store), NULL);
    if (a->init && !tool_finite_weights(cmd, a->init, r->store)) return 2;
    loom_seq2seq_opts to = r->mo;
    to.batch = B; /* the translator reads the store's buffers, which training updates in place */
    if (!(r->tr = loom_translator_new(&to, r->store, 1, &err))) return fail_st(err.status, err.msg, NULL);
    return 0;
}

/* ---- evaluation ---- */


/* The reference of a target row: its tokens before <eos> (all of them
 * when it was cut). */
static int reference(const int32_t *t, int len)
{
    return len > 0 && t[len - 1] == LOOM_EOS ? len - 1 : len;
}

/* The held-out part: the mean cross-entropy per target token (over up to
 * 50 batches) and the translations' scores. */
static int held_out(s2s *r, scores *sc)
{
    int64_t n = loom_pairs_count(r->d.held, r->d.held_part);
    int B = r->mo.batch;
    int64_t batches = (n + B - 1) / B < 50 ? (n + B - 1) / B : 50;
    double total = 0, tokens = 0;
    for (int64_t k = 0; k < batches; k++) {
        loom_pair_batches_rows(r->batches, r->d.held, r->d.held_part, k * B);
        double loss, w = 0;
        loom_status st = loom_trainer_eval_batch(r->t, &loss);
        if (st) return fail_st(st, loom_trainer_error(r->t), NULL);
        for (int b = 0; b < B; b++) w += r->x->tgt_len[b];
        total += loss * w, tokens += w;
    }
    sc->loss = total / tokens;
    int64_t m = n < r->a->eval_pairs ? n : r->a->eval_pairs;
    loom_error err = {0};
    if (loom_translate_score(r->tr, r->d.held, r->d.held_part, m, &(loom_search_opts){.max_len = r->mo.tgt_steps}, &sc->bleu,
                             &sc->exact, &err))
        return fail_st(err.status, err.msg, NULL);
    return 0;
}

/* ---- training ---- */

static loom_status next_batch(void *ctx, loom_trainer *t)
{
    s2s *r = ctx;
    loom_pair_batches_next(r->batches);
    /* the loss is the mean over the batch's target tokens: with processes, each weighs by its own */
    if (r->comm) loom_trainer_set_share(t, (double)loom_pair_batches_tokens(r->batches, 1));
    return LOOM_OK;
}

/* Held-out loss, BLEU and exact match; the score is the loss. */
static loom_status evaluate(void *ctx, loom_trainer *t, double *score)
{
    s2s *r = ctx;
    (void)t;
    if ((r->rc = held_out(r, &r->sc))) return LOOM_ERR_STATE;
    if (r->sc.bleu > r->best_bleu) r->best_bleu = r->sc.bleu;
    *score = r->sc.loss;
    return LOOM_OK;
}

static loom_status progress(void *ctx, const loom_fit_report *f)
{
    s2s *r = ctx;
    const loom_train_step *s = &f->step;
    double done = (double)(s->step - f->first_step + 1);
    bool tty = isatty(2);
    r->loss_avg = f->loss_avg;
    r->last = *f;
    if (f->evaluated || (tty && f->seconds - r->last_print > 0.25) || (!tty && f->seconds - r->last_print > 10)) {
        r->last_print = f->seconds;
        fprintf(stderr, "%sstep %lld/%lld  loss %.4f  grad norm %.2f  %.0f pairs/s  ETA %.0f s", tty ? "\r" : "",
                (long long)s->step, (long long)f->steps, f->loss_avg, s->grad_norm, done * r->mo.batch / f->seconds,
                f->seconds / done * (double)(f->steps - s->step));
        if (f->evaluated)
            fprintf(stderr, "  held-out loss %.4f  BLEU %.3f  exact %.1f%%", r->sc.loss, r->sc.bleu, 100 * r->sc.exact);
        fprintf(stderr, tty && !f->evaluated ? "   " : "\n");
    }
    if (r->metrics) {
        char v[128] = ",,,";
        const scores *sc = &r->sc;
        if (f->evaluated) snprintf(v, sizeof v, "%.6f,%.4f,%.6f,%.6f", sc->loss, exp(sc->loss), sc->bleu, sc->exact);
        if (loom_metrics_row(r->metrics, "%lld,%.6f,%.4f,%.6f,%.6g,%s", (long long)s->step, s->loss, exp(s->loss),
                             s->grad_norm, s->lr, v))
            return r->rc = fail("--metrics", "out of memory"), r->rc = 1, LOOM_ERR_NOMEM;
        if ((f->evaluated || loom_metrics_age(r->metrics) > 10) && (r->rc = tool_flush_metrics(cmd, &r->metrics)))
            return LOOM_ERR_IO;
    }
    return LOOM_OK;
}

static loom_status save_now(void *ctx, loom_trainer *t)
{
    s2s *r = ctx;
    (void)t;
    return (r->rc = tool_flush_metrics(cmd, &r->metrics)) || (r->rc = s2s_save(r)) ? LOOM_ERR_IO : LOOM_OK;
}

static int train(s2s *r)
{
    const train_args *a = r->a;
    double t0 = tool_now();
    r->sc = (scores){NAN, NAN, NAN};
    loom_status st = loom_trainer_fit(r->t, &(loom_fit_opts){.steps = a->steps, .eval_every = a->eval_every,
                                                             .save_every = a->save ? a->save_every : 0, .ctx = r,
                                                             .next_batch = next_batch, .evaluate = evaluate,
                                                             .progress = progress, .save = save_now, .stop = tool_stop});
    if (st == LOOM_ERR_VALUE) {
        fprintf(stderr, "\n%s: %s; stopping (lower --lr, or --clip)\n", cmd, loom_trainer_error(r->t));
        return 1;
    }
    if (st) return r->rc ? r->rc : fail_st(st, loom_trainer_error(r->t), NULL);
    /* SIGINT, SIGTERM: the steps done so far, saved (with processes, by all: they stop together) */
    if (tool_stopped(r->t, a->steps)) {
        int rc = tool_flush_metrics(cmd, &r->metrics);
        if (!rc && a->save) rc = s2s_save(r);
        return tool_interrupted(cmd, (long)loom_trainer_steps(r->t), a->steps, a->save, rc);
    }
    const scores *sc = &r->sc;
    char ppl[32];
    printf("trained %ld steps in %.1f s: held-out loss %.4f (perplexity %s), BLEU %.3f (best %.3f), exact match %.1f%%\n",
           a->steps > r->step0 ? a->steps - r->step0 : 0, tool_now() - t0, sc->loss, tool_num(ppl, sizeof ppl, exp(sc->loss), 2),
           sc->bleu, r->best_bleu, 100 * sc->exact);
    int rc = tool_flush_metrics(cmd, &r->metrics);
    if (!rc && a->save) rc = s2s_save(r);
    if (!rc && a->steps > r->step0) rc = tool_diverged(cmd, &r->last, a->strict);
    return rc;
}

/* A few held-out sources with their translations, as a user would see them. */
static void show_examples(s2s *r, int n)
{
    int Tt = r->mo.tgt_steps;
    int64_t total = loom_pairs_count(r->d.held, r->d.held_part);
    if (n > total) n = (int)total;
    for (int i = 0; i < n; i++) {
        int32_t s[LOOM_SEQ2SEQ_MAX_STEPS], t[LOOM_SEQ2SEQ_MAX_STEPS], sl, tl, out[LOOM_SEQ2SEQ_MAX_STEPS], ol;
        char a[1024], b[1024], c[1024];
        loom_pairs_get(r->d.held, r->d.held_part, i, s, &sl, t, &tl);
        if (loom_translate(r->tr, s, &sl, 1, &(loom_search_opts){.max_len = Tt}, out, &ol, NULL, NULL, NULL)) return;
        loom_vocab_decode(loom_pairs_vocab(r->d.pairs, 0), s, reference(s, sl), a, sizeof a);
        loom_vocab_decode(loom_pairs_vocab(r->d.pairs, 1), t, reference(t, tl), b, sizeof b);
        loom_vocab_decode(loom_pairs_vocab(r->d.pairs, 1), out, ol, c, sizeof c);
        printf("  %s => %s  (%s)\n", a, c, strcmp(b, c) ? b : "exact");
    }
}

int train_seq2seq(const train_args *user, loom_comm *comm)
{
    train_args args = *user, *a = &args;
    s2s r = {.a = a, .comm = comm};
    int ranks = loom_comm_size(comm);
    if (loom_comm_rank(comm) > 0) a->metrics = NULL; /* rank 0 writes the files */
    loom_st *ck = NULL;
    loom_vocab *v[2] = {NULL, NULL};
    char data[8192]; /* the data and valid paths of a resumed run */
    int rc = 0;
    if (a->resume) {
        if (!(ck = loom_st_new())) rc = fail_st(LOOM_ERR_NOMEM, "out of memory", NULL);
        else if (loom_checkpoint_read(ck, a->resume)) rc = fail(loom_st_error(ck), NULL);
        else rc = s2s_resume_config(a, ck, v, data, sizeof data);
    }
    if (!rc)
        rc = tool_open_outputs(cmd, a->save, a->metrics,
                                    "step,loss,perplexity,grad_norm,lr,valid_loss,valid_perplexity,valid_bleu,valid_exact",
                                    ck ? tool_checkpoint_step(ck) : -1, &r.metrics);
    if (!rc) rc = s2s_pairs(cmd, a, a->resume ? (const loom_vocab *const *)v : NULL, &r.d);
    if (!rc && a->epochs) { /* passes over the training pairs */
        int64_t per = (loom_pairs_count(r.d.pairs, false) + a->m.batch * ranks - 1) / (a->m.batch * ranks);
        a->steps = (long)(a->epochs * per);
    }
    if (!rc) rc = build(&r);
    if (!rc && ck) rc = s2s_restore(&r, ck);
    if (!rc) {
        char per[64];
        printf("%s: %s encoder–decoder%s, attention %s; vocabularies %d → %d, %lld training and %lld held-out pairs, "
               "steps %d → %d; embed %d, hidden %d, layers %d → %d, B=%d%s, teacher forcing %g, %s lr %g, %ld steps\n",
               task_names[a->task - TASK_SEQ2SEQ], r.mo.cell->name, r.mo.bidirectional ? " (bidirectional)" : "",
               attention_names[r.mo.attention], r.mo.src_vocab, r.mo.tgt_vocab,
               (long long)loom_pairs_count(r.d.pairs, false), (long long)loom_pairs_count(r.d.held, r.d.held_part), r.mo.src_steps,
               r.mo.tgt_steps, r.mo.embed, r.mo.hidden, r.mo.layers, r.mo.dec_layers ? r.mo.dec_layers : r.mo.layers, r.mo.batch,
               tool_per_process(comm, per, sizeof per), a->teacher_forcing,
               (const char *[]){"sgd", "adam", "adamw"}[a->optimizer], a->lr, a->steps);
        fflush(stdout);
        rc = train(&r);
        if (rc) tool_flush_metrics(cmd, &r.metrics); /* the rows of a run that stopped */
        if (!rc) show_examples(&r, 5);
    }
    loom_metrics_free(r.metrics);
    loom_translator_free(r.tr);
    loom_trainer_free(r.t);
    loom_pair_batches_free(r.batches);
    loom_store_free(r.store);
    loom_graph_free(r.g);
    s2s_data_free(&r.d);
    loom_vocab_free(v[0]), loom_vocab_free(v[1]);
    loom_st_free(ck);
    return rc;
}

