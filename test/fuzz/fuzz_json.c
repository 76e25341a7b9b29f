/*
 * fuzz_json.c - the request-body JSON checker (gateway/json.c): json_parse
 * on arbitrary bytes, then every typed getter on every member of what it
 * accepted.  Whatever parses must print and parse again.
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/json.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    json_init();
    return 0;
}

static void getters(const cJSON *obj, int depth)
{
    if (depth > 8 || !cJSON_IsObject(obj))
        return;
    for (const cJSON *it = obj->child; it; it = it->next) {
        if (!it->string)
            abort(); /* an object member always has a name */
        struct gw_errbuf eb;
        gw_errbuf_clear(&eb);
        const char *s = NULL;
        long long v = 0;
        bool b = false;
        const cJSON *o = NULL;
        /* A getter either succeeds with a value or refuses with a reason. */
        if (json_get_str(obj, it->string, true, 64, &s, &eb) == 0 ? !s : !eb.msg[0])
            abort();
        gw_errbuf_clear(&eb);
        if (json_get_int(obj, it->string, false, -1000, 1000000, &v, &eb) == 0
                ? v < -1000 || v > 1000000
                : !eb.msg[0])
            abort();
        gw_errbuf_clear(&eb);
        if (json_get_bool(obj, it->string, false, &b, &eb) != 0 && !eb.msg[0])
            abort();
        gw_errbuf_clear(&eb);
        if (json_get_obj(obj, it->string, false, &o, &eb) == 0 ? o && !cJSON_IsObject(o)
                                                               : !eb.msg[0])
            abort();
        gw_errbuf_clear(&eb);
        o = NULL;
        if (json_get_arr(obj, it->string, false, &o, &eb) == 0 ? o && !cJSON_IsArray(o)
                                                               : !eb.msg[0])
            abort();
        gw_errbuf_clear(&eb);
        s = NULL;
        if (json_get_id(obj, it->string, false, 64, &s, &eb) == 0 ? s && !json_is_id(s, 64)
                                                                   : !eb.msg[0])
            abort();
        getters(it, depth + 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    cJSON *root = json_parse((const char *)data, size, &eb);
    if (!root) {
        if (!eb.msg[0])
            abort(); /* a refusal always says why */
        return 0;
    }
    getters(root, 0);
    char *text = json_print(root);
    if (!text)
        abort();
    gw_errbuf_clear(&eb);
    cJSON *again = json_parse(text, strlen(text), &eb);
    if (!again)
        abort(); /* what we print, we must read back */
    cJSON_Delete(again);
    cJSON_free(text);
    cJSON_Delete(root);
    return 0;
}
