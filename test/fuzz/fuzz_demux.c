/*
 * fuzz_demux.c - the Docker log stream demultiplexer (container/docker.c):
 * 8-byte frame headers and payloads as the engine streams them, fed once
 * whole and once in pieces split at input-chosen places.  Both feeds must
 * agree byte for byte, the kept tail never exceeds its cap, and a stream
 * marked corrupt stays corrupt.  The engine's error text extractor gets the
 * same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "container/docker.h"
#include "fuzz_util.h"
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t cap = 16 + data[0] * 4; /* small caps reach the tail-keeping path */
    size_t maxsplit = 1 + data[1] % 64;
    data += 2;
    size -= 2;

    struct docker_demux whole, parts;
    docker_demux_init(&whole, cap);
    docker_demux_init(&parts, cap);
    bool ok_whole = docker_demux_feed(&whole, (const char *)data, size);

    struct fz_splitter sp;
    fz_split_init(&sp, data, size < 16 ? size : 16, maxsplit);
    bool ok_parts = true, was_corrupt = false;
    for (size_t off = 0; off < size;) {
        size_t n = fz_split_next(&sp);
        if (n > size - off)
            n = size - off;
        ok_parts = docker_demux_feed(&parts, (const char *)data + off, n);
        if (was_corrupt && ok_parts)
            abort(); /* corruption is sticky */
        was_corrupt = !ok_parts;
        off += n;
    }
    if (ok_whole != ok_parts || whole.len != parts.len ||
        (whole.len && memcmp(whole.out, parts.out, whole.len) != 0))
        abort(); /* how the bytes were split must not matter */
    if (whole.len > cap || (whole.out && whole.out[whole.len] != '\0'))
        abort();
    docker_demux_cleanup(&whole);
    docker_demux_cleanup(&parts);

    char msg[256];
    docker_error_text(500, (const char *)data, size, msg, sizeof(msg));
    if (strlen(msg) >= sizeof(msg))
        abort();
    return 0;
}
