/* loom/ops.h — graph builders, one per op.
 *
 * Every builder checks its shapes when called. On a mismatch it records the
 * graph's sticky error (naming the op, the shapes and the node names) and
 * returns LOOM_INVALID; every later builder then returns LOOM_INVALID too.
 * Axes may be negative (counted from the end, as in NumPy).
 * Binary elementwise ops broadcast as NumPy does (shapes aligned on the right,
 * size-1 dimensions stretch).
 */
#ifndef LOOM_OPS_H
#define LOOM_OPS_H

#include "loom/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

const char *loom_op_name(int op);
int loom_op_count(void);

/* Sources. Inputs and parameters get their values from caller buffers bound
 * to a plan (loom/runtime.h); constants copy their data into the graph. */
loom_tensor loom_input(loom_graph *g, const char *name, loom_shape s);
loom_tensor loom_input_i32(loom_graph *g, const char *name, loom_shape s);
loom_tensor loom_param(loom_graph *g, const char *name, loom_shape s);
/* How a parameter store (loom/store.h) fills a parameter before training. */
typedef enum {
    LOOM_INIT_ZEROS = 0,      /* 0 (takes no scale: a must be 0) */
    LOOM_INIT_ONES,           /* 1 (takes no scale: a must be 0; LOOM_INIT_CONSTANT for a) */
    LOOM_INIT_UNIFORM,        /* U(-a, a) */
    LOOM_INIT_NORMAL,         /* N(0, a²) */
    LOOM_INIT_XAVIER_UNIFORM, /* U(-b, b), b = a·√(6 / (fan_in + fan_out)) of a 2-D weight */
    LOOM_INIT_ORTHOGONAL,     /* a·Q, Q with orthonormal rows or columns (torch's orthogonal_) over
                                 (d0, d1·d2·…); 1-D: N(0, a²) */
    LOOM_INIT_CONSTANT,       /* every element a */
    LOOM_INIT_UNIFORM_RANGE,  /* U(a, b), a ≤ b */
    LOOM_INIT_FORGET_GATE     /* U(−a, a), but b in the second quarter of the rows: the forget gate
                                 of an LSTM bias in PyTorch's gate order i, f, g, o */
} loom_init;
/* A parameter with its initialiser and the initialiser's numbers a (its
 * scale) and b (UNIFORM_RANGE's upper end; 0 for the others). Numbers
 * that are not finite, a range with a > b, or a scale given to ZEROS or
 * ONES are refused. */
loom_tensor loom_param_init(loom_graph *g, const char *name, loom_shape s, loom_init init, float a);
loom_tensor loom_param_init2(loom_graph *g, const char *name, loom_shape s, loom_init init, float a, float b);
/* Fills d (the parameter's elements) as its initialiser says, drawing from
 * the generator *rng (loom/random.h); false for a tensor that is no
 * parameter (or out of memory for an orthogonal one). */
bool loom_param_fill(const loom_graph *g, loom_tensor p, uint64_t *rng, float *d);
/* What an initialiser draws for a parameter of shape s, in words
 * ("U(-0.0625, 0.0625)", "ones", "xavier: U(-0.1, 0.1)"), into buf. */
const char *loom_init_describe(loom_init init, float a, float b, loom_shape s, char *buf, size_t n);
loom_tensor loom_constant(loom_graph *g, loom_shape s, const float *data);
loom_tensor loom_constant_i32(loom_graph *g, loom_shape s, const int32_t *data);
/* Every element = value (pure: equal fills are merged). */
loom_tensor loom_fill(loom_graph *g, loom_shape s, float value);
loom_tensor loom_scalar(loom_graph *g, float value);

/* C = op(A)·op(B), op(X) = Xᵀ when the flag is set. The last two dims are the
 * matrix; leading dims are batch dims, equal in both operands, or one
 * operand is 2-D and is shared by every batch. */
loom_tensor loom_matmul(loom_graph *g, loom_tensor a, loom_tensor b, bool trans_a, bool trans_b);

loom_tensor loom_add(loom_graph *g, loom_tensor a, loom_tensor b);
loom_tensor loom_sub(loom_graph *g, loom_tensor a, loom_tensor b);
loom_tensor loom_mul(loom_graph *g, loom_tensor a, loom_tensor b);
loom_tensor loom_div(loom_graph *g, loom_tensor a, loom_tensor b);
/* Sum of n tensors of one shape (n ≥ 1): the accumulation node of a
 * gradient that reaches a node from several uses. */
loom_tensor loom_add_n(loom_graph *g, const loom_tensor *xs, int n);
/* a·x + b elementwise with scalar a, b. */
loom_tensor loom_affine(loom_graph *g, loom_tensor x, float a, float b);
loom_tensor loom_scale(loom_graph *g, loom_tensor x, float a);
loom_tensor loom_neg(loom_graph *g, loom_tensor x);
loom_tensor loom_tanh(loom_graph *g, loom_tensor x);
loom_tensor loom_sigmoid(loom_graph *g, loom_tensor x);
loom_tensor loom_relu(loom_graph *g, loom_tensor x);
loom_tensor loom_exp(loom_graph *g, loom_tensor x);
loom_tensor loom_log(loom_graph *g, loom_tensor x);
/* 1 where x > 0, else 0; its gradient is zero. */
loom_tensor loom_step(loom_graph *g, loom_tensor x);
loom_tensor loom_sqrt(loom_graph *g, loom_tensor x);
/* 1/√x */
loom_tensor loom_rsqrt(loom_graph *g, loom_tensor x);
/* xᵖ for a constant p (NaN for x < 0 and p not whole, as powf) */
loom_tensor loom_pow(loom_graph *g, loom_tensor x, float p);
/* log(1 + eˣ) */
loom_tensor loom_softplus(loom_graph *g, loom_tensor x);
/* x for x > 0, α(eˣ − 1) otherwise (torch.nn.ELU) */
loom_tensor loom_elu(loom_graph *g, loom_tensor x, float alpha);
/* relu6(x + 3)/6: 0 below −3, 1 above 3 (torch.nn.Hardsigmoid) */
loom_tensor loom_hard_sigmoid(loom_graph *g, loom_tensor x);

/* Reductions over one axis (keepdim keeps it with size 1) or all elements
 * (a scalar). */
loom_tensor loom_sum(loom_graph *g, loom_tensor x, int axis, bool keepdim);
loom_tensor loom_mean(loom_graph *g, loom_tensor x, int axis, bool keepdim);
/* Population variance mean((x − mean(x))²) over one axis (torch.var with
 * unbiased=False, what layer norm divides by). */
loom_tensor loom_var(loom_graph *g, loom_tensor x, int axis, bool keepdim);
loom_tensor loom_sum_all(loom_graph *g, loom_tensor x);
loom_tensor loom_mean_all(loom_graph *g, loom_tensor x);
/* Sum broadcast dimensions away so that x takes shape s (the adjoint of
 * broadcasting); and broadcast x up to shape s. */
loom_tensor loom_sum_to(loom_graph *g, loom_tensor x, loom_shape s);
loom_tensor loom_broadcast_to(loom_graph *g, loom_tensor x, loom_shape s);

/* Over the last axis. */
loom_tensor loom_softmax(loom_graph *g, loom_tensor x);
/* Layer normalisation over the last axis (Ba et al., torch's
 * F.layer_norm(x, (n,), gain, bias, eps)): (x − mean)/√(var + eps) ⊙ gain
 * + bias with the population variance; gain and bias (n,) may each be
 * LOOM_INVALID (none). One fused kernel forward and one backward. */
loom_tensor loom_layer_norm(loom_graph *g, loom_tensor x, loom_tensor gain, loom_tensor bias, float eps);
loom_tensor loom_log_softmax(loom_graph *g, loom_tensor x);
/* Mean softmax cross-entropy. logits (..., C); targets i32 with logits' shape
 * less the last axis, each in [0, C); mask (optional, LOOM_NO_MASK) f32 of
 * targets' shape: loss = Σ m·nll / Σ m (0 when Σ m = 0). Scalar result. */
#define LOOM_NO_MASK LOOM_INVALID
loom_tensor loom_cross_entropy(loom_graph *g, loom_tensor logits, loom_tensor targets, loom_tensor mask);

/* Shape ops. */
loom_tensor loom_concat(loom_graph *g, const loom_tensor *xs, int n, int axis);
loom_tensor loom_slice(loom_graph *g, loom_tensor x, int axis, int start, int len);
/* Zero padding along an axis: x lands at [before, before + len) of `size`. */
loom_tensor loom_pad(loom_graph *g, loom_tensor x, int axis, int before, int size);
/* One dimension may be -1 (inferred). */
loom_tensor loom_reshape(loom_graph *g, loom_tensor x, loom_shape s);
/* out.d[i] = x.d[perm[i]]; perm has x's rank entries. */
loom_tensor loom_transpose(loom_graph *g, loom_tensor x, const int *perm);
/* Swaps the last two axes. */
loom_tensor loom_transpose2(loom_graph *g, loom_tensor x);

/* Rows of table (V, E) picked by i32 indices of any shape: out = idx.shape + (E). */
loom_tensor loom_gather(loom_graph *g, loom_tensor table, loom_tensor idx);
/* Adjoint of gather: out (rows, E), out[idx[k]] += src[k]. */
loom_tensor loom_scatter_add(loom_graph *g, loom_tensor src, loom_tensor idx, int rows);
/* f32 one-hot of i32 indices: out = idx.shape + (depth). */
loom_tensor loom_one_hot(loom_graph *g, loom_tensor idx, int depth);
/* i32 index of the largest element along the last axis (the first of
 * equals): x's shape less the last axis. Its gradient is zero. */
loom_tensor loom_argmax(loom_graph *g, loom_tensor x);
/* Valid-step mask of variable-length sequences: lengths i32 (B) → f32 (T, B),
 * mask[t, b] = 1 if t < lengths[b] else 0. Lengths must be in [1, T] (checked
 * at run time). */
loom_tensor loom_sequence_mask(loom_graph *g, loom_tensor lengths, int steps);
/* Inverted dropout: keeps each element with probability 1 - p and scales it
 * by 1/(1 - p). The mask depends on (seed, the plan's run counter, element
 * index), so forward and backward of one run agree; identity in eval plans. */
loom_tensor loom_dropout(loom_graph *g, loom_tensor x, float p, uint64_t seed);
/* cond ? a : b elementwise (cond f32, nonzero is true), with broadcasting. */
loom_tensor loom_where(loom_graph *g, loom_tensor cond, loom_tensor a, loom_tensor b);
/* Identity whose gradient is zero (detach). */
loom_tensor loom_stop_gradient(loom_graph *g, loom_tensor x);
/* Identity whose gradient is scaled by w[k], an element of the f32 vector
 * w (an input filled at run time): ∂L/∂x = w[k]·∂L/∂y. w[k] = 0 is a
 * stop_gradient decided per run (randomised truncation). */
loom_tensor loom_scale_grad(loom_graph *g, loom_tensor x, loom_tensor w, int k);

#ifdef __cplusplus
}
#endif
#endif
