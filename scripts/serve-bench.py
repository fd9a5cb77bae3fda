#!/usr/bin/env python3
"""Throughput and latency of an OpenAI-compatible server (braid serve or llama-server).

Standard library only. --concurrency clients (threads) each send --requests-per-client
streamed chat requests ("stream": true, "stream_options": {"include_usage": true}) for
long answers (max_tokens 128, temperature 0, no ignore_eos: the tokens actually received
are counted: usage.completion_tokens when the server sends it, else the content chunks),
after a warm-up round of one request per client that is not measured.

  --model NAME       the model field (braid: routed; base; a task; anything for llama-server)
  --route-mode MODE  braid only: sends "braid": {"route": MODE} (auto, blend, none, or a task)
  --mix-routes       braid only: the model field goes round-robin over arith, json, sentiment,
                     spell (--mix-models), so four task vectors decode in one batch

Prompts: LONG_PROMPTS for the base, braid (routed) and llama-server; ROUTE_PROMPTS for a task
model (the task vectors stop early on most long-answer prompts); --prompts FILE for all.

Prints one JSON object: concurrency, requests, aggregate completion tokens/s (all completion
tokens / wall time from the first measured request to the last answer), per-request decode
tokens/s ((tokens - 1) / (latency - TTFT)), TTFT and latency p50/p99, mean completion tokens.

  scripts/serve-bench.py --url http://127.0.0.1:8080 --concurrency 8 --mix-routes
  scripts/serve-bench.py --url http://127.0.0.1:8081 --model smollm --concurrency 8   # llama-server
"""

import argparse
import http.client
import json
import math
import statistics
import sys
import threading
import time
import urllib.parse

# Prompts that make the base SmolLM2-135M-Instruct write more than 128 tokens at temperature 0.
LONG_PROMPTS = [
    "Write a long story about a dragon who learns to bake bread. Use at least five paragraphs.",
    "Explain in detail how a car engine works, step by step.",
    "Write a long essay about the history of the Roman Empire.",
    "Explain in detail how the internet works, from cables to web pages.",
    "Write a detailed guide to planting and caring for a vegetable garden.",
    "Describe in detail a day in the life of a medieval blacksmith.",
    "Write a long letter to a friend describing your summer vacation in Italy.",
    "Explain in detail how photosynthesis works and why it matters for life on Earth.",
    "Write a long story about a robot exploring an abandoned city.",
    "Explain in detail the water cycle and each of its stages.",
    "Write a detailed travel guide for a week in Japan.",
    "Write a long story about two friends who sail around the world.",
]

# The task vectors were trained on short answers and stop early on most of LONG_PROMPTS
# (arith answers "1000" to "Write a 1000-word essay ..."). These are the ones (found by
# probing the shipped vectors at temperature 0) that still run to 128 tokens under each task
# vector; a (system, user) pair sends a system message first. Check mean_completion_tokens.
NOVELIST = "You are a novelist. Always answer with a very long, detailed story of at least 500 words."
ROUTE_PROMPTS = {
    "arith": [
        "Write a long letter to a friend describing your summer vacation in Italy.",
        "Write a long letter to a friend describing your summer vacation in Mexico.",
        "Write a long email to a friend describing your summer vacation in Italy.",
    ],
    "json": [
        "Write a long story about a dragon who learns to bake bread. Use at least five paragraphs.",
        "Write a detailed guide to planting and caring for a vegetable garden.",
        "Write a long letter to a friend describing your summer vacation in Italy.",
        "Write a detailed travel guide for a week in Japan.",
        "Write a long story about two friends who sail around the world.",
    ],
    "sentiment": [
        "Explain in detail how a car engine works, step by step.",
        "Write a long essay about the history of the Roman Empire.",
        "Write a long letter to a friend describing your summer vacation in Italy.",
        "Explain in detail how photosynthesis works and why it matters for life on Earth.",
        "Write a detailed travel guide for a week in Japan.",
    ],
    "spell": [
        (NOVELIST, "Write a story about a dragon who learns to bake bread."),
        (NOVELIST, "Write a story about a lighthouse keeper and a lost ship."),
    ],
}


def percentile(values, p):
    if not values:
        return None
    s = sorted(values)
    return s[max(0, min(len(s) - 1, math.ceil(p / 100.0 * len(s)) - 1))]


def rnd(x, nd=1):
    return None if x is None else round(x, nd)


def one_request(url, timeout, body, api_key=None):
    """One streamed chat completion. Returns a record (ok or not)."""
    u = urllib.parse.urlsplit(url)
    cls = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
    conn = cls(u.hostname or "127.0.0.1", u.port or (443 if u.scheme == "https" else 80), timeout=timeout)
    path = u.path.rstrip("/") + "/v1/chat/completions"
    t0 = time.monotonic()
    rec = {"ok": False}
    try:
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        conn.request("POST", path, body=json.dumps(body).encode(), headers=headers)
        resp = conn.getresponse()
        rec["route"] = resp.getheader("X-Braid-Route")
        if resp.status != 200:
            rec["error"] = f"HTTP {resp.status}: {resp.read()[:500].decode('utf-8', 'replace')}"
            return rec
        chunks, ttft, usage, finish, done, text = 0, None, None, None, False, []
        while True:
            line = resp.readline()
            if not line:
                break
            line = line.decode("utf-8", "replace").strip()
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                done = True
                break
            obj = json.loads(data)
            if "error" in obj:
                rec["error"] = f"error chunk: {data[:500]}"
                return rec
            if rec.get("route") is None:
                route = ((obj.get("braid") or {}).get("route") or {}).get("task")
                if route:
                    rec["route"] = route
            for ch in obj.get("choices") or []:
                c = (ch.get("delta") or {}).get("content")
                if c:
                    if ttft is None:
                        ttft = time.monotonic() - t0
                    chunks += 1
                    text.append(c)
                if ch.get("finish_reason"):
                    finish = ch["finish_reason"]
            if obj.get("usage"):
                usage = obj["usage"]
        t1 = time.monotonic()
        if not done:
            rec["error"] = "stream ended without data: [DONE]"
            return rec
        tokens = usage.get("completion_tokens") if usage and usage.get("completion_tokens") is not None else chunks
        rec.update(ok=True, tokens=tokens, chunks=chunks, usage=usage is not None, finish=finish,
                   ttft=ttft, latency=t1 - t0, start=t0, end=t1, chars=len("".join(text)))
        if ttft is not None and tokens > 1 and t1 - t0 > ttft:
            rec["decode_tps"] = (tokens - 1) / (t1 - t0 - ttft)
        return rec
    except Exception as e:  # noqa: BLE001
        rec["error"] = f"{type(e).__name__}: {e}"
        return rec
    finally:
        conn.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--model", default="braid")
    ap.add_argument("--route-mode", default=None, help='braid only: "braid": {"route": MODE}')
    ap.add_argument("--mix-routes", action="store_true", help="model round-robin over --mix-models")
    ap.add_argument("--mix-models", default="arith,json,sentiment,spell")
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--requests-per-client", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=1, help="unmeasured rounds of one request per client")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--prompts", default=None, help="file of prompts, one a line (or JSONL with a prompt field)")
    ap.add_argument("--per-request", action="store_true", help="add every measured request to the JSON")
    ap.add_argument("--api-key", default=None, help="sent as Authorization: Bearer")
    args = ap.parse_args()

    models = args.mix_models.split(",") if args.mix_routes else [args.model]
    if args.prompts:
        custom = []
        with open(args.prompts, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line:
                    custom.append(json.loads(line)["prompt"] if line.startswith("{") else line)
        prompt_sets = {m: custom for m in models}
    else:
        prompt_sets = {m: ROUTE_PROMPTS.get(m, LONG_PROMPTS) for m in models}

    def body(client, j):
        # Round-robin: at any moment the clients hold every model of the mix.
        k = client + j * args.concurrency
        model = models[(client + j) % len(models)]
        prompts = prompt_sets[model]
        p = prompts[k % len(prompts)]
        messages = [{"role": "user", "content": p}] if isinstance(p, str) else \
            [{"role": "system", "content": p[0]}, {"role": "user", "content": p[1]}]
        b = {
            "model": model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": args.temperature,
            "max_tokens": args.max_tokens,
        }
        if args.route_mode:
            b["braid"] = {"route": args.route_mode}
        return b

    def run_round(n_per_client, offset):
        out = [[] for _ in range(args.concurrency)]

        def client(i):
            for j in range(n_per_client):
                b = body(i, offset + j)
                r = one_request(args.url, args.timeout, b, args.api_key)
                r["model"], r["prompt"] = b["model"], b["messages"][-1]["content"]
                out[i].append(r)

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(args.concurrency)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return [r for rs in out for r in rs], time.monotonic() - t0

    warm, warm_s = run_round(args.warmup, 0) if args.warmup > 0 else ([], 0.0)
    warm_errors = [r for r in warm if not r["ok"]]
    recs, _ = run_round(args.requests_per_client, args.warmup)
    ok = [r for r in recs if r["ok"]]
    errors = [r for r in recs if not r["ok"]]
    wall = (max(r["end"] for r in ok) - min(r["start"] for r in ok)) if ok else None
    tokens = [r["tokens"] for r in ok]
    total = sum(tokens)
    ttft = [r["ttft"] * 1000 for r in ok if r["ttft"] is not None]
    lat = [r["latency"] * 1000 for r in ok]
    dec = [r["decode_tps"] for r in ok if "decode_tps" in r]
    routes = {}
    for r in ok:
        if r.get("route"):  # braid: X-Braid-Route / braid.route.task; absent for llama-server
            routes[r["route"]] = routes.get(r["route"], 0) + 1
    summary = {
        "url": args.url,
        "model": ",".join(models) if args.mix_routes else args.model,
        "mix_routes": args.mix_routes,
        "route_mode": args.route_mode,
        "concurrency": args.concurrency,
        "requests": len(recs),
        "errors": len(errors) + len(warm_errors),
        "max_tokens": args.max_tokens,
        "completion_tokens": total,
        "mean_completion_tokens": rnd(statistics.mean(tokens), 1) if tokens else None,
        "min_completion_tokens": min(tokens) if tokens else None,
        "requests_below_max_tokens": sum(1 for t in tokens if t < args.max_tokens),
        "usage_reported": all(r["usage"] for r in ok) if ok else None,
        "wall_s": rnd(wall, 2),
        "aggregate_tokens_per_s": rnd(total / wall, 2) if wall else None,
        "per_request_decode_tokens_per_s_mean": rnd(statistics.mean(dec), 2) if dec else None,
        "per_request_decode_tokens_per_s_p50": rnd(percentile(dec, 50), 2),
        "ttft_ms_p50": rnd(percentile(ttft, 50)),
        "ttft_ms_p99": rnd(percentile(ttft, 99)),
        "latency_ms_p50": rnd(percentile(lat, 50)),
        "latency_ms_p99": rnd(percentile(lat, 99)),
        "routes": dict(sorted(routes.items())),
        "warmup_requests": len(warm),
        "warmup_s": rnd(warm_s, 2),
    }
    if errors or warm_errors:
        summary["error_examples"] = [{"model": r["model"], "prompt": r["prompt"], "error": r.get("error")}
                                     for r in (warm_errors + errors)[:5]]
    if args.per_request:
        summary["per_request"] = [{"model": r["model"], "prompt": r["prompt"], "route": r.get("route"),
                                   "tokens": r.get("tokens"), "finish": r.get("finish"), "error": r.get("error"),
                                   "ttft_ms": rnd(r["ttft"] * 1000) if r.get("ttft") else None,
                                   "latency_ms": rnd(r["latency"] * 1000) if r.get("latency") else None}
                                  for r in recs]
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    return 1 if (errors or warm_errors or not ok) else 0


if __name__ == "__main__":
    sys.exit(main())
