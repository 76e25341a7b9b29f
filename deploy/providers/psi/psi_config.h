/*
 * psi_config.h - everything the component needs, from its environment
 * (the container contract, spec bfia-control-layer.md §6.2 and
 * bfia-ecdh-psi.md §8.1, §9): system.*, config.*, runtime.component.*.
 *
 * Parameters (runtime.component.parameter.<name>), the reference's names:
 *   algo                        ecdh_psi (only)
 *   protocol_families           ecc (only)
 *   curve_type                  curve25519 (default) | sm2
 *   hash_type                   sha_256 (default) | sm3 (sm2 only)
 *   hash2curve_strategy         default by curve and hash: direct_hash_as_point_x,
 *                               try_and_rehash (sm2/sha_256), try_and_increment (sm2/sm3)
 *   point_octet_format          default by curve: uncompressed | x962_compressed
 *   bit_length_after_truncated  -1 (default) or a multiple of 8 up to the point size;
 *                               accepted and ignored: 96 bits are compared, as the
 *                               reference does whatever it says
 *   result_to_rank              -1 (default: both) | 0 | 1 (a rank, not a role)
 *   field_names                 "id" (default): comma-separated ID columns
 * and ours (optional, not in the reference):
 *   spill_threshold_mb          64: memory for second-stage values before spilling to disk
 *   recv_timeout_s              60: longest wait for one message from the peer
 *   connect_timeout_s           120: longest wait for the peer to start
 *   threads                     0: worker threads (0 = the cores this container may use)
 * Values are parsed leniently: enum names case-insensitively with or
 * without their enum prefix, integers also as "1.0".
 *
 * Ranks: the parties are the suffixes of config.node_id.<role>.<index>,
 * sorted bytewise (arbiter.0 < guest.0 < host.0): exactly two, and the
 * index of config.self_role among them is our rank (the reference's rule).
 */
#ifndef PSI_CONFIG_H
#define PSI_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#define PSI_CFG_STR 512
#define PSI_CFG_PATH 4096

struct psi_config {
    /* identity and reporting (filled first, so a failure can be reported) */
    char task_id[PSI_CFG_STR];
    char self_party[64];       /* config.self_role, e.g. "guest.0" */
    char callback[1024];       /* system.callback ("" = none) */
    char token_file[1024];     /* config.attest.token_file */
    char attest_token[8192];   /* config.attest.token */

    /* parties */
    char peer_party[64];
    int self_rank, peer_rank;
    char self_node[PSI_CFG_STR], peer_node[PSI_CFG_STR];
    char self_inst[PSI_CFG_STR], peer_inst[PSI_CFG_STR];

    /* algorithm */
    int curve, hash, h2c, fmt;
    int trunc_bits;
    int result_to_rank;
    char field_names[1024];

    /* data */
    char input_path[PSI_CFG_PATH];
    char output_path[PSI_CFG_PATH]; /* "" when no output address was given */
    char report_path[PSI_CFG_PATH]; /* runtime.component.output.report, or beside the output */

    /* transport */
    char transport[PSI_CFG_STR];
    char session_id[PSI_CFG_STR];
    char token[4096];
    char trace_id[PSI_CFG_STR];

    /* tuning */
    int threads;
    size_t spill_bytes;
    int recv_timeout_ms, connect_timeout_ms, fin_timeout_ms;
};

/** Fill c from envp (NULL-terminated "KEY=VALUE" strings).  Returns 0, or -1
 * with a message in err that names the variable or parameter at fault;
 * c->task_id, c->self_party and the callback fields are filled whenever
 * they are present, even on failure. */
int psi_config_load(char *const *envp, struct psi_config *c, char *err, size_t errlen);

/** Whether rank r receives the result under c->result_to_rank. */
bool psi_config_gets_result(const struct psi_config *c, int rank);

/** Parse the string field key of a flat JSON object ("name", "namespace");
 * standard escapes and \uXXXX are decoded.  Returns 0 or -1 (absent, not a
 * string, malformed object, longer than cap - 1). */
int psi_config_json_str(const char *json, const char *key, char *out, size_t cap);

/** Resolve an input or output address JSON against a file:// storage root:
 * <root>/<namespace>/<name>/data, the gateway's dataset layout; for an
 * input that is absent there, <root>/<namespace>/<name> when that is a
 * regular file (the reference's layout).  Names must be plain (no '/',
 * no leading '.').  Returns 0 or -1 with err naming var. */
int psi_config_resolve(const char *storage, const char *var, const char *json, bool input, char *out,
                       size_t cap, char *err, size_t errlen);

#endif
