/* libFuzzer target: loading a checkpoint of loom train. The input is read
 * as a safetensors file; one the reader accepts is written back as a
 * checkpoint (with a checksum that matches), so that the fuzzer reaches
 * what lies behind the checksum: the model's description (format 1, and
 * format 0 before it), the vocabulary, the
 * model they describe and its weights. Loading must never crash or ask
 * for more memory than the file's weights justify: a refusal is exit
 * status 2, a model that loads generates a few tokens (0). */
#include "tool.h"

#include "loom/loom.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    static char in_path[64], ck_path[64];
    if (!in_path[0]) {
        snprintf(in_path, sizeof in_path, "/dev/shm/loom-fuzz-ck-%d.in", (int)getpid());
        snprintf(ck_path, sizeof ck_path, "/dev/shm/loom-fuzz-ck-%d.ckpt", (int)getpid());
    }
    FILE *fp = fopen(in_path, "wb");
    if (!fp) return 0;
    fwrite(data, 1, size, fp);
    fclose(fp);
    loom_st *f = loom_st_new();
    if (f && loom_st_read(f, in_path) == LOOM_OK) {
        if (loom_checkpoint_write(f, ck_path)) abort(); /* what was read can be written */
        char *argv[] = {"--load", ck_path, "--length", "2", "--prefix", "a", "--seed", "1"};
        int rc = cmd_generate(8, argv);
        if (rc != 0 && rc != 2) abort();
    }
    loom_st_free(f);
    unlink(in_path);
    unlink(ck_path);
    return 0;
}
