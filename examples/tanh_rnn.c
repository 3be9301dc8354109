/* Unroll a 3-step tanh RNN, take BPTT gradients, run forward + backward. */
#include <loom/loom.h>
#include <stdio.h>

int main(void)
{
    loom_graph *g = loom_graph_new();
    loom_tensor W = loom_param(g, "W", loom_shape2(2, 2)), h0 = loom_input(g, "h0", loom_shape2(1, 2)), h = h0;
    loom_tensor x = loom_input(g, "x", loom_shape3(3, 1, 2));
    for (int t = 0; t < 3; t++) {                       /* h_t = tanh(h_{t-1} Wᵀ + x_t) */
        loom_tensor xt = loom_reshape(g, loom_slice(g, x, 0, t, 1), loom_shape2(1, 2));
        h = loom_tanh(g, loom_add(g, loom_matmul(g, h, W, false, true), xt));
    }
    loom_tensor loss = loom_sum_all(g, h), dW;
    loom_backward(g, loss, &W, 1, &dW);                 /* gradients are nodes of g */
    if (loom_graph_failed(g)) { fprintf(stderr, "%s\n", loom_graph_error(g)); return 2; }

    float w[4] = {0.5f, -0.3f, 0.8f, 0.2f}, hv[2] = {0}, xs[6] = {1, 0, 0, 1, 1, 1};
    loom_plan *p = loom_plan_new(g, (loom_tensor[]){loss, dW}, 2, NULL);
    loom_bind(p, W, w), loom_bind(p, h0, hv), loom_bind(p, x, xs);
    if (loom_run(p)) { fprintf(stderr, "%s\n", loom_plan_error(p)); return 1; }
    const float *d = loom_plan_output(p, dW);
    printf("loss %.4f  dL/dW = [%.4f %.4f; %.4f %.4f]\n", loom_plan_output(p, loss)[0], d[0], d[1], d[2], d[3]);
    loom_plan_free(p), loom_graph_free(g);
}
