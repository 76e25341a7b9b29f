/* test_psi_suite.c - the ECDH-PSI suites against every value of the test
 * vector tables of spec bfia-ecdh-psi.md §10 (H, enc, dual, last 12
 * bytes; Curve25519 and SM2), commutativity, the SM2/SM3 convention,
 * suite and parameter checks, bad keys and bad points. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "psi_suite.h"

static void unhex(const char *h, unsigned char *out, size_t n)
{
    assert_int_equal(strlen(h), 2 * n);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(h + 2 * i, "%2x", &v), 1);
        out[i] = (unsigned char)v;
    }
}

static void sha256(const char *s, unsigned char out[32])
{
    unsigned int n = 32;
    assert_int_equal(EVP_Digest(s, strlen(s), out, &n, EVP_sha256(), NULL), 1);
}

/* One row of a §10 table. */
struct row {
    char party;        /* 'A' or 'B': whose key masks the id first */
    const char *id;
    const char *h;     /* NULL: as another row */
    int rehash;        /* SM2: extra rounds; -1 unchecked */
    const char *enc, *dual, *last12;
};

static const struct row x25519_rows[] = {
    {'A', "1", "6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b", 0,
     "f72498274ce7d535779f0975488a956093c644b624f07209197c74524af7d811",
     "acd905776245aa4846e76b4ea8252cc9d3820c1bd1efb2f536da3683bceabf47", "d1efb2f536da3683bceabf47"},
    {'A', "2", "d4735e3a265e16eee03f59718b9b5d03019c07d8b6c51f90da3a666eec13ab35", 0,
     "427267bb0b22c9d4b2ff8be7caeff592c4b9b5b313d2a4adf0ab7eb3098ede26",
     "39e3b4dbf288db62af8f4a1f436af3e6b07b081bc6bb857e17e6f3b506a80f7a", "c6bb857e17e6f3b506a80f7a"},
    {'A', "3", "4e07408562bedb8b60ce05c1decfe3ad16b72230967de01f640b7e4729b49fce", 0,
     "fd336087c6aacc1e5453dd964ba164ac487c475a46f9760851a81a522605f61d",
     "f62e7f6a49f97ee8f6448d70995910244fa4f2921c0681f7cc5e89bb8e48b64a", "1c0681f7cc5e89bb8e48b64a"},
    {'A', "4", "4b227777d4dd1fc61c6f884f48641d02b4d121d3fd328cb08b5531fcacdabf8a", 0,
     "87d879b2e465b13166031ddf9b1b93bfa94cbb0a0aa245590b610e6965ddda11",
     "4d96c3322925214b1239d06f37c322e0cd6123f295a5e41e9faffda87de19c4a", "95a5e41e9faffda87de19c4a"},
    {'B', "3", "4e07408562bedb8b60ce05c1decfe3ad16b72230967de01f640b7e4729b49fce", 0,
     "869b8658a430a6d2e92a3fe86d8ac74f96999ecbf18e092a258e375218d4533f",
     "f62e7f6a49f97ee8f6448d70995910244fa4f2921c0681f7cc5e89bb8e48b64a", "1c0681f7cc5e89bb8e48b64a"},
    {'B', "4", "4b227777d4dd1fc61c6f884f48641d02b4d121d3fd328cb08b5531fcacdabf8a", 0,
     "770213973e866d62c81049d560a089493dfa0350e22f4fba5cd2b2184b89e124",
     "4d96c3322925214b1239d06f37c322e0cd6123f295a5e41e9faffda87de19c4a", "95a5e41e9faffda87de19c4a"},
    {'B', "5", "ef2d127de37b942baad06145e54b0c619a1f22327b2ebbcfbec78f5564afe39d", 0,
     "506ca85b35673b1aa6e98f5ec8f51320148e71fae33f9bbc6fd9a2010ad11139",
     "e9af1ce4725462b830a3a2c50edab23f1af1a69f3e2b16e62e1e57a8fded6033", "3e2b16e62e1e57a8fded6033"},
};

static const struct row sm2_rows[] = {
    {'A', "1", "029c2e4d8fe97d881430de4e754b4205b9c27ce96715231cffc4337340cb110280", 1,
     "03097279ab7b68cfea5e331f9f079974f9215a47c6e5223cd25bbae714357023e6",
     "02dd3f9149590bd0f49440c9abf6429173ccb0084aee3731978299b0c678c3e42a", "ee3731978299b0c678c3e42a"},
    {'A', "2", "02d4735e3a265e16eee03f59718b9b5d03019c07d8b6c51f90da3a666eec13ab35", 0,
     "02f59cfa4a945f45617da0b31c2264b5dced4cfc00128f8c6de0112c280f6544d1",
     "027db58906584c3db7069eb20e9dc19ab7146a90783a3809f749bf62079deba446", "3a3809f749bf62079deba446"},
    {'A', "3", "024e07408562bedb8b60ce05c1decfe3ad16b72230967de01f640b7e4729b49fce", 0,
     "02e6c7ef5272607bee002ded41ea7406f8a87e7ee5a21b38858c22d109fb28c7cf",
     "02b653a8d251231397201e0f95eabda6a7408a9aa22c0842972361a1a1ca808fcd", "2c0842972361a1a1ca808fcd"},
    {'A', "4", "02e765a8d2c7747c2bfe21f03d6dcc5208af11c3969da87c075e4e54857dc84a8c", 4,
     "0270500eb475458b347ad0baf5ee30ee910ca5005da7096b8a56e03b54fdf68698",
     "03673c834cfb375ef27b92b274a67c49068021b5a8d6d29f2605d558cb55ec0b17", "d6d29f2605d558cb55ec0b17"},
    {'B', "3", "024e07408562bedb8b60ce05c1decfe3ad16b72230967de01f640b7e4729b49fce", 0,
     "026810ecf784844a9a6b84ffbada44167a69e2e8c024c2209a81457675d13b986e",
     "02b653a8d251231397201e0f95eabda6a7408a9aa22c0842972361a1a1ca808fcd", "2c0842972361a1a1ca808fcd"},
    {'B', "4", "02e765a8d2c7747c2bfe21f03d6dcc5208af11c3969da87c075e4e54857dc84a8c", 4,
     "020a69f0641308144ee022404402f703b7a5aa4637f5972e578e9e5e94a6f221a5",
     "03673c834cfb375ef27b92b274a67c49068021b5a8d6d29f2605d558cb55ec0b17", "d6d29f2605d558cb55ec0b17"},
    {'B', "5", "02b2928391f8a477a27749a556b7386f4da4391e98df1c76459ba7f4ac2ee1a8f7", 1,
     "03c8ad7aa3e30628a0cd4a8c5191e8745984ab82cd5940d9468ec7e760fada75b4",
     "03ab9629e6335b23fea90e9089256bb107342d75174bbbb4cd9dd33d0515121767", "4bbbb4cd9dd33d0515121767"},
};

struct pair {
    struct psi_suite *a, *b;
    struct psi_suite_ws *wa, *wb;
};

static void pair_new(struct pair *p, int curve, int hash, int h2c, int fmt)
{
    unsigned char ka[32], kb[32];
    char err[512];
    sha256("bfia-test-key-A", ka);
    sha256("bfia-test-key-B", kb);
    /* the §10 keys themselves */
    unsigned char want[32];
    unhex("961ffcfacef6b5031654f346429acdf0b363e358305c0e01ec2592209bde2ae0", want, 32);
    assert_memory_equal(ka, want, 32);
    unhex("f7439eff78d8d17501484d31955804b02c5c2491c09666949fb51d5fc45187e4", want, 32);
    assert_memory_equal(kb, want, 32);
    p->a = psi_suite_new(curve, hash, h2c, fmt, ka, 32, err, sizeof(err));
    p->b = psi_suite_new(curve, hash, h2c, fmt, kb, 32, err, sizeof(err));
    assert_non_null(p->a);
    assert_non_null(p->b);
    p->wa = psi_suite_ws_new(p->a);
    p->wb = psi_suite_ws_new(p->b);
    assert_non_null(p->wa);
    assert_non_null(p->wb);
}

static void pair_free(struct pair *p)
{
    psi_suite_ws_free(p->wa);
    psi_suite_ws_free(p->wb);
    psi_suite_free(p->a);
    psi_suite_free(p->b);
}

static void check_rows(const struct row *rows, size_t n, int curve, int hash, int h2c, int fmt)
{
    struct pair p;
    pair_new(&p, curve, hash, h2c, fmt);
    size_t pl = psi_suite_point_len(p.a);
    for (size_t i = 0; i < n; i++) {
        const struct row *r = &rows[i];
        struct psi_suite *own = r->party == 'A' ? p.a : p.b, *other = r->party == 'A' ? p.b : p.a;
        struct psi_suite_ws *wown = r->party == 'A' ? p.wa : p.wb, *wother = r->party == 'A' ? p.wb : p.wa;
        unsigned char want[PSI_POINT_MAX], got[PSI_POINT_MAX], enc[PSI_POINT_MAX];
        int tries = -1;
        assert_int_equal(psi_suite_hash_point(own, wown, r->id, strlen(r->id), got, &tries), 0);
        unhex(r->h, want, pl);
        assert_memory_equal(got, want, pl);
        assert_int_equal(tries, r->rehash);
        assert_int_equal(psi_suite_mask_id(own, wown, r->id, strlen(r->id), enc), 0);
        unhex(r->enc, want, pl);
        assert_memory_equal(enc, want, pl);
        assert_int_equal(psi_suite_mask_point(other, wother, enc, got), 0);
        unhex(r->dual, want, pl);
        assert_memory_equal(got, want, pl);
        unhex(r->last12, want, PSI_DUAL_LEN);
        assert_memory_equal(got + pl - PSI_DUAL_LEN, want, PSI_DUAL_LEN);
        /* in place, as the run does it */
        memcpy(got, enc, pl);
        assert_int_equal(psi_suite_mask_point(other, wother, got, got), 0);
        unhex(r->dual, want, pl);
        assert_memory_equal(got, want, pl);
    }
    pair_free(&p);
}

static void test_vectors_x25519(void **state)
{
    (void)state;
    check_rows(x25519_rows, sizeof(x25519_rows) / sizeof(x25519_rows[0]), PSI_CURVE_CURVE25519,
               PSI_HASH_SHA_256, PSI_H2C_DIRECT_HASH_AS_POINT_X, PSI_FMT_UNCOMPRESSED);
}

static void test_vectors_sm2(void **state)
{
    (void)state;
    check_rows(sm2_rows, sizeof(sm2_rows) / sizeof(sm2_rows[0]), PSI_CURVE_SM2, PSI_HASH_SHA_256,
               PSI_H2C_TRY_AND_REHASH, PSI_FMT_X962_COMPRESSED);
}

/* dual(A x) == dual(B x) for random ids and random keys, every suite. */
static void test_commutativity(void **state)
{
    (void)state;
    const int suites[3][4] = {
        {PSI_CURVE_CURVE25519, PSI_HASH_SHA_256, PSI_H2C_DIRECT_HASH_AS_POINT_X, PSI_FMT_UNCOMPRESSED},
        {PSI_CURVE_SM2, PSI_HASH_SHA_256, PSI_H2C_TRY_AND_REHASH, PSI_FMT_X962_COMPRESSED},
        {PSI_CURVE_SM2, PSI_HASH_SM3, PSI_H2C_TRY_AND_INCREMENT, PSI_FMT_X962_COMPRESSED}};
    for (int s = 0; s < 3; s++) {
        char err[512];
        struct psi_suite *a = psi_suite_new(suites[s][0], suites[s][1], suites[s][2], suites[s][3],
                                            NULL, 0, err, sizeof(err));
        struct psi_suite *b = psi_suite_new(suites[s][0], suites[s][1], suites[s][2], suites[s][3],
                                            NULL, 0, err, sizeof(err));
        assert_non_null(a);
        assert_non_null(b);
        struct psi_suite_ws *wa = psi_suite_ws_new(a), *wb = psi_suite_ws_new(b);
        size_t pl = psi_suite_point_len(a);
        for (int i = 0; i < 40; i++) {
            unsigned char id[24], ea[PSI_POINT_MAX], eb[PSI_POINT_MAX], da[PSI_POINT_MAX],
                db[PSI_POINT_MAX];
            assert_int_equal(RAND_bytes(id, sizeof(id)), 1);
            size_t idl = 1 + id[0] % 23;
            assert_int_equal(psi_suite_mask_id(a, wa, id, idl, ea), 0);
            assert_int_equal(psi_suite_mask_id(b, wb, id, idl, eb), 0);
            assert_memory_not_equal(ea, eb, pl); /* different keys, different first stage */
            assert_int_equal(psi_suite_mask_point(b, wb, ea, da), 0);
            assert_int_equal(psi_suite_mask_point(a, wa, eb, db), 0);
            assert_memory_equal(da, db, pl);
        }
        /* a different id gives a different dual value */
        unsigned char e1[PSI_POINT_MAX], e2[PSI_POINT_MAX], d1[PSI_POINT_MAX], d2[PSI_POINT_MAX];
        assert_int_equal(psi_suite_mask_id(a, wa, "x", 1, e1), 0);
        assert_int_equal(psi_suite_mask_id(a, wa, "y", 1, e2), 0);
        assert_int_equal(psi_suite_mask_point(b, wb, e1, d1), 0);
        assert_int_equal(psi_suite_mask_point(b, wb, e2, d2), 0);
        assert_memory_not_equal(d1 + pl - 12, d2 + pl - 12, 12);
        psi_suite_ws_free(wa);
        psi_suite_ws_free(wb);
        psi_suite_free(a);
        psi_suite_free(b);
    }
}

/* SM2/SM3/TRY_AND_INCREMENT, checked against an independent computation:
 * x = SM3(id) mod p (+ tries), y even, on the curve; and SM3 itself
 * against its standard "abc" vector. */
static void test_sm3_try_and_increment(void **state)
{
    (void)state;
    unsigned char d[32], want[32];
    unsigned int dl = 32;
    assert_int_equal(EVP_Digest("abc", 3, d, &dl, EVP_sm3(), NULL), 1);
    unhex("66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0", want, 32);
    assert_memory_equal(d, want, 32);

    char err[512];
    struct psi_suite *s = psi_suite_new(PSI_CURVE_SM2, PSI_HASH_SM3, PSI_H2C_TRY_AND_INCREMENT,
                                        PSI_FMT_X962_COMPRESSED, NULL, 0, err, sizeof(err));
    assert_non_null(s);
    struct psi_suite_ws *ws = psi_suite_ws_new(s);
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_sm2);
    BN_CTX *bn = BN_CTX_new();
    BIGNUM *p = BN_new(), *x = BN_new(), *hx = BN_new(), *y = BN_new();
    EC_POINT *pt = EC_POINT_new(g);
    assert_int_equal(EC_GROUP_get_curve(g, p, NULL, NULL, bn), 1);
    int saw_increment = 0;
    for (int i = 0; i < 64; i++) {
        char id[16];
        snprintf(id, sizeof(id), "%d", i);
        unsigned char h[33];
        int tries = -1;
        assert_int_equal(psi_suite_hash_point(s, ws, id, strlen(id), h, &tries), 0);
        assert_true(tries >= 0 && tries < 100);
        saw_increment |= tries > 0;
        assert_int_equal(h[0], 0x02); /* y even */
        assert_int_equal(EVP_Digest(id, strlen(id), d, &dl, EVP_sm3(), NULL), 1);
        assert_non_null(BN_bin2bn(d, 32, x));
        assert_int_equal(BN_add_word(x, (BN_ULONG)tries), 1);
        assert_int_equal(BN_nnmod(x, x, p, bn), 1);
        assert_non_null(BN_bin2bn(h + 1, 32, hx));
        assert_int_equal(BN_cmp(x, hx), 0);
        assert_int_equal(EC_POINT_oct2point(g, pt, h, 33, bn), 1);
        assert_int_equal(EC_POINT_get_affine_coordinates(g, pt, NULL, y, bn), 1);
        assert_false(BN_is_odd(y));
    }
    assert_true(saw_increment); /* about half of all x need an increment */
    EC_POINT_free(pt);
    BN_free(p);
    BN_free(x);
    BN_free(hx);
    BN_free(y);
    BN_CTX_free(bn);
    EC_GROUP_free(g);
    psi_suite_ws_free(ws);
    psi_suite_free(s);
}

static void test_suite_check_names_parameter(void **state)
{
    (void)state;
    char err[512];
    assert_int_equal(psi_suite_check(1, 11, 3, 1, err, sizeof(err)), 0);
    assert_int_equal(psi_suite_check(2, 11, 2, 2, err, sizeof(err)), 0);
    assert_int_equal(psi_suite_check(2, 1, 1, 2, err, sizeof(err)), 0);
    assert_int_equal(psi_suite_check(PSI_CURVE_ED25519, 11, 3, 1, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "curve_type: 'ed25519'"));
    assert_int_equal(psi_suite_check(1, PSI_HASH_SM3, 3, 1, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "hash_type: 'sm3'"));
    assert_int_equal(psi_suite_check(2, PSI_HASH_SHA_512, 2, 2, err, sizeof(err)), -1);
    assert_true(strncmp(err, "hash_type:", 10) == 0);
    assert_int_equal(psi_suite_check(2, 11, PSI_H2C_TRY_AND_INCREMENT, 2, err, sizeof(err)), -1);
    assert_true(strncmp(err, "hash2curve_strategy: 'try_and_increment'", 40) == 0);
    assert_int_equal(psi_suite_check(2, 1, PSI_H2C_TRY_AND_REHASH, 2, err, sizeof(err)), -1);
    assert_true(strncmp(err, "hash2curve_strategy:", 20) == 0);
    assert_int_equal(psi_suite_check(1, 11, PSI_H2C_IRTF_ELL2_RO, 1, err, sizeof(err)), -1);
    assert_true(strncmp(err, "hash2curve_strategy:", 20) == 0);
    assert_int_equal(psi_suite_check(1, 11, 3, PSI_FMT_X962_COMPRESSED, err, sizeof(err)), -1);
    assert_true(strncmp(err, "point_octet_format: 'x962_compressed'", 37) == 0);
    assert_int_equal(psi_suite_check(2, 11, 2, PSI_FMT_UNCOMPRESSED, err, sizeof(err)), -1);
    assert_true(strncmp(err, "point_octet_format:", 19) == 0);
    assert_null(psi_suite_new(2, 11, 2, 1, NULL, 0, err, sizeof(err)));
}

static void test_enum_parsing(void **state)
{
    (void)state;
    assert_int_equal(psi_curve_parse("curve25519"), PSI_CURVE_CURVE25519);
    assert_int_equal(psi_curve_parse("SM2"), PSI_CURVE_SM2);
    assert_int_equal(psi_curve_parse("CURVE_TYPE_SM2"), PSI_CURVE_SM2);
    assert_int_equal(psi_curve_parse("curve_type_curve25519"), PSI_CURVE_CURVE25519);
    assert_int_equal(psi_curve_parse("p256"), -1);
    assert_int_equal(psi_curve_parse(""), -1);
    assert_int_equal(psi_curve_parse("unspecified"), -1);
    assert_int_equal(psi_curve_parse(NULL), -1);
    assert_int_equal(psi_hash_parse("sha_256"), PSI_HASH_SHA_256);
    assert_int_equal(psi_hash_parse("HASH_TYPE_SM3"), PSI_HASH_SM3);
    assert_int_equal(psi_hash_parse("sha256"), -1);
    assert_int_equal(psi_h2c_parse("direct_hash_as_point_x"), PSI_H2C_DIRECT_HASH_AS_POINT_X);
    assert_int_equal(psi_h2c_parse("DIRECT_HASH"), PSI_H2C_DIRECT_HASH_AS_POINT_X);
    assert_int_equal(psi_h2c_parse("HASH_TO_CURVE_STRATEGY_TRY_AND_REHASH"), PSI_H2C_TRY_AND_REHASH);
    assert_int_equal(psi_h2c_parse("try_and_increment"), PSI_H2C_TRY_AND_INCREMENT);
    assert_int_equal(psi_h2c_parse("try"), -1);
    assert_int_equal(psi_fmt_parse("uncompressed"), PSI_FMT_UNCOMPRESSED);
    assert_int_equal(psi_fmt_parse("POINT_OCTET_FORMAT_X962_COMPRESSED"), PSI_FMT_X962_COMPRESSED);
    assert_int_equal(psi_fmt_parse("compressed"), -1);
    assert_string_equal(psi_curve_name(PSI_CURVE_SM2), "sm2");
    assert_string_equal(psi_h2c_name(99), "?");
}

static void test_bad_keys_and_points(void **state)
{
    (void)state;
    char err[512];
    unsigned char k[33] = {0};
    /* X25519 keys are 32 bytes */
    assert_null(psi_suite_new(1, 11, 3, 1, k, 31, err, sizeof(err)));
    assert_non_null(strstr(err, "32 bytes"));
    /* an SM2 key that is 0 mod n */
    assert_null(psi_suite_new(2, 11, 2, 2, k, 32, err, sizeof(err)));
    assert_non_null(strstr(err, "zero"));
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_sm2);
    int nl = BN_bn2binpad(EC_GROUP_get0_order(g), k, 32);
    assert_int_equal(nl, 32);
    assert_null(psi_suite_new(2, 11, 2, 2, k, 32, err, sizeof(err)));
    EC_GROUP_free(g);

    /* SM2: a value that is not a point, a bad prefix */
    struct psi_suite *s = psi_suite_new(2, 11, 2, 2, NULL, 0, err, sizeof(err));
    struct psi_suite_ws *ws = psi_suite_ws_new(s);
    unsigned char in[33], out[33];
    int rejected = 0;
    for (int i = 0; i < 8; i++) { /* about half of all x are not on the curve */
        memset(in, 0, sizeof(in));
        in[0] = 0x02;
        in[32] = (unsigned char)(i + 1);
        rejected += psi_suite_mask_point(s, ws, in, out) != 0;
    }
    assert_true(rejected > 0);
    assert_int_equal(psi_suite_mask_id(s, ws, "1", 1, in), 0);
    in[0] = 0x04;
    assert_int_equal(psi_suite_mask_point(s, ws, in, out), -1);
    in[0] = 0x00;
    assert_int_equal(psi_suite_mask_point(s, ws, in, out), -1);
    psi_suite_ws_free(ws);
    psi_suite_free(s);

    /* X25519: a small-order u gives the all-zero output, refused */
    s = psi_suite_new(1, 11, 3, 1, NULL, 0, err, sizeof(err));
    ws = psi_suite_ws_new(s);
    memset(in, 0, 32);
    assert_int_equal(psi_suite_mask_point(s, ws, in, out), -1);
    in[0] = 1;
    assert_int_equal(psi_suite_mask_point(s, ws, in, out), -1);
    /* and the workspace still works afterwards */
    assert_int_equal(psi_suite_mask_id(s, ws, "1", 1, out), 0);
    psi_suite_ws_free(ws);
    psi_suite_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors_x25519),
        cmocka_unit_test(test_vectors_sm2),
        cmocka_unit_test(test_commutativity),
        cmocka_unit_test(test_sm3_try_and_increment),
        cmocka_unit_test(test_suite_check_names_parameter),
        cmocka_unit_test(test_enum_parsing),
        cmocka_unit_test(test_bad_keys_and_points),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
