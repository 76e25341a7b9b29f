#!/usr/bin/env python3
"""test/fuzz/seeds.py - (re)build the committed seed corpora.

Seeds come from the protocol as the spec and real peers write it: the
request bodies of /work/shared/spec/bfia-examples.json and the fixtures
(copied into the repository as test/unit/data and conf/), the attestation
test vectors, the example configuration and route table, plus a few
hand-made edge cases per parser.  Run from the repository root:

    python3 test/fuzz/seeds.py [SPEC_DIR]

It only writes test/fuzz/corpus/<target>/; files are named by the SHA-1 of
their content (as libFuzzer names them), so reruns are idempotent.
"""
import base64
import hashlib
import json
import os
import struct
import sys

SPEC = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/spec"
FIXTURES = os.path.join(os.path.dirname(SPEC.rstrip("/")), "fixtures")
OUT = "test/fuzz/corpus"


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def jdump(o):
    return json.dumps(o, ensure_ascii=False, separators=(",", ":"))


def load_json_files():
    docs = []
    for d in (FIXTURES, "test/unit/data"):
        if not os.path.isdir(d):
            continue
        for fn in sorted(os.listdir(d)):
            if fn.endswith(".json") and "attestation" not in fn:
                with open(os.path.join(d, fn), "rb") as f:
                    docs.append(f.read())
    return docs


def b64u_dec(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def main():
    ex = json.load(open(os.path.join(SPEC, "bfia-examples.json")))
    files = load_json_files()

    # json: every example body, the fixtures, and edge cases.
    for e in ex:
        for k in ("request", "response", "failure_response", "standard_response"):
            if isinstance(e.get(k), (dict, list)):
                put("json", jdump(e[k]))
    for raw in files:
        put("json", raw)
    for s in ('{}', '[]', '{"a":1}garbage', '{"a":"\\u0000\\ud800"}', '{"n":1e999}',
              '{"a":{"a":{"a":{"a":[[[[[]]]]]}}}}', '  {"job_id":"j1"}\n', '"str"', '{"a":1,"a":2}',
              '{"i":9223372036854775808,"b":"true","id":"JG01.x:y#z"}'):
        put("json", s)

    # dag: create_all bodies ({dag, config}).
    for e in ex:
        r = e.get("request")
        if isinstance(r, dict) and "dag" in r and "config" in r:
            put("dag", jdump(r))
    for raw in files:
        try:
            o = json.loads(raw)
        except ValueError:
            continue
        if isinstance(o, dict) and "dag" in o:
            put("dag", raw)

    # jws: the attestation vectors (launch / present), JWKS, signed claims.
    av = json.load(open(os.path.join(SPEC, "attestation-vectors.json")))
    for v in av["vectors"]:
        tok = v.get("token")
        if not isinstance(tok, str):
            continue
        mode = 1 if v.get("kind", "").startswith("present") else 0
        put("jws", bytes([mode]) + tok.encode())
        parts = tok.split(".")
        if len(parts) == 3:
            try:
                h, p = b64u_dec(parts[0]), b64u_dec(parts[1])
                put("jws", bytes([3 + mode]) + h + b"\n" + p)
            except ValueError:
                pass
            put("jws", bytes([5]) + parts[0].encode())
    for iss, jwks in av["jwks_by_issuer"].items():
        put("jws", bytes([2]) + jdump(jwks).encode())
    for k in av.get("external_kats", []):
        if isinstance(k.get("jwk"), dict):
            put("jws", bytes([2]) + jdump({"keys": [k["jwk"]]}).encode())

    # reqsig: header value, method, target, source, dest, timestamp, nonce, body.
    sig = base64.urlsafe_b64encode(bytes(range(64))).rstrip(b"=").decode()
    kid = "a" * 43
    for hdr, method, target in (
            ("ES256;kid=%s;sig=%s" % (kid, sig), "POST", "/v1/interconn/schedule/task/poll"),
            ("ES256;kid=;sig=", "GET", "/v1/interconn/schedule/job/status_all?job_id=j1&b=2&a=1"),
            ("RS256;kid=x;sig=y", "POST", "/p?&&=&a=%20"),
            ("ES256;kid=%s;sig=%s==" % (kid, sig), "GET", "/")):
        put("reqsig", "\n".join([hdr, method, target, "JG0100001100000010", "JG0100001100000020",
                                 "1764600000000", "3q2-7wEjRWeJq83v",
                                 '{"task_id":"t1","role":"host.0"}']))
    for iss, jwks in av["jwks_by_issuer"].items():
        for k in jwks.get("keys", []):
            put("reqsig", jdump(k))

    # cfg: the example and test configurations, and broken ones.
    for fn in ("conf/gateway.example.yaml", "conf/test.yaml", "conf/dev.yaml"):
        if os.path.exists(fn):
            put("cfg", open(fn, "rb").read())
    for s in ("node_id: JG01\nhttp:\n  prot: 80\n", "node_id: [1]\n", "---\n...\n", "",
              "node_id: x\nhttp:\n  platform_allow: '10.0.0.0/8, ::1/128, 300.1.1.1'\n",
              "node_id: x\nhttp: {port: 99999}\n", "node_id: &a x\nlog: {level: *a}\n",
              "node_id: x\nnode_id: y\n", "node_id: \"a\\0b\"\n"):
        put("cfg", s)

    # routes: FATE-Flow's route table format plus our keys.
    if os.path.exists("conf/route_table.example.yaml"):
        put("routes", open("conf/route_table.example.yaml", "rb").read())
    for s in ("JG0100001100000020:\n  host: 127.0.0.1\n  port: 9380\n",
              "JG01:\n  host: 127.0.0.1\n  port: 70000\n",
              "JG01:\n  host: h\n  port: 1\n  scheme: https\n  profile: kuscia\n  auth: off\n",
              "JG01:\n  host: h\n  port: 1\n  profile: fate-flow\n  auth: optional\n"
              "  key: '{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"\",\"y\":\"\"}'\n",
              "- a\n- b\n", "JG01: 5\n", "JG01:\n  host: [1]\n"):
        put("routes", s)

    # demux: cap byte, split byte, then Docker log frames.
    def frame(stream, payload):
        return struct.pack(">BxxxI", stream, len(payload)) + payload
    put("demux", b"\x10\x03" + frame(1, b"hello\n") + frame(2, b"oops\n"))
    put("demux", b"\x00\x01" + frame(1, b"x" * 300) + frame(0, b"stdin") + frame(1, b"tail\n"))
    put("demux", b"\x40\x07" + frame(3, b"bad stream id"))
    put("demux", b"\x02\x3f" + struct.pack(">BxxxI", 1, 0xffffffff))
    put("demux", b"\x05\x05" + b'{"message":"No such container: abc"}')

    # httphead: split byte, then the heads of the unit test's table and two real ones.
    import re
    src = open("test/unit/test_httphead.c").read()
    for c in re.findall(r'^\s*\{"((?:[^"\\]|\\.)*)", HH_', src, re.M):
        put("httphead", b"\x07" + c.encode("latin-1").decode("unicode_escape").encode("latin-1"))
    put("httphead", b"\x07POST /v2/component/upload/file HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: multipart/form-data; boundary=------x\r\nContent-Length: 1234\r\n"
        b"Expect: 100-continue\r\n\r\n")
    put("httphead", b"\x07GET /v1/interconn/schedule/job/status_all?job_id=j HTTP/1.1\r\nHost: a\r\n"
        b"x-auth-sign: ES256;kid=a;sig=b\r\nx-nonce: abcdefgh\r\n\r\nGET / HTTP/1.1\r\n\r\n")

    # spool: split byte, boundary length byte, boundary, multipart body.
    def mp(bnd, parts, close=True):
        out = b""
        for hdr, val in parts:
            out += b"--" + bnd + b"\r\n" + hdr + b"\r\n\r\n" + val + b"\r\n"
        if close:
            out += b"--" + bnd + b"--\r\n"
        return out
    for split, bnd, body in (
            (7, b"------x", mp(b"------x", [(b'Content-Disposition: form-data; name="namespace"', b"demo"),
                                            (b'Content-Disposition: form-data; name="name"', b"guest"),
                                            (b'Content-Disposition: form-data; name="file"; filename="g.csv"\r\n'
                                             b"Content-Type: text/csv", b"id,x\n1,2\n" * 20)])),
            (1, b"B1", mp(b"B1", [(b'Content-Disposition: form-data; name="meta"', b'{"a":1}'),
                                  (b'Content-Disposition: form-data; name="file"', b"\r\n--B\r\n--B1x")])),
            (3, b"zz", b"garbage"),
            (5, b"B", mp(b"B", [(b'Content-Disposition: form-data; filename="a"', b"x")], close=False)),
            (9, b"q", mp(b"q", [(b'Content-Disposition: form-data; name="file"', b"1"),
                                (b'Content-Disposition: form-data; name="file"', b"2")])),
            (2, b"k", b"preamble\r\n--k\r\nno-header-end")):
        put("spool", bytes([split, (len(bnd) - 1) % 70]) + bnd + body)

    # logesc: capacity byte, then hostile strings.
    for s in (b"\x10plain text", b"\x01\"quoted\\ and \n newline", b"\x40\xff\xfe\xc3\x28 bad utf8",
              b"\x08\xe2\x82\xac\xf0\x9f\x98\x80 multi-byte", b"\x20\x00\x01\x1f\x7f controls"):
        put("logesc", s)


if __name__ == "__main__":
    main()
