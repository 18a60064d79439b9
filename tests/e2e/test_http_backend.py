"""The http backend end to end: the built binary against a scripted
OpenAI-compatible server on 127.0.0.1 (fake_openai_server.py).

Each fault checks the score or error the run recorded and that the run
finished (report written) or stopped resumably; the judge's request body
(prompts, data-URL images, temperature 0, max_tokens, seed, logprobs,
extra_body) is read back from the server's log.

Environment: EVALHOST_BIN (default build/evalhost), EVALHOST_SRC (repo root).
"""
import base64
import glob
import io
import json
import os
import random
import shutil
import subprocess
import sys
import time

import pytest
from PIL import Image, ImageDraw

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_openai_server import FakeOpenAI, expected_logprob_score, expected_score  # noqa: E402

SRC = os.environ.get("EVALHOST_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("EVALHOST_BIN") or os.path.join(SRC, "build", "evalhost")
SECRET = "sk-test-9f8e7d6c5b4a-do-not-print"


def picture(rng, w=40, h=30):
    img = Image.new("RGB", (w, h), tuple(rng.randrange(256) for _ in range(3)))
    d = ImageDraw.Draw(img)
    for _ in range(3):
        x, y = rng.randrange(w), rng.randrange(h)
        d.rectangle([x, y, x + 10, y + 8], fill=tuple(rng.randrange(256) for _ in range(3)))
    return img


def bench_doc(categories, per_category, seed=3, instructions=("make the sky red",)):
    """A benchmark's JSON document: per_category pairs of small random
    pictures in each category, the instructions taken in turn."""
    rng = random.Random(seed)
    doc = {}
    for cat in categories:
        pairs = []
        for i in range(per_category):
            buf = io.BytesIO()
            picture(rng).save(buf, "PNG")
            pairs.append({"id": "pair_%03d" % (i + 1), "original_image_b64": base64.b64encode(buf.getvalue()).decode(),
                          "edit_instruction": instructions[i % len(instructions)],
                          "original_description": "a test picture"})
        doc[cat] = {"data_pairs": pairs}
    return doc


def make_benchmark(path, categories, per_category, seed=3):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(bench_doc(categories, per_category, seed), f, ensure_ascii=False)
    return path


def judge_yaml(url, model, **opts):
    o = {"backend": "http", "base_url": url, "model": model, "retries": 2, "backoff_s": 0.05,
         "timeout_s": 10, "connect_timeout_s": 2}
    o.update(opts)
    return json.dumps(o)




def prompts_yaml(categories):
    """Per category: the prompt file's category templates win over a config default."""
    t = ('    %s:\n      system: "You compare the original image with the edited image."\n'
         '      user: "id={{id}} instruction={{instruction}}. End with a line Score: N"\n')
    return "prompts:\n  templates:\n" + "".join(t % c for c in categories)


def write_config(tmp, url, model, categories=("物理",), per_category=2, judge=None, editor=None, extra=""):
    data = make_benchmark(str(tmp / "bench.json"), list(categories), per_category)
    out = str(tmp / "out")
    cfg = str(tmp / "config.yaml")
    with open(cfg, "w", encoding="utf-8") as f:
        f.write("benchmark:\n  data_path: %s\n  categories: %s\n" % (json.dumps(data), json.dumps(list(categories),
                                                                                             ensure_ascii=False)))
        f.write("editor: %s\n" % (editor or '{backend: builtin, name: identity}'))
        f.write("judge: %s\n" % (judge or judge_yaml(url, model)))
        f.write("run:\n  out: %s\nreport:\n  bootstrap: {resamples: 50}\n" % json.dumps(out))
        f.write(prompts_yaml(categories) + extra)
    return cfg, out


def run_script(script, cfg, *args, env=None, timeout=120):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([BIN, script, cfg, "--quiet", *args], cwd=SRC, capture_output=True, text=True,
                          timeout=timeout, env=e)


def two_stage(cfg, *args, env=None):
    return run_script(os.path.join(SRC, "scripts", "two_stage.lua"), cfg, *args, env=env)


def report(out):
    files = sorted(glob.glob(os.path.join(out, "results", "evaluation_report_*.json")))
    assert len(files) == 1, files
    with open(files[0], encoding="utf-8") as f:
        return json.load(f)


def by_id(rep):
    return {(p["category"], p["id"]): p for p in rep["pairs"]}


@pytest.fixture
def server():
    with FakeOpenAI() as srv:
        yield srv


def decode_data_url(url, fmt="jpeg"):
    head, _, b64 = url.partition(",")
    assert head == "data:image/%s;base64" % fmt, head
    im = Image.open(io.BytesIO(base64.b64decode(b64)))
    assert im.format == fmt.upper()
    return im


# ---- judge: correct replies -------------------------------------------------

def test_two_stage_with_http_judge_logprobs(binary, server, tmp_path):
    cats = ("物理", "环境")
    cfg, out = write_config(tmp_path, server.url, "logprobs", categories=cats, per_category=4,
                            judge=judge_yaml(server.url, "logprobs", max_tokens=64, seed=11))
    r = two_stage(cfg)
    assert r.returncode == 0, r.stderr
    rep = report(out)
    assert rep["models"]["judge"]["backend"] == "http"
    assert rep["failures"] == []
    assert rep["swaps"]["count"] == 2 * len(cats) - 1
    # the judge is pinned by what the server says it serves
    assert rep["judge_identity"]["revision"].startswith("logprobs")
    assert rep["judge_identity"]["revision_source"] == "server"
    for (cat, pid), p in by_id(rep).items():
        want = expected_logprob_score(expected_score(pid))
        assert p["score"] == pytest.approx(want, abs=1e-9), (cat, pid, p)
    reqs = server.requests()
    assert len(reqs) == 8
    for e in reqs:
        body = e["request"]
        assert body["model"] == "logprobs" and body["temperature"] == 0
        assert body["max_tokens"] == 64 and body["seed"] == 11
        assert body["logprobs"] is True and body["top_logprobs"] == 20
        assert body["messages"][0] == {"role": "system", "content": "You compare the original image with the edited image."}
        parts = body["messages"][1]["content"]
        # evalhost.chat's layout: the original, then the edited image, each after its label, then the text
        assert [p["type"] for p in parts] == ["text", "image_url", "text", "image_url", "text"]
        assert parts[0]["text"] == "原始图像 / original image:" and parts[2]["text"] == "编辑后的图像 / edited image:"
        images = [decode_data_url(p["image_url"]["url"]) for p in parts if p["type"] == "image_url"]
        assert images[0].tobytes() == images[1].tobytes()   # identity editor: edited == original
        assert parts[-1]["text"] == "id=%s instruction=make the sky red. End with a line Score: N" % e["id"]
        assert e["auth"] is None


def test_text_scores_extra_body_and_png(binary, server, tmp_path):
    judge = judge_yaml(server.url, "text", logprobs=False, image_format="png",
                       extra_body={"top_k": 1, "chat_template_kwargs": {"enable_thinking": False}, "seed": 5})
    cfg, out = write_config(tmp_path, server.url, "text", per_category=7, judge=judge)
    r = two_stage(cfg)
    assert r.returncode == 0, r.stderr
    for (_, pid), p in by_id(report(out)).items():
        assert p["score"] == expected_score(pid), p   # seven text forms, one per pair
    for e in server.requests():
        body = e["request"]
        assert "logprobs" not in body and "top_logprobs" not in body
        assert body["top_k"] == 1 and body["chat_template_kwargs"] == {"enable_thinking": False}
        assert body["seed"] == 5   # extra_body wins
        imgs = [p for p in body["messages"][1]["content"] if p["type"] == "image_url"]
        assert len(imgs) == 2   # the original always goes with the edited image
        for img in imgs:
            decode_data_url(img["image_url"]["url"], "png")


# ---- judge: faults ----------------------------------------------------------

def test_500_then_success_is_retried(binary, server, tmp_path):
    cfg, out = write_config(tmp_path, server.url, "fail500", per_category=3)
    r = two_stage(cfg)
    assert r.returncode == 0, r.stderr
    for (_, pid), p in by_id(report(out)).items():
        assert p["score"] == expected_score(pid)
    attempts = {}
    for e in server.requests():
        attempts.setdefault(e["id"], []).append(e["status"])
    assert attempts == {pid: [500, 200] for pid in ("pair_001", "pair_002", "pair_003")}
    assert "HTTP 500" in r.stderr and "retry 1 of 2" in r.stderr


def test_429_honours_retry_after(binary, server, tmp_path):
    cfg, out = write_config(tmp_path, server.url, "retry429", per_category=2,
                            judge=judge_yaml(server.url, "retry429", backoff_s=0.01))
    r = two_stage(cfg)
    assert r.returncode == 0, r.stderr
    assert all(p["score"] is not None for p in report(out)["pairs"])
    times = {}
    for e in server.requests():
        times.setdefault(e["id"], []).append((e["t"], e["status"]))
    for pid, seq in times.items():
        assert [s for _, s in seq] == [429, 200], seq
        assert seq[1][0] - seq[0][0] >= 0.95, "Retry-After: 1 not honoured (backoff_s is 0.01)"
    assert "(Retry-After)" in r.stderr


def test_slow_replies_time_out(binary, server, tmp_path):
    judge = judge_yaml(server.url, "slow", timeout_s=1, retries=1)
    cfg, out = write_config(tmp_path, server.url, "slow", per_category=2, judge=judge)
    t0 = time.monotonic()
    r = two_stage(cfg)
    assert r.returncode == 1, r.stderr
    assert time.monotonic() - t0 < 15
    pairs = by_id(report(out))
    bad, good = pairs[("物理", "pair_001")], pairs[("物理", "pair_002")]
    assert bad["score"] is None
    assert "Operation timed out after" in bad["error"] and "after 2 attempts" in bad["error"], bad["error"]
    assert "/v1/chat/completions" in bad["error"]
    assert good["score"] == expected_score("pair_002")   # slow once, then answered


def test_connection_reset(binary, server, tmp_path):
    cfg, out = write_config(tmp_path, server.url, "reset", per_category=2)
    r = two_stage(cfg)
    assert r.returncode == 1, r.stderr
    pairs = by_id(report(out))
    bad, good = pairs[("物理", "pair_001")], pairs[("物理", "pair_002")]
    assert bad["score"] is None and "after 3 attempts" in bad["error"]
    # an RST right after the request reads as a reset or as an empty reply, by timing
    assert "Connection reset by peer" in bad["error"] or "Empty reply from server" in bad["error"], bad
    assert good["score"] == expected_score("pair_002")
    # 3 attempts; libcurl itself resends once when a reused keep-alive
    # connection turns out dead (requests in flight share connections)
    assert len([e for e in server.requests() if e["id"] == "pair_001"]) in (3, 4)


@pytest.mark.parametrize("model, needle", [
    ("malformed", 'malformed JSON reply from http://127.0.0.1:%d/v1/chat/completions: "{"choices": [{"message"'),
    ("wrongtype", "has content type 'text/html; charset=utf-8', not JSON: \"<html><body><h1>Please sign in"),
])
def test_unusable_bodies_are_the_servers_failure(binary, server, tmp_path, model, needle):
    """A body the judge cannot read is the server's failure (issue 20): retried
    like a 5xx, recorded with code ENET (not final: --resume retries it)."""
    cfg, out = write_config(tmp_path, server.url, model, per_category=1)
    r = two_stage(cfg)
    assert r.returncode == 1, r.stderr
    (p,) = report(out)["pairs"]
    assert p["score"] is None and (needle % server.port if "%d" in needle else needle) in p["error"], p["error"]
    assert len(server.requests()) == 3   # retries: 2
    with open(os.path.join(out, "journal.jsonl"), encoding="utf-8") as f:
        scores = [json.loads(l) for l in f if '"stage":"score"' in l]
    assert [s["record"]["code"] for s in scores] == ["ENET"]


@pytest.mark.parametrize("model, needle", [
    ("noscore", 'judge reply has no score in 0..10: "The image shows 3 cats on a sofa; I cannot rate it."'),
    ("badrequest", "HTTP 400: {\"error\": {\"message\": \"image too large for this model\"}}"),
    ("no-such-model", "HTTP 404"),
])
def test_bad_replies_are_recorded_not_zero(binary, server, tmp_path, model, needle):
    cfg, out = write_config(tmp_path, server.url, model, per_category=1)
    r = two_stage(cfg)
    assert r.returncode == 1, r.stderr
    rep = report(out)   # the run finished and wrote its report
    (p,) = rep["pairs"]
    assert p["score"] is None
    assert (needle % server.port if "%d" in needle else needle) in p["error"], p["error"]
    assert [f["id"] for f in rep["failures"]] == ["pair_001"]
    # a reply that is wrong in itself is not retried (only 404 counts as "server down")
    assert len(server.requests()) == 1


def test_50mb_body_over_the_limit_and_under_the_default(binary, server, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cfg, out = write_config(tmp_path / "a", server.url, "big", per_category=1,
                            extra="limits:\n  max_http_body: 10000000\n")
    r = two_stage(cfg)
    assert r.returncode == 1, r.stderr
    (p,) = report(out)["pairs"]
    assert p["score"] is None
    assert "over limits.max_http_body (10000000 bytes)" in p["error"], p["error"]
    # the server's failure, not the pair's (issue 20): ENET, retried by --resume
    with open(os.path.join(out, "journal.jsonl"), encoding="utf-8") as f:
        assert [json.loads(l)["record"]["code"] for l in f if '"stage":"score"' in l] == ["ENET"]
    cfg, out = write_config(tmp_path / "b", server.url, "big", per_category=1)
    r = two_stage(cfg)
    assert r.returncode == 0, r.stderr
    (p,) = report(out)["pairs"]
    assert p["score"] == expected_score("pair_001")


def test_api_key_from_env_is_sent_and_never_written(binary, tmp_path):
    with FakeOpenAI(api_key=SECRET) as srv:
        judge = judge_yaml(srv.url, "text", api_key_env="EH_TEST_JUDGE_KEY")
        (tmp_path / "ok").mkdir()
        cfg, out = write_config(tmp_path / "ok", srv.url, "text", judge=judge)
        r = two_stage(cfg, env={"EH_TEST_JUDGE_KEY": SECRET})
        assert r.returncode == 0, r.stderr
        assert all(e["auth"] == "Bearer " + SECRET for e in srv.requests())
        (tmp_path / "wrong").mkdir()
        cfg2, out2 = write_config(tmp_path / "wrong", srv.url, "text", judge=judge)
        r2 = two_stage(cfg2, env={"EH_TEST_JUDGE_KEY": "sk-wrong-" + SECRET[::-1]})
        assert r2.returncode == 1
        assert all("HTTP 401" in p["error"] for p in report(out2)["pairs"])
        for text in (r.stdout, r.stderr, r2.stdout, r2.stderr):
            assert SECRET not in text and SECRET[::-1] not in text
        for path in glob.glob(str(tmp_path / "**" / "*"), recursive=True):
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    data = f.read()
                assert SECRET.encode() not in data and SECRET[::-1].encode() not in data, path
        (tmp_path / "unset").mkdir()
        cfg3, _ = write_config(tmp_path / "unset", srv.url, "text", judge=judge)
        env = {k: v for k, v in os.environ.items() if k != "EH_TEST_JUDGE_KEY"}
        r3 = subprocess.run([BIN, os.path.join(SRC, "scripts", "two_stage.lua"), cfg3, "--quiet"], cwd=SRC,
                            capture_output=True, text=True, timeout=60, env=env)
        assert r3.returncode == 1
        assert "api_key_env names EH_TEST_JUDGE_KEY, which is not set" in r3.stderr


def test_tls_verified_by_default(binary, tmp_path):
    if not shutil.which("openssl"):
        pytest.fail("the openssl command is needed to make a test certificate (apt-get install openssl)")
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    with FakeOpenAI(tls=(cert, key)) as srv:
        results = {}
        for sub, opts in (("default", {}), ("ca_file", {"ca_file": cert}), ("off", {"verify_tls": False})):
            (tmp_path / sub).mkdir()
            cfg, out = write_config(tmp_path / sub, srv.url, "text", per_category=1,
                                    judge=judge_yaml(srv.url, "text", retries=0, **opts))
            r = two_stage(cfg)
            (p,) = report(out)["pairs"]
            results[sub] = (r.returncode, p["score"], p["error"])
    assert results["default"][:2] == (1, None)
    assert "SSL certificate problem: self-signed certificate" in results["default"][2], results["default"]
    assert results["ca_file"] == (0, expected_score("pair_001"), None)
    assert results["off"] == (0, expected_score("pair_001"), None)
    assert len(srv.requests()) == 2   # the refused handshake never became a request


# ---- concurrency and the breaker, through the Lua API --------------------------

BATCH_LUA = r"""
local h = require "evalhost"
local cfg = h.config
local m = assert(h.model.open(cfg.judge, "judge"))
assert(m:load())
local img = assert(h.image.load(cfg.script.image))
local out = { batch_size = m:info().batch_size, device = m:info().device, calls = {} }
for call = 1, cfg.script.calls do
  local reqs = {}
  for i = 1, cfg.script.n do
    reqs[i] = { image = img, original = img, system_prompt = "original vs edited",
                user_prompt = ("id=pair_%03d Score: N"):format(i) }
  end
  local t0 = h.clock()
  local res, err = m:score_batch(reqs)
  local c = { seconds = h.clock() - t0, err = err, results = {} }
  for i, r in ipairs(res or {}) do c.results[i] = { score = r.score, error = r.error } end
  out.calls[call] = c
  if cfg.script.revive_after == call then io.stderr:write("REVIVE\n"); io.stderr:flush(); io.stdin:read("l") end
end
m:close()
io.write(h.json.encode(out))
return 0
"""


def lua_batch(tmp_path, url, model, n, calls=1, judge_opts=None, revive=None, srv=None):
    script = tmp_path / "batch.lua"
    script.write_text(BATCH_LUA)
    img = tmp_path / "img.png"
    picture(random.Random(5)).save(img)
    cfg = tmp_path / "batch.yaml"
    opts = judge_opts or {}
    cfg.write_text("judge: %s\nscript: %s\n" % (judge_yaml(url, model, **opts), json.dumps(
        {"image": str(img), "n": n, "calls": calls, "revive_after": revive or -1})))
    p = subprocess.Popen([BIN, str(script), str(cfg), "--quiet"], cwd=SRC, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sent_while_down, early = None, []
    if revive:
        while "REVIVE" not in early[-1:] and len(early) < 10000:
            line = p.stderr.readline()
            early.append("REVIVE" if "REVIVE" in line else line)
        sent_while_down = len(srv.requests())
        srv.down = False
        p.stdin.write("\n")
        p.stdin.flush()
    stdout, stderr = p.communicate(timeout=60)
    stderr = "".join(early) + stderr
    assert p.returncode == 0, stderr
    return json.loads(stdout), stderr, sent_while_down


def test_batch_runs_max_in_flight_at_once_in_request_order(binary, tmp_path):
    n, k, t = 16, 8, 0.4
    with FakeOpenAI(latency=t) as srv:
        res, _, _ = lua_batch(tmp_path, srv.url, "text", n, judge_opts={"max_in_flight": k, "logprobs": False})
        assert srv.max_in_flight == k
    assert res["batch_size"] == k and res["device"] == "remote"
    (call,) = res["calls"]
    assert [r["score"] for r in call["results"]] == [expected_score("pair_%03d" % i) for i in range(1, n + 1)]
    # N*t/k = 0.8 s with latencies 0.5t..1.5t; serial would be N*t = 6.4 s
    assert call["seconds"] < 2.5, call["seconds"]


def test_breaker_fails_the_call_then_recovers(binary, tmp_path):
    with FakeOpenAI() as srv:
        srv.down = True
        res, stderr, sent = lua_batch(tmp_path, srv.url, "text", 6, calls=2, revive=1, srv=srv,
                                judge_opts={"breaker_after": 3, "retries": 1, "max_in_flight": 2})
        first, second = res["calls"]
        # the breaker counts attempts (issue 20): a silent server stops a run after breaker_after of them
        assert first["err"] and "the server looks down: 3 attempts in a row failed" in first["err"]
        # it stopped instead of sending all six: at most 2 in flight when the 3rd failed, 2 attempts each
        assert sent <= 4 * 2, sent
        assert second.get("err") is None
        assert [r["score"] for r in second["results"]] == [expected_score("pair_%03d" % i) for i in range(1, 7)]
    assert "looks down" in stderr


def test_breaker_stops_the_run_resumably(binary, tmp_path):
    with FakeOpenAI() as srv:
        judge = judge_yaml(srv.url, "text", breaker_after=2, retries=0)
        cfg, out = write_config(tmp_path, srv.url, "text", per_category=5, judge=judge)
        srv.down = True
        r = two_stage(cfg)
        assert r.returncode == 1 and "looks down" in r.stderr
        with open(os.path.join(out, "journal.jsonl"), encoding="utf-8") as f:
            journal = f.read()
        assert "looks down" not in journal   # nothing recorded against the pairs
        srv.down = False
        r = two_stage(cfg, "--resume")
        assert r.returncode == 0, r.stderr
        assert all(p["score"] == expected_score(p["id"]) for p in report(out)["pairs"])


# ---- residency: vLLM sleep mode ------------------------------------------------

@pytest.mark.parametrize("paths, sleep, wake", [
    ({}, "/sleep?level=1", "/wake_up"),
    ({"sleep_path": "/release_memory_occupation", "wake_path": "/resume_memory_occupation"},
     "/release_memory_occupation", "/resume_memory_occupation"),
], ids=["vllm", "sglang"])
def test_sleep_mode_posts_sleep_and_wake_up_counted_as_swaps(binary, server, tmp_path, paths, sleep, wake):
    cats = ("物理", "环境", "社会")
    judge = judge_yaml(server.url, "text", sleep_mode=True, footprint_mb=1000, **paths)
    cfg, out = write_config(tmp_path, server.url, "text", categories=cats, per_category=1, judge=judge)
    r = two_stage(cfg)
    assert r.returncode == 0, r.stderr
    rep = report(out)
    sleeps = [e for e in server.log if e["path"] == sleep and e["method"] == "POST" and e["status"] == 200]
    wakes = [e for e in server.log if e["path"] == wake and e["method"] == "POST" and e["status"] == 200]
    jm = rep["swaps"]["by_model"]["judge"]
    assert len(wakes) == jm["loads"] == len(cats)
    assert len(sleeps) == jm["unloads"] == len(cats)
    assert rep["swaps"]["count"] == 2 * len(cats) - 1
    # each category's scores come between a wake and the next sleep
    seq = [e["path"] for e in server.log]
    assert seq[0] == wake and seq[-1] == sleep
    assert seq == [wake, "/v1/chat/completions", sleep] * len(cats)


def test_sleep_mode_without_server_support_fails_the_load(binary, tmp_path):
    with FakeOpenAI() as srv:
        srv.down = True
        judge = judge_yaml(srv.url, "text", sleep_mode=True, retries=0)
        cfg, out = write_config(tmp_path, srv.url, "text", per_category=1, judge=judge)
        r = two_stage(cfg)
    # a server that does not wake up stops the run (resumable); no pair is blamed
    assert r.returncode == 1
    assert "load failed" in r.stderr and "/wake_up" in r.stderr and "VLLM_SERVER_DEV_MODE=1" in r.stderr
    with open(os.path.join(out, "journal.jsonl"), encoding="utf-8") as f:
        assert '"stage":"score"' not in f.read().replace(" ", "")


# ---- editor over /v1/images/edits ---------------------------------------------------

def editor_yaml(url, model, **opts):
    o = {"backend": "http", "base_url": url + "/v1", "model": model, "retries": 1, "backoff_s": 0.05}
    o.update(opts)
    return json.dumps(o)


def test_editor_b64_json(binary, server, tmp_path):
    cfg, out = write_config(tmp_path, server.url, "text", per_category=2,
                            editor=editor_yaml(server.url, "edit-b64", extra_body={"size": "40x30", "steps": 8}))
    r = two_stage(cfg)
    assert r.returncode == 0, r.stderr
    edits = server.requests("/v1/images/edits")
    assert len(edits) == 2
    for e in edits:
        assert e["prompt"] == "make the sky red"
        assert e["fields"]["model"] == "edit-b64" and e["fields"]["response_format"] == "b64_json"
        assert e["fields"]["size"] == "40x30" and e["fields"]["steps"] == "8"
    rep = report(out)
    for p, e in zip(sorted(rep["pairs"], key=lambda p: p["id"]), edits):
        with Image.open(os.path.join(out, p["image"])) as saved, Image.open(io.BytesIO(e["upload"])) as up:
            inv = Image.eval(up.convert("RGB"), lambda v: 255 - v)
            assert saved.convert("RGB").tobytes() == inv.tobytes()


def test_editor_several_pictures_as_image_array(binary, server, tmp_path):
    """m:edit({a, b}) uploads image[] parts in order (OpenAI's form for
    several images, what Edit-2509 servers take); one picture stays `image`."""
    from test_native_parity import run_lua
    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "a.png")
    Image.new("RGB", (20, 50), (10, 200, 10)).save(tmp_path / "b.png")
    body = """
local a = must(eh.image.load(P.dir .. "/a.png"))
local b = must(eh.image.load(P.dir .. "/b.png"))
local m = must(eh.model.open({backend = "http", base_url = P.base, model = "edit-b64", retries = 1}, "editor"))
m:load()
local two = must(m:edit({a, b}, "put b into a"))
local one = must(m:edit({a}, "only a"))
local many = {}
for i = 1, 17 do many[i] = a end
local _, e17 = m:edit(many, "too many")
out({two = {two:size()}, one = {one:size()}, e17 = e17})
"""
    (res,), _ = run_lua(tmp_path, body, {"dir": str(tmp_path), "base": server.url + "/v1"})
    edits = server.requests("/v1/images/edits")
    assert len(edits) == 2, edits   # the 17-picture request never left
    sizes = [[Image.open(io.BytesIO(u)).size for u in e["uploads"]] for e in edits]
    assert sizes == [[(40, 30), (20, 50)], [(40, 30)]], sizes
    assert res["two"] == [40, 30] and res["one"] == [40, 30]   # the fake inverts the first picture
    assert "17 input images (at most 16 per upload)" in res["e17"], res


def test_two_stage_more_images_field(binary, server, tmp_path):
    """dataset.more_images names a pair field listing further input pictures
    (base64 or a path beside the dataset): two_stage edits with all of them
    (image[] parts in order); a broken entry fails its pair by field and
    index, the others finish."""
    cfg, out = write_config(tmp_path, server.url, "text", per_category=3,
                            editor=editor_yaml(server.url, "edit-b64"), extra="dataset:\n  more_images: refs\n")
    data = str(tmp_path / "bench.json")
    with open(data, encoding="utf-8") as f:
        doc = json.load(f)
    Image.new("RGB", (24, 36), (0, 0, 255)).save(tmp_path / "ref.png")
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (255, 255, 0)).save(buf, "PNG")
    b64 = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    pairs = doc["物理"]["data_pairs"]
    pairs[0]["refs"] = [b64, "ref.png"]
    pairs[1]["refs"] = ["missing.png"]
    with open(data, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False)
    r = two_stage(cfg)
    assert r.returncode == 1, r.stderr    # one pair failed, recorded
    edits = server.requests("/v1/images/edits")
    sizes = sorted(tuple(Image.open(io.BytesIO(u)).size for u in e["uploads"]) for e in edits)
    assert len(edits) == 2 and sizes[1][1:] == ((16, 16), (24, 36)) and len(sizes[0]) == 1, sizes
    rep = by_id(report(out))
    assert rep[("物理", "pair_001")]["score"] is not None and rep[("物理", "pair_003")]["score"] is not None
    err = rep[("物理", "pair_002")]["error"]
    assert "refs[1]:" in err and "missing.png" in err, err


def test_editor_url_only_when_allowed_and_garbage_refused(binary, server, tmp_path):
    for sub, model, opts, ok in (("deny", "edit-url", {}, False), ("allow", "edit-url", {"allow_url_fetch": True}, True),
                                 ("garbage", "edit-garbage", {}, False)):
        (tmp_path / sub).mkdir()
        cfg, out = write_config(tmp_path / sub, server.url, "text", per_category=1,
                                editor=editor_yaml(server.url, model, **opts))
        r = two_stage(cfg)
        (p,) = report(out)["pairs"]
        if ok:
            assert r.returncode == 0 and p["score"] is not None, r.stderr
        else:
            assert r.returncode == 1 and p["score"] is None and p["image"] is None
    fetched = [e for e in server.log if e["path"].startswith("/files/")]
    assert len(fetched) == 1   # only the allowed run fetched
    deny, garbage = report(str(tmp_path / "deny" / "out")), report(str(tmp_path / "garbage" / "out"))
    assert "set allow_url_fetch: true" in deny["pairs"][0]["error"]
    assert "edited image in the reply: not an image" in garbage["pairs"][0]["error"], garbage["pairs"][0]["error"]
