/*
 * fuzz_chanq.c - the channel queues driven by a byte program.  Each step
 * reads an opcode and small operands: push / pop (with or without a wait) /
 * peek / cancel / release / tick / sweep over a few sessions, scopes,
 * topics and peers.  After every step the accounting must agree with what
 * was pushed and handed out, and the bounds must hold; at the end every
 * byte is freed (ASan/LSan check).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "container/chanq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NW 16

struct slot {
    struct chanq_waiter *w;
    int live;
};

static struct slot slots[NW];
static size_t handed_bytes, handed_msgs;

static void on_cb(void *arg, int st, void *d, size_t len)
{
    struct slot *s = arg;
    s->live = 0;
    s->w = NULL;
    if (st == CHANQ_OK && d) {
        handed_bytes += len;
        handed_msgs++;
    }
    free(d);
}

static const char *pick(const char *const *v, uint8_t b) { return v[b % 3]; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const sess[] = {"s0", "s1", "session_job-x"};
    static const char *const scope[] = {"", "task-a", "task-b"};
    static const char *const topic[] = {"t", "host.0-guest.0", ""};
    static const char *const peer[] = {"", "NODE-A", "NODE-B"};
    struct chanq_limits lim = {
        .session_bytes = 256, .session_msgs = 8, .total_bytes = 600, .total_msgs = 20,
        .max_sessions = 6, .max_topics = 2, .max_waiters = 3, .idle_ms = 50,
        .released_ms = 80, .released_max = 4,
    };
    memset(slots, 0, sizeof(slots));
    handed_bytes = handed_msgs = 0;
    struct chanq *q = chanq_new(&lim);
    long long now = 0;
    size_t i = 0;
    while (i + 4 <= size) {
        uint8_t op = data[i], a = data[i + 1], b = data[i + 2], c = data[i + 3];
        i += 4;
        struct chanq_addr ad = {pick(sess, a), pick(scope, a >> 2), pick(topic, b), pick(peer, b >> 2)};
        struct slot *sl = &slots[c % NW];
        switch (op % 8) {
        case 0: /* push, maybe waiting */
        case 1: {
            size_t len = (size_t)c * 2;
            void *d = malloc(len ? len : 1);
            memset(d, c, len ? len : 1);
            long long dl = (op & 8) && !sl->live ? now + (b % 40) : now;
            int rc = chanq_push(q, &ad, d, len, now, dl, on_cb, sl, &sl->w);
            if (rc == CHANQ_WAITING)
                sl->live = 1;
            else if (rc != CHANQ_OK)
                free(d);
            break;
        }
        case 2: /* pop, maybe waiting */
        case 3: {
            void *d;
            size_t len;
            long long dl = (op & 8) && !sl->live ? now + (c % 40) : now;
            int rc = chanq_pop(q, &ad, now, dl, on_cb, sl, &sl->w, &d, &len);
            if (rc == CHANQ_WAITING)
                sl->live = 1;
            if (rc == CHANQ_OK) {
                handed_bytes += len;
                handed_msgs++;
                free(d);
            }
            break;
        }
        case 4:
            if (sl->live) {
                chanq_cancel(q, sl->w);
                sl->live = 0;
                sl->w = NULL;
            }
            break;
        case 5:
            chanq_release(q, ad.session, (op & 8) ? NULL : ad.scope, (op & 16) ? ad.topic : NULL,
                          (op & 32) != 0, now);
            break;
        case 6:
            now += c % 16;
            chanq_tick(q, now);
            break;
        default:
            now += c % 64;
            chanq_sweep(q, now);
            break;
        }
        struct chanq_stats st;
        chanq_stats(q, &st);
        if (st.bytes > lim.total_bytes || st.msgs > lim.total_msgs ||
            st.sessions > lim.max_sessions)
            abort();
        if (st.msgs == 0 && st.bytes != 0)
            abort();
        if (chanq_next_deadline(q) >= 0 && st.pop_waiters + st.push_waiters == 0)
            abort();
    }
    chanq_free(q); /* every live waiter hears CHANQ_GONE */
    for (int k = 0; k < NW; k++)
        if (slots[k].live)
            abort();
    return 0;
}
