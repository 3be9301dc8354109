/* Atomic file replacement (see atomic.h). */
#include "io/atomic.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The process's umask without changing it (Linux reports it in
 * /proc/self/status); the umask(2) round trip when that is unavailable. */
static mode_t current_umask(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    unsigned m;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "Umask: %o", &m) == 1) {
            fclose(f);
            return (mode_t)m;
        }
    if (f) fclose(f);
    mode_t old = umask(022);
    umask(old);
    return old;
}

/* Temporary files of path left by writers that are gone (killed before
 * they could rename or remove them): "PATH.tmpPID.XXXXXX" whose process no
 * longer exists. A live writer's temporary file is left alone. */
static void remove_stale(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    char dir[PATH_MAX];
    size_t dn = slash ? (size_t)(slash - path) : 0;
    if (dn + 2 > sizeof dir) return;
    memcpy(dir, path, dn);
    strcpy(dir + dn, slash ? (dn ? "" : "/") : ".");
    DIR *d = opendir(dir);
    if (!d) return;
    size_t bn = strlen(base);
    for (struct dirent *en; (en = readdir(d));) {
        const char *name = en->d_name;
        if (strncmp(name, base, bn) || strncmp(name + bn, ".tmp", 4)) continue;
        char *end;
        long pid = strtol(name + bn + 4, &end, 10);
        if (pid <= 0 || *end != '.' || strlen(end) != 7) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive, or not ours to know */
        char full[PATH_MAX];
        if ((size_t)snprintf(full, sizeof full, "%s/%s", dir, name) < sizeof full) unlink(full);
    }
    closedir(d);
}

loom_status loom_atomic_check(const char *path, loom_error *e)
{
    loom_atomic a;
    loom_status st = loom_atomic_open(&a, path, e);
    if (!st) loom_atomic_abort(&a);
    return st;
}

loom_status loom_atomic_open(loom_atomic *a, const char *path, loom_error *e)
{
    *a = (loom_atomic){.path = path};
    if (!path || !*path) return loom_error_set(e, LOOM_ERR_ARG, "write: no file name");
    struct stat st;
    bool exists = stat(path, &st) == 0;
    if (exists && S_ISDIR(st.st_mode)) return loom_error_set(e, LOOM_ERR_IO, "%s: is a directory", path);
    if (exists && !S_ISREG(st.st_mode)) return loom_error_set(e, LOOM_ERR_IO, "%s: not a regular file", path);
    remove_stale(path);
    size_t n = strlen(path) + 40;
    a->tmp = malloc(n);
    if (!a->tmp) return loom_error_set(e, LOOM_ERR_NOMEM, "%s: out of memory", path);
    snprintf(a->tmp, n, "%s.tmp%ld.XXXXXX", path, (long)getpid());
    int fd = mkstemp(a->tmp);
    if (fd < 0) {
        int err = errno;
        free(a->tmp);
        a->tmp = NULL;
        return loom_error_set(e, LOOM_ERR_IO, "%s: cannot create a temporary file beside it: %s", path, strerror(err));
    }
    /* mkstemp makes 0600; a written file gets what open(2) would give it */
    fchmod(fd, exists ? (st.st_mode & 07777) : (0666 & ~current_umask()));
    a->f = fdopen(fd, "wb");
    if (!a->f) {
        int err = errno;
        close(fd);
        loom_atomic_abort(a);
        return loom_error_set(e, LOOM_ERR_NOMEM, "%s: %s", path, strerror(err));
    }
    return LOOM_OK;
}

loom_status loom_atomic_commit(loom_atomic *a, loom_error *e)
{
    bool ok = !ferror(a->f) && fflush(a->f) == 0 && fsync(fileno(a->f)) == 0;
    int err = errno;
    ok = fclose(a->f) == 0 && ok;
    a->f = NULL;
    if (!ok || rename(a->tmp, a->path) != 0) {
        if (ok) err = errno;
        loom_atomic_abort(a);
        return loom_error_set(e, LOOM_ERR_IO, "%s: write failed: %s", a->path, strerror(err ? err : EIO));
    }
    /* make the rename itself durable: sync the directory */
    char dir[PATH_MAX];
    const char *slash = strrchr(a->path, '/');
    size_t n = slash ? (size_t)(slash - a->path) : 0;
    if (n < sizeof dir) {
        memcpy(dir, a->path, n);
        strcpy(dir + n, slash ? (n ? "" : "/") : ".");
        int dfd = open(dir, O_RDONLY | O_DIRECTORY);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
    free(a->tmp);
    a->tmp = NULL;
    return LOOM_OK;
}

void loom_atomic_abort(loom_atomic *a)
{
    if (a->f) fclose(a->f);
    a->f = NULL;
    if (a->tmp) unlink(a->tmp);
    free(a->tmp);
    a->tmp = NULL;
}
