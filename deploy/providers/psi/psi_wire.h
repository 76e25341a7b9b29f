/*
 * psi_wire.h - the bytes on the wire: EcdhPsiCipherBatch (spec
 * bfia-ecdh-psi.md §6.1), the link-layer PushRequest and its key syntax
 * (§6.3), and dialect B's TransportOutbound (bfia-transport.md §3.6).
 * Pure functions over protobuf-c generated code (the .proto files under proto/).
 */
#ifndef PSI_WIRE_H
#define PSI_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- EcdhPsiCipherBatch ------------------------------------------------------ */

/* A batch as this component sees it.  On pack, data is borrowed; on
 * unpack, every pointer points into the struct psi_wire_batch_msg that
 * psi_wire_batch_unpack returned. */
struct psi_wire_batch {
    const char *type;          /* "enc" or "dual.enc" */
    int32_t index;             /* batch_index */
    bool is_last;              /* is_last_batch */
    int32_t count;             /* items; 0 ends a stream */
    const unsigned char *data; /* ciphertext: count items of equal size */
    size_t len;                /* bytes at data */
};

/** Serialise b (proto3: default-valued fields are omitted; field 8 is never
 * written).  *out is malloc'd and owned by the caller.  Returns 0, or -1 on
 * a bad argument (count < 0) or no memory. */
int psi_wire_batch_pack(const struct psi_wire_batch *b, unsigned char **out, size_t *outlen);

struct psi_wire_batch_msg;

/** Parse len bytes into *b.  *msg receives the storage b points into; free it
 * with psi_wire_batch_msg_free().  Field 8 (duplicate_item_cnt_map) is
 * ignored.  Returns 0, or -1 when the bytes are not an EcdhPsiCipherBatch
 * or count is negative. */
int psi_wire_batch_unpack(const unsigned char *buf, size_t len, struct psi_wire_batch *b,
                          struct psi_wire_batch_msg **msg);

/** NULL-safe. */
void psi_wire_batch_msg_free(struct psi_wire_batch_msg *msg);

/* ---- PushRequest -------------------------------------------------------------- */

/* The link-layer envelope.  chunked = false is MONO (total and offset
 * unused). */
struct psi_wire_push {
    uint64_t sender_rank;
    const char *key;            /* NUL-terminated; keys never hold NUL bytes */
    const unsigned char *value;
    size_t len;
    bool chunked;
    uint64_t total;  /* chunk_info.message_length */
    uint64_t offset; /* chunk_info.chunk_offset */
};

/** Serialise p.  *out is malloc'd and owned by the caller.  Returns 0 or -1
 * (no memory). */
int psi_wire_push_pack(const struct psi_wire_push *p, unsigned char **out, size_t *outlen);

struct psi_wire_push_msg;

/** Parse len bytes into *p (pointers into *msg; free with
 * psi_wire_push_msg_free()).  Returns 0, or -1 when the bytes are not a
 * PushRequest, the key is missing, or chunk offsets do not fit. */
int psi_wire_push_unpack(const unsigned char *buf, size_t len, struct psi_wire_push *p,
                         struct psi_wire_push_msg **msg);

/** NULL-safe. */
void psi_wire_push_msg_free(struct psi_wire_push_msg *msg);

/* ---- link keys ------------------------------------------------------------------ */

/* The separator between a message key and its sequence number, and the two
 * control keys (YACL's link layer, spec §6.3). */
#define PSI_WIRE_SEQ_SEP "\x01\x02"
#define PSI_WIRE_ACK_KEY "ACK\x01\x02"
#define PSI_WIRE_FIN_KEY "FIN\x01\x02"

/** "{channel}:P2P-{counter}:{src}->{dst}" into out.  Counters start at 1.
 * Returns 0, or -1 if it does not fit in cap. */
int psi_wire_p2p_key(char *out, size_t cap, const char *channel, uint64_t counter, int src,
                     int dst);

/** "{msg_key}\x01\x02{seq}" into out (seq 0 for connect messages).
 * Returns 0, or -1 if it does not fit. */
int psi_wire_seq_key(char *out, size_t cap, const char *msg_key, uint64_t seq);

enum psi_wire_key_kind {
    PSI_WIRE_KEY_NORMAL = 0,
    PSI_WIRE_KEY_ACK = 1,
    PSI_WIRE_KEY_FIN = 2,
};

/** Classify a received key: the ACK and FIN control keys, or a normal key
 * split at the first "\x01\x02" into msg_key (NUL-terminated, into cap
 * bytes) and *seq (0 when there is no separator).  Returns the kind, or -1
 * when the key is empty, too long or its sequence is not a decimal number. */
int psi_wire_split_key(const char *key, char *msg_key, size_t cap, uint64_t *seq);

/** Parse the decimal value of an ACK or FIN message (n bytes, no sign, no
 * spaces, at most 19 digits).  Returns 0 or -1. */
int psi_wire_parse_count(const unsigned char *v, size_t n, uint64_t *out);

/* ---- dialect B answer -------------------------------------------------------------- */

/* TransportOutbound{bytes payload = 1; string code = 2; string message = 3}. */
struct psi_wire_outbound {
    char code[32];        /* "" when absent */
    char message[256];    /* truncated */
    unsigned char *payload; /* malloc'd, owned by the caller; NULL when empty */
    size_t len;
};

/** Parse a dialect-B answer body.  Returns 0 or -1 (not that message). */
int psi_wire_outbound_unpack(const unsigned char *buf, size_t len, struct psi_wire_outbound *o);

/** Build one (tests and fakes).  *out is malloc'd.  Returns 0 or -1. */
int psi_wire_outbound_pack(const char *code, const char *message, const unsigned char *payload,
                           size_t len, unsigned char **out, size_t *outlen);

#endif
