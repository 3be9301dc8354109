/* Internal to loom train of an encoder–decoder (tools/seq2seq.c, its run;
 * tools/seq2seq_checkpoint.c, its checkpoints): everything a run holds. */
#ifndef TOOLS_SEQ2SEQ_H
#define TOOLS_SEQ2SEQ_H

#include "tool.h"

typedef struct {
    double loss, bleu, exact;
} scores;

/* Everything a training run holds. */
typedef struct {
    const train_args *a;
    s2s_data d;                 /* the pairs: training, held out */
    loom_seq2seq_opts mo;
    loom_graph *g;
    loom_seq2seq m;
    loom_store *store;
    loom_trainer *t;            /* gradients, plans, optimiser, schedule, clipping */
    loom_train_desc train;      /* how it trains, as a checkpoint describes it */
    loom_pair_batches *batches; /* the order of the pairs, the batch's buffers */
    const loom_pair_batch *x;
    loom_translator *tr;
    loom_metrics *metrics;
    long step0; /* the first step this run makes (a resumed run's checkpoint step) */
    double best_bleu, last_print, loss_avg;
    loom_fit_report last; /* the loop's last report */
    scores sc;  /* the last held-out scores */
    int rc;     /* the exit status a callback of the loop failed with */
    loom_comm *comm; /* data parallelism (mpirun), else NULL */
} s2s;

/* The run's checkpoint at --save (0, or the exit status with a message). */
int s2s_save(s2s *r);
/* The checkpoint's model, task and optimiser replace the options (its
 * vocabularies in v, its paths copied into data_buf). */
int s2s_resume_config(train_args *a, const loom_st *ck, loom_vocab **v, char *data_buf, size_t data_len);
/* Its trainer's state and the pairs' order and position, into the run just built. */
int s2s_restore(s2s *r, const loom_st *ck);

#endif
