/* `loom train` of a language model on a text: tokens, the trainer's
 * windows, any cell, an optimiser with clipping and a schedule, progress,
 * held-out perplexity, a metrics file, checkpoints, and generated text at
 * the end. The loop is the library's (loom_trainer_fit); this file holds
 * its callbacks (printing, metrics, held-out perplexity); its checkpoints
 * are tools/lm_checkpoint.c. */
#include "lm.h"

#include "loom/loom.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>



static const char command[] = "loom train";

static int fail(const char *what, const char *why) { return tool_fail(command, what, why); }
static int fail_st(loom_status st, const char *what, const char *why) { return tool_fail_st(command, st, what, why); }

/* The text, split into training and held-out tokens. */
static int load_text(run *r)
{
    const train_args *a = &r->a;
    r->text = loom_text_new(&(loom_text_opts){.kind = a->tokens, .letters_only = a->letters_only});
    if (!r->text) return fail_st(LOOM_ERR_NOMEM, "out of memory", NULL);
    /* resuming: the checkpoint's vocabulary, so that ids mean what they meant */
    if (r->ck_vocab ? loom_text_read_with(r->text, a->data, r->ck_vocab) : loom_text_read(r->text, a->data))
        return fail(loom_text_error(r->text), NULL);
    int64_t n;
    const int32_t *ids = loom_text_ids(r->text, &n);
    if (a->valid) {
        r->held = loom_text_new(NULL);
        if (!r->held || loom_text_read_with(r->held, a->valid, loom_text_vocab(r->text)))
            return fail(r->held ? loom_text_error(r->held) : "out of memory", NULL);
        r->train_ids = ids, r->n_train = n;
        r->valid_ids = loom_text_ids(r->held, &r->n_valid);
    } else { /* the last 10% */
        r->n_valid = n / 10;
        r->train_ids = ids, r->n_train = n - r->n_valid;
        r->valid_ids = ids + r->n_train;
    }
    int64_t T = a->m.steps, B = a->m.batch;
    if ((r->n_valid - 1) / B / T < 1)
        fprintf(stderr, "%s: warning: the held-out text (%lld tokens) is shorter than one batch of --seq-len × --batch "
                        "(%lld tokens): no held-out perplexity\n",
                command, (long long)r->n_valid, (long long)(T * B + 1));
    if (r->n_train - T - 1 < T * B) { /* before the model is built: a forged seq_len costs nothing */
        fprintf(stderr, "%s: the training text (%lld tokens) is too short for one batch of --seq-len × --batch = %lld "
                        "tokens\n", command, (long long)r->n_train, (long long)(T * B + T + 1));
        return 2;
    }
    return 0;
}


/* The model, its weights, its batches and its trainer (training and
 * evaluation plans, optimiser, schedule, clipping, carried states). */
static int build(run *r)
{
    const train_args *a = &r->a;
    int V = loom_vocab_size(loom_text_vocab(r->text)), T = (int)a->m.steps, B = (int)a->m.batch;
    r->g = loom_graph_new();
    if (!r->g) return fail_st(LOOM_ERR_NOMEM, "out of memory", NULL);
    loom_lm_build(r->g, &r->lm, &(loom_lm_opts){.cell = a->m.cell, .vocab = V, .embed = (int)a->embed,
                                                 .hidden = (int)a->m.hidden, .layers = (int)a->m.layers,
                                                 .stacking = (loom_stacking)a->m.stacking, .tie_weights = a->tie_weights,
                                                 .variational = a->variational, .state_dropout = (float)a->state_dropout,
                                                 .weight_drop = (float)a->weight_drop, .zoneout = (float)a->zoneout,
                                                 .dropout_embed = (float)a->dropout_embed,
                                                 .dropout = (float)a->dropout, .steps = T, .batch = B,
                                                 .seed = (uint64_t)a->m.seed,
                                                 .trunc = !a->truncate ? LOOM_TRUNC_NONE
                                                          : a->random_trunc ? LOOM_TRUNC_RANDOM : LOOM_TRUNC_FIXED,
                                                 .truncate = (int)a->truncate, .sampled_softmax = (int)a->sampled_softmax,
                                                 .unit_forget_bias = a->unit_forget_bias});
    loom_error fit = {0};
    if (r->ck && !loom_graph_failed(r->g) && loom_store_fits(r->g, r->ck, &fit)) return fail(a->resume, fit.msg);
    r->store = loom_store_new(r->g);
    if (loom_graph_failed(r->g)) return fail_st(loom_graph_status(r->g), loom_graph_error(r->g), NULL);
    if (loom_store_status(r->store)) return fail_st(loom_store_status(r->store), loom_store_error(r->store), NULL);
    /* the global batch (the trainer gives each rank its columns) */
    r->batches = loom_batches_new(r->train_ids, r->n_train, T, B * r->ranks, a->sequential ? LOOM_SAMPLE_SEQUENTIAL : LOOM_SAMPLE_RANDOM,
                                  (uint64_t)a->m.seed);
    if (!r->batches) return fail("the training text is too short for one batch of --seq-len × --batch tokens", NULL);
    if (a->epochs) { /* the steps of N epochs (each has its own random offset, hence its own count) */
        r->a.steps = 0;
        for (int64_t e = 0; e < a->epochs; e++) {
            loom_batches_seek(r->batches, e, 0);
            r->a.steps += loom_batches_per_epoch(r->batches);
        }
        loom_batches_seek(r->batches, 0, 0);
    }
    loom_error err = {0};
    loom_train_desc *d = &r->train;
    *d = (loom_train_desc){.optim = {.kind = a->optimizer, .lr = (float)a->lr, .momentum = (float)a->momentum,
                                     .weight_decay = (float)a->weight_decay},
                           .schedule = {.kind = a->schedule, .gamma = a->schedule == LOOM_SCHED_EXP ? 0.999f : 0.5f,
                                        .step_size = r->a.steps / 3 > 0 ? r->a.steps / 3 : 1, .total = r->a.steps,
                                        .warmup = a->warmup},
                           .clip_norm = a->clip, .trunc = r->lm.o.trunc, .truncate = r->lm.o.truncate,
                           .sequential = a->sequential, .teacher_forcing = 1, .seed = (uint64_t)a->m.seed};
    r->t = loom_trainer_new(r->g, r->store,
                            &(loom_trainer_opts){.loss = r->lm.train_loss, .eval_loss = r->lm.loss,
                                                 .sampled = r->lm.o.sampled_softmax ? &r->lm.sampled : NULL,
                                                 .state_in = r->lm.init, .state_out = r->lm.out.final,
                                                 .n_states = a->m.cell->n_states, .optim = d->optim, .schedule = d->schedule,
                                                 .clip_norm = d->clip_norm, .seed = d->seed, .trunc_xi = r->lm.trunc_xi,
                                                 .trunc_mean = d->truncate, .batches = r->batches, .tokens = r->lm.tokens,
                                                 .targets = r->lm.targets, .fresh_states = !d->sequential,
                                                 .recompute = (int32_t)a->recompute,
                                                 .precision = (loom_precision)a->precision, .comm = r->comm},
                            &err);
    if (!r->t) return fail_st(err.status, err.msg, NULL);
    loom_store_init(r->store, (uint64_t)a->m.seed);
    return 0;
}

#define LM_COLUMNS "step,loss,perplexity,grad_norm,lr,tokens_per_s,valid_perplexity"

static int flush_metrics(run *r) { return tool_flush_metrics(command, &r->metrics); }

/* ---- the loop's callbacks (loom_trainer_fit) ---- */

/* Perplexity on the held-out tokens (NAN when they hold no window). */
static loom_status evaluate(void *ctx, loom_trainer *t, double *ppl)
{
    run *r = ctx;
    double mean;
    loom_status st = loom_trainer_eval_stream(t, r->valid_ids, r->n_valid, &mean);
    if (st) return r->rc = fail_st(st, "held-out evaluation", loom_trainer_error(t)), st;
    *ppl = exp(mean);
    if (*ppl < r->best) r->best = *ppl;
    return LOOM_OK;
}

/* A metrics row and, every so often, a progress line. */
static loom_status progress(void *ctx, const loom_fit_report *f)
{
    run *r = ctx;
    const train_args *a = &r->a;
    const loom_train_step *s = &f->step;
    long done = (long)(s->step - f->first_step + 1);
    double tps = (double)done * a->m.steps * a->m.batch * r->ranks / f->seconds, vppl = f->evaluated ? f->score : NAN;
    if (r->metrics) {
        char v[32] = "", ppl[32];
        if (!isnan(vppl)) tool_num(v, sizeof v, vppl, 4);
        if (a->sampled_softmax) ppl[0] = 0; /* the sampled loss is no perplexity: its column left empty */
        else tool_num(ppl, sizeof ppl, exp(s->loss), 4);
        if (loom_metrics_row(r->metrics, "%lld,%.6f,%s,%.6f,%.6g,%.1f,%s", (long long)s->step, s->loss, ppl, s->grad_norm, s->lr,
                             tps, v))
            return r->rc = fail("--metrics", "out of memory"), r->rc = 1, LOOM_ERR_NOMEM;
        if ((f->evaluated || loom_metrics_age(r->metrics) > 10) && (r->rc = flush_metrics(r))) return LOOM_ERR_IO;
    }
    bool tty = isatty(2);
    if (f->evaluated || (tty && f->seconds - r->last_print > 0.25) || (!tty && f->seconds - r->last_print > 10) || done == 1) {
        r->last_print = f->seconds;
        double eta = f->seconds / (double)done * (double)(f->steps - s->step);
        char ppl[32];
        if (r->a.sampled_softmax) /* a sampled loss is no perplexity */
            fprintf(stderr, "%sstep %lld/%lld  sampled loss %.3f  grad norm %.2f  %.0f tokens/s  ETA %.0f s", tty ? "\r" : "",
                    (long long)s->step, (long long)f->steps, f->loss_avg, s->grad_norm, tps, eta);
        else
            fprintf(stderr, "%sstep %lld/%lld  loss %.3f  perplexity %s  grad norm %.2f  %.0f tokens/s  ETA %.0f s",
                    tty ? "\r" : "", (long long)s->step, (long long)f->steps, f->loss_avg,
                    tool_num(ppl, sizeof ppl, exp(f->loss_avg), 2), s->grad_norm, tps, eta);
        if (!isnan(vppl)) fprintf(stderr, "  held-out perplexity %s", tool_num(ppl, sizeof ppl, vppl, 2));
        fprintf(stderr, tty && isnan(vppl) ? "   " : "\n");
    }
    r->loss_avg = f->loss_avg;
    r->last = *f;
    return (r->rc = tool_norms_step(&r->norms, command, s->step)) ? LOOM_ERR_IO : LOOM_OK;
}

static loom_status save_now(void *ctx, loom_trainer *t)
{
    run *r = ctx;
    (void)t;
    return (r->rc = flush_metrics(r)) || (r->rc = lm_save(r)) ? LOOM_ERR_IO : LOOM_OK;
}

static int train(run *r)
{
    const train_args *a = &r->a;
    r->best = INFINITY;
    double t0 = tool_now();
    loom_status st = loom_trainer_fit(r->t, &(loom_fit_opts){.steps = a->steps, .eval_every = a->eval_every,
                                                             .save_every = a->save ? a->save_every : 0, .ctx = r,
                                                             .evaluate = evaluate, .progress = progress, .save = save_now,
                                                             .stop = tool_stop});
    long step = (long)loom_trainer_steps(r->t);
    if (st == LOOM_ERR_VALUE) {
        fprintf(stderr, "\n%s: %s; stopping (lower --lr, or --clip)\n", command, loom_trainer_error(r->t));
        return 1;
    }
    if (st) return r->rc ? r->rc : fail_st(st, "run", loom_trainer_error(r->t));
    /* SIGINT, SIGTERM: the steps done so far, saved; with processes, on
     * every one (the fit stops them all after the step in which one was
     * signalled) */
    if (tool_stopped(r->t, a->steps)) {
        int rc = flush_metrics(r);
        if (!rc && a->save) rc = lm_save(r);
        return tool_interrupted(command, step, a->steps, a->save, rc);
    }
    double el = tool_now() - t0;
    long done = a->steps > r->step0 ? a->steps - r->step0 : 0;
    char held[96] = "no held-out perplexity (the held-out text is shorter than one batch)", ppl[32];
    if (isfinite(r->best)) snprintf(held, sizeof held, "best held-out perplexity %s", tool_num(ppl, sizeof ppl, r->best, 2));
    char train[64];
    if (a->sampled_softmax) snprintf(train, sizeof train, "final sampled loss %.3f", r->loss_avg);
    else snprintf(train, sizeof train, "final training perplexity %s", tool_num(ppl, sizeof ppl, exp(r->loss_avg), 2));
    printf("trained %ld steps in %.1f s (%.0f tokens/s): %s, %s\n", done, el, (double)done * a->m.steps * a->m.batch * r->ranks / el,
           train, held);
    int rc = flush_metrics(r);
    if (!rc && a->save) rc = lm_save(r);
    if (!rc && done) r->diverged = tool_diverged(command, &r->last, a->strict); /* saved all the same */
    return rc;
}

static int generate(run *r)
{
    if (!r->a.generate) return 0;
    return generate_text(command, &r->lm.o, r->store, loom_text_vocab(r->text), r->a.prefix, r->a.generate,
                         &(loom_search_opts){.temperature = r->a.temperature, .seed = (uint64_t)r->a.m.seed});
}

static void release(run *r)
{
    loom_batches_free(r->batches);
    loom_trainer_free(r->t);
    loom_store_free(r->store);
    loom_graph_free(r->g);
    loom_text_free(r->held), loom_text_free(r->text);
    loom_st_free(r->ck);
    loom_vocab_free(r->ck_vocab);
    cJSON_Delete(r->ck_data);
    loom_metrics_free(r->metrics);
    loom_norms_log_close(&r->norms);
}

/* Trains a language model as the options say (after parsing and the
 * dispatch of other tasks: cmd_train). */
int train_lm(const train_args *args, loom_comm *comm)
{
    run r = {.a = *args, .comm = comm, .rank = loom_comm_rank(comm), .ranks = loom_comm_size(comm)};
    int rc = 0;
    if (r.a.resume && r.a.init) return fail("--resume and --init", "choose one (a checkpoint carries its weights)");
    if (r.rank > 0) /* rank 0 writes the files and generates; the others train beside it */
        r.a.metrics = r.a.norms_csv = NULL, r.a.norms_every = 0, r.a.generate = 0;
    if (r.a.resume) rc = lm_open(&r);
    if (!rc && r.ck && loom_trainer_file_ranks(r.ck) != r.ranks)
        fprintf(stderr, "loom train: warning: %s was written by %lld process%s, this run has %d: the batches continue in another "
                        "order (a global batch of %d × --batch) and the carried states start from zero\n",
                r.a.resume, (long long)loom_trainer_file_ranks(r.ck), loom_trainer_file_ranks(r.ck) == 1 ? "" : "es", r.ranks,
                r.ranks);
    if (!rc) rc = tool_open_outputs(command, r.a.save, r.a.metrics, LM_COLUMNS, r.ck ? tool_checkpoint_step(r.ck) : -1,
                                    &r.metrics);
    if (!rc && !(rc = load_text(&r)) && !(rc = build(&r)) && !(rc = r.a.resume ? lm_restore(&r) : 0)) {
        if (r.a.init && loom_store_load_file(r.store, r.a.init, false)) {
            rc = fail_st(loom_store_status(r.store), loom_store_error(r.store), NULL);
            goto out;
        }
        if (r.a.init && !tool_finite_weights(command, r.a.init, r.store)) {
            rc = 2;
            goto out;
        }
        const train_args *a = &r.a;
        char ranks[64];
        printf("%s language model: %s tokens, vocabulary %d, %" PRId64 " training and %" PRId64
               " held-out tokens; hidden %ld, layers %ld, T=%ld B=%ld%s, %s lr %g, %ld steps\n",
               a->m.cell->name, a->tokens == LOOM_TOKENS_WORD ? "word" : "character",
               loom_vocab_size(loom_text_vocab(r.text)), r.n_train, r.n_valid, a->m.hidden, a->m.layers, a->m.steps,
               a->m.batch, tool_per_process(r.comm, ranks, sizeof ranks), (const char *[]){"sgd", "adam", "adamw"}[a->optimizer], a->lr, a->steps);
        fflush(stdout);
        loom_model_desc desc = {.kind = LOOM_MODEL_LM, .lm = r.lm.o};
        if ((rc = tool_norms_open(&r.norms, command, a->norms_csv, a->norms_every, &desc, 0, r.store, r.valid_ids, r.n_valid,
                                  r.ck ? tool_checkpoint_step(r.ck) : -1)) ||
            (!r.ck && (rc = tool_norms_step(&r.norms, command, 0)))) /* the model as it starts */
            goto out;
        rc = train(&r);
        if (rc) flush_metrics(&r); /* the rows of a run that stopped */
        if (!rc) rc = generate(&r);
        if (!rc) rc = r.diverged; /* --strict: after the text that shows it */
    }
out:
    release(&r);
    return rc;
}
