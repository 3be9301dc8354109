/* Synthetic tasks, generated from a seed with no file: the long-range
 * tasks (adding, copy) and the parallel texts of sequence reversal and date
 * normalisation. */
#include "loom/data.h"

#include "data/read.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- long-range tasks ---- */

static float unit(uint64_t *s) { return (float)((*s = loom_mix(*s)) >> 40) * (1.0f / 16777216.0f); }

void loom_task_adding(int T, int B, uint64_t seed, float *x, float *y)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 7;
    memset(x, 0, (size_t)T * (size_t)B * 2 * sizeof *x);
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) x[((size_t)t * B + b) * 2] = unit(&s);
        int half = T / 2 > 0 ? T / 2 : 1;
        int i = (int)loom_below(&s, (uint64_t)half), j = half + (int)loom_below(&s, (uint64_t)(T - half > 0 ? T - half : 1));
        if (j >= T) j = T - 1;
        if (j == i) j = (i + 1) % T;
        x[((size_t)i * B + b) * 2 + 1] = 1.0f;
        x[((size_t)j * B + b) * 2 + 1] = 1.0f;
        y[b] = x[((size_t)i * B + b) * 2] + x[((size_t)j * B + b) * 2];
    }
}

void loom_task_copy(int T, int K, int A, int B, uint64_t seed, int32_t *x, int32_t *y)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 11;
    int L = K + T + K;
    memset(x, 0, (size_t)L * (size_t)B * sizeof *x);
    memset(y, 0, (size_t)L * (size_t)B * sizeof *y);
    for (int b = 0; b < B; b++) {
        for (int k = 0; k < K; k++) {
            int32_t sym = 1 + (int32_t)loom_below(&s, (uint64_t)A);
            x[(size_t)k * B + b] = sym;
            y[(size_t)(K + T + k) * B + b] = sym;
        }
        x[(size_t)(K + T - 1) * B + b] = A + 1; /* the delimiter: now repeat */
    }
}

/* ---- parallel text ---- */

char *loom_task_reverse_pairs(int64_t n, int min_len, int max_len, uint64_t seed)
{
    if (min_len < 1 || max_len < min_len || n < 0) return NULL;
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 13;
    loom_buf b = {0};
    char *line = malloc(2 * (size_t)max_len + 2);
    bool ok = line && loom_buf_put(&b, "", 0);
    for (int64_t i = 0; ok && i < n; i++) {
        int len = min_len + (int)loom_below(&s, (uint64_t)(max_len - min_len + 1));
        for (int k = 0; k < len; k++) line[k] = line[2 * len - k] = (char)('a' + loom_below(&s, 26));
        line[len] = '\t', line[2 * len + 1] = '\n';
        ok = loom_buf_put(&b, line, 2 * (size_t)len + 2);
    }
    free(line);
    if (!ok) free(b.s);
    return ok ? b.s : NULL;
}

static const char *const month[12] = {"january", "february", "march",     "april",   "may",      "june",
                                      "july",    "august",   "september", "october", "november", "december"};
static const char *const weekday[7] = {"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"};

/* Day d after 1950-01-01 (a Sunday) as a civil date (Hinnant's
 * days-to-civil, shifted to 1950). */
static void civil(int d, int *y, int *m, int *day)
{
    int z = d - 7305 + 719468; /* days from 0000-03-01 (1950-01-01 is 7305 days before 1970) */
    int era = z / 146097, doe = z - era * 146097;
    int yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    *day = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yoe + era * 400 + (*m <= 2);
}

static const char *ordinal(int day)
{
    return day % 10 == 1 && day != 11 ? "st" : day % 10 == 2 && day != 12 ? "nd" : day % 10 == 3 && day != 13 ? "rd" : "th";
}

int loom_task_date_text(int d, int f, char *out, size_t size)
{
    int y, m, day;
    civil(d, &y, &m, &day);
    const char *mon = month[m - 1], *wd = weekday[d % 7];
    switch (f) {
    case 0: return snprintf(out, size, "%d %.3s %d", day, mon, y);
    case 1: return snprintf(out, size, "%s, %s %d, %d", wd, mon, day, y);
    case 2: return snprintf(out, size, "%d/%d/%02d", m, day, y % 100);
    case 3: return snprintf(out, size, "%02d.%02d.%d", day, m, y);
    case 4: return snprintf(out, size, "%s %d, %d", mon, day, y);
    case 5: return snprintf(out, size, "%d %s %d", day, mon, y);
    case 6: return snprintf(out, size, "%.3s %d, %d", mon, day, y);
    case 7: return snprintf(out, size, "the %d%s of %s %d", day, ordinal(day), mon, y);
    case 8: return snprintf(out, size, "%d-%02d-%02d", y, m, day);
    case 9: return snprintf(out, size, "%02d/%02d/%d", day, m, y);
    case 10: return snprintf(out, size, "%.3s %d %.3s %d", wd, day, mon, y);
    case 11: return snprintf(out, size, "%s %d%s, %d", mon, day, ordinal(day), y);
    case 12: return snprintf(out, size, "%02d-%.3s-%d", day, mon, y);
    case 13: return snprintf(out, size, "%d%02d%02d", y, m, day);
    case 14: return snprintf(out, size, "%s %d %s %d", wd, day, mon, y);
    default: return snprintf(out, size, "%.3s %d%s %d", mon, day, ordinal(day), y);
    }
}

enum { DAYS = 36525 }; /* 1950-01-01 .. 2049-12-31 */

/* One date in ten is held out, by the date alone. */
static bool date_held_out(int d) { return loom_mix((uint64_t)d * 0x2545F4914F6CDD1Dull) % 10 == 0; }

char *loom_task_date_pairs(int64_t n, bool held_out, uint64_t seed)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 17;
    loom_buf b = {0};
    bool ok = n >= 0 && loom_buf_put(&b, "", 0);
    for (int64_t i = 0; ok && i < n; i++) {
        int d;
        do d = (int)loom_below(&s, DAYS);
        while (date_held_out(d) != held_out);
        char line[96];
        int k = loom_task_date_text(d, (int)loom_below(&s, LOOM_DATE_FORMATS), line, 64);
        line[k++] = '\t';
        k += loom_task_date_text(d, 8, line + k, sizeof line - (size_t)k);
        line[k++] = '\n';
        ok = loom_buf_put(&b, line, (size_t)k);
    }
    if (!ok) free(b.s);
    return ok ? b.s : NULL;
}

/* ---- the temporal order, the noisy sine ---- */

void loom_task_order(int T, int B, uint64_t seed, int32_t *x, int32_t *y)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 19;
    int a = T / 10, w = T / 10 + 1, c = T / 2; /* t1 in [a, a + w), t2 in [c, c + w) */
    for (int b = 0; b < B; b++) {
        for (int t = 1; t < T - 1; t++) x[(size_t)t * B + b] = (int32_t)loom_below(&s, 4);
        x[b] = 6, x[(size_t)(T - 1) * B + b] = 7;
        int t1 = a + (int)loom_below(&s, (uint64_t)w), t2 = c + (int)loom_below(&s, (uint64_t)w);
        if (t2 >= T - 1) t2 = T - 2;
        if (t1 < 1) t1 = 1;
        int k1 = (int)loom_below(&s, 2), k2 = (int)loom_below(&s, 2);
        x[(size_t)t1 * B + b] = 4 + k1, x[(size_t)t2 * B + b] = 4 + k2;
        y[b] = 2 * k1 + k2;
    }
}

void loom_task_sine_series(uint64_t seed, int64_t n, float *x)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 23;
    for (int64_t t = 0; t < n; t++) { /* Box–Muller: one normal per pair of uniforms */
        double u = 1 - loom_uniform(&s), v = loom_uniform(&s);
        x[t] = (float)(sin(0.01 * (double)(t + 1)) + 0.2 * sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
    }
}
