/* libFuzzer target: the CSV reader of loom plot. The first byte picks the
 * options (a logarithmic or linear axis, the column drawn, the x column,
 * the curves' columns and a row filter); the rest is the file. A file is drawn or refused with a message; drawing always ends
 * (no range or tick count may stall it). */
#include "loom/loom.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    static char in_path[64], out_path[64];
    if (!in_path[0]) {
        snprintf(in_path, sizeof in_path, "/dev/shm/loom-fuzz-plot-%d.csv", (int)getpid());
        snprintf(out_path, sizeof out_path, "/dev/shm/loom-fuzz-plot-%d.svg", (int)getpid());
    }
    if (size < 1 || !loom_plot_available()) return 0;
    FILE *f = fopen(in_path, "wb");
    if (!f) return 0;
    fwrite(data + 1, 1, size - 1, f);
    fclose(f);
    const char *files[1] = {in_path};
    static const char *const columns[] = {NULL, "loss", "valid_loss", "x"}, *const xs[] = {NULL, "t"};
    static const char *const by[] = {NULL, "state,layer"}, *const where[] = {NULL, "state=h", "a=,b=c", "=x"};
    loom_plot_opts o = {.files = files, .n = 1, .log_y = data[0] & 1, .column = columns[(data[0] >> 1) & 3],
                        .x = xs[(data[0] >> 3) & 1], .by = by[(data[0] >> 4) & 1], .where = where[(data[0] >> 5) & 3],
                        .linear_y = (data[0] >> 7) & 1};
    loom_error err = {0};
    loom_status st = loom_plot(&o, out_path, &err);
    if (st && (err.status != st || !err.msg[0])) abort(); /* a refusal says why */
    unlink(in_path);
    unlink(out_path);
    return 0;
}
