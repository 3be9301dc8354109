/* Internal to loom train of a language model (tools/lm.c, its run;
 * tools/lm_checkpoint.c, its checkpoints): everything a run holds. */
#ifndef TOOLS_LM_H
#define TOOLS_LM_H

#include "tool.h"

#include <cjson/cJSON.h>

/* Everything a run holds. */
typedef struct {
    train_args a;
    loom_text *text, *held;
    const int32_t *train_ids, *valid_ids;
    int64_t n_train, n_valid;
    loom_graph *g;
    loom_lm lm;
    loom_store *store;
    loom_trainer *t;        /* gradients, plans, optimiser, carried states, batches */
    loom_batches *batches;  /* the training text's windows */
    loom_metrics *metrics;
    loom_st *ck;          /* the checkpoint resumed from */
    loom_vocab *ck_vocab; /* its vocabulary */
    cJSON *ck_data;       /* its data description (r->a.data may point into it) */
    loom_train_desc train; /* how the model trains, as a checkpoint describes it */
    long step0;           /* the first step this run makes */
    double best, last_print, loss_avg; /* the best held-out perplexity; when progress was last printed */
    int rc;                  /* the exit status a callback of the loop failed with */
    int diverged;            /* 1: the run diverged and --strict makes that a failure */
    loom_fit_report last;    /* the loop's last report */
    loom_norms_log norms;        /* --norms-every */
    loom_comm *comm;             /* data parallelism (mpirun): this process is rank `rank` of `ranks` */
    int rank, ranks;
} run;

/* The run's checkpoint at --save (0, or the exit status with a message). */
int lm_save(run *r);
/* The checkpoint at --resume read, its description taken over the
 * options and its vocabulary kept (before the text is read and the model
 * built). */
int lm_open(run *r);
/* Its trainer's state, into the model just built. */
int lm_restore(run *r);

#endif
