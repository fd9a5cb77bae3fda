"""`braid serve` through the official `openai` Python client (and httpx for what the client cannot send).

    .venv-api/bin/pytest Tests/python -q                       # starts its own server (see conftest.py)
    BRAID_URL=http://127.0.0.1:8080/v1 BRAID_API_KEY=... .venv-api/bin/pytest Tests/python -q
"""

from __future__ import annotations

import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

ROOT = Path(__file__).resolve().parents[2]
TASKS = ["arith", "json", "sentiment", "spell"]
ARITH = "What is 74 times 9?"
GENERAL = "What causes thunder?"
JSON_EXTRACT = "Extract the name, age and city as JSON: Olga Costa is a 28-year-old engineer living in Accra."


# MARK: - fixtures and helpers


@pytest.fixture(scope="session")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=os.environ.get("BRAID_URL", "http://127.0.0.1:8080/v1"),
                         api_key=server.api_key or "unused", max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def http(server) -> httpx.Client:
    with httpx.Client(base_url=server.base_url, headers=server.headers(), timeout=120) as c:
        yield c


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def chat(client: openai.OpenAI, text: str, **kw):
    kw.setdefault("model", "braid")
    kw.setdefault("temperature", 0)
    kw.setdefault("max_tokens", 16)
    return client.chat.completions.create(messages=user(text), **kw)


def braid_info(response) -> dict:
    """The `braid` extension of a response (kept by the SDK in model_extra)."""
    info = response.model_extra.get("braid")
    assert isinstance(info, dict), f"no braid object in {response}"
    return info


def error_of(response: httpx.Response) -> dict:
    """The OpenAI error object of a response, checked for its shape."""
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    assert isinstance(err["message"], str) and err["message"]
    return err


def post_raw(http: httpx.Client, path: str, content: bytes) -> httpx.Response:
    return http.post(path, content=content, headers={"Content-Type": "application/json"})


def check_usage(usage) -> None:
    assert usage.prompt_tokens > 0
    assert usage.completion_tokens >= 1
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


# MARK: - chat


def test_chat_completion(client):
    r = chat(client, ARITH, max_tokens=8)
    assert r.object == "chat.completion"
    assert r.id.startswith("chatcmpl-")
    assert r.model == "braid"
    assert len(r.choices) == 1
    choice = r.choices[0]
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    check_usage(r.usage)
    assert r.usage.completion_tokens <= 8
    info = braid_info(r)
    route = info["route"]
    assert route["mode"] == "auto"
    assert route["task"] == "arith", route  # the router sends arithmetic to the arith vector
    assert route["coefficients"] == {"arith": 1}
    assert set(TASKS) | {"none"} <= set(route["probabilities"])
    assert abs(sum(route["probabilities"].values()) - 1) < 1e-3
    assert route["routing_layers"] > 0
    assert info["interweave"] == "off"
    timings = info["timings"]
    assert 0 <= timings["first_token_ms"] <= timings["total_ms"]


def test_chat_stream_matches_non_stream(client, http):
    whole = chat(client, GENERAL, max_tokens=20)
    stream = client.chat.completions.create(model="braid", messages=user(GENERAL), temperature=0, max_tokens=20,
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)  # ends at data: [DONE]
    assert chunks, "no chunks"
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    first = chunks[0]
    assert first.choices[0].delta.role == "assistant"
    assert braid_info(first)["route"]["task"] == braid_info(whole)["route"]["task"]
    # the usage chunk is last, with no choices
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == []
    check_usage(usage_chunk.usage)
    assert usage_chunk.usage.completion_tokens == whole.usage.completion_tokens
    assert usage_chunk.usage.prompt_tokens == whole.usage.prompt_tokens
    body = chunks[:-1]
    finishes = [c.choices[0].finish_reason for c in body if c.choices[0].finish_reason]
    assert finishes == [whole.choices[0].finish_reason], finishes
    assert body[-1].choices[0].finish_reason is not None, "the finish_reason chunk is not the last choice chunk"
    assert "timings" in braid_info(body[-1])
    assert all(c.usage is None for c in body)
    text = "".join(c.choices[0].delta.content or "" for c in body)
    assert text == whole.choices[0].message.content


def test_chat_stream_raw_sse_ends_with_done(http):
    r = http.post("/v1/chat/completions", json={"messages": user(ARITH), "temperature": 0, "max_tokens": 4, "stream": True})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["x-braid-route"] == "arith"
    events = [e for e in r.text.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events), events
    assert events[-1] == "data: [DONE]"
    payloads = [json.loads(e[len("data: "):]) for e in events[:-1]]
    assert all("usage" not in p for p in payloads)  # no include_usage: no usage chunk
    assert payloads[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    assert r.text.endswith("data: [DONE]\n\n")


def test_chat_content_parts_and_system_message(client):
    plain = chat(client, ARITH, max_tokens=6)
    parts = client.chat.completions.create(
        model="braid", temperature=0, max_tokens=6,
        messages=[{"role": "user", "content": [{"type": "text", "text": "What is 74 "}, {"type": "text", "text": "times 9?"}]}])
    assert parts.choices[0].message.content == plain.choices[0].message.content
    sys = client.chat.completions.create(model="base", temperature=0, max_tokens=6,
                                         messages=[{"role": "system", "content": "Answer in French."}, *user("Say hello.")])
    assert sys.usage.prompt_tokens > 0 and sys.choices[0].message.content


def test_client_going_away_cancels_the_request(server, http):
    import time

    body = {"model": "base", "messages": user("Tell me a very long story."), "max_tokens": 1500, "stream": True}
    with http.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        lines = r.iter_lines()
        for _ in range(3):
            next(lines)
    # the connection is closed: the engine drops the sequence at its next step
    deadline = time.monotonic() + 10
    while (h := httpx.get(server.base_url + "/health").json())["active"] > 0:
        assert time.monotonic() < deadline, f"the abandoned request still runs: {h}"
        time.sleep(0.05)


# MARK: - completions


def test_completion_raw_prompt(client):
    r = client.completions.create(model="base", prompt="The capital of France is", max_tokens=4, temperature=0)
    assert r.object == "text_completion"
    assert r.id.startswith("cmpl-")
    assert len(r.choices) == 1
    assert r.choices[0].text
    assert r.choices[0].finish_reason in ("stop", "length")
    check_usage(r.usage)
    assert r.usage.prompt_tokens < 12  # no chat template around a raw prompt
    assert braid_info(r)["route"]["task"] == "base"
    assert braid_info(r)["route"]["mode"] == "none"

    stream = client.completions.create(model="base", prompt="The capital of France is", max_tokens=4, temperature=0,
                                       stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks) == r.choices[0].text
    assert chunks[-1].choices[0].finish_reason == r.choices[0].finish_reason
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == r.usage.completion_tokens


def test_completion_default_max_tokens_is_16(client):
    r = client.completions.create(model="base", prompt="Once upon a time", temperature=0)
    assert r.usage.completion_tokens <= 16
    if r.choices[0].finish_reason == "length":
        assert r.usage.completion_tokens == 16


# MARK: - models


def test_models(client):
    models = {m.id: m for m in client.models.list()}
    assert {"braid", "base", *TASKS} <= set(models), sorted(models)
    for task in TASKS:
        assert models[task].model_extra.get("parent") == "base", models[task]
        assert models[task].model_extra.get("kind") == "task"
    assert models["braid"].model_extra.get("kind") == "routed"
    assert models["base"].model_extra.get("kind") == "base"
    assert all(m.object == "model" for m in models.values())
    one = client.models.retrieve("arith")
    assert one.id == "arith" and one.model_extra["parent"] == "base"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


# MARK: - routing


def test_route_extension_forces_the_route(client):
    raw = client.chat.completions.with_raw_response.create(
        model="braid", messages=user(ARITH), temperature=0, max_tokens=6, extra_body={"braid": {"route": "json"}})
    assert raw.headers["X-Braid-Route"] == "json"
    r = raw.parse()
    route = braid_info(r)["route"]
    assert route["task"] == "json"
    assert route["mode"] == "pinned"
    assert route["coefficients"] == {"json": 1}


def test_model_pins_a_task(client):
    raw = client.chat.completions.with_raw_response.create(model="arith", messages=user(GENERAL), temperature=0, max_tokens=4)
    assert raw.headers["X-Braid-Route"] == "arith"
    r = raw.parse()
    assert r.model == "arith"
    assert braid_info(r)["route"]["task"] == "arith"
    assert braid_info(r)["route"]["mode"] == "pinned"


@pytest.mark.parametrize("how", ["route-none", "route-base", "model-base"])
def test_none_and_base_give_the_base(client, how):
    kw = {"model": "base"} if how == "model-base" else {"model": "braid", "extra_body": {"braid": {"route": how.split("-")[1]}}}
    raw = client.chat.completions.with_raw_response.create(messages=user(ARITH), temperature=0, max_tokens=4, **kw)
    assert raw.headers["X-Braid-Route"] == "base"
    route = braid_info(raw.parse())["route"]
    assert route["task"] == "base"
    assert route["mode"] == "none"
    assert route["coefficients"] == {}


def test_route_extension_overrides_model(client):
    r = chat(client, ARITH, model="arith", max_tokens=4, extra_body={"braid": {"route": "none"}})
    assert braid_info(r)["route"]["task"] == "base"


def test_blend_gives_coefficients(client):
    r = chat(client, ARITH, max_tokens=4, extra_body={"braid": {"route": "blend"}})
    route = braid_info(r)["route"]
    assert route["mode"] == "blend"
    coefs = route["coefficients"]
    assert isinstance(coefs, dict) and coefs, route
    assert set(coefs) <= set(TASKS)
    assert all(isinstance(v, float | int) and 0 < v <= 1 for v in coefs.values())
    assert "arith" in coefs

    explicit = chat(client, ARITH, max_tokens=4, extra_body={"braid": {"route": {"arith": 0.5, "json": 0.5}}})
    route = braid_info(explicit)["route"]
    assert route["mode"] == "pinned"
    assert route["coefficients"] == {"arith": 0.5, "json": 0.5}
    assert route["task"] == "arith:0.5+json:0.5"


def test_interweave_extension(client):
    r = chat(client, ARITH, max_tokens=4, extra_body={"braid": {"interweave": "fixed:0.5"}})
    assert braid_info(r)["interweave"] == "fixed:0.5"
    with pytest.raises(openai.BadRequestError) as e:
        chat(client, ARITH, max_tokens=4, extra_body={"braid": {"interweave": "sideways"}})
    assert e.value.body["param"] == "braid.interweave"


def test_unknown_route_task(client):
    with pytest.raises(openai.BadRequestError) as e:
        chat(client, ARITH, max_tokens=4, extra_body={"braid": {"route": "no-such-task"}})
    assert e.value.status_code == 400
    assert e.value.code == "unknown_task"
    with pytest.raises(openai.BadRequestError):
        chat(client, ARITH, max_tokens=4, extra_body={"braid": {"route": {"arith": 9}}})


# MARK: - sampling features


def test_chat_logprobs(client):
    r = chat(client, GENERAL, max_tokens=6, logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    assert "".join(t.token for t in content) == r.choices[0].message.content
    for t in content:
        assert t.logprob <= 0
        assert bytes(t.bytes).decode("utf-8", "replace") == t.token
        assert len(t.top_logprobs) == 3
        assert [a.logprob for a in t.top_logprobs] == sorted((a.logprob for a in t.top_logprobs), reverse=True)
        # greedy: the chosen token is the most likely one
        assert t.top_logprobs[0].token == t.token and abs(t.top_logprobs[0].logprob - t.logprob) < 1e-4

    plain = chat(client, GENERAL, max_tokens=6)
    assert plain.choices[0].logprobs is None


def test_completion_logprobs(client):
    r = client.completions.create(model="base", prompt="The capital of France is", max_tokens=4, temperature=0, logprobs=2)
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == r.usage.completion_tokens
    assert "".join(lp.tokens) == r.choices[0].text
    assert lp.text_offset[0] == 0
    assert all(v <= 0 for v in lp.token_logprobs)
    assert all(1 <= len(top) <= 2 for top in lp.top_logprobs)


def test_stop_strings(client):
    prompt = "Write 8284 in words."
    full = chat(client, prompt, model="spell", max_tokens=16).choices[0].message.content
    words = full.split()
    assert len(words) >= 3, full
    stop = " " + words[2]
    expected = full[: full.index(stop)]
    r = chat(client, prompt, model="spell", max_tokens=16, stop=[stop, "never-appears"])
    out = r.choices[0].message.content
    assert out == expected
    assert stop not in out
    assert r.choices[0].finish_reason == "stop"
    streamed = client.chat.completions.create(model="spell", messages=user(prompt), temperature=0, max_tokens=16,
                                              stop=stop, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == expected


def test_seed_reproducible_at_temperature(client):
    prompt = "Write one sentence about a cat."

    def sample(seed):
        return chat(client, prompt, model="base", temperature=0.8, max_tokens=12, seed=seed).choices[0].message.content

    assert sample(1234) == sample(1234)
    assert len({sample(s) for s in (1, 2, 3, 4)}) > 1, "different seeds never differ: is the seed used at all?"


# MARK: - errors


def test_malformed_json(http):
    r = post_raw(http, "/v1/chat/completions", b'{"model": "braid", "messages": [')
    assert r.status_code == 400
    assert error_of(r)["type"] == "invalid_request_error"
    r = post_raw(http, "/v1/completions", b"not json at all")
    assert r.status_code == 400
    error_of(r)


@pytest.mark.parametrize("body", [
    {"messages": "hello"},
    {"messages": [{"role": "user", "content": 5}]},
    {"messages": [{"content": "hi"}]},
    {"messages": user("hi"), "temperature": "hot"},
    {"messages": user("hi"), "max_tokens": "5"},
    {"messages": user("hi"), "stream": "yes"},
    {"messages": user("hi"), "stop": 7},
    {"messages": user("hi"), "braid": {"route": 5}},
    {"messages": user("hi"), "temperature": 5},
    {"messages": user("hi"), "top_p": 0},
    {"messages": user("hi"), "max_tokens": 0},
    {"messages": user("hi"), "top_logprobs": 2},
    {"messages": [{"role": "tool", "content": "hi"}]},
    {"messages": []},
    {},
], ids=lambda b: json.dumps(b)[:60])
def test_wrong_types_and_values(http, body):
    r = http.post("/v1/chat/completions", json=body)
    assert r.status_code == 400, r.text
    assert error_of(r)["type"] == "invalid_request_error"


@pytest.mark.parametrize("body", [{"prompt": ["a", "b"]}, {"prompt": ""}, {"prompt": "hi", "logprobs": True}, {"prompt": "hi", "logprobs": 21}],
                         ids=lambda b: json.dumps(b))
def test_completion_wrong_types(http, body):
    r = http.post("/v1/completions", json=body)
    assert r.status_code == 400, r.text
    error_of(r)


def test_unknown_model(client):
    with pytest.raises(openai.NotFoundError) as e:
        chat(client, "hi", model="gpt-4o")
    assert e.value.status_code == 404
    assert e.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="gpt-4o", prompt="hi", max_tokens=2)


def test_n_must_be_one(client):
    with pytest.raises(openai.BadRequestError) as e:
        chat(client, "hi", n=2)
    assert e.value.status_code == 400
    assert e.value.body["param"] == "n"


def test_prompt_over_the_context(client):
    long = "The quick brown fox jumps over the lazy dog. " * 400  # ~4000 tokens > 2048
    with pytest.raises(openai.BadRequestError) as e:
        chat(client, long, max_tokens=4)
    assert e.value.status_code == 400
    assert e.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="base", prompt=long, max_tokens=4)
    assert e.value.code == "context_length_exceeded"


def test_max_tokens_over_the_context(client):
    with pytest.raises(openai.BadRequestError) as e:
        chat(client, "hi", max_tokens=100_000)
    assert e.value.code == "context_length_exceeded"
    assert e.value.body["param"] == "max_tokens"
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="base", prompt="hi", max_tokens=100_000)
    assert e.value.code == "context_length_exceeded"


@pytest.mark.parametrize("path,body", [
    ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "caf\xc3\xa9 \xff\xfe"}], "max_tokens": 2}'),
    ("/v1/completions", b'{"prompt": "\xc0\xaf bad", "max_tokens": 2}'),
    ("/v1/chat/completions", b'\xff\xfe{"messages": []}'),
], ids=["chat-content", "completion-prompt", "leading-bytes"])
def test_invalid_utf8(http, path, body):
    r = post_raw(http, path, body)
    assert r.status_code == 400, r.text
    error_of(r)


def test_ten_thousand_messages(http):
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i}"} for i in range(10_000)]
    r = http.post("/v1/chat/completions", json={"messages": messages, "max_tokens": 2})
    assert 400 <= r.status_code < 500, r.text
    error_of(r)


def test_body_over_max_body(http):
    big = json.dumps({"messages": user("a" * ((1 << 20) + 1000)), "max_tokens": 2}).encode()  # > the default 1 MiB --max-body
    r = post_raw(http, "/v1/chat/completions", big)
    assert r.status_code == 413, r.text
    error_of(r)


def test_missing_or_wrong_api_key(server):
    if server.api_key is None:
        pytest.skip("the server enforces no API key (set BRAID_API_KEY for a server run with --api-key)")
    wrong = openai.OpenAI(base_url=server.api_url, api_key="wrong-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as e:
        wrong.chat.completions.create(model="braid", messages=user("hi"), max_tokens=2)
    assert e.value.status_code == 401
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
    for path in ("/v1/models", "/metrics"):
        r = httpx.get(server.base_url + path)
        assert r.status_code == 401
        assert error_of(r)["type"] == "authentication_error"
    r = httpx.post(server.base_url + "/v1/chat/completions", json={"messages": user("hi"), "max_tokens": 2})
    assert r.status_code == 401
    # /health and the page need no key
    assert httpx.get(server.base_url + "/health").status_code == 200
    page = httpx.get(server.base_url + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")


def test_still_answers_after_the_errors(client, http):
    # runs after the error tests above (pytest keeps file order)
    assert http.get("/health").json()["status"] == "ok"
    r = chat(client, ARITH, max_tokens=6)
    assert r.choices[0].message.content
    assert braid_info(r)["route"]["task"] == "arith"


# MARK: - limits (a second server with small limits)


@pytest.fixture(scope="module")
def small_server(spawn):
    with spawn(["--parallel", "1", "--queue", "1", "--max-body", "4096"]) as s:
        yield s


def test_queue_full_is_503_with_retry_after(small_server):
    body = {"model": "base", "messages": user(GENERAL), "temperature": 0, "max_tokens": 24}

    def post(_):
        return httpx.post(small_server.base_url + "/v1/chat/completions", json=body, timeout=120)

    with ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(pool.map(post, range(6)))
    codes = sorted(r.status_code for r in responses)
    assert 200 in codes and 503 in codes, codes
    assert set(codes) <= {200, 503}, codes
    for r in responses:
        if r.status_code == 503:
            err = error_of(r)
            assert err["type"] == "overloaded_error" and err["code"] == "queue_full", err
            assert r.headers.get("retry-after", "").isdigit(), r.headers
    # and it recovers
    assert post(0).status_code == 200


def test_small_max_body_is_413(small_server):
    r = httpx.post(small_server.base_url + "/v1/chat/completions", content=json.dumps({"messages": user("a" * 5000)}).encode(),
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    error_of(r)
    ok = httpx.post(small_server.base_url + "/v1/chat/completions", json={"messages": user("hi"), "max_tokens": 2})
    assert ok.status_code == 200, ok.text


def test_sigterm_lets_the_request_in_flight_finish(spawn):
    import threading
    import time

    with spawn(["--parallel", "2"]) as s:
        result = {}

        def ask():
            result["r"] = httpx.post(s.base_url + "/v1/chat/completions", timeout=120,
                                     json={"model": "base", "messages": user(GENERAL), "temperature": 0, "max_tokens": 32})

        t = threading.Thread(target=ask)
        t.start()
        deadline = time.monotonic() + 30
        while httpx.get(s.base_url + "/health").json().get("active", 0) < 1:
            assert time.monotonic() < deadline, "the request never became active"
            time.sleep(0.02)
        assert s.stop() == 0, s.tail()
        t.join(timeout=60)
    r = result["r"]
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["completion_tokens"] >= 1


# MARK: - operations


def test_metrics(http):
    r = http.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert "braid_requests_total" in r.text
    assert 'braid_requests_total{endpoint="chat",status="200"}' in r.text
    assert "braid_task_vector_bytes" in r.text


# MARK: - the server's answers are `braid run`'s


def _lines(path: Path, picks: list[int]) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [rows[i] for i in picks]


def equivalence_prompts() -> list[str]:
    """8 prompts: the four tasks (two ways of asking each) and general questions."""
    rows = _lines(ROOT / "prompts/mixed-routes.jsonl", [0, 1, 2, 3])
    shared = ROOT.parent / "shared/tasks"
    if (shared / "general.dev.jsonl").exists():
        rows += _lines(shared / "json.dev.jsonl", [0]) + _lines(shared / "sentiment.dev.jsonl", [0])
        rows += _lines(shared / "general.dev.jsonl", [0, 1])
    else:
        rows += _lines(ROOT / "prompts/mixed-routes.jsonl", [5, 6]) + _lines(ROOT / "prompts/general.jsonl", [0, 1])
    return [r["prompt"] for r in rows]


@pytest.fixture(scope="module")
def run_answers(server, tmp_path_factory) -> dict[str, dict]:
    """`braid run` (routing auto, greedy, 48 tokens) over the 8 prompts."""
    if not server.binary.exists():
        pytest.skip(f"{server.binary} not found")
    prompts = equivalence_prompts()
    d = tmp_path_factory.mktemp("run")
    src, out = d / "prompts.jsonl", d / "answers.jsonl"
    src.write_text("".join(json.dumps({"id": str(i), "prompt": p}) + "\n" for i, p in enumerate(prompts)))
    subprocess.run([str(server.binary), "run", "-i", str(src), "-o", str(out), "--batch", "4", "-n", "48", "-q"],
                   cwd=ROOT, check=True, timeout=300, capture_output=True)
    answers = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    assert [a["prompt"] for a in answers] == prompts
    return {a["prompt"]: a for a in answers}


def server_answer(client, prompt: str):
    return client.chat.completions.create(model="braid", messages=user(prompt), temperature=0, max_tokens=48)


@pytest.fixture(scope="module")
def serial_answers(client, run_answers) -> dict[str, object]:
    """The server's answers to the 8 prompts, one request at a time."""
    return {prompt: server_answer(client, prompt) for prompt in run_answers}


def test_temperature_zero_equals_braid_run(run_answers, serial_answers):
    mismatches = []
    for prompt, expected in run_answers.items():
        r = serial_answers[prompt]
        got, task = r.choices[0].message.content, braid_info(r)["route"]["task"]
        if got != expected["output"] or task != expected["route"]["task"]:
            mismatches.append(f"{prompt!r}: run [{expected['route']['task']}] {expected['output']!r} != serve [{task}] {got!r}")
        assert r.usage.prompt_tokens == expected["timings"]["prompt_n"], prompt
        assert r.usage.completion_tokens == expected["timings"]["predicted_n"], prompt
        assert r.choices[0].finish_reason == expected["finish_reason"], prompt
    tasks = {a["route"]["task"] for a in run_answers.values()}
    assert set(TASKS) <= tasks and "base" in tasks, tasks  # the prompts cover every route
    assert not mismatches, "\n".join(mismatches)


def test_concurrent_answers_equal_one_by_one(client, serial_answers):
    prompts = list(serial_answers) * 2  # 16 requests, each prompt twice
    with ThreadPoolExecutor(max_workers=len(prompts)) as pool:
        answers = list(pool.map(lambda p: server_answer(client, p), prompts))
    mismatches = []
    for p, a in zip(prompts, answers):
        expected = serial_answers[p]
        if a.choices[0].message.content != expected.choices[0].message.content:
            mismatches.append(f"{p!r}: one by one {expected.choices[0].message.content!r} != concurrent {a.choices[0].message.content!r}")
        elif braid_info(a)["route"]["task"] != braid_info(expected)["route"]["task"]:
            mismatches.append(f"{p!r}: route {braid_info(expected)['route']['task']} one by one, {braid_info(a)['route']['task']} concurrent")
    assert not mismatches, "\n".join(mismatches)


# MARK: - administration (last)


def test_admin_reload(server):
    # Last in the file: a crash here must not take the other tests down with the server.
    if server.admin_key is None:
        pytest.skip("no admin key known (set BRAID_ADMIN_KEY)")
    url = server.base_url + "/admin/reload"
    for headers in ({}, {"Authorization": "Bearer wrong"}, server.headers()):
        r = httpx.post(url, headers=headers)
        assert r.status_code == 401, (headers, r.text)
        assert error_of(r)["type"] == "authentication_error"
    r = httpx.post(url, headers={"Authorization": f"Bearer {server.admin_key}"}, timeout=60)
    assert r.status_code == 200, r.text
    report = r.json()
    assert set(TASKS) <= set(report["tasks"])
    assert report["added"] == [] and report["removed"] == [] and isinstance(report["refused"], list)
    assert httpx.get(server.base_url + "/health").json()["tasks"] == report["tasks"]
    r = httpx.post(server.api_url + "/chat/completions", headers=server.headers(),
                   json={"model": "arith", "messages": user(ARITH), "temperature": 0, "max_tokens": 4}, timeout=60)
    assert r.status_code == 200 and r.json()["braid"]["route"]["task"] == "arith"
