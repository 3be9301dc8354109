/* Data parallelism on MPI (loom/comm.h): communicators, the deterministic
 * mean, agreement on failures, and the gradients' exchange
 * (train/exchange.h). Without MPI every call says so. */
#include "loom/comm.h"
#include "train/exchange.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool loom_comm_launched(void)
{
    /* what Open MPI's and MPICH's launchers (and PMIx) set in each process */
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        const char *v = getenv(vars[i]);
        if (v && atoi(v) > 1) return true;
    }
    return false;
}

#ifdef LOOM_HAVE_MPI
#include <mpi.h>
#include <omp.h>

struct loom_comm {
    MPI_Comm mpi;
    MPI_Comm second; /* the exchanges' second collectives: each communicator sees its own in one order on every rank */
    int rank, size;
    bool world; /* made by loom_comm_world */
};

static int worlds;         /* loom_comm_world's communicators not freed yet */
static bool we_initialised; /* MPI_Init_thread was loom's */

bool loom_comm_available(void) { return true; }

static loom_status mpi_fail(loom_error *err, int code, const char *what)
{
    char msg[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(code, msg, &len);
    return loom_error_set(err, LOOM_ERR_IO, "%s: %s", what, msg);
}

static loom_comm *make(MPI_Comm from, bool world, loom_error *err)
{
    loom_comm *c = calloc(1, sizeof *c);
    if (!c) return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory"), NULL;
    int rc = MPI_Comm_dup(from, &c->mpi);
    if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Comm_dup"), free(c), NULL;
    if ((rc = MPI_Comm_dup(from, &c->second)) != MPI_SUCCESS) return MPI_Comm_free(&c->mpi), mpi_fail(err, rc, "MPI_Comm_dup"), free(c), NULL;
    /* failures come back as codes (a message and a status), not an abort */
    MPI_Comm_set_errhandler(c->mpi, MPI_ERRORS_RETURN);
    MPI_Comm_set_errhandler(c->second, MPI_ERRORS_RETURN);
    MPI_Comm_rank(c->mpi, &c->rank);
    MPI_Comm_size(c->mpi, &c->size);
    c->world = world;
    return c;
}

loom_comm *loom_comm_world(loom_error *err)
{
    int ready = 0, done = 0;
    MPI_Initialized(&ready);
    MPI_Finalized(&done);
    if (done) return loom_error_set(err, LOOM_ERR_STATE, "MPI was finalised already"), NULL;
    if (!ready) {
        int provided = 0;
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
            return loom_error_set(err, LOOM_ERR_IO, "MPI_Init_thread failed"), NULL;
        we_initialised = true;
    }
    loom_comm *c = make(MPI_COMM_WORLD, true, err);
    if (c) worlds++;
    return c;
}

loom_comm *loom_comm_from_mpi(const void *mpi_comm, loom_error *err)
{
    int ready = 0;
    MPI_Initialized(&ready);
    if (!ready || !mpi_comm) return loom_error_set(err, LOOM_ERR_ARG, "no MPI communicator (MPI not initialised?)"), NULL;
    return make(*(const MPI_Comm *)mpi_comm, false, err);
}

void loom_comm_free(loom_comm *c)
{
    if (!c) return;
    MPI_Comm_free(&c->mpi), MPI_Comm_free(&c->second);
    if (c->world && --worlds == 0 && we_initialised) {
        MPI_Finalize();
        we_initialised = false;
    }
    free(c);
}

int loom_comm_rank(const loom_comm *c) { return c ? c->rank : 0; }
int loom_comm_size(const loom_comm *c) { return c ? c->size : 1; }

void loom_comm_abort(loom_comm *c, int status) { MPI_Abort(c ? c->mpi : MPI_COMM_WORLD, status); }

loom_status loom_comm_gather(loom_comm *c, const float *x, int64_t n, float *all, loom_error *err)
{
    if (!c || n < 0 || n > INT32_MAX) return loom_error_set(err, LOOM_ERR_ARG, "gather: no communicator, or %lld floats", (long long)n);
    int rc = MPI_Allgather(x, (int)n, MPI_FLOAT, all, (int)n, MPI_FLOAT, c->mpi);
    return rc == MPI_SUCCESS ? LOOM_OK : mpi_fail(err, rc, "MPI_Allgather");
}

loom_status loom_comm_agree(loom_comm *c, loom_status st, loom_error *err)
{
    if (!c) return loom_error_set(err, LOOM_ERR_ARG, "agree: no communicator");
    int mine = st ? c->rank : c->size, first = c->size;
    int rc = MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, c->mpi);
    if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Allreduce");
    if (first == c->size) return LOOM_OK;
    struct {
        int status;
        char msg[sizeof err->msg];
    } what = {0};
    if (first == c->rank) {
        what.status = st;
        snprintf(what.msg, sizeof what.msg, "%s", err ? err->msg : "");
    }
    rc = MPI_Bcast(&what, (int)sizeof what, MPI_BYTE, first, c->mpi);
    if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Bcast");
    if (err) { /* every rank's error becomes that one (loom_error_set keeps a first error) */
        err->status = (loom_status)what.status;
        snprintf(err->msg, sizeof err->msg, "rank %d: %.990s", first, what.msg);
    }
    return (loom_status)what.status;
}

loom_status loom_comm_step(loom_comm *c, loom_status st, double *loss, const float *weights, bool *stop, loom_error *err)
{
    double mine[3] = {(double)st, *loss, *stop}, *all = malloc((size_t)c->size * sizeof mine);
    if (!all) return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    int rc = MPI_Allgather(mine, 3, MPI_DOUBLE, all, 3, MPI_DOUBLE, c->mpi);
    if (rc != MPI_SUCCESS) return free(all), mpi_fail(err, rc, "MPI_Allgather");
    double sum = 0;
    bool any_stop = false, any_failed = false;
    for (int r = 0; r < c->size; r++)
        sum += (weights ? weights[r] : 1.0) * all[3 * r + 1], any_stop |= all[3 * r + 2] != 0, any_failed |= all[3 * r] != 0;
    free(all);
    *loss = weights ? sum : sum / c->size, *stop = any_stop;
    return any_failed ? loom_comm_agree(c, st, err) : LOOM_OK;
}

loom_status loom_comm_same(loom_comm *c, uint64_t key, const char *what, loom_error *err)
{
    uint64_t *all = malloc((size_t)c->size * sizeof *all);
    if (!all) return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    int rc = MPI_Allgather(&key, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, c->mpi);
    if (rc != MPI_SUCCESS) return free(all), mpi_fail(err, rc, "MPI_Allgather");
    int differs = 0;
    for (int r = 1; r < c->size && !differs; r++)
        if (all[r] != all[0]) differs = r;
    free(all);
    return differs ? loom_error_set(err, LOOM_ERR_ARG, "rank %d's %s differs from rank 0's", differs, what) : LOOM_OK;
}

/* ---- the exchange ---- */

/* Gradient i's phase in a step. Every rank starts the spreads in `order`
 * (on c->mpi); a spread ends at different times on different ranks, so
 * the gathers too are started in `order` (on c->second), each once the
 * ones before it have been: each communicator's collectives come in one
 * order on every rank, as MPI requires. */
enum { IDLE, SPREAD, SUMMED, GATHER, DONE };

struct loom_exchange {
    loom_comm *c;
    int n, next;        /* gradients; order[next] is the next to start */
    int gathered;       /* order[0 .. gathered) have their gathers started */
    int early;          /* exchanges started by the last progress call (while the run went on) */
    int *order, *phase;
    int64_t *sizes;
    int *count, *displ; /* per gradient × rank: chunk r's length and start (n·size each) */
    float **recv;       /* per gradient: chunk `rank` of every rank, end to end */
    float **grad;
    const float *weights; /* per rank, or NULL: the mean */
    MPI_Request *req;
    int failed;         /* the first MPI error code of the step */
};

void loom_exchange_free(loom_exchange *x)
{
    if (!x) return;
    for (int i = 0; x->recv && i < x->n; i++) free(x->recv[i]);
    free(x->order), free(x->phase), free(x->sizes), free(x->count), free(x->displ), free(x->recv), free(x->grad), free(x->req);
    free(x);
}

loom_exchange *loom_exchange_new(loom_comm *c, int n, const int64_t *sizes, const int *order, loom_error *err)
{
    if (!c || n < 0) return loom_error_set(err, LOOM_ERR_ARG, "exchange: no communicator"), NULL;
    loom_exchange *x = calloc(1, sizeof *x);
    size_t N = (size_t)c->size, m = (size_t)n + 1;
    if (!x || !(x->order = malloc(m * sizeof *x->order)) || !(x->phase = calloc(m, sizeof *x->phase)) ||
        !(x->sizes = malloc(m * sizeof *x->sizes)) || !(x->count = malloc(m * N * sizeof *x->count)) ||
        !(x->displ = malloc(m * N * sizeof *x->displ)) || !(x->recv = calloc(m, sizeof *x->recv)) ||
        !(x->grad = calloc(m, sizeof *x->grad)) || !(x->req = malloc(m * sizeof *x->req)))
        return loom_exchange_free(x), loom_error_set(err, LOOM_ERR_NOMEM, "exchange: out of memory"), NULL;
    x->c = c, x->n = n;
    for (int i = 0; i < n; i++) {
        x->order[i] = order[i], x->sizes[i] = sizes[i], x->req[i] = MPI_REQUEST_NULL;
        /* rank r's chunk: ⌊s/N⌋ floats, one more for the first s mod N ranks */
        int64_t base = sizes[i] / (int64_t)N, extra = sizes[i] % (int64_t)N;
        if (base + 1 > INT32_MAX)
            return loom_exchange_free(x), loom_error_set(err, LOOM_ERR_ARG, "exchange: a gradient of %lld floats is too large",
                                                         (long long)sizes[i]), NULL;
        for (int64_t r = 0; r < (int64_t)N; r++) {
            x->count[(size_t)i * N + (size_t)r] = (int)(base + (r < extra));
            x->displ[(size_t)i * N + (size_t)r] = (int)(r * base + (r < extra ? r : extra));
        }
        size_t mine = (size_t)x->count[(size_t)i * N + (size_t)c->rank];
        if (!(x->recv[i] = malloc((mine * N + 1) * sizeof(float))))
            return loom_exchange_free(x), loom_error_set(err, LOOM_ERR_NOMEM, "exchange: out of memory"), NULL;
    }
    return x;
}

void loom_exchange_begin(loom_exchange *x, float *const *grads, const float *weights)
{
    x->weights = weights;
    for (int i = 0; i < x->n; i++) x->grad[i] = grads[i], x->phase[i] = IDLE, x->req[i] = MPI_REQUEST_NULL;
    x->next = x->gathered = x->early = 0, x->failed = MPI_SUCCESS;
}

/* Chunk r of every rank to rank r. The displacements of what this rank
 * receives: rank j's chunk at j·mine. */
static void spread(loom_exchange *x, int i)
{
    int N = x->c->size, me = x->c->rank, mine = x->count[(size_t)i * N + me];
    int *rcount = malloc((size_t)N * sizeof *rcount), *rdispl = malloc((size_t)N * sizeof *rdispl);
    int rc = MPI_ERR_NO_MEM;
    if (rcount && rdispl) {
        for (int j = 0; j < N; j++) rcount[j] = mine, rdispl[j] = j * mine;
        rc = MPI_Ialltoallv(x->grad[i], x->count + (size_t)i * N, x->displ + (size_t)i * N, MPI_FLOAT, x->recv[i], rcount, rdispl,
                            MPI_FLOAT, x->c->mpi, &x->req[i]);
    }
    free(rcount), free(rdispl); /* MPI keeps its own copy of the arrays of a started collective (MPI 3.1 §5.12) */
    if (rc != MPI_SUCCESS && x->failed == MPI_SUCCESS) x->failed = rc;
    x->phase[i] = SPREAD;
}

/* This rank's chunk, summed over the ranks in rank order and divided by
 * N, into its place in grad[i]. */
static void sum(loom_exchange *x, int i)
{
    int N = x->c->size, me = x->c->rank, mine = x->count[(size_t)i * N + me];
    float *out = x->grad[i] + x->displ[(size_t)i * N + me];
    const float *in = x->recv[i], *w = x->weights;
    for (int k = 0; k < mine; k++) {
        float s = w ? w[0] * in[k] : in[k];
        for (int j = 1; j < N; j++) s += w ? w[j] * in[(size_t)j * mine + k] : in[(size_t)j * mine + k];
        out[k] = w ? s : s / (float)N;
    }
    x->phase[i] = SUMMED;
}

/* Every summed chunk to every rank (in place). */
static void gather(loom_exchange *x, int i)
{
    int N = x->c->size;
    int rc = MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, x->grad[i], x->count + (size_t)i * N, x->displ + (size_t)i * N,
                             MPI_FLOAT, x->c->second, &x->req[i]);
    if (rc != MPI_SUCCESS && x->failed == MPI_SUCCESS) x->failed = rc;
    x->phase[i] = GATHER;
}

/* Gradient i's collective done (wait: block until it is): its next phase. */
static void advance(loom_exchange *x, int i, bool wait)
{
    if (x->phase[i] != SPREAD && x->phase[i] != GATHER) return;
    int done = 0, rc;
    if (wait) rc = MPI_Wait(&x->req[i], MPI_STATUS_IGNORE), done = 1;
    else rc = MPI_Test(&x->req[i], &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS && x->failed == MPI_SUCCESS) x->failed = rc;
    if (rc != MPI_SUCCESS) done = 1; /* on, so that every rank still starts every collective */
    if (!done) return;
    if (x->phase[i] == SPREAD) sum(x, i);
    else x->phase[i] = DONE;
}

/* The gathers whose turn has come (those before them started). */
static void start_gathers(loom_exchange *x)
{
    while (x->gathered < x->next && x->phase[x->order[x->gathered]] == SUMMED) gather(x, x->order[x->gathered++]);
}

void loom_exchange_ready(loom_exchange *x, int i)
{
    if (x->phase[i] != IDLE) return;
    while (x->next < x->n && x->phase[i] == IDLE) spread(x, x->order[x->next++]);
}

void loom_exchange_progress(loom_exchange *x)
{
    for (int k = 0; k < x->next; k++) advance(x, x->order[k], false);
    start_gathers(x);
    x->early = x->next;
}

loom_status loom_exchange_finish(loom_exchange *x, double *waited, int *early, loom_error *err)
{
    double t0 = MPI_Wtime();
    if (early) *early = x->early;
    while (x->next < x->n) spread(x, x->order[x->next++]);
    for (int k = 0; k < x->n; k++) { /* each spread, in order, and the gathers as their turn comes */
        advance(x, x->order[k], true);
        start_gathers(x);
    }
    for (int k = 0; k < x->n; k++) advance(x, x->order[k], true);
    if (waited) *waited += MPI_Wtime() - t0;
    return x->failed == MPI_SUCCESS ? LOOM_OK : mpi_fail(err, x->failed, "gradient exchange");
}

loom_status loom_comm_mean(loom_comm *c, float *x, int64_t n, loom_error *err)
{
    int order = 0;
    loom_exchange *e = loom_exchange_new(c, 1, &n, &order, err);
    if (!e) return err ? err->status : LOOM_ERR_NOMEM;
    loom_exchange_begin(e, &x, NULL);
    loom_status st = loom_exchange_finish(e, NULL, NULL, err);
    loom_exchange_free(e);
    return st;
}

#else /* built without MPI */

struct loom_comm {
    int unused;
};

bool loom_comm_available(void) { return false; }

static loom_status none(loom_error *err)
{
    return loom_error_set(err, LOOM_ERR_STATE, "this loom was built without MPI (install libopenmpi-dev and build with -Dmpi=enabled)");
}

loom_comm *loom_comm_world(loom_error *err) { return none(err), NULL; }
loom_comm *loom_comm_from_mpi(const void *mpi_comm, loom_error *err) { return none(err), NULL; }
void loom_comm_free(loom_comm *c) { free(c); }
int loom_comm_rank(const loom_comm *c) { return 0; }
int loom_comm_size(const loom_comm *c) { return 1; }
void loom_comm_abort(loom_comm *c, int status) {}
loom_status loom_comm_mean(loom_comm *c, float *x, int64_t n, loom_error *err) { return none(err); }
loom_status loom_comm_gather(loom_comm *c, const float *x, int64_t n, float *all, loom_error *err) { return none(err); }
loom_status loom_comm_agree(loom_comm *c, loom_status st, loom_error *err) { return st; }
loom_status loom_comm_step(loom_comm *c, loom_status st, double *loss, const float *weights, bool *stop, loom_error *err) { return st; }
loom_status loom_comm_same(loom_comm *c, uint64_t key, const char *what, loom_error *err) { return LOOM_OK; }
loom_exchange *loom_exchange_new(loom_comm *c, int n, const int64_t *sizes, const int *order, loom_error *err)
{
    return none(err), NULL;
}
void loom_exchange_free(loom_exchange *x) {}
void loom_exchange_begin(loom_exchange *x, float *const *grads, const float *weights) {}
void loom_exchange_ready(loom_exchange *x, int i) {}
void loom_exchange_progress(loom_exchange *x) {}
loom_status loom_exchange_finish(loom_exchange *x, double *waited, int *early, loom_error *err) { return none(err); }

#endif
