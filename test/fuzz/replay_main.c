/*
 * replay_main.c - run a libFuzzer target over files, without libFuzzer.
 *
 *   replay_fuzz_X FILE|DIR...
 *
 * Linked with one test/fuzz/fuzz_*.c (gcc + ASan + UBSan in `make test`), it
 * feeds every named file, and every regular file inside a named directory,
 * to LLVMFuzzerTestOneInput once, so each committed corpus and every crash
 * input kept as a regression file is re-checked on each test run.  It knows
 * nothing about the target: any harness that defines LLVMFuzzerTestOneInput
 * (and optionally LLVMFuzzerInitialize) links with it.
 *
 * Exit status: 0 when every input ran, 1 when an input could not be read,
 * 2 on usage.  A crash is the sanitizer's abort.
 */
#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

/* Inputs above this are refused: corpora are small by design. */
#define REPLAY_MAX (16u << 20)

static int run_file(const char *path, unsigned long *count)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return 1;
    }
    uint8_t *buf = malloc(REPLAY_MAX + 1);
    if (!buf) {
        fclose(f);
        fprintf(stderr, "replay: out of memory\n");
        return 1;
    }
    size_t n = fread(buf, 1, REPLAY_MAX + 1, f);
    int bad = ferror(f) || n > REPLAY_MAX;
    fclose(f);
    if (bad) {
        fprintf(stderr, "replay: %s: unreadable or larger than %u bytes\n", path, REPLAY_MAX);
        free(buf);
        return 1;
    }
    /* An exact-size copy, so ASan sees a read past the input's end. */
    uint8_t *in = malloc(n ? n : 1);
    if (!in) {
        free(buf);
        return 1;
    }
    memcpy(in, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(in, n);
    free(in);
    (*count)++;
    return 0;
}

static int run_path(const char *path, unsigned long *count)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return 1;
    }
    if (!S_ISDIR(st.st_mode))
        return run_file(path, count);
    DIR *d = opendir(path);
    if (!d) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return 1;
    }
    int rc = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        size_t len = strlen(path) + strlen(e->d_name) + 2;
        char *p = malloc(len);
        if (!p) {
            rc = 1;
            break;
        }
        snprintf(p, len, "%s/%s", path, e->d_name);
        struct stat es;
        if (stat(p, &es) == 0 && S_ISREG(es.st_mode))
            rc |= run_file(p, count);
        free(p);
    }
    closedir(d);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 2;
    }
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    unsigned long count = 0;
    int rc = 0;
    for (int i = 1; i < argc; i++)
        rc |= run_path(argv[i], &count);
    printf("replayed %lu inputs\n", count);
    return rc;
}
