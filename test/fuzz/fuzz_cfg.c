/*
 * fuzz_cfg.c - the YAML configuration loader (gateway/cfg.c) on arbitrary
 * files: whatever it accepts must print, and every refusal names a place.
 * The environment is empty, so only the file decides.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/cfg.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FILE *devnull;
static struct gw_cfg *defaults;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    devnull = fopen("/dev/null", "w");
    defaults = cfg_new_defaults();
    if (!devnull || !defaults)
        abort();
    return 0;
}

static void count(void *arg, const char *key, bool reloadable)
{
    (void)reloadable;
    if (!key || !*key)
        abort();
    (*(int *)arg)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 256 * 1024)
        return 0;
    char *const env[] = {NULL};
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    struct gw_cfg *c = cfg_load_string((const char *)data, size, "fuzz.yaml", env, &eb);
    if (!c) {
        /* A refusal names the place (file:line) or the key at fault. */
        bool named = strstr(eb.msg, "fuzz.yaml:") != NULL;
        for (size_t i = 0; !named && i < cfg_key_count(); i++) {
            size_t n = strlen(cfg_key_name(i));
            named = strncmp(eb.msg, cfg_key_name(i), n) == 0 && eb.msg[n] == ':';
        }
        if (!named)
            abort();
        return 0;
    }
    cfg_print(c, devnull);
    int n = 0;
    cfg_diff(defaults, c, count, &n);
    (void)cfg_platform_allowed(c, "127.0.0.1");
    (void)cfg_platform_allowed(c, "::ffff:10.1.2.3");
    cfg_free(c);
    return 0;
}
