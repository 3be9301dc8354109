/* Inside an unrolled model: the carried states' gradients in float32 and
 * float64, their CSV. */
#include "helpers.h"

#include <unistd.h>

/* The norms as the metrics file loom_state_norms_rows fills (step < 0:
 * no step column), read back. */
static char *norms_csv(const loom_graph *g, const loom_state_grid *grid, const float *n32, const double *n64, int64_t step)
{
    char dir[] = "/tmp/loom-inspect-XXXXXX", path[64];
    cr_assert(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/n.csv", dir);
    loom_error err = {0};
    loom_metrics *m = loom_metrics_open(path, step >= 0 ? "step," LOOM_STATE_NORMS_COLUMNS : LOOM_STATE_NORMS_COLUMNS, -1, &err);
    cr_assert(m, "%s", err.msg);
    cr_assert_eq(loom_state_norms_rows(m, g, grid, n32, n64, step), LOOM_OK);
    cr_assert_eq(loom_metrics_flush(m, &err), LOOM_OK, "%s", err.msg);
    loom_metrics_free(m);
    char *text = slurp(path);
    unlink(path), rmdir(dir);
    return text;
}

/* A vanilla RNN whose W_hh is small (0.05 · a random orthogonal-ish
 * matrix): ∂L/∂h_t shrinks by about 0.05 a step, so over 40 steps it falls
 * below float32's smallest value (1.4e-45) and float32 reports 0. The
 * float64 norms must follow the hand computation all the way down. */
Test(inspect, float64_norms_where_float32_underflows)
{
    enum { T = 40, I = 2, H = 3 };
    loom_graph *g = loom_graph_new();
    loom_rnn rnn;
    loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = &loom_cell_rnn_tanh, .input_size = I, .hidden_size = H});
    loom_tensor x = loom_input(g, "x", loom_shape3(T, 1, I));
    loom_rnn_out o = loom_rnn_apply(g, &rnn, x, NULL);
    float r[H] = {0.7f, -1.1f, 0.4f};
    loom_tensor loss = loom_sum_all(g, loom_mul(g, loom_slice(g, o.output, 0, T - 1, 1), loom_constant(g, loom_shape3(1, 1, H), r)));
    float xv[T * I], Wih[H * I], Whh[H * H] = {0.03f, -0.04f, 0.01f, 0.02f, 0.05f, -0.03f, -0.01f, 0.02f, 0.04f}, bih[H], bhh[H];
    for (int i = 0; i < T * I; i++) xv[i] = rnd(-1, 1);
    for (int i = 0; i < H * I; i++) Wih[i] = rnd(-1, 1);
    for (int i = 0; i < H; i++) bih[i] = rnd(-0.5f, 0.5f), bhh[i] = rnd(-0.5f, 0.5f);
    loom_binding b[5] = {{x, xv}, {rnn.param[0][0][0], Wih}, {rnn.param[0][0][1], Whh}, {rnn.param[0][0][2], bih},
                         {rnn.param[0][0][3], bhh}};
    float n32[T];
    double n64[T];
    cr_assert_eq(loom_state_grad_norms(g, loss, &(loom_state_grid){T, 1, 1, 1}, b, 5, n32, n64), LOOM_OK, "%s",
                 loom_graph_error(g));

    double want_t[T];
    hand_rnn_grad_norms(T, I, H, xv, Wih, Whh, bih, bhh, r, want_t);
    for (int t = 0; t < T; t++) {
        double want = want_t[t];
        cr_assert(fabs(n64[t] - want) <= 1e-10 * want, "t = %d: float64 %.17g, by hand %.17g", t + 1, n64[t], want);
        if (want > 1e-30) cr_assert(fabs(n32[t] - want) <= 1e-4 * want, "t = %d: float32 %g, by hand %g", t + 1, n32[t], want);
    }
    cr_assert(n64[0] < 1e-50 && n64[0] > 0, "the first step's gradient is tiny but not 0 in float64: %g", n64[0]);
    cr_assert_eq(n32[0], 0.0f, "and float32 rounds it to 0: %g", n32[0]);
    /* the lesson's numbers */
    loom_gradient_summary sum;
    loom_gradient_summarize(&(loom_state_grid){T, 1, 1, 1}, n32, n64, NULL, NULL, &sum);
    cr_assert(sum.first == n64[0] && sum.last == n64[T - 1] && sum.first_underflows);
    cr_assert(fabs(sum.ratio - n64[0] / n64[T - 1]) <= 1e-12 * sum.ratio);
    cr_assert(fabs(pow(sum.factor, T - 1) - sum.ratio) <= 1e-9 * sum.ratio, "the factor a step, to the T−1: the ratio");
    cr_assert(sum.jacobians == 0 && isnan(sum.sigma_mean), "no Jacobians given");
    float sel[T];
    double sel64[T];
    loom_state_select(&(loom_state_grid){T, 1, 1, 1}, n32, n64, 0, sel, sel64);
    cr_assert(!memcmp(sel, n32, sizeof sel) && !memcmp(sel64, n64, sizeof sel64), "one state: the norms as they are");

    /* the CSV: one row per step, t from 1, both columns */
    char *buf = norms_csv(g, &(loom_state_grid){T, 1, 1, 1}, n32, n64, 7);
    const char *head = "step," LOOM_STATE_NORMS_COLUMNS "\n";
    cr_assert(!strncmp(buf, head, strlen(head)), "the header: %.60s", buf);
    memmove(buf, buf + strlen(head), strlen(buf + strlen(head)) + 1);
    cr_assert(!strncmp(buf, "7,1,0,forward,h,0,", 18), "first row: %.60s", buf);
    cr_assert(strstr(buf, "\n7,40,0,forward,h,"), "the last step is t = 40");
    double v = atof(buf + 18);
    cr_assert(fabs(v - n64[0]) <= 1e-15 * n64[0], "norm64 printed to full precision: %g against %g", v, n64[0]);
    int rows = 0;
    for (char *p = buf; *p; p++) rows += *p == '\n';
    cr_assert_eq(rows, T);
    free(buf);
    loom_graph_free(g);
}

/* Every state of a 2-layer bidirectional LSTM: h and c each their own row,
 * named; ∂L/∂c is 0 past the last loss term only where nothing reads it. */
Test(inspect, lstm_states_and_names)
{
    enum { T = 5, I = 3, H = 4, B = 2 };
    loom_graph *g = loom_graph_new();
    loom_rnn rnn;
    loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = &loom_cell_lstm, .input_size = I, .hidden_size = H, .layers = 2,
                                            .bidirectional = true});
    loom_tensor x = loom_input(g, "x", loom_shape3(T, B, I));
    loom_rnn_out o = loom_rnn_apply(g, &rnn, x, NULL);
    loom_tensor loss = loom_sum_all(g, loom_mul(g, o.output, o.output));
    loom_store *s = loom_store_new(g);
    loom_store_init(s, 3);
    float xv[T * B * I];
    for (int i = 0; i < T * B * I; i++) xv[i] = rnd(-1, 1);
    loom_binding b[64];
    int nb = loom_store_bindings(s, b, 63);
    b[nb++] = (loom_binding){x, xv};
    loom_state_grid grid = {T, 2, 2, 2};
    float n32[T * 2 * 2 * 2];
    double n64[T * 2 * 2 * 2];
    cr_assert_eq(loom_state_grad_norms(g, loss, &grid, b, nb, n32, n64), LOOM_OK, "%s", loom_graph_error(g));
    for (size_t i = 0; i < loom_state_count(&grid); i++) {
        cr_assert(n64[i] > 0, "every state reaches the loss (%zu)", i);
        cr_assert(fabs(n32[i] - n64[i]) <= 1e-4 * n64[i], "float32 %g and float64 %g agree (%zu)", n32[i], n64[i], i);
    }
    int32_t size = loom_graph_size(g); /* asked again (as training does every N steps): the same gradient nodes */
    cr_assert_eq(loom_state_grad_norms(g, loss, &grid, b, nb, n32, NULL), LOOM_OK, "%s", loom_graph_error(g));
    cr_assert_eq(loom_graph_size(g), size, "the graph grew from %d to %d nodes", size, loom_graph_size(g));
    char name[32];
    loom_state_name(g, 0, name, sizeof name);
    cr_assert_str_eq(name, "h");
    loom_state_name(g, 1, name, sizeof name);
    cr_assert_str_eq(name, "c");
    char *buf = norms_csv(g, &grid, n32, NULL, -1);
    cr_assert(!strncmp(buf, LOOM_STATE_NORMS_COLUMNS "\n", strlen(LOOM_STATE_NORMS_COLUMNS) + 1), "the header: %.60s", buf);
    cr_assert(strstr(buf, "3,1,reverse,c,"), "%s", buf);
    cr_assert(strstr(buf, ",\n"), "an empty norm64 without the float64 pass");
    free(buf);
    loom_store_free(s);
    loom_graph_free(g);
}

/* σ_max of J by power iteration on JᵀJ, the test's own (n small). */
static double test_sigma(const double *J, int n)
{
    double v[8] = {1, 0.7, -0.3, 0.2, 0.1, -0.5, 0.9, 0.4}, w[8];
    double lam = 0;
    for (int it = 0; it < 5000; it++) {
        for (int i = 0; i < n; i++) {
            w[i] = 0;
            for (int j = 0; j < n; j++) w[i] += J[i * n + j] * v[j];
        }
        double nv = 0;
        for (int j = 0; j < n; j++) {
            v[j] = 0;
            for (int i = 0; i < n; i++) v[j] += J[i * n + j] * w[i];
            nv += v[j] * v[j];
        }
        lam = sqrt(nv);
        for (int j = 0; j < n; j++) v[j] /= lam;
    }
    return sqrt(lam);
}

/* A vanilla RNN's step Jacobian is diag(1 − h_t²) W_hh: its norm at every
 * step, for each sequence of the batch, averaged. */
Test(inspect, vanilla_rnn_jacobians_by_hand)
{
    enum { T = 6, B = 3, I = 2, H = 3 };
    loom_graph *g = loom_graph_new();
    loom_rnn rnn;
    loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = &loom_cell_rnn_tanh, .input_size = I, .hidden_size = H});
    loom_tensor x = loom_input(g, "x", loom_shape3(T, B, I));
    loom_rnn_apply(g, &rnn, x, NULL);
    float xv[T * B * I], Wih[H * I], Whh[H * H], bih[H], bhh[H];
    for (int i = 0; i < T * B * I; i++) xv[i] = rnd(-1, 1);
    for (int i = 0; i < H * I; i++) Wih[i] = rnd(-1, 1);
    for (int i = 0; i < H * H; i++) Whh[i] = rnd(-1.2f, 1.2f);
    for (int i = 0; i < H; i++) bih[i] = rnd(-0.5f, 0.5f), bhh[i] = rnd(-0.5f, 0.5f);
    loom_binding b[5] = {{x, xv}, {rnn.param[0][0][0], Wih}, {rnn.param[0][0][1], Whh}, {rnn.param[0][0][2], bih},
                         {rnn.param[0][0][3], bhh}};
    loom_state_grid grid = {T, 1, 1, 1};
    double sigma[T];
    double radius[T];
    cr_assert_eq(loom_state_jacobian_norms(g, &rnn, &grid, b, 5, 0, sigma, radius), LOOM_OK, "%s", loom_graph_error(g));
    cr_assert(isnan(sigma[0]), "the first step starts from the initial state: %g", sigma[0]);
    double h[B][H] = {{0}};
    for (int t = 0; t < T; t++) {
        double sum = 0, rsum = 0;
        for (int q = 0; q < B; q++) {
            double hn[H], J[H * H];
            for (int i = 0; i < H; i++) {
                double a = (double)bih[i] + bhh[i];
                for (int j = 0; j < I; j++) a += (double)Wih[i * I + j] * xv[(t * B + q) * I + j];
                for (int j = 0; j < H; j++) a += (double)Whh[i * H + j] * h[q][j];
                hn[i] = tanh(a);
            }
            for (int i = 0; i < H; i++)
                for (int j = 0; j < H; j++) J[i * H + j] = (1 - hn[i] * hn[i]) * Whh[i * H + j];
            sum += test_sigma(J, H);
            double re[H], im[H], rho = 0; /* loom_eigenvalues is checked on its own below */
            cr_assert_eq(loom_eigenvalues(J, H, re, im), LOOM_OK);
            for (int e = 0; e < H; e++) rho = fmax(rho, hypot(re[e], im[e]));
            rsum += rho;
            memcpy(h[q], hn, sizeof hn);
        }
        if (t > 0) {
            cr_assert(fabs(sigma[t] - sum / B) <= 1e-4 * sum / B, "t = %d: %.8g, by hand %.8g", t + 1, sigma[t], sum / B);
            cr_assert(fabs(radius[t] - rsum / B) <= 1e-4 * rsum / B, "t = %d: ρ %.8g, by hand %.8g", t + 1, radius[t], rsum / B);
            cr_assert(radius[t] <= sigma[t] * (1 + 1e-9), "ρ(J) ≤ ‖J‖₂");
        }
    }
    /* the summary of those Jacobians: steps 2..T (the first has none) */
    float n32[T] = {0};
    double n64[T] = {0}, lo = INFINITY, hi = 0, logs = 0, rlogs = 0;
    for (int t = 1; t < T; t++) lo = fmin(lo, sigma[t]), hi = fmax(hi, sigma[t]), logs += log(sigma[t]), rlogs += log(radius[t]);
    loom_gradient_summary sum;
    loom_gradient_summarize(&grid, n32, n64, sigma, radius, &sum);
    cr_assert_eq(sum.jacobians, T - 1);
    cr_assert(sum.sigma_min == lo && sum.sigma_max == hi);
    cr_assert(fabs(sum.sigma_mean - exp(logs / (T - 1))) <= 1e-12 * sum.sigma_mean);
    cr_assert(fabs(sum.sigma_product - exp(logs)) <= 1e-12 * sum.sigma_product);
    cr_assert(fabs(sum.radius_mean - exp(rlogs / (T - 1))) <= 1e-12 * sum.radius_mean);
    cr_assert(isnan(sum.ratio) && isnan(sum.factor), "no gradient: no ratio");
    loom_graph_free(g);
}

/* An LSTM's Jacobian joins h and c; the gates are found by name, each a
 * mean in (0, 1), and the forget gate's equals the mean of σ(f) computed
 * from the gate node itself. */
Test(inspect, lstm_jacobians_and_gates)
{
    enum { T = 5, B = 2, I = 3, H = 4 };
    loom_graph *g = loom_graph_new();
    loom_rnn rnn;
    loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = &loom_cell_lstm, .input_size = I, .hidden_size = H, .layers = 2,
                                            .bidirectional = true});
    loom_tensor x = loom_input(g, "x", loom_shape3(T, B, I));
    loom_rnn_apply(g, &rnn, x, NULL);
    loom_store *s = loom_store_new(g);
    loom_store_init(s, 9);
    float xv[T * B * I];
    for (int i = 0; i < T * B * I; i++) xv[i] = rnd(-1, 1);
    loom_binding b[64];
    int nb = loom_store_bindings(s, b, 63);
    b[nb++] = (loom_binding){x, xv};
    loom_state_grid grid = {T, 2, 2, 2};
    double sigma[T * 2 * 2];
    cr_assert_eq(loom_state_jacobian_norms(g, &rnn, &grid, b, nb, 0, sigma, NULL), LOOM_OK, "%s", loom_graph_error(g));
    for (int t = 0; t < T; t++)
        for (int l = 0; l < 2; l++)
            for (int d = 0; d < 2; d++) {
                double v = sigma[(t * 2 + l) * 2 + d];
                bool first = d ? t == T - 1 : t == 0;
                cr_assert(first ? isnan(v) : v > 0 && v < 10, "t %d l %d d %d: %g", t, l, d, v);
            }
    loom_gates gates;
    cr_assert_eq(loom_gate_means(g, &grid, b, nb, &gates), LOOM_OK, "%s", loom_graph_error(g));
    /* as CSV: a Jacobian row per (t, l, d) but each direction's first step, a gate row per gate of each */
    char dir[] = "/tmp/loom-inspect-XXXXXX", path[64];
    cr_assert(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/rows.csv", dir);
    loom_error err = {0};
    for (int which = 0; which < 2; which++) {
        loom_metrics *m = loom_metrics_open(path, which ? LOOM_GATE_COLUMNS : LOOM_JACOBIAN_COLUMNS, -1, &err);
        cr_assert(m, "%s", err.msg);
        cr_assert_eq(which ? loom_gate_rows(m, &grid, &gates) : loom_jacobian_rows(m, &grid, sigma, sigma), LOOM_OK);
        cr_assert_eq(loom_metrics_flush(m, &err), LOOM_OK, "%s", err.msg);
        loom_metrics_free(m);
        char *text = slurp(path);
        int rows = -1;
        for (char *q = text; *q; q++) rows += *q == '\n';
        cr_assert_eq(rows, which ? T * 2 * 2 * 3 : (T - 1) * 2 * 2, "%d rows: %.80s", rows, text);
        cr_assert(strstr(text, which ? "\n5,1,reverse,f,0." : "\n2,0,forward,"), "%.200s", text);
        free(text);
    }
    unlink(path), rmdir(dir);
    cr_assert_eq(gates.n, 3, "i, f, o (g is a tanh): %d", gates.n);
    int f = -1;
    for (int k = 0; k < gates.n; k++) f = !strcmp(gates.name[k], "f") ? k : f;
    cr_assert(f >= 0);
    for (int i = 0; i < T * 2 * 2; i++)
        for (int k = 0; k < gates.n; k++) cr_assert(gates.mean[i * LOOM_MAX_GATES + k] > 0 && gates.mean[i * LOOM_MAX_GATES + k] < 1);
    loom_gates_free(&gates);
    loom_store_free(s);
    loom_graph_free(g);
}

/* Eigenvalues of matrices whose spectrum is known: Q T Qᵀ with T block
 * upper triangular (1 × 1 blocks: real eigenvalues; 2 × 2 rotation-scaling
 * blocks [a −b; b a]: a ± ib), Q orthogonal from Gram–Schmidt. */
Test(inspect, eigenvalues_of_known_spectra)
{
    enum { N = 7 };
    double want_re[N] = {0.9, -0.3, 0.5, 0.5, 1.7, -0.05, -0.05}, want_im[N] = {0, 0, 0.4, -0.4, 0, 1.1, -1.1};
    double Tm[N * N] = {0}, Q[N * N], A[N * N], tmp[N * N], re[N], im[N];
    Tm[0] = 0.9, Tm[1 * N + 1] = -0.3, Tm[4 * N + 4] = 1.7;
    Tm[2 * N + 2] = 0.5, Tm[2 * N + 3] = -0.4, Tm[3 * N + 2] = 0.4, Tm[3 * N + 3] = 0.5;
    Tm[5 * N + 5] = -0.05, Tm[5 * N + 6] = -1.1, Tm[6 * N + 5] = 1.1, Tm[6 * N + 6] = -0.05;
    for (int i = 0; i < N; i++) /* upper part: anything */
        for (int j = i + 2; j < N; j++) Tm[i * N + j] = rnd(-1, 1);
    Tm[0 * N + 1] = 0.3, Tm[4 * N + 5] = -0.7;
    for (int i = 0; i < N * N; i++) Q[i] = rnd(-1, 1);
    for (int j = 0; j < N; j++) { /* Gram–Schmidt on the columns */
        for (int k = 0; k < j; k++) {
            double d = 0;
            for (int i = 0; i < N; i++) d += Q[i * N + j] * Q[i * N + k];
            for (int i = 0; i < N; i++) Q[i * N + j] -= d * Q[i * N + k];
        }
        double nrm = 0;
        for (int i = 0; i < N; i++) nrm += Q[i * N + j] * Q[i * N + j];
        for (int i = 0; i < N; i++) Q[i * N + j] /= sqrt(nrm);
    }
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            tmp[i * N + j] = 0;
            for (int k = 0; k < N; k++) tmp[i * N + j] += Q[i * N + k] * Tm[k * N + j];
        }
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            A[i * N + j] = 0;
            for (int k = 0; k < N; k++) A[i * N + j] += tmp[i * N + k] * Q[j * N + k];
        }
    cr_assert_eq(loom_eigenvalues(A, N, re, im), LOOM_OK);
    bool used[N] = {0};
    for (int k = 0; k < N; k++) {
        int best = -1;
        for (int j = 0; j < N; j++)
            if (!used[j] && (best < 0 || hypot(re[j] - want_re[k], im[j] - want_im[k]) < hypot(re[best] - want_re[k], im[best] - want_im[k])))
                best = j;
        used[best] = true;
        cr_assert(hypot(re[best] - want_re[k], im[best] - want_im[k]) < 1e-9, "%g%+gi: found %g%+gi", want_re[k], want_im[k],
                  re[best], im[best]);
    }
    double nan_m[4] = {1, NAN, 0, 1};
    cr_assert_eq(loom_eigenvalues(nan_m, 2, re, im), LOOM_ERR_VALUE, "a value that is not finite is refused");
    double one = 3;
    cr_assert_eq(loom_eigenvalues(&one, 1, re, im), LOOM_OK);
    cr_assert(re[0] == 3 && im[0] == 0);
}

/* The parameters that multiply a state: W_hh for the built-in cells, U_f
 * and U_h for the MGU written as equations. */
Test(inspect, recurrent_parameters)
{
    bool rec[LOOM_CELL_MAX_PARAMS];
    loom_param_spec specs[LOOM_CELL_MAX_PARAMS];
    const loom_cell_def *cells[] = {&loom_cell_rnn_tanh, &loom_cell_gru, &loom_cell_lstm};
    for (int c = 0; c < 3; c++) {
        cr_assert_eq(loom_cell_recurrent_params(cells[c], 3, 4, rec, LOOM_CELL_MAX_PARAMS), LOOM_OK);
        int np = cells[c]->params(cells[c], 3, 4, specs, LOOM_CELL_MAX_PARAMS);
        for (int i = 0; i < np; i++)
            cr_assert_eq(rec[i], strncmp(specs[i].name, "weight_hh", 9) == 0, "%s: %s", cells[c]->name, specs[i].name);
    }
    loom_error err = {0};
    const loom_cell_def *mgu = loom_cell_parse("cell mgu_t(x; h)\n"
                                               "  f = sigmoid(W_f @ x + U_f @ h + b_f)\n"
                                               "  hc = tanh(W_h @ x + U_h @ (f * h) + b_h)\n"
                                               "  h = (1 - f) * h + f * hc\n",
                                               "mgu_t.cell", &err);
    cr_assert(mgu, "%s", err.msg);
    cr_assert_eq(loom_cell_recurrent_params(mgu, 3, 4, rec, LOOM_CELL_MAX_PARAMS), LOOM_OK);
    int np = mgu->params(mgu, 3, 4, specs, LOOM_CELL_MAX_PARAMS);
    for (int i = 0; i < np; i++)
        cr_assert_eq(rec[i], !strcmp(specs[i].name, "U_f") || !strcmp(specs[i].name, "U_h"), "%s", specs[i].name);
}

/* The spectra of a stack's recurrent weights: one per block (an LSTM's
 * W_hh is four, a vanilla RNN's one), each sorted by modulus; a diagonal
 * W_hh's eigenvalues are its diagonal. */
Test(inspect, recurrent_spectra)
{
    loom_graph *g = loom_graph_new();
    loom_rnn rnn, lstm;
    loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = &loom_cell_rnn_tanh, .input_size = 2, .hidden_size = 3, .prefix = "a."});
    loom_rnn_init(g, &lstm, &(loom_rnn_opts){.cell = &loom_cell_lstm, .input_size = 2, .hidden_size = 3, .layers = 2,
                                             .prefix = "b."});
    loom_store *s = loom_store_new(g);
    loom_store_init(s, 4);
    float *whh = loom_store_data(s, rnn.param[0][0][1]);
    float diag[9] = {0.2f, 0, 0, 0, -0.9f, 0, 0, 0, 0.5f};
    memcpy(whh, diag, sizeof diag);
    loom_binding b[64];
    int nb = loom_store_bindings(s, b, 64), n = 0;
    loom_spectrum *sp = NULL;
    cr_assert_eq(loom_rnn_spectra(g, &rnn, b, nb, &sp, &n), LOOM_OK);
    cr_assert_eq(n, 1);
    cr_assert(sp[0].n == 3 && fabs(sp[0].re[0] + 0.9) < 1e-7 && fabs(sp[0].re[1] - 0.5) < 1e-7 && fabs(sp[0].re[2] - 0.2) < 1e-7,
              "%g %g %g", sp[0].re[0], sp[0].re[1], sp[0].re[2]);
    loom_spectra_free(sp, n);
    cr_assert_eq(loom_rnn_spectra(g, &lstm, b, nb, &sp, &n), LOOM_OK);
    cr_assert_eq(n, 8, "two layers of four gate blocks: %d", n);
    for (int i = 0; i < n; i++) {
        cr_assert_eq(sp[i].block, i % 4);
        cr_assert_eq(sp[i].layer, i / 4);
        for (int k = 1; k < 3; k++) cr_assert_geq(hypot(sp[i].re[k - 1], sp[i].im[k - 1]), hypot(sp[i].re[k], sp[i].im[k]));
    }
    loom_spectra_free(sp, n);
    cr_assert_eq(loom_rnn_spectra(g, &lstm, b, 1, &sp, &n), LOOM_ERR_ARG, "a weight without a value is refused");
    loom_store_free(s);
    loom_graph_free(g);
}

/* The recorder loom train --norms-every uses: rows at the steps that are
 * multiples of `every` (0 included), each the norms of the model's weights
 * as they are then, equal to loom_state_grad_norms on the same probe; a
 * path that cannot be written is an error, not a crash. */
Test(inspect, norms_log_records_every_n_steps)
{
    enum { T = 6 };
    loom_task_opts to = {.kind = LOOM_MODEL_ADDING, .cell = &loom_cell_lstm, .steps = T, .batch = 4, .hidden = 5, .layers = 1};
    loom_graph *g = loom_graph_new();
    loom_task_model tm;
    cr_assert_eq(loom_task_build(g, &tm, &to), LOOM_OK, "%s", loom_graph_error(g));
    loom_store *w = loom_store_new(g);
    cr_assert(w);
    loom_store_init(w, 3);
    char dir[] = "/tmp/loom-inspect-XXXXXX", path[64];
    cr_assert(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/n.csv", dir);
    loom_model_desc d = {.kind = LOOM_MODEL_ADDING, .task = to};
    loom_norms_log n;
    loom_error err = {0};
    cr_assert_eq(loom_norms_log_open(&n, path, 2, &d, 9, w, NULL, 0, -1, &err), LOOM_OK, "%s", err.msg);
    for (int step = 0; step <= 4; step++) cr_assert_eq(loom_norms_log_step(&n, step, &err), LOOM_OK, "%s", err.msg);
    float want[2 * T];
    double want64[2 * T];
    cr_assert_eq(loom_state_grad_norms(n.probe.g, n.probe.loss, &n.probe.grid, n.probe.binds, n.probe.n_binds, want, want64),
                 LOOM_OK);
    float want_h1 = want[loom_state_at(&n.probe.grid, 0, 0, 0, 0)];
    loom_norms_log_close(&n);
    char *text = slurp(path);
    int rows[5] = {0}, lines = 0;
    for (char *line = strchr(text, '\n'); line && line[1]; line = strchr(line + 1, '\n')) {
        int step = atoi(line + 1);
        cr_assert(step >= 0 && step <= 4, "step %d", step);
        rows[step]++, lines++;
    }
    cr_assert(rows[0] == 2 * T && rows[2] == 2 * T && rows[4] == 2 * T && !rows[1] && !rows[3], "h and c at steps 0, 2, 4: %d %d %d",
              rows[0], rows[2], rows[4]);
    char first[64];
    snprintf(first, sizeof first, "\n4,1,0,forward,h,");
    char *at = strstr(text, first);
    cr_assert(at, "step 4, t = 1, h");
    double v = atof(at + strlen(first));
    cr_assert(fabs(v - want_h1) <= 1e-6 * v + 1e-30, "the norm as computed: %g against %g", v, want_h1);
    free(text);
    /* a directory is no file */
    cr_assert_neq(loom_norms_log_open(&n, dir, 2, &d, 9, w, NULL, 0, -1, &err), LOOM_OK);
    cr_assert(err.msg[0], "a reason");
    unlink(path), rmdir(dir);
    loom_store_free(w);
    loom_graph_free(g);
}

/* loom_value_stats: each value the roots need, on one batch — a parameter's
 * from its binding, a computed one from the run (the loss: min = max = mean
 * = its value), integer nodes and what the roots do not need NaN. */
Test(inspect, value_stats_of_every_node)
{
    enum { T = 3, I = 2, H = 3 };
    loom_graph *g = loom_graph_new();
    loom_rnn rnn;
    loom_rnn_init(g, &rnn, &(loom_rnn_opts){.cell = &loom_cell_gru, .input_size = I, .hidden_size = H});
    loom_tensor x = loom_input(g, "x", loom_shape3(T, 1, I));
    loom_rnn_out o = loom_rnn_apply(g, &rnn, x, NULL);
    loom_tensor loss = loom_sum_all(g, loom_mul(g, o.output, o.output));
    loom_tensor unused = loom_tanh(g, x), ids = loom_input_i32(g, "ids", loom_shape1(2));
    loom_tensor wrt[4], grads[4];
    for (int i = 0; i < 4; i++) wrt[i] = rnn.param[0][0][i];
    cr_assert_eq(loom_backward(g, loss, wrt, 4, grads), LOOM_OK);
    float xv[T * I], w[4][3 * H * H + 3 * H * I];
    for (int i = 0; i < T * I; i++) xv[i] = rnd(-1, 1);
    loom_binding b[6] = {{x, xv}};
    for (int i = 0; i < 4; i++) {
        for (int k = 0; k < (int)(sizeof w[i] / sizeof *w[i]); k++) w[i][k] = rnd(-0.5f, 0.5f);
        b[1 + i] = (loom_binding){wrt[i], w[i]};
    }
    int32_t idv[2] = {1, 0};
    b[5] = (loom_binding){ids, idv};
    loom_tensor roots[5] = {loss, grads[0], grads[1], grads[2], grads[3]};
    int32_t n = loom_graph_size(g);
    float *st = malloc(4 * (size_t)n * sizeof *st);
    cr_assert_eq(loom_value_stats(g, roots, 5, b, 6, st), LOOM_OK, "%s", loom_graph_error(g));
    /* the loss, run by a plan of its own */
    loom_plan *p = loom_plan_new(g, &loss, 1, NULL);
    cr_assert_eq(loom_bind_all(p, b, 5), LOOM_OK);
    cr_assert_eq(loom_run(p), LOOM_OK);
    float lv = loom_plan_output(p, loss)[0];
    loom_plan_free(p);
    const float *sl = st + 4 * loom_index(loss);
    cr_assert(fabsf(sl[0] - lv) <= 1e-5f * lv && sl[0] == sl[1] && sl[1] == sl[2] && fabsf(sl[3] - fabsf(lv)) <= 1e-5f * lv,
              "the loss: %g %g %g %g, run alone %g", sl[0], sl[1], sl[2], sl[3], lv);
    /* W_ih from its binding */
    const float *sw = st + 4 * loom_index(wrt[0]);
    int64_t nw = loom_tensor_numel(g, wrt[0]);
    float lo = w[0][0], hi = w[0][0];
    double sq = 0;
    for (int64_t k = 0; k < nw; k++) lo = fminf(lo, w[0][k]), hi = fmaxf(hi, w[0][k]), sq += (double)w[0][k] * w[0][k];
    cr_assert(sw[0] == lo && sw[1] == hi && fabs(sw[3] - sqrt(sq)) <= 1e-5 * sqrt(sq));
    /* a gradient's norm: positive; an unneeded node, an integer one: NaN */
    cr_assert_gt(st[4 * loom_index(grads[1]) + 3], 0);
    cr_assert(isnan(st[4 * loom_index(unused)]) && isnan(st[4 * loom_index(ids) + 3]));
    free(st);
    loom_graph_free(g);
}

/* loom_node_values: a computed node's values from a run of what it needs,
 * a bound one's from its binding; a buffer of another size, an integer
 * node and an unbound input are errors, said in the graph. */
Test(inspect, node_values)
{
    loom_graph *g = loom_graph_new();
    loom_tensor x = loom_input(g, "x", loom_shape2(2, 3)), y = loom_tanh(g, loom_mul(g, x, x));
    loom_tensor ids = loom_input_i32(g, "ids", loom_shape1(2)), other = loom_input(g, "other", loom_shape1(2));
    float xv[6] = {-1, -0.5f, 0, 0.25f, 0.5f, 2}, out[6];
    loom_binding b[1] = {{x, xv}};
    cr_assert_eq(loom_node_values(g, y, b, 1, out, 6), LOOM_OK, "%s", loom_graph_error(g));
    for (int k = 0; k < 6; k++) cr_assert_float_eq(out[k], tanhf(xv[k] * xv[k]), 1e-6f, "element %d", k);
    cr_assert_eq(loom_node_values(g, x, b, 1, out, 6), LOOM_OK);
    cr_assert(!memcmp(out, xv, sizeof xv), "an input: its binding");
    loom_graph *h = loom_graph_new(); /* errors stick to a graph: one each */
    loom_tensor hx = loom_input(h, "x", loom_shape2(2, 3));
    cr_assert_eq(loom_node_values(h, hx, NULL, 0, out, 5), LOOM_ERR_SHAPE);
    cr_assert(strstr(loom_graph_error(h), "the node has 6 values, the buffer 5"), "%s", loom_graph_error(h));
    loom_graph_free(h);
    cr_assert_eq(loom_node_values(g, ids, b, 1, out, 2), LOOM_ERR_ARG);
    cr_assert(strstr(loom_graph_error(g), "not a float32 node"), "%s", loom_graph_error(g));
    loom_graph_free(g);
    g = loom_graph_new();
    other = loom_input(g, "other", loom_shape1(2));
    cr_assert_eq(loom_node_values(g, other, NULL, 0, out, 2), LOOM_ERR_STATE);
    cr_assert(strstr(loom_graph_error(g), "not bound"), "%s", loom_graph_error(g));
    loom_graph_free(g);
}
