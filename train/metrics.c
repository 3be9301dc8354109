/* A metrics CSV replaced atomically at each flush (see loom/train.h). */
#include "loom/train.h"
#include "data/read.h"
#include "io/atomic.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

struct loom_metrics {
    char *path;
    loom_buf text; /* the header and every row, each ending in a newline */
    double flushed;
};

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void loom_metrics_free(loom_metrics *m)
{
    if (!m) return;
    free(m->path), free(m->text.s), free(m);
}

/* The rows of the existing file at m->path up to step `upto` (its header
 * must be m's); nothing when the file does not exist. */
static loom_status keep_rows(loom_metrics *m, int64_t upto, loom_error *err)
{
    struct stat st;
    if (stat(m->path, &st) != 0 && errno == ENOENT) return LOOM_OK;
    loom_error e = {0};
    size_t len;
    char *old = loom_read_all(m->path, &len, &e);
    if (!old) return loom_error_set(err, e.status, "%s", e.msg);
    size_t hl = m->text.n; /* the header, with its newline */
    loom_status s = LOOM_OK;
    if (len < hl || memcmp(old, m->text.s, hl)) {
        s = loom_error_set(err, LOOM_ERR_FORMAT, "%s: its columns are not %.*s: give another --metrics file", m->path,
                           (int)hl - 1, m->text.s);
    }
    for (size_t a = hl; !s && a < len;) {
        size_t b = a;
        while (b < len && old[b] != '\n') b++;
        char *end;
        long long step = strtoll(old + a, &end, 10);
        if (b == len || end == old + a || *end != ',' || step > upto) break; /* a cut last line, or past the resume */
        if (!loom_buf_put(&m->text, old + a, b + 1 - a)) s = loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
        a = b + 1;
    }
    free(old);
    return s;
}

loom_metrics *loom_metrics_open(const char *path, const char *columns, int64_t resume_step, loom_error *err)
{
    if (!path || !columns) return loom_error_set(err, LOOM_ERR_ARG, "metrics: no file or columns"), NULL;
    loom_metrics *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(path)) || !loom_buf_put(&m->text, columns, strlen(columns)) ||
        !loom_buf_put(&m->text, "\n", 1))
        return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory"), loom_metrics_free(m), NULL;
    /* can a file be written there? (a temporary made and removed) */
    loom_error e = {0};
    if (loom_atomic_check(path, &e)) return loom_error_set(err, e.status, "%s", e.msg), loom_metrics_free(m), NULL;
    if (resume_step >= 0 && keep_rows(m, resume_step, err)) return loom_metrics_free(m), NULL;
    m->flushed = now();
    return m;
}

loom_status loom_metrics_row(loom_metrics *m, const char *fmt, ...)
{
    if (!m || !fmt) return LOOM_ERR_ARG;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= sizeof line - 1) return LOOM_ERR_ARG;
    line[k++] = '\n';
    return loom_buf_put(&m->text, line, (size_t)k) ? LOOM_OK : LOOM_ERR_NOMEM;
}

loom_status loom_metrics_flush(loom_metrics *m, loom_error *err)
{
    if (!m) return LOOM_ERR_ARG;
    loom_error e = {0};
    loom_atomic a;
    if (loom_atomic_open(&a, m->path, &e)) return loom_error_set(err, e.status, "%s", e.msg);
    fwrite(m->text.s, 1, m->text.n, a.f); /* a short write leaves the stream's error flag: the commit reports it */
    if (loom_atomic_commit(&a, &e)) return loom_error_set(err, e.status, "%s", e.msg);
    m->flushed = now();
    return LOOM_OK;
}

double loom_metrics_age(const loom_metrics *m) { return m ? now() - m->flushed : 0; }
