/*
 * psi_wire.c - protobuf-c glue and the link-layer key syntax.
 */
#include "psi_wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ecdh_psi.pb-c.h"
#include "link.pb-c.h"
#include "transport_b.pb-c.h"

typedef Org__Interconnection__V2__Runtime__EcdhPsiCipherBatch pb_batch;
typedef Org__Interconnection__Link__PushRequest pb_push;
typedef Org__Interconnection__Link__ChunkInfo pb_chunk;
typedef Bfia__Transport__DialectB__TransportOutbound pb_outbound;

struct psi_wire_batch_msg {
    pb_batch *pb;
};

struct psi_wire_push_msg {
    pb_push *pb;
};

/* ---- EcdhPsiCipherBatch ---------------------------------------------------------- */

int psi_wire_batch_pack(const struct psi_wire_batch *b, unsigned char **out, size_t *outlen)
{
    if (b->count < 0 || !b->type || (b->len && !b->data))
        return -1;
    char type[32];
    snprintf(type, sizeof(type), "%s", b->type);
    pb_batch m = ORG__INTERCONNECTION__V2__RUNTIME__ECDH_PSI_CIPHER_BATCH__INIT;
    m.type = type;
    m.batch_index = b->index;
    m.is_last_batch = b->is_last;
    m.count = b->count;
    /* protobuf-c only reads the bytes while packing */
    m.ciphertext.data = (uint8_t *)(uintptr_t)b->data;
    m.ciphertext.len = b->len;
    size_t n = org__interconnection__v2__runtime__ecdh_psi_cipher_batch__get_packed_size(&m);
    unsigned char *buf = malloc(n ? n : 1);
    if (!buf)
        return -1;
    if (org__interconnection__v2__runtime__ecdh_psi_cipher_batch__pack(&m, buf) != n) {
        free(buf);
        return -1;
    }
    *out = buf;
    *outlen = n;
    return 0;
}

int psi_wire_batch_unpack(const unsigned char *buf, size_t len, struct psi_wire_batch *b,
                          struct psi_wire_batch_msg **msg)
{
    *msg = NULL;
    pb_batch *m = org__interconnection__v2__runtime__ecdh_psi_cipher_batch__unpack(NULL, len, buf);
    if (!m)
        return -1;
    if (m->count < 0) {
        org__interconnection__v2__runtime__ecdh_psi_cipher_batch__free_unpacked(m, NULL);
        return -1;
    }
    struct psi_wire_batch_msg *w = malloc(sizeof(*w));
    if (!w) {
        org__interconnection__v2__runtime__ecdh_psi_cipher_batch__free_unpacked(m, NULL);
        return -1;
    }
    w->pb = m;
    b->type = m->type ? m->type : "";
    b->index = m->batch_index;
    b->is_last = m->is_last_batch;
    b->count = m->count;
    b->data = m->ciphertext.data;
    b->len = m->ciphertext.len;
    *msg = w;
    return 0;
}

void psi_wire_batch_msg_free(struct psi_wire_batch_msg *msg)
{
    if (!msg)
        return;
    org__interconnection__v2__runtime__ecdh_psi_cipher_batch__free_unpacked(msg->pb, NULL);
    free(msg);
}

/* ---- PushRequest ------------------------------------------------------------------ */

int psi_wire_push_pack(const struct psi_wire_push *p, unsigned char **out, size_t *outlen)
{
    pb_push m = ORG__INTERCONNECTION__LINK__PUSH_REQUEST__INIT;
    pb_chunk c = ORG__INTERCONNECTION__LINK__CHUNK_INFO__INIT;
    m.sender_rank = p->sender_rank;
    m.key = (char *)(uintptr_t)p->key; /* read only while packing */
    m.value.data = (uint8_t *)(uintptr_t)p->value;
    m.value.len = p->len;
    if (p->chunked) {
        m.trans_type = ORG__INTERCONNECTION__LINK__TRANS_TYPE__CHUNKED;
        c.message_length = p->total;
        c.chunk_offset = p->offset;
        m.chunk_info = &c;
    }
    size_t n = org__interconnection__link__push_request__get_packed_size(&m);
    unsigned char *buf = malloc(n ? n : 1);
    if (!buf)
        return -1;
    if (org__interconnection__link__push_request__pack(&m, buf) != n) {
        free(buf);
        return -1;
    }
    *out = buf;
    *outlen = n;
    return 0;
}

int psi_wire_push_unpack(const unsigned char *buf, size_t len, struct psi_wire_push *p,
                         struct psi_wire_push_msg **msg)
{
    *msg = NULL;
    pb_push *m = org__interconnection__link__push_request__unpack(NULL, len, buf);
    if (!m)
        return -1;
    int bad = !m->key || !m->key[0];
    bool chunked = m->trans_type == ORG__INTERCONNECTION__LINK__TRANS_TYPE__CHUNKED;
    if (chunked) {
        bad = bad || !m->chunk_info || m->chunk_info->chunk_offset > m->chunk_info->message_length ||
              m->value.len > m->chunk_info->message_length - m->chunk_info->chunk_offset;
    } else if (m->trans_type != ORG__INTERCONNECTION__LINK__TRANS_TYPE__MONO) {
        bad = 1;
    }
    struct psi_wire_push_msg *w = bad ? NULL : malloc(sizeof(*w));
    if (!w) {
        org__interconnection__link__push_request__free_unpacked(m, NULL);
        return -1;
    }
    w->pb = m;
    p->sender_rank = m->sender_rank;
    p->key = m->key;
    p->value = m->value.data;
    p->len = m->value.len;
    p->chunked = chunked;
    p->total = chunked ? m->chunk_info->message_length : m->value.len;
    p->offset = chunked ? m->chunk_info->chunk_offset : 0;
    *msg = w;
    return 0;
}

void psi_wire_push_msg_free(struct psi_wire_push_msg *msg)
{
    if (!msg)
        return;
    org__interconnection__link__push_request__free_unpacked(msg->pb, NULL);
    free(msg);
}

/* ---- keys ------------------------------------------------------------------------------ */

int psi_wire_p2p_key(char *out, size_t cap, const char *channel, uint64_t counter, int src, int dst)
{
    int n = snprintf(out, cap, "%s:P2P-%llu:%d->%d", channel, (unsigned long long)counter, src, dst);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

int psi_wire_seq_key(char *out, size_t cap, const char *msg_key, uint64_t seq)
{
    int n = snprintf(out, cap, "%s" PSI_WIRE_SEQ_SEP "%llu", msg_key, (unsigned long long)seq);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

int psi_wire_parse_count(const unsigned char *v, size_t n, uint64_t *out)
{
    if (n == 0 || n > 19)
        return -1;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    *out = x;
    return 0;
}

int psi_wire_split_key(const char *key, char *msg_key, size_t cap, uint64_t *seq)
{
    if (!key || !*key)
        return -1;
    if (strcmp(key, PSI_WIRE_ACK_KEY) == 0)
        return PSI_WIRE_KEY_ACK;
    if (strcmp(key, PSI_WIRE_FIN_KEY) == 0)
        return PSI_WIRE_KEY_FIN;
    const char *sep = strstr(key, PSI_WIRE_SEQ_SEP);
    size_t kl = sep ? (size_t)(sep - key) : strlen(key);
    if (kl == 0 || kl >= cap)
        return -1;
    *seq = 0;
    if (sep) {
        const char *d = sep + 2;
        if (psi_wire_parse_count((const unsigned char *)d, strlen(d), seq) != 0)
            return -1;
    }
    memcpy(msg_key, key, kl);
    msg_key[kl] = '\0';
    return PSI_WIRE_KEY_NORMAL;
}

/* ---- dialect B ------------------------------------------------------------------------------- */

int psi_wire_outbound_unpack(const unsigned char *buf, size_t len, struct psi_wire_outbound *o)
{
    memset(o, 0, sizeof(*o));
    pb_outbound *m = bfia__transport__dialect_b__transport_outbound__unpack(NULL, len, buf);
    if (!m)
        return -1;
    snprintf(o->code, sizeof(o->code), "%s", m->code ? m->code : "");
    snprintf(o->message, sizeof(o->message), "%s", m->message ? m->message : "");
    int rc = 0;
    if (m->payload.len) {
        o->payload = malloc(m->payload.len);
        if (o->payload) {
            memcpy(o->payload, m->payload.data, m->payload.len);
            o->len = m->payload.len;
        } else {
            rc = -1;
        }
    }
    bfia__transport__dialect_b__transport_outbound__free_unpacked(m, NULL);
    return rc;
}

int psi_wire_outbound_pack(const char *code, const char *message, const unsigned char *payload,
                           size_t len, unsigned char **out, size_t *outlen)
{
    pb_outbound m = BFIA__TRANSPORT__DIALECT_B__TRANSPORT_OUTBOUND__INIT;
    m.code = (char *)(uintptr_t)code;
    m.message = (char *)(uintptr_t)message;
    m.payload.data = (uint8_t *)(uintptr_t)payload;
    m.payload.len = len;
    size_t n = bfia__transport__dialect_b__transport_outbound__get_packed_size(&m);
    unsigned char *buf = malloc(n ? n : 1);
    if (!buf)
        return -1;
    bfia__transport__dialect_b__transport_outbound__pack(&m, buf);
    *out = buf;
    *outlen = n;
    return 0;
}
