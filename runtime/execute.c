/* Execution: binding caller data, running the ready sets in one OpenMP
 * parallel region per run (small nodes side by side or one after another
 * on the first thread, a big kernel split across the team), reading
 * outputs. */
#include "runtime/plan.h"

#include <omp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

const char *loom_plan_error(const loom_plan *p) { return p ? loom_error_msg(&p->err) : "no plan"; }


loom_status loom_bind(loom_plan *p, loom_tensor t, const void *data)
{
    if (!p) return LOOM_ERR_ARG;
    loom_error_clear(&p->err);
    if (loom_index(t) < 0 || loom_index(t) >= p->n_graph)
        return plan_err(p, LOOM_ERR_ARG, "bind: tensor id %d is not in the planned graph", t.id);
    const loom_node *nd = loom_graph_node(p->g, t);
    if (!(loom_op(nd->op)->flags & OPF_BOUND))
        return plan_err(p, LOOM_ERR_ARG, "bind: %s is a %s, not an input or parameter", TSTR(p->g, t),
                        loom_op_name(nd->op));
    if (!data) return plan_err(p, LOOM_ERR_ARG, "bind: NULL data for %s", TSTR(p->g, t));
    p->bound[loom_index(t)] = data;
    return LOOM_OK;
}

static loom_status bind_typed(loom_plan *p, loom_tensor t, const void *data, size_t n, loom_dtype dt)
{
    if (!p) return LOOM_ERR_ARG;
    loom_error_clear(&p->err);
    const loom_node *nd = loom_graph_node(p->g, t);
    if (nd && (loom_op(nd->op)->flags & OPF_BOUND)) {
        if (nd->dtype != dt)
            return plan_err(p, LOOM_ERR_TYPE, "bind: %s is %s, the buffer holds %s", TSTR(p->g, t),
                            nd->dtype == LOOM_I32 ? "i32" : "f32", dt == LOOM_I32 ? "int32_t" : "float");
        if ((int64_t)n != loom_shape_numel(nd->shape))
            return plan_err(p, LOOM_ERR_SHAPE, "bind: %s has %lld elements, the buffer %zu", TSTR(p->g, t),
                            (long long)loom_shape_numel(nd->shape), n);
    }
    return loom_bind(p, t, data);
}

loom_status loom_bind_f32(loom_plan *p, loom_tensor t, const float *data, size_t n)
{
    return bind_typed(p, t, data, n, LOOM_F32);
}

loom_status loom_bind_i32(loom_plan *p, loom_tensor t, const int32_t *data, size_t n)
{
    return bind_typed(p, t, data, n, LOOM_I32);
}

loom_status loom_bind_all(loom_plan *p, const loom_binding *b, int n)
{
    for (int i = 0; i < n; i++) {
        loom_status s = loom_bind(p, b[i].t, b[i].data);
        if (s) return s;
    }
    return LOOM_OK;
}

void loom_plan_set_seed(loom_plan *p, uint64_t seed)
{
    p->seed = seed;
    p->runs = 0;
}

void loom_plan_set_eval(loom_plan *p, bool eval) { p->eval = eval; }
uint64_t loom_plan_runs(const loom_plan *p) { return p->runs; }
void loom_plan_set_runs(loom_plan *p, uint64_t runs) { p->runs = runs; }

static float *storage(const loom_plan *p, int32_t id)
{
    int32_t r = p->root[id];
    return p->offset[r] >= 0 ? p->arena + p->offset[r] : (float *)(uintptr_t)p->bound[r];
}

/* Runs node id's kernel into out (+= when beta is 1) with input-pointer
 * scratch rows from `in`, `in_node`; inputs folded into id's kernel are
 * left out of the rows (their own kernels run them). rows > 1: a batch —
 * the kernel sees the node and its input 0 with `rows` times their first
 * dimension (the members' rows, end to end). */
static loom_status run_kernel(loom_plan *p, int32_t id, float *out, float beta, int stack, int rows, int tid,
                              int nth, const float **in, const loom_node **in_node, char *err, size_t err_len)
{
    const loom_node *nd = loom_graph_node(p->g, loom_at(id));
    int n = 0;
    for (int j = 0; j < nd->n_in; j++) {
        loom_tensor x = loom_node_input(p->g, loom_at(id), j);
        if (p->rw.into[loom_index(x)] == id) continue;
        in[n] = storage(p, loom_index(x));
        in_node[n++] = loom_graph_node(p->g, x);
    }
    loom_node big, big0;
    if (rows > 1) {
        big = *nd, big0 = *in_node[0];
        big.shape.d[0] *= rows, big0.shape.d[0] *= rows;
        nd = &big, in_node[0] = &big0;
    }
    loom_kargs a = {p->g, nd, out, in, in_node, n, beta, stack, p->seed * 0x2545F4914F6CDD1Dull + p->runs,
                    !p->eval, tid, nth, &p->team, err, err_len, NULL, -1};
    if (p->mm && (loom_op(nd->op)->flags & OPF_MATMUL)) {
        a.mm = p->mm;
        int32_t b = p->root[loom_index(loom_node_input(p->g, loom_at(id), 1))];
        if (loom_op(loom_graph_node(p->g, loom_at(b))->op)->role == LOOM_ROLE_PARAM) a.b_param = b;
    }
    if (!p->team.solo || nth < 2) return loom_op(nd->op)->forward(&a);
    loom_status s = LOOM_OK; /* one thread, every share in turn: the team's very computations */
    for (a.tid = 0; a.tid < nth && !s; a.tid++) s = loom_op(nd->op)->forward(&a);
    return s;
}

/* Whether folded term x's inputs lie right after term y's (dir 1: input
 * j of x starts where input j of y ends) or right before them (dir −1),
 * for an op that stacks. */
static bool adjacent(const loom_plan *p, int32_t y, int32_t x, int dir)
{
    const loom_node *ny = loom_graph_node(p->g, loom_at(y)), *nx = loom_graph_node(p->g, loom_at(x));
    const loom_op_desc *d = loom_op(nx->op);
    if (nx->op != ny->op || !d->stacks || !d->stacks(p->g, loom_at(x)) || memcmp(&nx->attr, &ny->attr, sizeof nx->attr))
        return false;
    for (int j = 0; j < nx->n_in; j++) {
        loom_tensor a = loom_node_input(p->g, loom_at(y), j), b = loom_node_input(p->g, loom_at(x), j);
        if (!loom_shape_eq(loom_tensor_shape(p->g, a), loom_tensor_shape(p->g, b)) ||
            storage(p, loom_index(b)) != storage(p, loom_index(a)) + dir * loom_tensor_numel(p->g, a))
            return false;
    }
    return true;
}

/* Terms of sum id at input positions [lo, hi) run by `piece` (-1: the sum
 * itself): each term's kernel runs into the sum's buffer (β = 0 first, if
 * *beta is 0) — consecutive terms whose operands lie end to end, in either
 * direction (the memory planner places them so), as one kernel from the
 * lowest addresses. In a team the kernels split the buffer differently: a
 * barrier between them. */
static loom_status run_terms(loom_plan *p, int32_t id, int32_t lo, int32_t hi, int32_t piece, float *beta, int tid,
                             int nth, const float **in, const loom_node **in_node, char *err, size_t err_len)
{
    float *out = storage(p, id);
    loom_status s = LOOM_OK;
    int32_t low = -1, last = -1, stack = 0, dir = 0;
    for (int32_t j = lo; j <= hi && !s; j++) {
        int32_t x = j < hi ? loom_index(loom_node_input(p->g, loom_at(id), j)) : -1;
        if (x >= 0 && (p->rw.into[x] != id || p->piece_of[x] != piece)) continue;
        if (x >= 0 && stack && dir >= 0 && adjacent(p, last, x, 1)) {
            last = x, stack++, dir = 1;
            continue;
        }
        if (x >= 0 && stack && dir <= 0 && adjacent(p, last, x, -1)) {
            low = last = x, stack++, dir = -1;
            continue;
        }
        if (stack) {
            if (tid == 0) {
                #pragma omp atomic
                p->stacked += stack - 1;
            }
            if (*beta != 0.0f && nth > 1 && !p->team.solo) {
                loom_team_barrier(&p->team);
            }
            s = run_kernel(p, low, out, *beta, stack, 1, tid, nth, in, in_node, err, err_len);
            *beta = 1.0f;
        }
        low = last = x, stack = 1, dir = 0;
    }
    return s;
}

/* A sum with folded terms: the terms no piece ran (after the pieces, which
 * ran earlier into its buffer), then the sum adds its other terms, if
 * any. */
static loom_status run_sum(loom_plan *p, int32_t id, int tid, int nth, const float **in, const loom_node **in_node,
                           char *err, size_t err_len)
{
    const loom_node *nd = loom_graph_node(p->g, loom_at(id));
    float beta = p->has_pieces[id] ? 1.0f : 0.0f;
    loom_status s = run_terms(p, id, 0, nd->n_in, -1, &beta, tid, nth, in, in_node, err, err_len);
    if (!s && p->rw.folded_in[id] < nd->n_in) {
        if (beta != 0.0f && nth > 1 && !p->team.solo) {
            loom_team_barrier(&p->team);
        }
        s = run_kernel(p, id, storage(p, id), beta, 1, 1, tid, nth, in, in_node, err, err_len);
    }
    return s;
}

/* Piece k: its terms into its sum's buffer, the sum's first piece with
 * β = 0. */
static loom_status run_piece(loom_plan *p, int32_t k, int tid, int nth, const float **in, const loom_node **in_node,
                             char *err, size_t err_len)
{
    float beta = p->piece_first[k] ? 0.0f : 1.0f;
    return run_terms(p, p->piece_sum[k], p->piece_lo[k], p->piece_hi[k], k, &beta, tid, nth, in, in_node, err, err_len);
}

/* A batch's first member: one kernel for all when the members' input 0
 * and outputs lie end to end in member order (the memory planner places
 * them so), else each member's own kernel. */
static loom_status run_batch(loom_plan *p, int32_t id, int tid, int nth, const float **in, const loom_node **in_node,
                             char *err, size_t err_len)
{
    int32_t b = p->rw.batch_of[id], *m = p->rw.batch_member + p->rw.batch_start[b], n = p->rw.batch_start[b + 1] - p->rw.batch_start[b];
    int64_t in_size = loom_tensor_numel(p->g, loom_node_input(p->g, loom_at(id), 0)), out_size = loom_tensor_numel(p->g, loom_at(id));
    const float *in0 = storage(p, loom_index(loom_node_input(p->g, loom_at(id), 0)));
    bool end_to_end = true;
    for (int32_t k = 1; k < n && end_to_end; k++)
        end_to_end = storage(p, loom_index(loom_node_input(p->g, loom_at(m[k]), 0))) == in0 + k * in_size &&
                     storage(p, m[k]) == storage(p, id) + k * out_size;
    if (end_to_end) {
        if (tid == 0) {
            #pragma omp atomic
            p->batched_run += n - 1;
        }
        return run_kernel(p, id, storage(p, id), 0.0f, 1, n, tid, nth, in, in_node, err, err_len);
    }
    loom_status s = LOOM_OK;
    for (int32_t k = 0; k < n && !s; k++) s = run_kernel(p, m[k], storage(p, m[k]), 0.0f, 1, 1, tid, nth, in, in_node, err, err_len);
    return s;
}

/* A fused group's leader: its members' element rules in one pass
 * (ops/fuse.c), operands resolved to members' values or outside data. */
static loom_status run_fused(loom_plan *p, int32_t lead, int tid, int nth, char *err, size_t err_len)
{
    int32_t n;
    const int32_t *m = loom_rewrites_members(&p->rw, &lead, &n);
    const loom_node *ln = loom_graph_node(p->g, loom_at(lead));
    loom_fused_op ops[LOOM_FUSE_MAX];
    for (int32_t k = 0; k < n; k++) {
        const loom_node *nd = loom_graph_node(p->g, loom_at(m[k]));
        loom_fused_op *o = &ops[k];
        *o = (loom_fused_op){loom_op(nd->op)->span, nd->attr.f, nd->n_in, {-1, -1}, {NULL, NULL}, {{0}}, {false, false},
                             p->rw.temp[m[k]] ? NULL : storage(p, m[k])};
        for (int j = 0; j < nd->n_in; j++) {
            loom_tensor x = loom_node_input(p->g, loom_at(m[k]), j);
            for (int32_t s = 0; s < k && o->src[j] < 0; s++)
                if (m[s] == loom_index(x)) o->src[j] = s;
            if (o->src[j] >= 0) continue;
            o->ext[j] = storage(p, loom_index(x));
            o->full[j] = loom_tensor_numel(p->g, x) == loom_shape_numel(ln->shape);
            loom_broadcast_strides(loom_tensor_shape(p->g, x), ln->shape, o->st[j]);
        }
    }
    loom_kargs a = {p->g, ln, NULL, NULL, NULL, 0, 0.0f, 1, 0, !p->eval, tid, nth, &p->team, err, err_len, NULL, -1};
    if (!p->team.solo || nth < 2) loom_fused_run(&a, ops, n);
    else
        for (a.tid = 0; a.tid < nth; a.tid++) loom_fused_run(&a, ops, n);
    return LOOM_OK;
}

/* The profile's kinds: every op, then a fused group and a sum running its
 * matmul terms (or a piece of them). */
enum { PROF_FUSED = OP_COUNT, PROF_SUM_MATMUL, PROF_KINDS };

static bool does_matmul(const loom_plan *p, int32_t id);

static int prof_kind(const loom_plan *p, int32_t id)
{
    if (id >= p->n_graph) return PROF_SUM_MATMUL; /* a piece of a sum's matmul terms */
    if (p->rw.fuse_of[id] >= 0) return PROF_FUSED;
    int op = loom_graph_node(p->g, loom_at(id))->op;
    return p->rw.folded_in[id] && does_matmul(p, id) ? PROF_SUM_MATMUL : op;
}

static loom_status run_node(loom_plan *p, int32_t id, int tid, int nth, int slot);

/* run_node, timed on thread 0 while the plan is profiled. */
static loom_status exec_node(loom_plan *p, int32_t id, int tid, int nth, int slot)
{
    if (!p->profiling || slot != 0) return run_node(p, id, tid, nth, slot);
    double t0 = omp_get_wtime();
    loom_status s = run_node(p, id, tid, nth, slot);
    int kind = prof_kind(p, id);
    p->prof_s[kind] += omp_get_wtime() - t0;
    p->prof_n[kind]++;
    return s;
}

void loom_plan_set_profile(loom_plan *p, bool on)
{
    if (!p) return;
    if (on && !p->prof_s) {
        p->prof_s = calloc(PROF_KINDS, sizeof *p->prof_s);
        p->prof_n = calloc(PROF_KINDS, sizeof *p->prof_n);
        if (!p->prof_s || !p->prof_n) {
            free(p->prof_s), free(p->prof_n);
            p->prof_s = NULL, p->prof_n = NULL;
            return;
        }
    }
    if (on) {
        memset(p->prof_s, 0, PROF_KINDS * sizeof *p->prof_s);
        memset(p->prof_n, 0, PROF_KINDS * sizeof *p->prof_n);
        p->prof_wall = 0, p->prof_runs = 0;
    }
    p->profiling = on;
}

int loom_plan_profile(const loom_plan *p, loom_profile_row *rows, int n, double *wall, int64_t *runs)
{
    if (wall) *wall = p && p->prof_s ? p->prof_wall : 0;
    if (runs) *runs = p && p->prof_s ? p->prof_runs : 0;
    if (!p || !p->prof_s) return 0;
    int count = 0;
    for (int k = 0; k < PROF_KINDS; k++) {
        if (!p->prof_n[k]) continue;
        loom_profile_row r = {k == PROF_FUSED ? "fused" : k == PROF_SUM_MATMUL ? "matmul (into a sum)" : loom_op(k)->name,
                              p->prof_s[k], p->prof_n[k]};
        int at = count < n ? count : n; /* insertion by time, the slowest first */
        while (at > 0 && rows[at - 1].seconds < r.seconds) {
            if (at < n) rows[at] = rows[at - 1];
            at--;
        }
        if (at < n) rows[at] = r;
        count++;
    }
    return count;
}

/* Runs node id's kernel as thread tid of a team of nth (1: alone) with
 * input-pointer scratch row `slot`; a kernel's error goes to the plan (the
 * first one wins when nodes run side by side). */
static loom_status run_node(loom_plan *p, int32_t id, int tid, int nth, int slot)
{
    const float **in = p->in_pool + (size_t)slot * ((size_t)p->max_in + 1);
    const loom_node **in_node = p->node_pool + (size_t)slot * ((size_t)p->max_in + 1);
    char err[512];
    err[0] = 0;
    loom_status s = id >= p->n_graph         ? run_piece(p, id - p->n_graph, tid, nth, in, in_node, err, sizeof err)
                    : p->rw.folded_in[id]      ? run_sum(p, id, tid, nth, in, in_node, err, sizeof err)
                    : p->rw.batch_of[id] >= 0 ? run_batch(p, id, tid, nth, in, in_node, err, sizeof err)
                    : p->rw.fuse_of[id] >= 0  ? run_fused(p, id, tid, nth, err, sizeof err)
                                          : run_kernel(p, id, storage(p, id), 0.0f, 1, 1, tid, nth, in, in_node, err, sizeof err);
    if (s) {
        #pragma omp critical(loom_run_error)
        plan_err(p, s, "%s", err);
    }
    return s;
}

/* Scratch per thread: a row of input pointers, a partial sum (sized by the
 * run, not the plan: the thread count may change between the two). */
static bool ensure_slots(loom_plan *p, int threads)
{
    if (threads <= p->pool_slots) return true;
    size_t row = (size_t)p->max_in + 1, slots = (size_t)threads;
    const float **in = realloc(p->in_pool, slots * row * sizeof *in);
    if (in) p->in_pool = in;
    const loom_node **nodes = in ? realloc(p->node_pool, slots * row * sizeof *nodes) : NULL;
    if (nodes) p->node_pool = nodes;
    double *part = nodes ? realloc(p->team.part, slots * sizeof *part) : NULL;
    if (part) p->team.part = part;
    if (!in || !nodes || !part) return false;
    p->pool_slots = (int32_t)slots;
    return true;
}

/* Whether node id's kernel (with what runs inside it) does matmul work:
 * its op has a cost rule, or a term folded into it has. */
static bool does_matmul(const loom_plan *p, int32_t id)
{
    if (id >= p->n_graph) id = p->piece_sum[id - p->n_graph]; /* a piece: its sum's terms */
    const loom_node *nd = loom_graph_node(p->g, loom_at(id));
    if (loom_op(nd->op)->flags & OPF_MATMUL) return true;
    for (int j = 0; p->rw.folded_in[id] && j < nd->n_in; j++) {
        int32_t x = loom_index(loom_node_input(p->g, loom_at(id), j));
        if (p->rw.into[x] == id && (loom_op(loom_graph_node(p->g, loom_at(x))->op)->flags & OPF_MATMUL)) return true;
    }
    return false;
}

/* One thread's walk through every ready set, inside the run's parallel
 * region (nth threads; every thread takes the same decisions, so barriers
 * match). Nodes of a ready set are independent; a barrier is needed only
 * before a thread may read what another wrote, or overwrite a buffer
 * another still reads: `wrote` is 0 (nothing since the last barrier), 1
 * (the first thread alone), 2 (several threads). Every node writes, so a
 * reader's reads are covered by the barrier after its own write. A kernel
 * error does not change the walk (the threads must meet at the same
 * barriers); the run reports it at the end. */
/* loom_plan_watch: every kernel call before position `done` has finished
 * (on the calling thread): the watched outputs they computed are ready;
 * then a point for the caller's own work. */
static void watch_point(loom_plan *p, int32_t done)
{
    if (!p->watch_fn) return;
    while (p->watch_next < p->n_watch && p->watch_pos[p->watch_next] < done) p->watch_fn(p->watch_ctx, p->watch_idx[p->watch_next++]);
    if (done < p->n_exec) p->watch_fn(p->watch_ctx, -1);
}

static void run_team(loom_plan *p, bool only_matmul, int tid, int nth)
{
    int wrote = 0;
    for (int32_t l = 0; l < p->n_levels; l++) {
        int32_t b = p->level_start[l], e = p->level_start[l + 1];
        bool split = false;
        for (int32_t k = b; k < e && !split; k++) split = p->split[k];
        if (wrote == 2 || (wrote == 1 && (split || p->wide[l]))) {
            loom_team_barrier(&p->team);
            wrote = 0;
        }
        /* every call before this set has finished: before the barrier, or
         * by this thread alone since (wrote ≤ 1) */
        if (tid == 0 && !only_matmul) watch_point(p, b);
        if (p->wide[l]) {
            if (tid == 0) p->side_by_side++;
            #pragma omp for schedule(dynamic) nowait
            for (int32_t k = b; k < e; k++)
                if (!only_matmul || does_matmul(p, p->exec[k])) exec_node(p, p->exec[k], 0, 1, tid);
            wrote = 2;
            continue;
        }
        for (int32_t k = b; k < e; k++) {
            if (only_matmul && !does_matmul(p, p->exec[k])) continue;
            if (p->split[k]) exec_node(p, p->exec[k], tid, nth, tid), wrote = 2;
            else if (tid == 0) exec_node(p, p->exec[k], 0, 1, 0);
            if (!p->split[k] && wrote == 0) wrote = 1;
        }
    }
}

static loom_status run_levels(loom_plan *p, bool only_matmul);

/* A parameter's data now (what its packed copies are made from). */
static const float *param_data(void *plan, int32_t root) { return storage(plan, root); }

void loom_plan_set_team(loom_plan *p, loom_team_use use)
{
    if (p && use >= LOOM_TEAM_AUTO && use <= LOOM_TEAM_ALONE) p->team_use.use = use;
}

bool loom_plan_ran_alone(const loom_plan *p) { return p && p->team_use.alone; }

static atomic_bool last_alone;
bool loom_runs_alone(void) { return atomic_load_explicit(&last_alone, memory_order_relaxed); }

/* Whether this run goes alone. Each way's mean run time is kept (an
 * exponential average); the faster way runs, and the other is tried again
 * after `interval` runs — 4 at first, doubling each time the try confirms
 * the choice, up to 256 while the team is faster and 16 while alone is (so
 * that the team comes back soon after the other program ends) — or at once
 * when a team run takes twice the team's mean (another program started).
 * The first runs: the team twice, then alone once. The very first run's
 * time is not kept: it touches the arena's pages for the first time (and
 * JIT-compiled kernels compile), which would make the team look slow. */
static bool choose_alone(loom_plan *p)
{
    loom_team_choice *u = &p->team_use;
    if (u->use != LOOM_TEAM_AUTO) return u->use == LOOM_TEAM_ALONE;
    if (u->runs < 2 || !u->mean[0]) return false; /* runs 0 and 1: the team */
    if (!u->mean[1]) return true;
    bool best_alone = u->mean[1] < u->mean[0];
    if (u->runs >= u->probe_at) return !best_alone; /* the other way, once */
    return best_alone;
}

/* Records a run's time and plans the next try of the other way. */
static void record_run(loom_plan *p, bool alone, double seconds)
{
    loom_team_choice *u = &p->team_use;
    u->alone = alone;
    atomic_store_explicit(&last_alone, alone, memory_order_relaxed);
    if (u->use != LOOM_TEAM_AUTO) return;
    if (u->runs++ == 0) return;
    double *m = &u->mean[alone];
    bool was_best_alone = u->mean[0] && u->mean[1] && u->mean[1] < u->mean[0];
    bool jump = !alone && u->mean[0] && seconds > 2 * u->mean[0];
    *m = *m ? 0.7 * *m + 0.3 * seconds : seconds;
    if (!u->interval) u->interval = 4;
    if (u->mean[0] && u->mean[1] && u->runs > u->probe_at) { /* a try just ran: confirmed, or the choice flips */
        bool best_alone = u->mean[1] < u->mean[0];
        u->interval = best_alone != was_best_alone ? 4 : u->interval * 2 > (best_alone ? 16 : 256) ? (best_alone ? 16 : 256) : u->interval * 2;
        u->probe_at = u->runs + u->interval;
    }
    if (jump) u->probe_at = u->runs; /* try alone next */
}

loom_status loom_run(loom_plan *p) { return run_levels(p, false); }
loom_status loom_run_matmuls(loom_plan *p) { return run_levels(p, true); }

static loom_status run_levels(loom_plan *p, bool only_matmul)
{
    if (!p) return LOOM_ERR_ARG;
    loom_error_clear(&p->err);
    if (loom_graph_size(p->g) < p->n_graph)
        return plan_err(p, LOOM_ERR_STATE, "run: the graph changed under the plan");
    for (int32_t i = 0; i < p->n_graph; i++) {
        if (!p->in_plan[i] || p->bound[i]) continue;
        const loom_node *nd = loom_graph_node(p->g, loom_at(i));
        if (loom_op(nd->op)->flags & OPF_BOUND)
            return plan_err(p, LOOM_ERR_STATE, "run: %s %s is not bound", loom_op(nd->op)->role == LOOM_ROLE_INPUT ? "input" : "parameter",
                            TSTR(p->g, loom_at(i)));
    }
    loom_status st = LOOM_OK;
    int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (!ensure_slots(p, threads)) return plan_err(p, LOOM_ERR_NOMEM, "run: out of memory");
    p->side_by_side = p->stacked = p->batched_run = 0;
    bool alone = threads > 1 && choose_alone(p);
    double t0 = threads > 1 || p->profiling ? omp_get_wtime() : 0;
    if (p->mm) {
        if (!loom_mm_slots(p->mm, threads)) return plan_err(p, LOOM_ERR_NOMEM, "run: out of memory");
        loom_mm_begin_run(p->mm, param_data, p);
    }
    p->watch_next = 0;
    if (threads < 2 || alone) { /* alone: every share of a split kernel in turn, cut as the team cuts them (run_team) */
        if (alone) omp_set_num_threads(1); /* a GEMM runs on this thread, as in the team (OpenBLAS reads this) */
        p->team.solo = alone;
        for (int32_t l = 0; l < p->n_levels && !st; l++) {
            if (!only_matmul) watch_point(p, p->level_start[l]);
            for (int32_t k = p->level_start[l]; k < p->level_start[l + 1] && !st; k++)
                if (!only_matmul || does_matmul(p, p->exec[k]))
                    st = exec_node(p, p->exec[k], 0, alone && !p->wide[l] && p->split[k] ? threads : 1, 0);
        }
        p->team.solo = false;
        if (alone) omp_set_num_threads(threads);
    } else {
        #pragma omp parallel num_threads(threads)
        {
            #pragma omp single
            p->team.n = omp_get_num_threads(), atomic_store(&p->team.arrived, 0);
            run_team(p, only_matmul, omp_get_thread_num(), omp_get_num_threads());
        }
        st = p->err.status;
    }
    if (!st && !only_matmul) watch_point(p, p->n_exec);
    if (threads > 1 && !only_matmul) record_run(p, alone, omp_get_wtime() - t0);
    if (p->profiling) p->prof_wall += omp_get_wtime() - t0, p->prof_runs++;
    if (!only_matmul) p->runs++;
    return st;
}

const float *loom_plan_output(const loom_plan *p, loom_tensor t)
{
    if (!p) return NULL;
    for (int i = 0; i < p->n_outputs; i++)
        if (p->outputs[i].id == t.id) return storage(p, loom_index(t));
    return NULL;
}

loom_status loom_plan_read(loom_plan *p, loom_tensor t, float *dst, size_t n)
{
    if (!p) return LOOM_ERR_ARG;
    loom_error_clear(&p->err);
    const float *v = loom_plan_output(p, t);
    if (!v) return plan_err(p, LOOM_ERR_ARG, "read: tensor id %d is not an output of the plan", t.id);
    if ((int64_t)n < loom_tensor_numel(p->g, t))
        return plan_err(p, LOOM_ERR_ARG, "read: %s needs %lld floats, the buffer holds %zu", TSTR(p->g, t),
                        (long long)loom_tensor_numel(p->g, t), n);
    memcpy(dst, v, (size_t)loom_tensor_numel(p->g, t) * sizeof(float));
    return LOOM_OK;
}
