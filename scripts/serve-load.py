#!/usr/bin/env python3
"""Bounded load test of a running `braid serve` (or any OpenAI-compatible server).

Standard library only (http.client + threads), so CI needs nothing extra.

Phases:
  1. one-by-one: every distinct prompt (at most --distinct, default 100: an even, seeded
     draw from the four tasks and the general prompts) is sent once, alone, not streamed;
     its answer is remembered.
  2. load: --clients threads send --requests requests in all (a seeded mix of those prompts,
     exactly half streamed), temperature 0, max_tokens --max-tokens. Every response must be
     a 200 with a complete answer (streams: deltas concatenated, a finish_reason, the usage
     chunk and `data: [DONE]`, no error chunk), and every answer must equal its one-by-one
     answer byte for byte.
  braid_resident_bytes is read from /metrics after the first 100 load requests and at the end.

A hard limit (--max-seconds, counted from the start) stops sending; requests in flight finish
and the summary reports how far the run got.

Exit status: 0 when errors == 0, mismatches == 0, route_mismatches == 0 and
rss_final / rss_after_100 <= 1 + --rss-tolerance (default 0.10); 1 otherwise; 2 when the
server cannot be reached or the one-by-one phase fails.

  scripts/serve-load.py --url http://127.0.0.1:8080                  # 32 clients, 2,000 requests
  scripts/serve-load.py --url http://127.0.0.1:8080 --clients 8 --requests 200   # CI
"""

import argparse
import http.client
import json
import math
import os
import random
import sys
import threading
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASKS = ["arith", "json", "sentiment", "spell"]


def log(msg):
    print(f"[serve-load {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def percentile(values, p):
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(p / 100.0 * len(s)) - 1))
    return s[k]


def rnd(x, nd=1):
    return None if x is None else round(x, nd)


def read_jsonl(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    return rows


def load_prompts(args):
    """The distinct prompts: an even, seeded draw per category (four tasks + general)."""
    pools = {c: [] for c in TASKS + ["general"]}
    seen = set()

    def add(rows, source):
        for r in rows:
            task = r.get("task")
            prompt = r.get("prompt")
            if task not in pools or not prompt or prompt in seen:
                continue
            seen.add(prompt)
            pools[task].append({"task": task, "prompt": prompt, "source": source})

    mixed = os.path.join(ROOT, "prompts", "mixed-routes.jsonl")
    if os.path.exists(mixed):
        add(read_jsonl(mixed), "prompts/mixed-routes.jsonl")
    for t in TASKS:
        p = os.path.join(args.tasks_dir, f"{t}.test.jsonl")
        if os.path.exists(p):
            add(read_jsonl(p), f"tasks/{t}.test.jsonl")
    if os.path.isdir(args.tasks_dir):
        for name in sorted(os.listdir(args.tasks_dir)):
            if name.startswith("general") and name.endswith(".jsonl"):
                add(read_jsonl(os.path.join(args.tasks_dir, name)), f"tasks/{name}")
    general = os.path.join(ROOT, "prompts", "general.jsonl")
    if os.path.exists(general):
        add(read_jsonl(general), "prompts/general.jsonl")

    rng = random.Random(args.seed)
    cats = [c for c in pools if pools[c]]
    if not cats:
        raise SystemExit(f"no prompts found (looked in {ROOT}/prompts and {args.tasks_dir})")
    per = max(1, args.distinct // len(cats))
    chosen = []
    for c in cats:
        pool = pools[c]
        chosen += rng.sample(pool, min(per, len(pool)))
    # Round up to --distinct from what is left, still seeded.
    rest = [p for c in cats for p in pools[c] if p not in chosen]
    rng.shuffle(rest)
    chosen += rest[: max(0, args.distinct - len(chosen))]
    return chosen


class Client:
    """One HTTP connection per request (or kept alive with --keep-alive)."""

    api_key = None  # set from --api-key: Authorization: Bearer on every request

    def __init__(self, url, timeout, keep_alive):
        u = urllib.parse.urlsplit(url)
        self.host = u.hostname or "127.0.0.1"
        self.port = u.port or (443 if u.scheme == "https" else 80)
        self.https = u.scheme == "https"
        self.base = u.path.rstrip("/")
        self.timeout = timeout
        self.keep_alive = keep_alive
        self.conn = None

    def _connect(self):
        cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=self.timeout)

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
            self.conn = None

    def open(self, method, path, body=None):
        """Sends a request; returns the response (headers read, body not)."""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if not self.keep_alive:
            headers["Connection"] = "close"
        if Client.api_key:
            headers["Authorization"] = f"Bearer {Client.api_key}"
        reused = self.conn is not None
        if self.conn is None:
            self.conn = self._connect()
        try:
            self.conn.request(method, self.base + path, body=body, headers=headers)
            return self.conn.getresponse()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            # A kept-alive connection the server closed while idle: retry once on a fresh one.
            self.close()
            if not reused:
                raise
            self.conn = self._connect()
            self.conn.request(method, self.base + path, body=body, headers=headers)
            return self.conn.getresponse()

    def done(self, resp):
        if not self.keep_alive or resp.will_close:
            self.close()


def metrics_rss(url, timeout=30):
    """braid_resident_bytes from /metrics, or None."""
    c = Client(url, timeout, False)
    try:
        r = c.open("GET", "/metrics")
        text = r.read().decode("utf-8", "replace")
        if r.status != 200:
            return None
        for line in text.splitlines():
            if line.startswith("braid_resident_bytes"):
                return float(line.split()[-1])
    except Exception:
        return None
    finally:
        c.close()
    return None


class Failure(Exception):
    def __init__(self, kind, detail, status=None, body=None):
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail, self.status, self.body = kind, detail, status, body


def chat(client, args, prompt, stream):
    """One chat completion; returns a dict with the answer and timings, or raises Failure."""
    req = {
        "model": args.model,
        "messages": [{"role": "user", "content": prompt}],
        "temperature": 0,
        "max_tokens": args.max_tokens,
        "stream": stream,
    }
    if stream:
        req["stream_options"] = {"include_usage": True}
    body = json.dumps(req).encode()
    t0 = time.monotonic()
    try:
        resp = client.open("POST", "/v1/chat/completions", body)
    except Exception as e:  # noqa: BLE001 - every transport failure is an error of the run
        client.close()
        raise Failure("transport", f"{type(e).__name__}: {e}")
    route_header = resp.getheader("X-Braid-Route")
    try:
        if resp.status != 200:
            text = resp.read().decode("utf-8", "replace")
            raise Failure("status", f"HTTP {resp.status}", resp.status, text[:2000])
        if not stream:
            raw = resp.read()
            t1 = time.monotonic()
            try:
                obj = json.loads(raw)
                choice = obj["choices"][0]
                content = choice["message"]["content"]
                finish = choice.get("finish_reason")
                usage = obj.get("usage") or {}
            except Exception as e:  # noqa: BLE001
                raise Failure("body", f"unparseable answer: {type(e).__name__}: {e}", 200, raw[:2000].decode("utf-8", "replace"))
            if content is None or finish not in ("stop", "length"):
                raise Failure("body", f"incomplete answer (finish_reason={finish!r})", 200, raw[:2000].decode("utf-8", "replace"))
            route = ((obj.get("braid") or {}).get("route") or {}).get("task") or route_header
            return {"content": content, "finish": finish, "tokens": usage.get("completion_tokens"),
                    "route": route, "latency": t1 - t0, "ttft": None}
        # Streamed: SSE `data: {...}` lines, then `data: [DONE]`.
        parts, finish, usage, route, ttft = [], None, None, None, None
        got_done, first_chunk, lines = False, None, []
        while True:
            line = resp.readline()
            if not line:
                break
            line = line.decode("utf-8", "replace").rstrip("\r\n")
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                got_done = True
                resp.read()  # the chunked terminator, so a kept-alive connection can be reused
                break
            lines.append(data)
            try:
                obj = json.loads(data)
            except Exception as e:  # noqa: BLE001
                raise Failure("stream", f"unparseable chunk: {e}", 200, data[:2000])
            if "error" in obj:
                raise Failure("stream", "error chunk in the stream", 200, data[:2000])
            if first_chunk is None:
                first_chunk = obj
                route = ((obj.get("braid") or {}).get("route") or {}).get("task")
            for ch in obj.get("choices") or []:
                delta = ch.get("delta") or {}
                c = delta.get("content")
                if c:
                    if ttft is None:
                        ttft = time.monotonic() - t0
                    parts.append(c)
                if ch.get("finish_reason"):
                    finish = ch["finish_reason"]
            if obj.get("usage"):
                usage = obj["usage"]
        t1 = time.monotonic()
        tail = "\n".join(lines[-3:])[:2000]
        if not got_done:
            raise Failure("stream", "stream ended without data: [DONE]", 200, tail)
        if finish not in ("stop", "length"):
            raise Failure("stream", f"no finish_reason stop/length (got {finish!r})", 200, tail)
        if usage is None:
            raise Failure("stream", "no usage chunk although include_usage was asked", 200, tail)
        return {"content": "".join(parts), "finish": finish, "tokens": usage.get("completion_tokens"),
                "route": route or route_header, "latency": t1 - t0, "ttft": ttft}
    except Failure:
        client.close()
        raise
    except Exception as e:  # noqa: BLE001 - timeouts, resets mid-body
        client.close()
        raise Failure("transport", f"{type(e).__name__}: {e}")
    finally:
        client.done(resp)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--model", default="braid", help="model field of every request (default braid: routed)")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--max-seconds", type=float, default=900, help="hard limit of the whole run; then stop sending and report")
    ap.add_argument("--distinct", type=int, default=100, help="distinct prompts (sent one by one first)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=300, help="seconds one request may take")
    ap.add_argument("--keep-alive", action="store_true", help="reuse one connection per client")
    ap.add_argument("--api-key", default=None, help="sent as Authorization: Bearer (servers started with --api-key)")
    ap.add_argument("--rss-tolerance", type=float, default=0.10)
    ap.add_argument("--rss-after", type=int, default=100, help="read RSS after this many load requests")
    ap.add_argument("--tasks-dir", default=os.path.join(os.path.dirname(ROOT), "shared", "tasks"))
    ap.add_argument("--examples", type=int, default=5, help="failures shown in full in the summary")
    ap.add_argument("--progress", type=int, default=0, help="progress line every N requests (default: requests/10)")
    args = ap.parse_args()
    Client.api_key = args.api_key

    start = time.monotonic()
    deadline = start + args.max_seconds

    # Health.
    c = Client(args.url, 10, False)
    try:
        r = c.open("GET", "/health")
        health = r.read().decode("utf-8", "replace")
        if r.status != 200:
            log(f"/health answered {r.status}: {health[:300]}")
            return 2
    except Exception as e:  # noqa: BLE001
        log(f"cannot reach {args.url}: {e}")
        return 2
    finally:
        c.close()

    prompts = load_prompts(args)
    log(f"{len(prompts)} distinct prompts; one-by-one phase")

    # Phase 1: one by one.
    reference = []
    client = Client(args.url, args.timeout, args.keep_alive)
    for i, p in enumerate(prompts):
        if time.monotonic() > deadline:
            log("time limit reached in the one-by-one phase")
            break
        try:
            reference.append(chat(client, args, p["prompt"], False))
        except Failure as f:
            log(f"one-by-one request failed: {f}; prompt={p['prompt']!r} status={f.status} body={f.body!r}")
            print(json.dumps({"ok": False, "phase": "one-by-one", "error": str(f), "prompt": p["prompt"],
                              "status": f.status, "body": f.body}, indent=2))
            return 2
    client.close()
    prompts = prompts[: len(reference)]
    one_by_one_s = time.monotonic() - start
    log(f"one-by-one done in {one_by_one_s:.1f} s")

    # Phase 2: the schedule (seeded), exactly half streamed.
    rng = random.Random(args.seed + 1)
    n = args.requests
    streamed = [i < n // 2 for i in range(n)]
    rng.shuffle(streamed)
    schedule = [(rng.randrange(len(prompts)), streamed[i]) for i in range(n)]

    lock = threading.Lock()
    state = {"next": 0, "done": 0, "stopped": False}
    results = []  # dicts per finished request
    errors, mismatches, route_mismatches = [], [], []
    rss = {"after": None, "after_count": None, "samples": []}
    progress_every = args.progress or max(1, n // 10)
    rss_after = min(args.rss_after, n)
    load_start = time.monotonic()

    def worker():
        cl = Client(args.url, args.timeout, args.keep_alive)
        while True:
            with lock:
                if state["next"] >= n:
                    break
                if time.monotonic() > deadline:
                    state["stopped"] = True
                    break
                idx = state["next"]
                state["next"] += 1
            pi, stream = schedule[idx]
            p, ref = prompts[pi], reference[pi]
            rec = {"i": idx, "task": p["task"], "stream": stream}
            try:
                out = chat(cl, args, p["prompt"], stream)
                rec.update(latency=out["latency"], ttft=out["ttft"], tokens=out["tokens"] or 0, ok=True)
                if out["content"].encode("utf-8") != ref["content"].encode("utf-8") or out["finish"] != ref["finish"]:
                    mm = {"request": idx, "prompt": p["prompt"], "task": p["task"], "stream": stream,
                          "one_by_one": ref["content"], "one_by_one_finish": ref["finish"], "one_by_one_route": ref["route"],
                          "concurrent": out["content"], "concurrent_finish": out["finish"], "concurrent_route": out["route"]}
                    with lock:
                        mismatches.append(mm)
                elif out["route"] != ref["route"]:
                    with lock:
                        route_mismatches.append({"request": idx, "prompt": p["prompt"], "stream": stream,
                                                 "one_by_one_route": ref["route"], "concurrent_route": out["route"]})
            except Failure as f:
                rec.update(ok=False)
                with lock:
                    errors.append({"request": idx, "prompt": p["prompt"], "stream": stream, "kind": f.kind,
                                   "detail": f.detail, "status": f.status, "body": f.body})
            with lock:
                results.append(rec)
                state["done"] += 1
                done = state["done"]
            if done == rss_after:
                v = metrics_rss(args.url)
                with lock:
                    rss["after"], rss["after_count"] = v, done
            if done % progress_every == 0:
                el = time.monotonic() - load_start
                v = metrics_rss(args.url)
                with lock:
                    rss["samples"].append([done, v])
                    ne, nm = len(errors), len(mismatches)
                log(f"{done}/{n} done, {ne} errors, {nm} mismatches, {el:.0f} s, {done / el:.2f} req/s, "
                    f"rss {v / 2**20 if v else float('nan'):.1f} MiB")
        cl.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, args.clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    load_s = time.monotonic() - load_start
    rss_final = metrics_rss(args.url)
    if rss["after"] is None and results:
        # Fewer than --rss-after requests ran: the earliest figure is the final one.
        rss["after"], rss["after_count"] = rss_final, len(results)

    ok_results = [r for r in results if r.get("ok")]
    lat = [r["latency"] * 1000 for r in ok_results]
    ttft = [r["ttft"] * 1000 for r in ok_results if r["stream"] and r["ttft"] is not None]
    tokens = sum(r["tokens"] for r in ok_results)
    by_task = {}
    for r in results:
        by_task[r["task"]] = by_task.get(r["task"], 0) + 1
    ratio = (rss_final / rss["after"]) if (rss_final and rss["after"]) else None

    summary = {
        "url": args.url,
        "model": args.model,
        "clients": args.clients,
        "requests_planned": n,
        "requests": len(results),
        "streamed": sum(1 for r in results if r["stream"]),
        "by_task": dict(sorted(by_task.items())),
        "stopped_by_time_limit": state["stopped"],
        "distinct_prompts": len(prompts),
        "one_by_one_seconds": rnd(one_by_one_s, 2),
        "errors": len(errors),
        "mismatches": len(mismatches),
        "route_mismatches": len(route_mismatches),
        "seconds": rnd(load_s, 2),
        "requests_per_s": rnd(len(results) / load_s if load_s > 0 else None, 3),
        "completion_tokens": tokens,
        "completion_tokens_per_s": rnd(tokens / load_s if load_s > 0 else None, 2),
        "latency_ms_p50": rnd(percentile(lat, 50)),
        "latency_ms_p99": rnd(percentile(lat, 99)),
        "ttft_ms_p50": rnd(percentile(ttft, 50)),
        "ttft_ms_p99": rnd(percentile(ttft, 99)),
        "rss_after_100": rss["after"],
        "rss_after_requests": rss["after_count"],
        "rss_final": rss_final,
        "rss_ratio": rnd(ratio, 4),
        "rss_samples_mib": " ".join(f"{k}:{v / 2**20:.1f}" if v else f"{k}:?" for k, v in rss["samples"]),
        "max_tokens": args.max_tokens,
        "seed": args.seed,
    }
    bad = bool(errors) or bool(mismatches) or bool(route_mismatches) or (ratio is not None and ratio > 1 + args.rss_tolerance)
    summary["ok"] = not bad
    if errors:
        summary["error_examples"] = errors[: args.examples]
        kinds = {}
        for e in errors:
            key = f"{e['kind']}:{e['status']}"
            kinds[key] = kinds.get(key, 0) + 1
        summary["error_kinds"] = kinds
    if mismatches:
        summary["mismatch_examples"] = mismatches[: args.examples]
    if route_mismatches:
        summary["route_mismatch_examples"] = route_mismatches[: args.examples]
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
