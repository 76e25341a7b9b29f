/*
 * fuzz_routes.c - the route table file loader (peers_parse_file in
 * gateway/peer.c), FATE-Flow's route_table.yaml format plus scheme,
 * profile, auth and key.  The bytes are written to an anonymous memory
 * file and loaded through its /proc path, as the gateway loads routes_file.
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gateway/json.h"
#include "gateway/peer.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fd = -1;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    json_init();
    fd = memfd_create("fuzz-routes", 0);
    if (fd < 0)
        abort();
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 256 * 1024)
        return 0;
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        abort();
    struct gw_errbuf eb;
    gw_errbuf_clear(&eb);
    cJSON *routes = peers_parse_file(path, &eb);
    if (!routes) {
        if (!eb.msg[0])
            abort(); /* a refusal says where */
        return 0;
    }
    if (!cJSON_IsArray(routes))
        abort();
    const cJSON *r;
    cJSON_ArrayForEach(r, routes)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(r, "node_id");
        const cJSON *host = cJSON_GetObjectItemCaseSensitive(r, "host");
        if (!cJSON_IsString(id) || !cJSON_IsString(host))
            abort(); /* every accepted route names its node and host */
    }
    cJSON_Delete(routes);
    return 0;
}
