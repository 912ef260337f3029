"""Load generator for scripts/bench-serve.sh: N concurrent streaming clients against an
OpenAI-compatible /v1/completions endpoint (stdlib only).

Each client sends its requests one after another (prompt "<base> <client>-<k>", temperature 0,
`max_tokens`); the run reports aggregate generated tokens per second (all clients' generated
tokens over the wall time from the first request to the last answer) and time to first token
(request sent -> first streamed text) p50 and p99 over all requests. Generated tokens are the
server's `usage.completion_tokens` when it sends usage, else the streamed text chunks.
"""

import argparse
import http.client
import json
import threading
import time
import urllib.parse


def one(url, model, prompt, max_tokens):
    u = urllib.parse.urlparse(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    body = json.dumps(
        {
            "model": model,
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
            # llama-server: generate max_tokens even past an end-of-text token (ours has no such
            # option; a barely trained model rarely emits one, and tokens are counted either way).
            "ignore_eos": True,
        }
    )
    t0 = time.perf_counter()
    c.request("POST", u.path + "/completions", body, {"content-type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        raise RuntimeError(f"{r.status}: {r.read()[:300]!r}")
    ttft = None
    chunks = 0
    usage = None
    buf = b""
    while True:
        line = r.readline()
        if not line:
            break
        line = line.strip()
        if not line.startswith(b"data: "):
            continue
        data = line[6:]
        if data == b"[DONE]":
            break
        v = json.loads(data)
        if v.get("usage"):
            usage = v["usage"]
        for ch in v.get("choices", []):
            if ch.get("text"):
                chunks += 1
                if ttft is None:
                    ttft = time.perf_counter() - t0
    c.close()
    n = usage["completion_tokens"] if usage else chunks
    return ttft if ttft is not None else time.perf_counter() - t0, n


def run(url, model, clients, requests, max_tokens, base):
    results = []
    lock = threading.Lock()

    def client(i):
        for k in range(requests):
            r = one(url, model, f"{base} {i}-{k}", max_tokens)
            with lock:
                results.append(r)

    t0 = time.perf_counter()
    ts = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    ttfts = sorted(r[0] for r in results)
    tokens = sum(r[1] for r in results)

    def pct(p):
        return ttfts[min(len(ttfts) - 1, int(round(p / 100 * (len(ttfts) - 1))))]

    return {
        "clients": clients,
        "requests": len(results),
        "tokens": tokens,
        "wall_s": round(wall, 3),
        "tokens_per_s": round(tokens / wall, 2),
        "ttft_p50_ms": round(1000 * pct(50), 1),
        "ttft_p99_ms": round(1000 * pct(99), 1),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:8080/v1")
    ap.add_argument("--model", required=True)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--tokens-per-level", type=int, default=1024,
                    help="requests per level = this / max_tokens, at least one per client")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--prompt", default="In the beginning God created")
    ap.add_argument("--label", default="")
    a = ap.parse_args()
    one(a.url, a.model, a.prompt, 4)  # warm-up
    for n in a.clients:
        per = max(1, a.tokens_per_level // a.max_tokens // n)
        r = run(a.url, a.model, n, per, a.max_tokens, a.prompt)
        r["server"] = a.label
        print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
