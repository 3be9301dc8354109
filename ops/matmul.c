/* matmul: C = op(A)·op(B) over the last two dims, with batch dims in front.
 * attrs: i[0] = transpose A, i[1] = transpose B. */
#include "ops/op.h"

/* Rows and columns of op(X) for a node of shape s. */
static void mat_dims(loom_shape s, bool t, int *r, int *c)
{
    int a = s.d[s.rank - 2], b = s.d[s.rank - 1];
    *r = t ? b : a;
    *c = t ? a : b;
}

static bool shape_matmul(loom_graph *g, const char *op, const loom_tensor *in, int n, loom_attrs *at,
                         loom_shape *out, loom_dtype *dt)
{
    (void)n;
    loom_shape a = loom_tensor_shape(g, in[0]), b = loom_tensor_shape(g, in[1]);
    if (loom_tensor_dtype(g, in[0]) != LOOM_F32 || loom_tensor_dtype(g, in[1]) != LOOM_F32)
        return !loom_valid(loom_graph_fail(g, LOOM_ERR_ARG, "%s: operands %s and %s must be f32", op,
                                           TSTR(g, in[0]), TSTR(g, in[1])));
    if (a.rank < 2 || b.rank < 2)
        return !loom_valid(loom_graph_fail(g, LOOM_ERR_SHAPE, "%s: operands must have rank >= 2, got %s and %s", op,
                                           TSTR(g, in[0]), TSTR(g, in[1])));
    int m, ka, kb, nn;
    mat_dims(a, at->i[0], &m, &ka);
    mat_dims(b, at->i[1], &kb, &nn);
    if (ka != kb)
        return !loom_valid(loom_graph_fail(g, LOOM_ERR_SHAPE,
                                           "%s: inner dimensions differ: %s%s has %d columns, %s%s has %d rows", op,
                                           TSTR(g, in[0]), at->i[0] ? "ᵀ" : "", ka, TSTR(g, in[1]),
                                           at->i[1] ? "ᵀ" : "", kb));
    bool batch_ok = a.rank == 2 || b.rank == 2 || a.rank == b.rank;
    for (int i = 0; batch_ok && a.rank == b.rank && i < a.rank - 2; i++) batch_ok = a.d[i] == b.d[i];
    if (!batch_ok)
        return !loom_valid(loom_graph_fail(g, LOOM_ERR_SHAPE,
                                           "%s: batch dimensions of %s and %s differ (they must be equal, or one "
                                           "operand 2-D)",
                                           op, TSTR(g, in[0]), TSTR(g, in[1])));
    loom_shape o = a.rank >= b.rank ? a : b;
    o.d[o.rank - 2] = m;
    o.d[o.rank - 1] = nn;
    *out = o;
    *dt = LOOM_F32;
    return true;
}

/* Multiply-adds above which a team splits a GEMM. */
enum { GEMM_PAR_MIN = 1 << 17 };

/* This thread's block of C = op(A)·op(B) + β·C (m × n): a team splits the
 * longer side of C — rows, or columns in multiples of 16 floats — and each
 * block is one GEMM on its thread (OpenBLAS inside a parallel region runs
 * on the calling thread); a small one runs whole on thread 0. A block the
 * plan's oneDNN products take runs there (ops/gemm_packed.c: a recurrent
 * step's product over its packed weight; every product of a bf16 plan);
 * false: that failed. */
static bool gemm_share(const loom_kargs *k, bool ta, bool tb, int m, int n, int kk, const float *a, int lda,
                       const float *b, int ldb, float beta, float *c)
{
    int ldc = n;
    const float *b0 = b;
    if (k->nth > 1 && (int64_t)m * n * kk > GEMM_PAR_MIN) {
        if (m >= n) {
            int r0 = (int)((int64_t)m * k->tid / k->nth), r1 = (int)((int64_t)m * (k->tid + 1) / k->nth);
            a += ta ? r0 : (int64_t)r0 * lda;
            c += (int64_t)r0 * ldc;
            m = r1 - r0;
        } else {
            int blocks = (n + 15) / 16, c0 = 16 * (int)((int64_t)blocks * k->tid / k->nth),
                c1 = 16 * (int)((int64_t)blocks * (k->tid + 1) / k->nth);
            if (c1 > n) c1 = n;
            b += tb ? (int64_t)c0 * ldb : c0;
            c += c0;
            n = c1 - c0;
        }
        if (m <= 0 || n <= 0) return true;
    } else if (k->tid) {
        return true;
    }
    if (loom_mm_runs(k->mm, ta, tb, m, k->b_param))
        return loom_gemm_mm(k->mm, ta, tb, m, n, kk, a, lda, b, ldb, k->b_param, b - b0, beta, c, ldc);
    loom_gemm(ta, tb, m, n, kk, 1.0f, a, lda, b, ldb, beta, c, ldc);
    return true;
}

/* A node's product: op(A) m × kk, op(B) kb × n, leading dimensions, and
 * how many matrices each operand holds (1: shared by every batch). */
typedef struct {
    bool ta, tb;
    int m, kk, kb, n, lda, ldb;
    int64_t batch_a, batch_b;
} mm_geom;

static mm_geom geometry(const loom_node *node, loom_shape sa, loom_shape sb)
{
    mm_geom q = {.ta = node->attr.i[0], .tb = node->attr.i[1]};
    mat_dims(sa, q.ta, &q.m, &q.kk);
    mat_dims(sb, q.tb, &q.kb, &q.n);
    q.lda = sa.d[sa.rank - 1], q.ldb = sb.d[sb.rank - 1];
    q.batch_a = loom_shape_numel(sa) / ((int64_t)q.m * q.kk);
    q.batch_b = loom_shape_numel(sb) / ((int64_t)q.kb * q.n);
    return q;
}

/* out = op(A)·op(B) + β·out (β = 1 when a sum runs it into its buffer). */
static loom_status matmul_forward(const loom_kargs *k)
{
    mm_geom q = geometry(k->node, k->in_node[0]->shape, k->in_node[1]->shape);
    bool ta = q.ta, tb = q.tb, ok = true;
    int m = q.m, kk = q.kk, n = q.n, kb = q.kb, lda = q.lda, ldb = q.ldb;
    int64_t batch_a = q.batch_a, batch_b = q.batch_b;
    if (k->stack > 1) /* Aᵀ·B over `stack` row blocks of A and B: one GEMM with stack·K */
        ok = gemm_share(k, true, false, m, n, kk * k->stack, k->in[0], lda, k->in[1], ldb, k->beta, k->out);
    else if (batch_b == 1 && !ta) /* A's batch rows stack into one tall matrix: one GEMM */
        ok = gemm_share(k, false, tb, (int)(batch_a * m), n, kk, k->in[0], lda, k->in[1], ldb, k->beta, k->out);
    else
        for (int64_t i = 0, batch = batch_a > batch_b ? batch_a : batch_b; i < batch && ok; i++)
            ok = gemm_share(k, ta, tb, m, n, kk, k->in[0] + (batch_a > 1 ? i * m * kk : 0), lda,
                            k->in[1] + (batch_b > 1 ? i * kb * n : 0), ldb, k->beta, k->out + i * m * n);
    if (!ok)
        return loom_kernel_fail(k, LOOM_ERR_NOMEM, "matmul: a oneDNN product (%d × %d × %d) failed: out of memory, or oneDNN refused it",
                                m, n, kk);
    return LOOM_OK;
}

/* The double path: C[b] = op(A[b])·op(B[b]), a 2-D operand shared by
 * every batch. */
static loom_status matmul_64(const loom_args64 *a)
{
    mm_geom q = geometry(a->node, a->in_node[0]->shape, a->in_node[1]->shape);
    bool ta = q.ta, tb = q.tb;
    int m = q.m, kk = q.kk, n = q.n, kb = q.kb, lda = q.lda, ldb = q.ldb;
    int64_t batch_a = q.batch_a, batch_b = q.batch_b;
    int64_t batch = batch_a > batch_b ? batch_a : batch_b;
    for (int64_t bi = 0; bi < batch; bi++) {
        const double *A = a->in[0] + (batch_a > 1 ? bi * m * kk : 0), *B = a->in[1] + (batch_b > 1 ? bi * kb * n : 0);
        double *C = a->out + bi * m * n;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double acc = 0;
                for (int q = 0; q < kk; q++)
                    acc += (ta ? A[(int64_t)q * lda + i] : A[(int64_t)i * lda + q]) * (tb ? B[(int64_t)j * ldb + q] : B[(int64_t)q * ldb + j]);
                C[(int64_t)i * n + j] = acc;
            }
    }
    return LOOM_OK;
}

/* For C = op(A)·op(B) with upstream G (all four transpose cases):
 *   C = A B:   dA = G Bᵀ,  dB = Aᵀ G
 *   C = A Bᵀ:  dA = G B,   dB = Gᵀ A
 *   C = Aᵀ B:  dA = B Gᵀ,  dB = A G
 *   C = Aᵀ Bᵀ: dA = Bᵀ Gᵀ, dB = Gᵀ Aᵀ
 * A 2-D operand shared over a batch gets the sum over the batch (sum_to);
 * when that operand is B and A is not transposed, the batch folds into the
 * rows of one GEMM instead. */
static void matmul_grad(loom_graph *g, loom_tensor y, loom_tensor gy, const bool *need, loom_tensor *gx)
{
    loom_tensor a = loom_node_input(g, y, 0), b = loom_node_input(g, y, 1);
    const loom_node *n = loom_graph_node(g, y);
    bool ta = n->attr.i[0], tb = n->attr.i[1];
    loom_shape sa = loom_tensor_shape(g, a), sb = loom_tensor_shape(g, b);
    if (need[0]) {
        if (!ta && !tb) gx[0] = loom_matmul(g, gy, b, false, true);
        else if (!ta && tb) gx[0] = loom_matmul(g, gy, b, false, false);
        else if (ta && !tb) gx[0] = loom_matmul(g, b, gy, false, true);
        else gx[0] = loom_matmul(g, b, gy, true, true);
        gx[0] = loom_sum_to(g, gx[0], sa);
    }
    if (!need[1]) return;
    if (sb.rank == 2 && sa.rank > 2 && !ta) {
        int kk = sa.d[sa.rank - 1], nn = loom_tensor_shape(g, gy).d[sa.rank - 1];
        loom_tensor a2 = loom_reshape(g, a, loom_shape2(-1, kk));
        loom_tensor g2 = loom_reshape(g, gy, loom_shape2(-1, nn));
        gx[1] = tb ? loom_matmul(g, g2, a2, true, false) : loom_matmul(g, a2, g2, true, false);
        return;
    }
    if (!ta && !tb) gx[1] = loom_matmul(g, a, gy, true, false);
    else if (!ta && tb) gx[1] = loom_matmul(g, gy, a, true, false);
    else if (ta && !tb) gx[1] = loom_matmul(g, a, gy, false, false);
    else gx[1] = loom_matmul(g, gy, a, true, true);
    gx[1] = loom_sum_to(g, gx[1], sb);
}

/* 2-D Aᵀ·B sums over the rows of A and B (the form of a weight gradient
 * δᵀ·a): the rows of several terms stack into one GEMM. */
static bool matmul_stacks(const loom_graph *g, loom_tensor t)
{
    const loom_node *n = loom_graph_node(g, t);
    return n->attr.i[0] && !n->attr.i[1] && n->shape.rank == 2;
}

/* 2-D A·op(W): the rows of several such products with one W stack. */
static bool matmul_batches(const loom_graph *g, loom_tensor t)
{
    const loom_node *n = loom_graph_node(g, t);
    return !n->attr.i[0] && n->shape.rank == 2;
}

/* Multiply-adds: every output element takes the inner dimension k. */
static int64_t matmul_cost(const loom_graph *g, loom_tensor y)
{
    const loom_node *nd = loom_graph_node(g, y);
    loom_shape sa = loom_tensor_shape(g, loom_node_input(g, y, 0));
    return loom_shape_numel(nd->shape) * sa.d[sa.rank - (nd->attr.i[0] ? 2 : 1)];
}

const loom_op_desc loom_desc_matmul = {
    .name = "matmul", .symbol = "×", .min_in = 2, .max_in = 2, .flags = OPF_PURE | OPF_SPLITS | OPF_ACCUM | OPF_MATMUL,
    .shape = shape_matmul, .forward = matmul_forward, .grad = matmul_grad, .cost = matmul_cost,
    .stacks = matmul_stacks, .batches = matmul_batches,
    .f64 = matmul_64};

loom_tensor loom_matmul(loom_graph *g, loom_tensor a, loom_tensor b, bool trans_a, bool trans_b)
{
    loom_attrs at = loom_attrs_zero();
    at.i[0] = trans_a;
    at.i[1] = trans_b;
    return loom_op_build(g, OP_MATMUL, (loom_tensor[]){a, b}, 2, &at);
}
