/* What the commands share besides their options (tools/options.c): the
 * example cell's registration, the built-in corpus, failure messages and
 * exit statuses, outputs checked against inputs, metrics and checkpoint
 * files, signals, threads. */
#include "tool.h"
#include "loom/checkpoint.h"
#include "loom/model.h"


#include <cjson/cJSON.h>
#include <time.h>

#include <ctype.h>
#include <signal.h>
#include <omp.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <math.h>


/* The built-in corpus: installed with loom, or in the source tree it was
 * built from (set by meson). */
#ifndef LOOM_CORPUS
#define LOOM_CORPUS "/usr/local/share/loom/timemachine.txt"
#endif
#ifndef LOOM_CORPUS_SRC
#define LOOM_CORPUS_SRC "data/corpus/timemachine.txt"
#endif

const char *tool_corpus(void) { return access(LOOM_CORPUS_SRC, R_OK) == 0 ? LOOM_CORPUS_SRC : LOOM_CORPUS; }

bool tool_is_corpus(const char *path) { return !strcmp(path, LOOM_CORPUS_SRC) || !strcmp(path, LOOM_CORPUS); }

/* Data parallelism: ranks other than 0 print nothing but their errors
 * (tool_ranks_quiet), which go to the stderr they started with. */
static FILE *rank_err;
static int rank_no, rank_count = 1;

void tool_ranks_quiet(int rank, int ranks)
{
    rank_count = ranks;
    if (rank < 1) return;
    int fd = dup(2);
    rank_err = fd >= 0 ? fdopen(fd, "w") : NULL;
    rank_no = rank;
    if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr)) return;
}

bool tool_stopped(const loom_trainer *t, long steps)
{
    return tool_caught() || (loom_trainer_comm(t) && loom_trainer_steps(t) < steps);
}

const char *tool_per_process(const loom_comm *comm, char *buf, size_t n)
{
    buf[0] = 0;
    if (comm) snprintf(buf, n, " per process × %d processes", loom_comm_size(comm));
    return buf;
}

int tool_write_checkpoint(const char *cmd, loom_st *f, const char *path, loom_comm *comm)
{
    int rc = 0;
    if (loom_comm_rank(comm) == 0 && loom_checkpoint_write(f, path)) rc = tool_fail(cmd, loom_st_error(f), NULL), rc = 1;
    if (comm) { /* every process waits for the file, and learns whether it was written */
        loom_error why = {.msg = "the checkpoint could not be written"};
        if (loom_comm_agree(comm, rc ? LOOM_ERR_IO : LOOM_OK, &why) && !rc) rc = 1;
    }
    return rc;
}

int tool_fail(const char *cmd, const char *what, const char *why)
{
    if (rank_err) {
        fprintf(rank_err, "%s: rank %d: %s%s%s\n", cmd, rank_no, what, why && *why ? ": " : "", why ? why : "");
        fflush(rank_err);
        return 2;
    }
    fprintf(stderr, "%s: %s%s%s\n", cmd, what, why && *why ? ": " : "", why ? why : "");
    return 2;
}

int tool_fail_st(const char *cmd, loom_status st, const char *what, const char *why)
{
    tool_fail(cmd, what, why);
    return tool_exit(st ? st : LOOM_ERR_ARG);
}

const char *tool_cell_names(char *buf, size_t n)
{
    int k;
    const loom_cell_def *const *cells = loom_cells(&k);
    size_t at = 0;
    buf[0] = 0;
    for (int i = 0; i < k && at < n; i++)
        at += (size_t)snprintf(buf + at, n - at, "%s%s", i == 0 ? "" : i == k - 1 ? " or " : ", ", cells[i]->name);
    return buf;
}

int tool_exit(loom_status st)
{
    return st == LOOM_OK ? 0 : st == LOOM_ERR_NOMEM || st == LOOM_ERR_IO ? 1 : 2;
}

bool tool_same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (!strcmp(a, b)) return true;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

bool tool_outputs_ok(const char *cmd, const tool_file *out, int n_out, const tool_file *in, int n_in)
{
    for (int i = 0; i < n_out; i++) {
        if (!out[i].path || !strcmp(out[i].path, "-")) continue;
        for (int j = 0; j < n_in + i; j++) {
            const tool_file *o = j < n_in ? &in[j] : &out[j - n_in];
            if (!o->path || !tool_same_file(out[i].path, o->path)) continue;
            fprintf(stderr, "%s: %s %s would replace %s %s%s\n", cmd, out[i].flag, out[i].path,
                    j < n_in ? "its input" : "the output", o->flag,
                    j < n_in ? " (an output never replaces an input)" : " (give each output a file of its own)");
            return false;
        }
    }
    return true;
}

int tool_open_outputs(const char *cmd, const char *save, const char *metrics, const char *columns, int64_t resumed,
                           loom_metrics **out)
{
    loom_error err = {0};
    *out = NULL;
    if (save && loom_checkpoint_writable(save, &err)) {
        fprintf(stderr, "%s: --save: %s\n", cmd, err.msg);
        return 1;
    }
    if (metrics && !(*out = loom_metrics_open(metrics, columns, resumed, &err))) {
        fprintf(stderr, "%s: --metrics: %s\n", cmd, err.msg);
        return tool_exit(err.status);
    }
    return 0;
}

int tool_flush_metrics(const char *cmd, loom_metrics **m)
{
    loom_error err = {0};
    if (!*m || !loom_metrics_flush(*m, &err)) return 0;
    loom_metrics_free(*m); /* said once; the run stops */
    *m = NULL;
    fprintf(stderr, "%s: %s\n", cmd, err.msg);
    return 1;
}

bool tool_finite_weights(const char *cmd, const char *path, const loom_store *s)
{
    int64_t count, first;
    int i = loom_store_non_finite(s, &count, &first);
    if (i >= 0)
        fprintf(stderr, "%s: %s: parameter '%s' holds %lld NaN or infinite values (the first at element %lld): these "
                        "weights come from a run that diverged\n", cmd, path, loom_store_name(s, i), (long long)count,
                (long long)first);
    return i < 0;
}

static volatile sig_atomic_t caught;

static void on_signal(int sig)
{
    if (!caught) caught = sig;
}

void tool_catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int tool_caught(void) { return caught; }

bool tool_stop(void *ctx) { return (void)ctx, caught != 0; }

int tool_interrupted(const char *cmd, long step, long steps, const char *save, int saved)
{
    int sig = caught; /* 0: another process of a data-parallel run was signalled, and every one stopped */
    fprintf(stderr, "\n%s: stopped by %s after step %ld of %ld", cmd,
            sig == SIGINT ? "SIGINT" : sig == SIGTERM || sig == 0 ? "SIGTERM" : "a signal", step, steps);
    if (!sig) sig = SIGTERM;
    char launch[32] = ""; /* a data-parallel run resumes with as many processes */
    if (rank_count > 1) snprintf(launch, sizeof launch, "mpirun -np %d ", rank_count);
    if (save && !saved)
        fprintf(stderr, "; checkpoint %s: resume with\n  %sloom train --resume %s --steps %ld --save %s\n", save, launch, save, steps, save);
    else fprintf(stderr, "%s\n", save ? "; the checkpoint could not be written" : " (no --save: nothing to resume from)");
    return saved ? saved : 128 + sig;
}

bool tool_threads(long flag)
{
    long n = flag;
    const char *env = getenv("LOOM_NUM_THREADS");
    if (!n && env && *env && !tool_int("LOOM_NUM_THREADS", env, 1, 1024, &n)) return false;
    if (n) omp_set_num_threads((int)n);
    return true;
}

task_kind tool_checkpoint_kind(const char *path)
{
    loom_st *f = loom_st_new();
    loom_model_desc m = {.kind = LOOM_MODEL_LM};
    if (f && !loom_checkpoint_read(f, path) && loom_checkpoint_model(f, &m, NULL, NULL)) m.kind = LOOM_MODEL_LM;
    loom_st_free(f);
    return m.kind == LOOM_MODEL_SEQ2SEQ    ? TASK_SEQ2SEQ
           : m.kind == LOOM_MODEL_WORD2VEC ? TASK_WORD2VEC
           : m.kind == LOOM_MODEL_LM       ? TASK_LM
                                           : TASK_ADDING + (m.kind - LOOM_MODEL_ADDING);
}

int64_t tool_checkpoint_step(const loom_st *ck)
{
    int64_t v;
    return loom_st_meta_int(ck, "loom.step", 0, TOOL_MAX_STEPS, &v) ? v : -1;
}

double tool_jnum(const struct cJSON *o, const char *k, double lo, double hi, bool *ok)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi)) {
        *ok = false;
        return lo;
    }
    return v->valuedouble;
}

double tool_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

const char *tool_num(char *buf, size_t n, double v, int decimals)
{
    /* past a million, a perplexity's digits say nothing: 1.2346e+48, not 48 digits */
    if (fabs(v) < 1e6 || !isfinite(v)) snprintf(buf, n, "%.*f", decimals, v);
    else snprintf(buf, n, "%.4e", v);
    return buf;
}

int tool_diverged(const char *cmd, const loom_fit_report *r, bool strict)
{
    if (!loom_fit_diverged(r)) return 0;
    fprintf(stderr, "%s: warning: the run diverged: its loss ended at %.4g (smoothed), above its first step's %.4g; "
                    "lower --lr, or clip (--clip)%s\n",
            cmd, r->loss_avg, r->first_loss, strict ? "" : " (--strict makes this an error)");
    return strict ? 1 : 0;
}

int tool_norms_open(loom_norms_log *n, const char *cmd, const char *path, long every, const loom_model_desc *d, uint64_t seed,
                    const loom_store *weights, const int32_t *ids, int64_t n_ids, int64_t resumed)
{
    *n = (loom_norms_log){0};
    loom_error err = {0};
    loom_status st = path ? loom_norms_log_open(n, path, every, d, seed, weights, ids, n_ids, resumed, &err) : LOOM_OK;
    return st ? tool_fail_st(cmd, st, "--norms-csv", err.msg) : 0;
}

int tool_norms_step(loom_norms_log *n, const char *cmd, int64_t step)
{
    loom_error err = {0};
    loom_status st = loom_norms_log_step(n, step, &err);
    return st ? tool_fail_st(cmd, st, "--norms-csv", err.msg) : 0;
}

int tool_write_rows(const char *cmd, const char *path, const char *columns, loom_status (*fill)(const void *, loom_metrics *),
                    const void *ctx)
{
    if (!path) return 0;
    loom_error err = {0};
    loom_metrics *m = loom_metrics_open(path, columns, -1, &err);
    loom_status st = m ? fill(ctx, m) : err.status;
    if (m && !st) st = loom_metrics_flush(m, &err);
    loom_metrics_free(m);
    return st ? tool_fail_st(cmd, st, path, err.msg[0] ? err.msg : "out of memory") : 0;
}
