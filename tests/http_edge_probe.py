#!/usr/bin/env python3
"""tests/http_edge_probe.py — raw-socket probes of the HTTP edge (issue 19),
used by tests/test_server_edge.sh. Each case is named after the behaviour it
checks and prints "ok   NAME" or "FAIL NAME: why"; the exit code is the
number of failures. curl cannot send these (duplicate or broken framing
headers, half-open connections, uploads that ignore an early reply).

Usage: http_edge_probe.py HOST PORT CASE...   (CASE "all" = the default set)
Timeouts the cases assume: the server runs with --header-timeout 2
--idle-timeout 3 --max-body 1M --max-connections-per-client 50.
"""
import json
import re
import socket
import sys
import time

HOST, PORT = sys.argv[1], int(sys.argv[2])
FAILS = []


def conn(src=None, timeout=10):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if src:
        s.bind((src, 0))
    s.settimeout(timeout)
    s.connect((HOST, PORT))
    return s


def read_all(s, limit=10.0):
    """Read until EOF or `limit` seconds; (bytes, closed, seconds)."""
    t0 = time.time()
    buf = b""
    closed = False
    s.settimeout(0.2)
    while time.time() - t0 < limit:
        try:
            d = s.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError) as e:
            buf += ("<%s>" % type(e).__name__).encode()
            closed = True
            break
        if not d:
            closed = True
            break
        buf += d
    return buf, closed, time.time() - t0


def read_reply(s, limit=10.0):
    """Read one reply (head + Content-Length body); (status, head, body, seconds)."""
    t0 = time.time()
    buf = b""
    s.settimeout(0.2)
    while time.time() - t0 < limit:
        if b"\r\n\r\n" in buf:
            head, rest = buf.split(b"\r\n\r\n", 1)
            cl = 0
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    cl = int(v.strip())
            if len(rest) >= cl:
                status = int(head.split(b" ")[1])
                return status, head.decode("latin-1"), rest[:cl], time.time() - t0
        try:
            d = s.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            break
        if not d:
            break
        buf += d
    return None, buf.decode("latin-1"), b"", time.time() - t0


def check(name, cond, why):
    if cond:
        print("ok   " + name)
    else:
        print("FAIL %s: %s" % (name, why))
        FAILS.append(name)


def envelope(body):
    try:
        j = json.loads(body)
        return isinstance(j["status"]["error"], str) and len(j["status"]["error"]) > 0
    except Exception:
        return False


def one(raw, limit=10.0, shut=False):
    s = conn()
    s.sendall(raw)
    if shut:
        s.shutdown(socket.SHUT_WR)
    out, closed, secs = read_all(s, limit)
    s.close()
    return out, closed, secs


def parse(out):
    """(status, body) of the first reply in raw bytes."""
    try:
        head, body = out.split(b"\r\n\r\n", 1)
        return int(head.split(b" ")[1]), body
    except Exception:
        return None, b""


# ---- the cases ---------------------------------------------------------------


def query_string_with_600_parameters_is_answered():
    q = "a=b&" * 600
    s = conn()
    s.sendall(("GET /healthz?%s HTTP/1.1\r\nHost: x\r\n\r\n" % q).encode())
    st, _, body, secs = read_reply(s, 5)
    s.close()
    check("query_string_with_600_parameters_is_answered", st == 200 and secs < 3,
          "status %s after %.1f s" % (st, secs))


def head_over_16k_gets_431_envelope():
    q = "a=b&" * 5000
    out, closed, secs = one(("GET /healthz?%s HTTP/1.1\r\nHost: x\r\n\r\n" % q).encode(), 5)
    st, body = parse(out)
    check("head_over_16k_gets_431_envelope", st in (414, 431) and envelope(body) and closed and secs < 3,
          "status %s closed %s after %.1f s: %r" % (st, closed, secs, out[:200]))
    hdrs = "".join("X-H%d: v\r\n" % i for i in range(150))
    out, closed, secs = one(("GET /healthz HTTP/1.1\r\nHost: x\r\n%s\r\n" % hdrs).encode(), 5)
    st, body = parse(out)
    check("more_than_100_headers_gets_431_envelope", st == 431 and envelope(body) and secs < 3,
          "status %s after %.1f s: %r" % (st, secs, out[:200]))


def bad_content_length_is_answered_once():
    for cl in ("-5", "abc", "5 5", "+5", "99999999999999999999"):
        out, closed, secs = one(("PUT /collections/x HTTP/1.1\r\nHost: x\r\nContent-Length: %s\r\n\r\n" % cl).encode(), 5)
        st, body = parse(out)
        n = out.count(b"HTTP/1.1 ")
        check("bad_content_length_%s_is_answered_once" % cl.replace(" ", "_"),
              st == 400 and n == 1 and envelope(body) and closed,
              "status %s, %d status lines, closed %s: %r" % (st, n, closed, out[:300]))


def two_content_lengths_are_refused_and_closed():
    raw = b"PUT /collections/x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}"
    out, closed, secs = one(raw, 5)
    st, body = parse(out)
    check("two_content_lengths_are_refused_and_closed", st == 400 and envelope(body) and closed and secs < 3,
          "status %s closed %s after %.1f s: %r" % (st, closed, secs, out[:300]))


def content_length_with_chunked_is_refused_and_closed():
    raw = (b"POST /collections/x/points/search HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    out, closed, secs = one(raw, 5)
    st, body = parse(out)
    n = out.count(b"HTTP/1.1 ")
    check("content_length_with_chunked_is_refused_and_closed",
          st == 400 and envelope(body) and closed and n == 1 and secs < 3,
          "status %s, %d replies, closed %s after %.1f s: %r" % (st, n, closed, secs, out[:300]))


def huge_chunk_size_gets_quick_400():
    raw = b"PUT /collections/x/points HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n"
    out, closed, secs = one(raw, 5)
    st, body = parse(out)
    check("huge_chunk_size_gets_quick_400", st == 400 and envelope(body) and closed and secs < 1.5,
          "status %s closed %s after %.1f s: %r" % (st, closed, secs, out[:300]))
    raw = b"PUT /collections/x/points HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    out, closed, secs = one(raw, 5)
    st, body = parse(out)
    check("non_hex_chunk_size_gets_quick_400", st == 400 and envelope(body) and secs < 1.5,
          "status %s after %.1f s: %r" % (st, secs, out[:300]))
    raw = b"PUT /collections/x/points HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n"
    out, closed, secs = one(raw, 5)
    st, body = parse(out)
    check("chunk_longer_than_its_size_gets_quick_400", st == 400 and envelope(body) and secs < 1.5,
          "status %s after %.1f s: %r" % (st, secs, out[:300]))


def chunk_over_body_limit_gets_quick_413():
    raw = b"PUT /collections/x/points HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n200000\r\n"
    out, closed, secs = one(raw, 5)
    st, body = parse(out)
    check("chunk_over_body_limit_gets_quick_413", st == 413 and envelope(body) and secs < 1.5,
          "status %s after %.1f s: %r" % (st, secs, out[:300]))


def unterminated_chunked_body_gets_400_at_eof():
    raw = b"PUT /collections/x/points HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
    out, closed, secs = one(raw, 5, shut=True)
    st, body = parse(out)
    check("unterminated_chunked_body_gets_400_at_eof", st == 400 and envelope(body) and secs < 1.5,
          "status %s after %.1f s: %r" % (st, secs, out[:300]))


def stalled_chunked_body_gets_408_after_idle_timeout():
    raw = b"PUT /collections/x/points HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
    out, closed, secs = one(raw, 8)
    st, body = parse(out)
    check("stalled_chunked_body_gets_408_after_idle_timeout",
          st == 408 and envelope(body) and closed and 2.5 < secs < 5,
          "status %s closed %s after %.1f s: %r" % (st, closed, secs, out[:300]))


def gzip_transfer_encoding_gets_quick_400():
    raw = b"PUT /collections/x/points HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc"
    out, closed, secs = one(raw, 5)
    st, body = parse(out)
    check("gzip_transfer_encoding_gets_quick_400", st == 400 and envelope(body) and closed and secs < 1.5,
          "status %s closed %s after %.1f s: %r" % (st, closed, secs, out[:300]))


def malformed_requests_get_the_json_envelope():
    cases = {
        "garbage_request_line": b"GARBAGE\r\n\r\n",
        "http_2_0": b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n",
        "http_0_9_style": b"GET /healthz\r\n\r\n",
        "missing_host": b"GET /healthz HTTP/1.1\r\n\r\n",
        "two_hosts": b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "header_without_colon": b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        "space_before_colon": b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length : 0\r\n\r\n",
        "obsolete_line_folding": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  continued\r\n\r\n",
        "control_char_in_header": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n",
        "nul_in_request_line": b"GET /heal\x00thz HTTP/1.1\r\nHost: x\r\n\r\n",
        "bare_cr": b"GET /healthz HTTP/1.1\rHost: x\r\n\r\n",
        "target_without_slash": b"GET healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        "target_over_8k": b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        "unknown_expect": b"PUT /collections/x HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 2\r\n\r\n{}",
        "te_in_http_1_0": b"PUT /collections/x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "two_api_keys": b"GET /collections HTTP/1.1\r\nHost: x\r\napi-key: a\r\napi-key: b\r\n\r\n",
        "head_cut_by_eof": b"GET /healthz HTTP/1.1\r\nHos",
        "body_cut_by_eof": b"PUT /collections/x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{}",
    }
    for name, raw in cases.items():
        out, closed, secs = one(raw, 5, shut=True)
        st, body = parse(out)
        check("malformed_%s_gets_the_json_envelope" % name,
              st is not None and 400 <= st < 600 and envelope(body) and secs < 2,
              "status %s after %.1f s: %r" % (st, secs, out[:300]))


def nul_in_body_gets_a_clear_message():
    body = b'{"vectors":{"size":4,"dist\x00ance":"Euclid"}}'
    raw = b"PUT /collections/nulbody HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    out, closed, secs = one(raw, 5, shut=True)
    st, b = parse(out)
    check("nul_in_body_gets_a_clear_message", st == 400 and envelope(b) and b"NUL" in b and b"offset 26" in b,
          "status %s: %r" % (st, out[:300]))


def early_413_reaches_a_client_still_uploading():
    """The client sends all of a 100 MB body before it reads (as a client
    that does not watch for early replies does): it must get the 413, not a
    reset. Deterministic: the reply is sent when the head arrives, and the
    server drains until the client is done."""
    size = 100 << 20
    s = conn(timeout=30)
    s.sendall(b"PUT /collections/x/points HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
    time.sleep(0.3)  # the 413 is written and the server has closed its side by now
    chunk = b" " * (1 << 20)
    err = None
    try:
        for _ in range(100):
            s.sendall(chunk)
    except OSError as e:
        err = e
    st, head, body, secs = read_reply(s, 10)
    s.close()
    check("early_413_reaches_a_client_still_uploading",
          err is None and st == 413 and envelope(body) and "connection: close" in head.lower(),
          "upload error %r, status %s: %r" % (err, st, head[:200]))


def slow_head_gets_408_after_header_timeout():
    s = conn()
    s.sendall(b"GET /healthz HTTP/1.1\r\nHo")
    t0 = time.time()
    for _ in range(10):  # trickle: activity must not extend the head deadline
        time.sleep(0.3)
        try:
            s.sendall(b"s")
        except OSError:
            break
    out, closed, secs = read_all(s, 6)
    secs = time.time() - t0
    s.close()
    st, body = parse(out)
    check("slow_head_gets_408_after_header_timeout", st == 408 and envelope(body) and closed and secs < 4.5,
          "status %s closed %s after %.1f s: %r" % (st, closed, secs, out[:300]))


def half_open_connection_is_closed_after_header_timeout():
    s = conn()
    out, closed, secs = read_all(s, 6)
    s.close()
    check("half_open_connection_is_closed_after_header_timeout", closed and out == b"" and 1.5 < secs < 4,
          "closed %s after %.1f s: %r" % (closed, secs, out[:100]))


def connection_flood_leaves_healthz_reachable():
    """1010 idle connections from one client (cap 50 per client): each new one
    closes the oldest idle one, and /healthz answers at once, from the same
    address and from another."""
    socks = []
    try:
        for _ in range(1010):
            socks.append(conn(timeout=5))
        ok = True
        for src in ("127.0.0.1", "127.0.0.2"):
            s = conn(src=src)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            st, _, body, secs = read_reply(s, 5)
            s.close()
            check("connection_flood_leaves_healthz_reachable_from_%s" % src, st == 200 and secs < 2,
                  "status %s after %.1f s" % (st, secs))
        alive = 0
        for s in socks:  # at most the per-client cap of the flood is still open
            s.setblocking(False)
            try:
                d = s.recv(1)
                alive += 0 if d == b"" else 1
            except BlockingIOError:
                alive += 1
            except OSError:
                pass
        check("connection_flood_is_capped_per_client", alive <= 50, "%d flood connections still open" % alive)
    finally:
        for s in socks:
            s.close()


def busy_connections_are_not_evicted_and_a_full_server_answers_503():
    """50 connections each in the middle of a body (busy): a 51st from the same
    client gets 503 with the envelope (none idle to close), and every busy one
    still gets its reply when it finishes."""
    busy = []
    body = b'{"vectors":{"size":4,"distance":"Euclid"}}'
    for i in range(50):
        s = conn()
        s.sendall(b"PUT /collections/busy%d HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                  % (i, len(body), body[:10]))
        busy.append(s)
    time.sleep(0.3)
    s = conn()
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    st, _, b, secs = read_reply(s, 5)
    s.close()
    check("new_connection_to_a_client_with_all_busy_gets_503", st == 503 and envelope(b),
          "status %s: %r" % (st, b[:200]))
    good = 0
    for s in busy:
        s.sendall(body[10:])
    for s in busy:
        st, _, b, secs = read_reply(s, 5)
        good += st == 200
        s.close()
    check("busy_connections_are_not_evicted", good == 50, "%d of 50 busy requests answered 200" % good)


def pipelined_requests_get_replies_in_order():
    s = conn()
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
              b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    out, closed, secs = read_all(s, 5)
    s.close()
    codes = [int(m) for m in re.findall(rb"HTTP/1\.1 (\d{3}) ", out)]
    check("pipelined_requests_get_replies_in_order", codes == [200, 404, 200] and closed,
          "codes %s closed %s" % (codes, closed))


CASES = [query_string_with_600_parameters_is_answered, head_over_16k_gets_431_envelope,
         bad_content_length_is_answered_once, two_content_lengths_are_refused_and_closed,
         content_length_with_chunked_is_refused_and_closed, huge_chunk_size_gets_quick_400,
         chunk_over_body_limit_gets_quick_413, unterminated_chunked_body_gets_400_at_eof,
         stalled_chunked_body_gets_408_after_idle_timeout, gzip_transfer_encoding_gets_quick_400,
         malformed_requests_get_the_json_envelope, nul_in_body_gets_a_clear_message,
         early_413_reaches_a_client_still_uploading, slow_head_gets_408_after_header_timeout,
         half_open_connection_is_closed_after_header_timeout, pipelined_requests_get_replies_in_order,
         connection_flood_leaves_healthz_reachable, busy_connections_are_not_evicted_and_a_full_server_answers_503]

if __name__ == "__main__":
    want = sys.argv[3:] or ["all"]
    for c in CASES:
        if "all" in want or c.__name__ in want:
            try:
                c()
            except Exception as e:  # a probe that crashes is a failure, not a skip
                check(c.__name__, False, "probe raised %r" % e)
    sys.exit(min(len(FAILS), 100))
