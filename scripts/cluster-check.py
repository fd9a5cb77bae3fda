#!/usr/bin/env python3
"""Failure test of braid behind HAProxy (scripts/serve-cluster.sh + deploy/haproxy.cfg).

Starts 3 replicas (r1=A, r2=B, r3=C) behind HAProxy, runs a bounded load through HAProxy
(client threads, half the requests streamed), and meanwhile:
  * SIGTERM to A while it has requests in flight: A must drain them and exit 0;
  * once A is gone, SIGKILL to B while it has requests in flight: C carries on.
Then it checks
  (a) no request that HAProxy sent to A failed, and at least one was in flight on A at SIGTERM;
  (b) the only failed requests were on B when it was killed (sent to B before the kill and not
      finished at the kill), none afterwards, none on A or C;
  (c) HAProxy marked B DOWN within fall x inter + margin of the kill and routed no request to B
      after that (its session counter stays put), and no response came from B after the kill;
  (d) A exited with status 0 (within its drain timeout);
  (e) every request that started after the kill succeeded, the load finished in its time limit,
      and every process started is gone at the end.
Prints a JSON summary; exits 1 if a requirement fails, 2 if the cluster could not be started.
Python standard library only. Uses 127.0.0.1 ports FRONT..FRONT+3 and STATS (8240-8243, 8249).

  scripts/cluster-check.py [--requests 240] [--clients 8] [--time-limit 150] [--keep]
"""
import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "serve-cluster.sh")
FALL = 2  # deploy/haproxy.cfg: fall 2 rise 2

PROMPTS = [
    "Say hello in one sentence.",
    "What is the capital of France?",
    "Name three colours.",
    "Write a haiku about the sea.",
    "Give me a synonym for happy.",
    "Count from one to five.",
    "What is 12 plus 30?",
    "Describe a cat in a few words.",
    "Tell a very short story about a robot.",
    "List two fruits that are red.",
]


def now():
    return time.time()


def proc_alive(pid):
    """True while pid exists and is not a zombie (the script reaps its replicas itself)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def http_get(port, path, timeout=2.0):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def replica_active(port):
    try:
        status, body = http_get(port, "/health", 1.0)
        if status == 200:
            return json.loads(body).get("active", 0)
    except (OSError, ValueError, http.client.HTTPException):
        pass
    return None


class Result:
    __slots__ = ("i", "stream", "max_tokens", "start", "end", "status", "served_by", "retries",
                 "ok", "error", "tokens")

    def __init__(self, i, stream, max_tokens):
        self.i, self.stream, self.max_tokens = i, stream, max_tokens
        self.start = self.end = None
        self.status = self.served_by = self.retries = self.error = None
        self.ok = False
        self.tokens = 0


def one_request(conn_holder, port, res):
    body = json.dumps({
        "model": "braid",
        "messages": [{"role": "user", "content": PROMPTS[res.i % len(PROMPTS)]}],
        "temperature": 0, "max_tokens": res.max_tokens, "stream": res.stream,
    })
    headers = {"Content-Type": "application/json", "X-Request-Id": f"req-{res.i}"}
    res.start = now()
    try:
        if conn_holder[0] is None:
            conn_holder[0] = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        c = conn_holder[0]
        c.request("POST", "/v1/chat/completions", body, headers)
        r = c.getresponse()
        res.status = r.status
        res.served_by = r.getheader("X-Served-By")
        res.retries = r.getheader("X-Retries")
        if r.status != 200:
            res.error = f"HTTP {r.status}: {r.read()[:200]!r}"
        elif res.stream:
            done = False
            while True:
                line = r.readline()
                if not line:
                    break
                line = line.strip()
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    done = True
                    continue
                chunk = json.loads(data)
                if chunk.get("error"):
                    res.error = f"error event: {chunk['error']}"
                    break
                if chunk.get("choices") and chunk["choices"][0].get("delta", {}).get("content"):
                    res.tokens += 1
            if not done and res.error is None:
                res.error = "stream ended without data: [DONE]"
            res.ok = done and res.error is None
        else:
            obj = json.loads(r.read())
            content = obj["choices"][0]["message"]["content"]
            res.tokens = obj.get("usage", {}).get("completion_tokens", 0)
            res.ok = isinstance(content, str) and res.tokens >= 1
            if not res.ok:
                res.error = f"bad body: {obj!r:.200}"
        if r.getheader("Connection", "").lower() == "close" or not res.ok:
            c.close()
            conn_holder[0] = None
    except Exception as e:  # noqa: BLE001 - any failure of the request counts
        res.error = f"{type(e).__name__}: {e}"
        res.ok = False
        if conn_holder[0] is not None:
            conn_holder[0].close()
        conn_holder[0] = None
    res.end = now()


class StatsPoller(threading.Thread):
    """Samples HAProxy's CSV stats of backend 'braid' every 0.1 s."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.samples, self.stop = port, [], threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                status, body = http_get(self.port, "/;csv", 1.0)
                if status == 200:
                    lines = body.decode().splitlines()
                    cols = lines[0].lstrip("# ").split(",")
                    snap = {}
                    for ln in lines[1:]:
                        row = dict(zip(cols, ln.split(",")))
                        if row.get("pxname") == "braid" and row.get("svname", "").startswith("r"):
                            snap[row["svname"]] = {k: row.get(k, "") for k in
                                                   ("status", "stot", "econ", "wretr", "wredis", "scur", "eresp")}
                    self.samples.append((now(), snap))
            except (OSError, http.client.HTTPException):
                pass
            self.stop.wait(0.1)


LOG_RE = re.compile(r" braid_front (?P<be>\S+)/(?P<srv>\S+) (?P<timers>\S+) (?P<st>-?\d+) (?P<bytes>\d+) "
                    r"(?P<tsc>\S+) (?P<conns>\S+) \S+ rid=(?P<rid>\S+)")


def parse_haproxy_log(path):
    out = {}
    try:
        with open(path, errors="replace") as f:
            for line in f:
                m = LOG_RE.search(line)
                if m and m["rid"].startswith("req-"):
                    retries = m["conns"].split("/")[-1]
                    out[int(m["rid"][4:])] = {"server": m["srv"], "status": int(m["st"]), "tsc": m["tsc"],
                                              "retries": retries, "timers": m["timers"]}
    except FileNotFoundError:
        pass
    return out


def read_file(path, default=None):
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        return default


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--front-port", type=int, default=8240, help="HAProxy front; replicas on the next 3 ports")
    ap.add_argument("--stats-port", type=int, default=8249)
    ap.add_argument("--requests", type=int, default=240)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--time-limit", type=float, default=150.0, help="seconds for the load (hard limit)")
    ap.add_argument("--inter", type=float, default=1.0, help="HAProxy check interval, seconds")
    ap.add_argument("--margin", type=float, default=1.0, help="slack on fall x inter for (c), seconds")
    ap.add_argument("--drain-timeout", type=float, default=30.0)
    ap.add_argument("--parallel", type=int, default=4, help="--parallel of each replica")
    ap.add_argument("--keep", action="store_true", help="keep the cluster folder (logs)")
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)

    cdir = tempfile.mkdtemp(prefix="braid-cluster-check.")
    env = dict(os.environ,
               BRAID_CLUSTER_DIR=cdir, BRAID_STATS_PORT=str(args.stats_port),
               BRAID_REPLICA_PORT=str(args.front_port + 1), BRAID_CHECK_INTER=f"{int(args.inter * 1000)}ms",
               BRAID_DRAIN_TIMEOUT=f"{args.drain_timeout:g}", BRAID_PARALLEL=str(args.parallel))
    env.pop("BRAID_THREADS", None)
    script_out = open(os.path.join(cdir, "serve-cluster.out"), "w")
    t_launch = now()
    script = subprocess.Popen([SCRIPT, "3", str(args.front_port)], env=env, stdout=script_out,
                              stderr=subprocess.STDOUT, start_new_session=True)
    summary = {"seed": seed, "cluster_dir": cdir}
    all_pids = []

    def cleanup():
        if script.poll() is None:
            script.send_signal(signal.SIGTERM)
            try:
                script.wait(timeout=args.drain_timeout + 20)
            except subprocess.TimeoutExpired:
                os.killpg(script.pid, signal.SIGKILL)
                script.wait()
        leftovers = [p for p in all_pids if proc_alive(p)]
        for p in leftovers:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return leftovers

    try:
        while not os.path.exists(os.path.join(cdir, "ready")):
            if script.poll() is not None or now() - t_launch > 120:
                cleanup()
                script_out.flush()
                print(read_file(os.path.join(cdir, "serve-cluster.out"), ""), file=sys.stderr)
                print(json.dumps({"error": "cluster did not start", **summary}, indent=2))
                return 2
            time.sleep(0.1)
        summary["startup_s"] = round(now() - t_launch, 2)
        pids = {i: int(read_file(os.path.join(cdir, f"replica-{i}.pid"))) for i in (1, 2, 3)}
        ports = {i: int(read_file(os.path.join(cdir, f"replica-{i}.port"))) for i in (1, 2, 3)}
        all_pids = list(pids.values()) + [int(read_file(os.path.join(cdir, "haproxy.pid")))]

        poller = StatsPoller(args.stats_port)
        poller.start()

        # ---- load -------------------------------------------------------------------------
        results = [Result(i, i % 2 == 1, rng.randint(16, 32)) for i in range(args.requests)]
        next_i = [0]
        lock = threading.Lock()
        t0 = now()
        deadline = t0 + args.time_limit

        def client():
            holder = [None]
            while True:
                with lock:
                    i = next_i[0]
                    if i >= len(results) or now() > deadline:
                        break
                    next_i[0] += 1
                one_request(holder, args.front_port, results[i])
            if holder[0] is not None:
                holder[0].close()

        threads = [threading.Thread(target=client, daemon=True) for _ in range(args.clients)]
        for t in threads:
            t.start()

        def done_count():
            return sum(1 for r in results if r.end is not None)

        def wait_busy(port, name, min_done, give_up_after):
            """Waits until min_done requests are done and the replica has >= 2 requests in
            flight, one of them a stream that has started (its headers named the replica)."""
            t_give_up = now() + give_up_after
            best = None
            while now() < t_give_up and now() < deadline:
                if done_count() >= min_done:
                    a = replica_active(port)
                    best = max(best or 0, a or 0)
                    streaming = any(r.stream and r.served_by == name and r.end is None for r in results)
                    if a is not None and a >= 2 and streaming:
                        return a
                time.sleep(0.02)
            print(f"cluster-check: {name} never had 2 requests in flight with a stream (max {best})", file=sys.stderr)
            return best

        events = {}
        # SIGTERM to A once a quarter of the load is done and A is busy.
        events["a_active_at_term"] = wait_busy(ports[1], "r1", args.requests // 4, 60)
        t_term = now()
        os.kill(pids[1], signal.SIGTERM)
        while proc_alive(pids[1]) and now() < t_term + args.drain_timeout + 15:
            time.sleep(0.02)
        t_a_exit = now() if not proc_alive(pids[1]) else None
        # SIGKILL to B at least two seconds after A is gone (HAProxy has marked A DOWN), once
        # half the load is done, while B is busy.
        time.sleep(2.0)
        events["b_active_at_kill"] = wait_busy(ports[2], "r2", args.requests // 2, 60)
        t_kill = now()
        os.kill(pids[2], signal.SIGKILL)

        for t in threads:
            t.join(timeout=max(0.0, deadline - now()) + 130)
        t_load_end = now()
        load_hung = any(t.is_alive() for t in threads)
        time.sleep(0.3)
        poller.stop.set()
        poller.join()

        # A's exit status comes from the script (it is A's parent), written when it reaps A.
        a_exit = None
        for _ in range(50):
            a_exit = read_file(os.path.join(cdir, "replica-1.exit"))
            if a_exit is not None:
                break
            time.sleep(0.1)
    finally:
        leftovers = cleanup()
    script_out.close()
    c_exit = read_file(os.path.join(cdir, "replica-3.exit"))
    summary["serve_cluster_exit_status"] = script.returncode
    b_exit = read_file(os.path.join(cdir, "replica-2.exit"))
    hlog = parse_haproxy_log(os.path.join(cdir, "haproxy.log"))

    # ---- evaluation -------------------------------------------------------------------------
    rel = lambda t: None if t is None else round(t - t0, 3)  # noqa: E731
    issued = [r for r in results if r.start is not None]
    for r in issued:
        lg = hlog.get(r.i)
        r_server = r.served_by or (lg and lg["server"])
        r.served_by = r_server
    failed = [r for r in issued if not r.ok]

    def describe(r):
        lg = hlog.get(r.i, {})
        return {"id": f"req-{r.i}", "stream": r.stream, "server": r.served_by, "start": rel(r.start),
                "end": rel(r.end), "status": r.status, "error": r.error, "tokens": r.tokens,
                "haproxy": lg or None}

    on = lambda name: [r for r in issued if r.served_by == name]  # noqa: E731
    on_a = on("r1")
    a_inflight = [r for r in on_a if r.start < t_term and (r.end or t_term + 1) > t_term]
    a_failed = [r for r in on_a if not r.ok]
    a_last_end = max((r.end for r in on_a if r.end), default=None)
    reqs = {}
    reqs["a_no_failures_on_drained_replica"] = not a_failed and len(a_inflight) >= 1
    bad_failures = [r for r in failed
                    if not (r.served_by == "r2" and r.start < t_kill and (r.end or t_kill) >= t_kill)]
    reqs["b_only_in_flight_on_killed_replica_failed"] = not bad_failures

    down_at = None
    stot_at_down = stot_end = stot_at_limit = None
    limit = t_kill + FALL * args.inter + args.margin
    samples = poller.samples
    for t, snap in samples:
        s = snap.get("r2")
        if s is None:
            continue
        if t >= t_kill and down_at is None and s["status"].startswith("DOWN"):
            down_at, stot_at_down = t, s["stot"]
        if t <= limit:
            stot_at_limit = s["stot"]
        stot_end = s["stot"]
    b_after_kill_served = [r for r in on("r2") if r.ok and r.start > t_kill]
    b_after_kill_routed = [r for r in issued if hlog.get(r.i, {}).get("server") == "r2" and r.start > limit]
    reqs["c_killed_replica_out_of_rotation_in_time"] = (
        down_at is not None and down_at - t_kill <= FALL * args.inter + args.margin
        and stot_at_down == stot_end and stot_at_limit == stot_end
        and not b_after_kill_served and not b_after_kill_routed)
    reqs["d_drained_replica_exit_0"] = a_exit == "0" and t_a_exit is not None
    after_kill_failed = [r for r in failed if r.start >= t_kill]
    not_issued = len(results) - len(issued)
    reqs["e_load_complete_and_clean"] = (not after_kill_failed and not_issued == 0 and not load_hung
                                         and not leftovers and t_load_end <= deadline + 5 and c_exit == "0")

    def stats_of(name, t_ref=None):
        pick = None
        for t, snap in samples:
            if t_ref is not None and t > t_ref:
                break
            pick = snap.get(name)
        return pick

    a_down_at = next((t for t, snap in samples if t >= t_term and snap.get("r1", {}).get("status", "").startswith("DOWN")), None)
    summary.update({
        "passed": all(reqs.values()),
        "requirements": reqs,
        "load": {
            "requests": len(results), "issued": len(issued), "ok": sum(r.ok for r in issued),
            "failed": len(failed), "streamed": sum(r.stream for r in issued), "clients": args.clients,
            "duration_s": rel(t_load_end), "time_limit_s": args.time_limit, "hung": load_hung,
            "by_server": {n: len(on(n)) for n in ("r1", "r2", "r3")},
            "retried_by_haproxy": sum(1 for r in issued if r.retries not in (None, "0")),
            "redispatched": sum(1 for r in issued if (r.retries or "").startswith("+")),
        },
        "replica_A_r1_sigterm": {
            "t_sigterm": rel(t_term), "active_at_sigterm": events["a_active_at_term"],
            "in_flight_at_sigterm": len(a_inflight),
            "in_flight_streamed": sum(r.stream for r in a_inflight),
            "served_total": len(on_a), "failed": [describe(r) for r in a_failed],
            "last_response_end": rel(a_last_end), "exit_seen": rel(t_a_exit),
            "exit_after_sigterm_s": None if t_a_exit is None else round(t_a_exit - t_term, 3),
            "exit_after_last_response_s": None if (t_a_exit is None or a_last_end is None) else round(t_a_exit - a_last_end, 3),
            "exit_status": a_exit, "haproxy_down_after_sigterm_s": None if a_down_at is None else round(a_down_at - t_term, 3),
        },
        "replica_B_r2_sigkill": {
            "t_sigkill": rel(t_kill), "active_at_kill": events["b_active_at_kill"],
            "in_flight_at_kill": sum(1 for r in on("r2") if r.start < t_kill and (r.end or t_kill) >= t_kill),
            "failed": len(failed), "failed_not_in_flight_on_B": [describe(r) for r in bad_failures],
            "rescued_by_retry": sum(1 for r in issued if r.ok and r.start < t_kill < r.end
                                    and r.served_by != "r2" and r.retries not in (None, "0")),
            "haproxy_down_after_kill_s": None if down_at is None else round(down_at - t_kill, 3),
            "allowed_s": FALL * args.inter + args.margin,
            "stot_at_down": stot_at_down, "stot_at_limit": stot_at_limit, "stot_end": stot_end,
            "stats_end": stats_of("r2"), "served_after_kill": len(b_after_kill_served),
            "routed_after_limit_in_log": [f"req-{r.i}" for r in b_after_kill_routed],
            "exit_status": b_exit,
        },
        "replica_C_r3": {"served_total": len(on("r3")), "stats_end": stats_of("r3"), "exit_status_at_cleanup": c_exit},
        "failed_requests": [describe(r) for r in failed][:20],
        "failed_after_kill": [describe(r) for r in after_kill_failed][:20],
        "not_issued": not_issued,
        "leftover_processes": leftovers,
        "haproxy_log_lines": len(hlog),
    })
    if summary["passed"] and not args.keep:
        shutil.rmtree(cdir, ignore_errors=True)
        summary["cluster_dir"] = None  # logs are kept (and named here) when a check fails
    print(json.dumps(summary, indent=2))
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
