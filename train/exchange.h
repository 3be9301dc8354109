/* Internal: the gradients' exchange of a data-parallel trainer
 * (loom/comm.h), one gradient at a time, non-blocking.
 *
 * Gradient i goes through two collectives: its chunks to their owners
 * (MPI_Ialltoallv), the owner's sum in rank order, then the sums to
 * everyone (MPI_Iallgatherv, in place). Collectives must be started in the
 * same order on every rank: gradients are started in `order` (the plan's
 * watch order, the same on every rank with the same graph) — `ready` for
 * the next ones as the backward pass finishes them, `finish` for the rest.
 */
#ifndef LOOM_TRAIN_EXCHANGE_H
#define LOOM_TRAIN_EXCHANGE_H

#include "loom/comm.h"

typedef struct loom_exchange loom_exchange;

/* n gradients of sizes[i] floats, started in order[0..n). */
loom_exchange *loom_exchange_new(loom_comm *c, int n, const int64_t *sizes, const int *order, loom_error *err);
void loom_exchange_free(loom_exchange *x);
/* A step begins: grads[i] (valid until finish) will hold gradient i;
 * weights (NULL: 1/N each; else one per rank, valid until finish): the
 * exchange computes Σ_r weights[r]·(rank r's gradient), in rank order. */
void loom_exchange_begin(loom_exchange *x, float *const *grads, const float *weights);
/* Gradient order[k] is final: starts it, and those before it in order not
 * started yet (there are none when readiness comes in order). */
void loom_exchange_ready(loom_exchange *x, int i);
/* Moves the started exchanges on (MPI makes progress inside its calls). */
void loom_exchange_progress(loom_exchange *x);
/* Starts the rest, waits for every exchange: grads[i] hold the mean over
 * the ranks. The seconds spent in it are added to *waited; *early: the
 * exchanges started by the last progress call (during the run, with work
 * left to overlap). Either may be NULL. */
loom_status loom_exchange_finish(loom_exchange *x, double *waited, int *early, loom_error *err);

/* A step's agreement: every rank's status, loss and wish to stop. On
 * return *loss is the ranks' mean (in rank order; weights: Σ_r weights[r]·
 * loss_r), *stop whether any rank
 * wished it, and the status the lowest failing rank's ("rank R: ..." in
 * *err), on every rank alike. Collective. */
loom_status loom_comm_step(loom_comm *c, loom_status st, double *loss, const float *weights, bool *stop, loom_error *err);
/* Whether every rank passed the same `key` (a model's fingerprint):
 * LOOM_ERR_ARG naming the first rank that differs from rank 0 otherwise.
 * Collective. */
loom_status loom_comm_same(loom_comm *c, uint64_t key, const char *what, loom_error *err);

#endif
