/*
 * fuzz_logesc.c - the log escaper (gateway/log.c), which every hostile
 * string passes through on its way to a log line: the output, put between
 * quotes, must always be a valid JSON string, whatever the bytes and the
 * capacity.
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8192)
        return 0;
    size_t cap = 1 + (size_t)data[0] * 8;
    char *out = malloc(cap + 2);
    if (!out)
        abort();
    size_t n = log_escape(out + 1, cap, (const char *)data + 1, size - 1);
    if (n >= cap || strlen(out + 1) != n)
        abort();
    out[0] = '"';
    out[n + 1] = '"';
    cJSON *j = cJSON_ParseWithLength(out, n + 2);
    if (!cJSON_IsString(j))
        abort(); /* a log field is always a well-formed JSON string */
    cJSON_Delete(j);
    free(out);
    return 0;
}
