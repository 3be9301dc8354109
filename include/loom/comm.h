/* loom/comm.h — training across processes: data parallelism on MPI.
 *
 * N processes (ranks), each with a replica of the model, each its own
 * share of every batch; after each backward pass the gradients are
 * averaged over the ranks, so every replica takes the same step — the step
 * one process would take on the whole batch. A trainer given a
 * communicator (loom_trainer_opts.comm) does it: it starts each weight's
 * exchange as soon as the backward pass has finished that weight's
 * gradient (loom_plan_watch), while the rest of the backward pass runs.
 *
 * The sums are loom's, in a fixed order — not left to the MPI library:
 * each gradient is cut into N chunks; rank r receives chunk r from every
 * rank (MPI_Ialltoallv), adds them in rank order 0, 1, …, N−1, divides by
 * N, and every rank receives every summed chunk (MPI_Iallgatherv) — 2(N−1)/N
 * of the gradient sent per rank, as a ring all-reduce sends. Every rank
 * holds the same bits, and a run is the same run again to the bit.
 *
 * Built with MPI (meson -Dmpi, Debian's libopenmpi-dev) or not; without it
 * loom_comm_world says so and everything else is unchanged.
 *
 *     loom_comm *c = loom_comm_world(&err);   // under mpirun -np N
 *     ... loom_trainer_opts o = {..., .comm = c}; a per-rank batch B
 *     ... loom_batches_shard(batches, loom_comm_rank(c), loom_comm_size(c));
 *     loom_comm_free(c);                       // last: MPI_Finalize
 */
#ifndef LOOM_COMM_H
#define LOOM_COMM_H

#include "loom/graph.h"

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct loom_comm loom_comm;

/* Whether this loom was built with MPI. */
bool loom_comm_available(void);
/* Whether this process was started by an MPI launcher (mpirun, mpiexec)
 * among more than one process: what `loom train` asks before it makes
 * loom_comm_world (a process started alone trains alone). */
bool loom_comm_launched(void);

/* The processes the launcher started (MPI_COMM_WORLD, duplicated); MPI is
 * initialised (MPI_THREAD_FUNNELED: only the thread that makes the calls
 * talks to MPI) unless the program did. NULL, with the reason in *err (err
 * may be NULL), without MPI or when it fails. */
loom_comm *loom_comm_world(loom_error *err);
/* A communicator of the program's: mpi_comm points to an MPI_Comm (any
 * sub-communicator), which loom duplicates (the caller may free its own). */
loom_comm *loom_comm_from_mpi(const void *mpi_comm, loom_error *err);
/* Frees c; freeing the last communicator loom_comm_world made also
 * finalises MPI when loom initialised it. */
void loom_comm_free(loom_comm *c);
int loom_comm_rank(const loom_comm *c);
int loom_comm_size(const loom_comm *c);

/* Every rank's x[0..n) replaced by the mean over the ranks, summed in rank
 * order (above): the same bits on every rank. Collective. */
loom_status loom_comm_mean(loom_comm *c, float *x, int64_t n, loom_error *err);
/* all[r·n .. (r+1)·n) = rank r's x, on every rank. Collective. */
loom_status loom_comm_gather(loom_comm *c, const float *x, int64_t n, float *all, loom_error *err);
/* Agreement after work that may fail on some ranks: every rank passes its
 * status (and, when it failed, its message in *err); every rank returns
 * the status of the lowest failing rank, with "rank R: its message" in
 * *err — LOOM_OK everywhere when none failed. Collective. */
loom_status loom_comm_agree(loom_comm *c, loom_status st, loom_error *err);
/* Ends every process of c with `status` (MPI_Abort): for a failure some
 * ranks cannot learn of (they wait in a call the failed rank never makes). */
void loom_comm_abort(loom_comm *c, int status);

#ifdef __cplusplus
}
#endif
#endif
