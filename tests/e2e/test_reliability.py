"""Nothing lost, round two (issue 20): each numbered case of the issue fed to
the built binary, checking the message, the exit code, and that --resume
afterwards gives the uninterrupted run's report.

Builtin models (params.delay_ms slows them, so that a real signal lands while
editing or scoring) and the fake OpenAI server on 127.0.0.1 (bounded in
requests and time) stand in for the real ones.

Environment: EVALHOST_BIN (default build/evalhost), EVALHOST_SRC (repo root).
"""
import base64
import contextlib
import glob
import io
import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import time

import pytest
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_openai_server import FakeOpenAI, expected_score  # noqa: E402

SRC = os.environ.get("EVALHOST_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("EVALHOST_BIN") or os.path.join(SRC, "build", "evalhost")
TWO_STAGE = os.path.join(SRC, "scripts", "two_stage.lua")
MERGE = os.path.join(SRC, "scripts", "merge.lua")


@pytest.fixture(scope="module", autouse=True)
def binary():
    if not os.access(BIN, os.X_OK):
        pytest.fail("evalhost binary not found at %s (build it or set EVALHOST_BIN)" % BIN)


def png_b64(seed, w=24, h=16):
    rng = random.Random(seed)
    img = Image.new("RGB", (w, h), tuple(rng.randrange(256) for _ in range(3)))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def bench(path, cats, ids=None, per_category=3, extra=None):
    """cats: {name: [id, ...]} or a list of names (ids pair_001..)."""
    if not isinstance(cats, dict):
        cats = {c: ["pair_%03d" % (i + 1) for i in range(per_category)] for c in cats}
    doc = {}
    k = 0
    for cat, ids in cats.items():
        pairs = []
        for pid in ids:
            k += 1
            p = {"id": pid, "original_image_b64": png_b64(k), "edit_instruction": "make it red",
                 "original_description": "a test picture"}
            p.update((extra or {}).get(pid, {}))
            pairs.append(p)
        doc[cat] = {"data_pairs": pairs}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False)
    return path


def config(tmp, data, out, editor="{backend: builtin, name: identity}", judge="{backend: builtin, name: metrics}",
           extra=""):
    cfg = os.path.join(str(tmp), "config.yaml")
    with open(cfg, "w", encoding="utf-8") as f:
        f.write("benchmark:\n  data_path: %s\n" % json.dumps(str(data)))
        f.write("editor: %s\njudge: %s\n" % (editor, judge))
        f.write("run:\n  out: %s\nreport:\n  bootstrap: {resamples: 20}\n" % json.dumps(str(out)))
        f.write(extra)
    return cfg


def run(cfg, *args, timeout=120, script=TWO_STAGE):
    return subprocess.run([BIN, script, cfg, *args], cwd=SRC, capture_output=True, text=True, timeout=timeout)


def reports(out):
    return sorted(glob.glob(os.path.join(str(out), "results", "evaluation_report_*.json")))


def report(out):
    files = reports(out)
    assert len(files) >= 1, "no report in %s" % out
    with open(files[-1], encoding="utf-8") as f:
        return json.load(f)


def results(out):
    """What a report says about each pair, without times."""
    return sorted((p["category"], p["id"], p.get("score"), p.get("error")) for p in report(out)["pairs"])


def journal(out):
    with open(os.path.join(str(out), "journal.jsonl"), "rb") as f:
        data = f.read()
    data.decode("utf-8")   # strict: the journal is valid UTF-8
    return [json.loads(l) for l in data.splitlines()]


# ---- 1. an id of 244-256 bytes --------------------------------------------------

@pytest.mark.parametrize("n", [244, 250, 256])
def test_long_id_is_saved_as_prefix_and_hash_and_resumes(tmp_path, n):
    long_id = "i" * (n - 4) + "-é" + "x"   # a multi-byte character near the cut
    long_id = long_id[: n - (len(long_id.encode()) - len(long_id))]
    assert len(long_id.encode()) <= n
    data = bench(tmp_path / "b.json", {"c": [long_id, "short"]})
    out = tmp_path / "out"
    cfg = config(tmp_path, data, out)
    r = run(cfg)
    assert r.returncode == 0, r.stderr
    edits = {l["id"]: l["record"] for l in journal(out) if l.get("stage") == "edit"}
    img = edits[long_id]["image"]
    stem = os.path.basename(img)[:-4]
    assert len(stem.encode()) <= 160 and "~" in stem and stem.startswith("iiii"), stem
    assert os.path.isfile(os.path.join(str(out), img))
    assert edits["short"]["image"] == "images/c/short.png"
    ref = results(out)
    assert all(s is not None for _, _, s, _ in ref)
    r = run(cfg, "--resume")
    assert r.returncode == 0, r.stderr
    assert results(out) == ref


# ---- 2. a NUL (or control character) in a category name ---------------------------

@pytest.mark.parametrize("name, shown, what", [("a\u0000b", "a\\x00b", "NUL byte"),
                                               ("a\u001b[31mb", "a\\x1b[31mb", "control character")])
def test_control_character_in_a_category_fails_by_name_at_open(tmp_path, name, shown, what):
    data = bench(tmp_path / "b.json", [name, "ok"])
    out = tmp_path / "out"
    cfg = config(tmp_path, data, out)
    r = run(cfg, "--set", "benchmark.categories=[ok]")   # even when the bad category is not chosen
    assert r.returncode == 1, r.stderr
    assert 'category "%s" holds a %s' % (shown, what) in r.stderr, r.stderr
    assert "attempt to" not in r.stderr and "traceback" not in r.stderr.lower()
    assert "\x1b[31m" not in r.stderr and "\x00" not in r.stderr


# ---- 3. merge takes nothing on trust --------------------------------------------------

@pytest.mark.parametrize("bad, why", [(99, "score 99 is outside 0..10"), (-50, "score -50 is outside 0..10"),
                                      ("1e999", "score inf is not finite"), ('"7"', 'score "7" is not a number'),
                                      ('{"a": 1}', "score (a table) is not a number")])
def test_merge_checks_every_shard_record(tmp_path, bad, why):
    data = bench(tmp_path / "b.json", ["c"], per_category=4)
    out = tmp_path / "out"
    cfg = config(tmp_path, data, out)
    for i in range(2):
        r = run(cfg, "--shard", "%d/2" % i)
        assert r.returncode == 0, r.stderr
    shard0 = os.path.join(str(out), "shard-0-of-2")
    path = os.path.join(shard0, "journal.jsonl")
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    k = next(i for i, l in enumerate(lines) if '"stage":"score"' in l and '"type":"step"' in l)
    rec = json.loads(lines[k])
    victim = rec["id"]
    lines[k] = lines[k].replace('"score":%s' % json.dumps(rec["record"]["score"]), '"score":%s' % bad, 1)
    assert lines[k] != json.dumps(rec)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    merged = tmp_path / "merged"
    r = run(cfg, "--set", "merge.inputs=[%s]" % out, "--set", "run.out=%s" % merged, script=MERGE)
    assert r.returncode == 1, r.stderr
    assert "%s line %d: c/%s score: %s" % (path, k + 1, victim, why) in r.stderr, r.stderr
    rep = report(merged)
    pairs = {p["id"]: p for p in rep["pairs"]}
    assert pairs[victim]["score"] is None and why in pairs[victim]["error"]
    good = [p["score"] for p in rep["pairs"] if p["id"] != victim]
    assert len(good) == 3 and all(0 <= s <= 10 for s in good)
    mean = rep["overall"]["mean"]
    assert mean is not None and 0 <= mean <= 10
    for f in glob.glob(os.path.join(str(merged), "results", "*.html")):
        assert os.path.getsize(f) > 0


def test_resume_checks_its_own_journal(tmp_path):
    data = bench(tmp_path / "b.json", ["c"], per_category=3)
    out = tmp_path / "out"
    cfg = config(tmp_path, data, out)
    assert run(cfg).returncode == 0
    ref = results(out)
    path = os.path.join(str(out), "journal.jsonl")
    with open(path, encoding="utf-8") as f:
        lines = [json.loads(l) for l in f.read().splitlines()]
    k = next(i for i, l in enumerate(lines) if l.get("stage") == "edit" and l["id"] == "pair_001")
    lines[k]["record"]["image"] = "../../etc/passwd"
    q = next(i for i, l in enumerate(lines) if l.get("stage") == "score" and l["id"] == "pair_002")
    lines[q]["record"]["score"] = "7"
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(json.dumps(l, ensure_ascii=False) + "\n" for l in lines))
    r = run(cfg, "--resume")
    assert r.returncode == 1, r.stderr
    # the edit naming a file outside is never read but redone (and scored again) ...
    assert '%s line %d: c/pair_001 edit: image "../../etc/passwd" leaves the run folder, so it is not where this run keeps its images; redoing the edit' % (
        path, k + 1) in r.stderr, r.stderr
    # ... a score that is no number fails its pair by file and line
    msg = '%s line %d: c/pair_002 score: score "7" is not a number' % (path, q + 1)
    assert msg in r.stderr, r.stderr
    got = {i: (sc, e) for _, i, sc, e in results(out)}
    want = {i: (sc, e) for _, i, sc, e in ref}
    assert got["pair_001"] == want["pair_001"] and got["pair_003"] == want["pair_003"]
    assert got["pair_002"][0] is None and msg in got["pair_002"][1]


# ---- 4.-7. text and faults from a server ----------------------------------------------

def http_judge(url, model, **opts):
    o = {"backend": "http", "base_url": url, "model": model, "retries": 1, "backoff_s": 0.05, "timeout_s": 10,
         "connect_timeout_s": 2, "logprobs": False}
    o.update(opts)
    return json.dumps(o)


PROMPTS = ('prompts:\n  templates:\n    default:\n      system: "Rate the edit."\n'
           '      user: "id={{id}} instruction={{instruction}}. End with Score: N"\n')


def test_invalid_utf8_in_a_reply_is_replaced_and_the_score_found(tmp_path):
    with FakeOpenAI() as srv:
        data = bench(tmp_path / "b.json", ["c"], per_category=2)
        out = tmp_path / "out"
        cfg = config(tmp_path, data, out, judge=http_judge(srv.url, "badutf8"), extra=PROMPTS)
        r = run(cfg)
        assert r.returncode == 0, r.stderr
        for p in report(out)["pairs"]:
            assert p["score"] == expected_score(p["id"])
            assert "\ufffd" in p["text"] and "\ud800" not in p["text"]
        journal(out)   # strictly valid UTF-8
        for d, _, files in os.walk(os.path.join(str(out), "results")):
            for f in files:
                if f.endswith((".json", ".md", ".html", ".jsonl")):
                    with open(os.path.join(d, f), "rb") as fh:
                        fh.read().decode("utf-8")


def test_reply_text_is_capped_by_max_reply_chars(tmp_path):
    with FakeOpenAI() as srv:
        data = bench(tmp_path / "b.json", ["c"], per_category=2)
        out = tmp_path / "out"
        cfg = config(tmp_path, data, out, judge=http_judge(srv.url, "hugetext"),
                     extra=PROMPTS + "limits:\n  max_reply_chars: 1000\n")
        r = run(cfg)
        assert r.returncode == 0, r.stderr
        for p in report(out)["pairs"]:
            assert p["score"] == expected_score(p["id"])   # parsed whole: the score is at the end
            assert len(p["text"]) < 1100 and "cut at limits.max_reply_chars = 1000" in p["text"]
        assert os.path.getsize(os.path.join(str(out), "journal.jsonl")) < 50000


def test_server_faults_are_transient_and_resume_retries_them(tmp_path):
    """A malformed body is the server's: retried, then recorded as not final; --resume retries it."""
    with FakeOpenAI() as srv:
        data = bench(tmp_path / "b.json", ["c"], per_category=2)
        out = tmp_path / "out"
        cfg = config(tmp_path, data, out, judge=http_judge(srv.url, "malformed", breaker_after=0), extra=PROMPTS)
        r = run(cfg)
        assert r.returncode == 1, r.stderr
        rep = report(out)
        assert all("malformed JSON reply" in p["error"] for p in rep["pairs"]), rep["pairs"]
        # one retry each: the failure was treated as the server's
        assert len(srv.requests()) == 2 * 2
        scores = [l for l in journal(out) if l.get("stage") == "score"]
        assert all(l["record"].get("code") == "ENET" for l in scores)
    with FakeOpenAI() as srv:   # the server is fixed: resume scores the same pairs
        cfg = config(tmp_path, data, out, judge=http_judge(srv.url, "malformed-once", breaker_after=0),
                     extra=PROMPTS)
        r = run(cfg, "--resume=force")
        assert r.returncode == 0, r.stderr
        assert all(p["score"] == expected_score(p["id"]) for p in report(out)["pairs"])


def test_infinite_logprob_on_the_score_digit_gives_the_text_score(tmp_path):
    with FakeOpenAI() as srv:
        data = bench(tmp_path / "b.json", ["c"], per_category=3)
        out = tmp_path / "out"
        cfg = config(tmp_path, data, out, judge=http_judge(srv.url, "inflogprob", logprobs=True), extra=PROMPTS)
        r = run(cfg)
        assert r.returncode == 0, r.stderr
        for p in report(out)["pairs"]:
            assert p["score"] is not None and p["score"] == p["score"]
            assert 0 <= p["score"] <= 10


def test_silent_server_trips_the_breaker_by_attempts_not_requests(tmp_path):
    with FakeOpenAI() as srv:
        data = bench(tmp_path / "b.json", ["c"], per_category=6)
        out = tmp_path / "out"
        judge = http_judge(srv.url, "silent", first_byte_timeout_s=0.5, retries=3, breaker_after=3,
                           max_in_flight=1, batch_size=1)
        cfg = config(tmp_path, data, out, judge=judge, extra=PROMPTS)
        t0 = time.monotonic()
        r = run(cfg)
        took = time.monotonic() - t0
        assert r.returncode == 1, r.stderr
        assert "no reply within first_byte_timeout_s (0.5 s)" in r.stderr, r.stderr
        assert "3 attempts in a row failed" in r.stderr, r.stderr
        assert "judge: judge:" not in r.stderr
        # 3 attempts of 0.5 s, not 3 requests x 4 attempts of the 10 s timeout
        assert took < 20, took
        assert not reports(out)


# ---- 8. a FIFO or a link to /dev/zero where an edited image was ------------------------

@pytest.mark.parametrize("kind", ["fifo", "devzero"])
def test_resume_does_not_hang_on_a_fifo_or_a_device(tmp_path, kind):
    data = bench(tmp_path / "b.json", ["c"], per_category=3)
    out = tmp_path / "out"
    cfg = config(tmp_path, data, out)
    assert run(cfg).returncode == 0
    ref = results(out)
    img = os.path.join(str(out), "images", "c", "pair_002.png")
    os.remove(img)
    if kind == "fifo":
        os.mkfifo(img)
    else:
        os.symlink("/dev/zero", img)
    r = run(cfg, "--resume", timeout=60)
    assert r.returncode == 0, r.stderr
    assert "redoing the edit of c/pair_002" in r.stderr
    assert results(out) == ref
    assert stat.S_ISREG(os.lstat(img).st_mode)


# ---- files: no folder below the run folder is followed either ----------------------------

def probe(tmp_path, code):
    script = tmp_path / "probe.lua"
    script.write_text(code, encoding="utf-8")
    return subprocess.run([BIN, str(script)], cwd=SRC, capture_output=True, text=True, timeout=60)


def test_reads_with_a_depth_refuse_a_symlinked_intermediate_folder(tmp_path):
    """The C rule itself: images/c swapped for a link to a folder holding the same file."""
    real = tmp_path / "elsewhere"
    real.mkdir()
    (real / "x.png").write_bytes(b"not an image, just bytes")
    (tmp_path / "run" / "images").mkdir(parents=True)
    os.symlink(str(real), str(tmp_path / "run" / "images" / "c"))
    path = str(tmp_path / "run" / "images" / "c" / "x.png")
    r = probe(tmp_path, """
local h, path = evalhost, %s
local function show(tag, ...) print(tag, select('#', ...) > 1 and select(2, ...) or tostring((...))) end
show("hash3", h.hash_file(path, { no_follow = true, depth = 3 }))
show("read3", h.fs.read(path, nil, { no_follow = true, depth = 3 }))
show("open3", h.fs.open(path, { no_follow = true, depth = 3 }))
show("image3", h.image.load(path, { no_follow = true, depth = 3 }))
show("hash1", h.hash_file(path, { no_follow = true }))
local f = assert(h.fs.open(path, { no_follow = true, depth = 1 }))
print("open1", f:read("a"))
f:close()
show("baddepth", pcall(h.hash_file, path, { no_follow = true, depth = -1 }))
""" % json.dumps(path))
    assert r.returncode == 0, r.stderr
    out = dict(l.split("\t", 1) for l in r.stdout.splitlines())
    for k in ("hash3", "read3", "open3", "image3"):
        assert "folder c is a symbolic link (refused" in out[k], (k, out[k])
    # depth 1: only the file itself is not followed (the run folder above may be a link the user made)
    assert len(out["hash1"]) >= 16 and "refused" not in out["hash1"]
    assert out["open1"] == "not an image, just bytes"
    assert "depth must be 0..64" in out["baddepth"]


@pytest.mark.parametrize("folder", ["images", "images/c"])
def test_resume_refuses_edited_images_behind_a_symlinked_folder(tmp_path, folder):
    """images/ or images/c/ replaced by a link to a copy (same bytes, same hashes): resume does not
    trust the copy, and writes nothing through the link; without the link it finishes as before."""
    data = bench(tmp_path / "b.json", ["c"], per_category=3)
    out = tmp_path / "out"
    cfg = config(tmp_path, data, out)
    assert run(cfg).returncode == 0
    ref = results(out)
    inside = os.path.join(str(out), folder)
    copy = str(tmp_path / "copy")
    shutil.copytree(inside, copy)
    shutil.rmtree(inside)
    os.symlink(copy, inside)
    before = {n: open(os.path.join(dp, n), "rb").read() for dp, _, ns in os.walk(copy) for n in ns}
    r = run(cfg, "--resume", timeout=60)
    assert r.returncode == 1, r.stderr
    name = os.path.basename(folder)
    assert "folder %s is a symbolic link (refused: files in the run folder are read as they are)" % name in r.stderr
    assert all("redoing the edit of c/pair_%03d" % i in r.stderr for i in (1, 2, 3)), r.stderr
    assert "is a symbolic link (refused: nothing is written outside" in r.stderr
    assert "Traceback" not in r.stderr and "stack traceback" not in r.stderr
    after = {n: open(os.path.join(dp, n), "rb").read() for dp, _, ns in os.walk(copy) for n in ns}
    assert after == before
    assert not os.path.exists(os.path.join(str(out), ".lock"))
    os.remove(inside)
    r = run(cfg, "--resume", timeout=60)
    assert r.returncode == 0, r.stderr
    assert results(out) == ref
    assert not os.path.islink(inside)


# ---- 9. control characters from ids never reach the log raw -----------------------------

def test_control_characters_in_ids_are_escaped_in_the_log(tmp_path):
    data = bench(tmp_path / "b.json", {"c": ["ok_1", "bad\u001b[2J\nforged [error] line", "ok_2"]})
    out = tmp_path / "out"
    cfg = config(tmp_path, data, out)
    r = run(cfg)
    assert r.returncode == 1, r.stderr
    assert "\x1b[2J" not in r.stderr
    assert not any(l.startswith("forged") for l in r.stderr.splitlines())
    assert "unsafe id" in r.stderr


# ---- 10. signals ---------------------------------------------------------------------------

def slow_config(tmp_path, n=6, edit_ms=300, score_ms=300):
    data = bench(tmp_path / "b.json", ["c1", "c2"], per_category=n)
    out = tmp_path / "out"
    cfg = config(tmp_path, data, out, editor="{backend: builtin, name: identity, params: {delay_ms: %d}}" % edit_ms,
                 judge="{backend: builtin, name: metrics, params: {delay_ms: %d}}" % score_ms)
    return cfg, out


def wait_for(out, stage, count, proc, limit=60):
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        assert proc.poll() is None, proc.communicate()
        try:
            with open(os.path.join(str(out), "journal.jsonl"), encoding="utf-8") as f:
                n = sum(1 for l in f if '"stage":"%s"' % stage in l)
        except FileNotFoundError:
            n = 0
        if n >= count:
            return
        time.sleep(0.05)
    raise AssertionError("no %d %s steps in %s s" % (count, stage, limit))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ref")
    cfg, out = slow_config(tmp, edit_ms=0, score_ms=0)
    r = run(cfg)
    assert r.returncode == 0, r.stderr
    rep = report(out)
    return results(out), rep["swaps"]


@pytest.mark.parametrize("sig, code, stage", [(signal.SIGINT, 130, "edit"), (signal.SIGTERM, 143, "score"),
                                              (signal.SIGHUP, 129, "edit")])
def test_a_signal_stops_after_the_item_and_resume_gives_the_same_report(tmp_path, uninterrupted, sig, code, stage):
    cfg, out = slow_config(tmp_path)
    p = subprocess.Popen([BIN, TWO_STAGE, cfg], cwd=SRC, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(out, stage, 2, p)
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert p.returncode == code, err
    assert "interrupted: resume with --resume" in err
    assert "Traceback" not in err and "stack traceback" not in err
    assert not os.path.exists(os.path.join(str(out), ".lock"))
    assert not reports(out) and not glob.glob(os.path.join(str(out), "results", "*"))
    lines = journal(out)
    runs = [l for l in lines if l["type"] == "run"]
    assert len(runs) == 1 and "swaps" in runs[0]["record"]
    r = run(cfg, "--resume")
    assert r.returncode == 0, r.stderr
    ref, ref_swaps = uninterrupted
    assert results(out) == ref
    rep = report(out)
    assert rep["swaps"]["processes"] == 2 and "whole run" in rep["swaps"]["covers"]
    # the whole run's exchanges: exactly the uninterrupted run's (editor -> judge -> editor -> judge
    # over two categories), the first process's journaled ones plus the second's; the moves are the
    # uninterrupted run's plus the one load the resumed process needs to start again
    first = runs[0]["record"]["swaps"]
    assert rep["swaps"]["count"] == ref_swaps["count"] == 3, (rep["swaps"], ref_swaps)
    assert rep["swaps"]["moves"] == ref_swaps["moves"] + 1
    second = [l for l in journal(out) if l["type"] == "run"][1]["record"]["swaps"]
    assert rep["swaps"]["count"] == first["count"] + second["count"]
    for model, m in rep["swaps"]["by_model"].items():
        assert m["loads"] == ref_swaps["by_model"][model]["loads"] + (1 if model == ("editor" if stage == "edit" else "judge")
                                                                  else 0), (model, m, ref_swaps)
    # every pair's edit and score counted once over the two processes
    t = rep["timings"]
    assert t["processes"] == 2 and "whole run" in t["covers"]
    edited = sum(l["record"]["timings"]["edited"] for l in journal(out) if l["type"] == "run")
    scored = sum(l["record"]["timings"]["scored"] for l in journal(out) if l["type"] == "run")
    assert edited == scored == len(ref)


def count_steps(out, stage):
    try:
        with open(os.path.join(str(out), "journal.jsonl"), encoding="utf-8") as f:
            return sum(1 for l in f if '"stage":"%s"' % stage in l)
    except FileNotFoundError:
        return 0


def saved_edits(out):
    return sorted(glob.glob(os.path.join(str(out), "images", "*", "*.png")))


@pytest.mark.parametrize("sig, code, stage, judge", [
    (signal.SIGINT, 130, "edit", None), (signal.SIGTERM, 143, "score", None), (signal.SIGHUP, 129, "score", "http"),
    (signal.SIGTERM, 143, "score", "http4")])
def test_a_signal_during_a_model_call_lets_the_call_finish(tmp_path, uninterrupted, sig, code, stage, judge):
    """The signal lands 0.5 s into a 1.5 s model call (builtin delay_ms, or the fake server's
    latency for an http judge): the call is not cut short, its result is saved and journaled, no
    further item starts, and the run stops, releases .lock and resumes to the uninterrupted report."""
    call = 1.5
    batch = 4 if judge == "http4" else 1   # http4: four requests in flight at once, all finish
    # whole batches only (8 = 2 x 4): whichever batch the signal lands in holds `batch` pairs
    data = bench(tmp_path / "b.json", ["c1", "c2"], per_category=8 if batch > 1 else 6)
    out = tmp_path / "out"
    with contextlib.ExitStack() as stack:
        srv = stack.enter_context(FakeOpenAI(latency=call, spread=False)) if judge else None
        judge_cfg = (http_judge(srv.url, "text", batch_size=batch) if srv else
                     "{backend: builtin, name: metrics, params: {delay_ms: %d}}" % (call * 1000 if stage == "score" else 0))
        cfg = config(tmp_path, data, out, judge=judge_cfg, extra=PROMPTS if srv else "",
                     editor="{backend: builtin, name: identity, params: {delay_ms: %d}}" % (call * 1000 if stage == "edit" else 0))
        p = subprocess.Popen([BIN, TWO_STAGE, cfg], cwd=SRC, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(out, stage, 1, p)
        # a step just ended (its line or its image appeared); the next call is under way: land mid-call
        marker = (lambda: len(saved_edits(out))) if stage == "edit" else (lambda: count_steps(out, stage))
        n = marker()
        t0 = time.monotonic()
        while marker() == n:
            assert time.monotonic() - t0 < 10 * call, "no step ended"
            time.sleep(0.01)
        time.sleep(call / 3)
        done_before = marker()
        t_sig = time.monotonic()
        p.send_signal(sig)
        _, err = p.communicate(timeout=60)
        waited = time.monotonic() - t_sig
        assert p.returncode == code, err
        assert "interrupted: resume with --resume" in err and "stopping after the item under way" in err
        assert "Traceback" not in err and "stack traceback" not in err
        assert not os.path.exists(os.path.join(str(out), ".lock"))
        assert not reports(out)
        # the call under way ran to its end (about call*2/3 more), and no further call started
        assert waited >= call / 2, waited
        assert waited < call * 1.5, waited
        assert marker() == done_before + batch, (marker(), done_before)
        assert count_steps(out, stage) == done_before + batch   # its results journaled, not lost
        if stage == "edit":
            assert count_steps(out, "score") == 0
        if srv:
            srv.latency = 0
        r = run(cfg, "--resume")
        assert r.returncode == 0, r.stderr
        if srv is None:
            assert results(out) == uninterrupted[0]
        else:
            assert all(sc == expected_score(i) and e is None for _, i, sc, e in results(out))
        assert report(out)["swaps"]["processes"] == 2


def test_a_second_signal_exits_at_once(tmp_path):
    cfg, out = slow_config(tmp_path, edit_ms=3000)
    p = subprocess.Popen([BIN, TWO_STAGE, cfg], cwd=SRC, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(out, "edit", 1, p)
    p.send_signal(signal.SIGINT)
    time.sleep(0.2)
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    assert time.monotonic() - t0 < 2.0   # not after the 3 s edit under way
    assert p.returncode == 130, err
    assert "second signal" in err


# ---- 13. more_images contained ---------------------------------------------------------------

@pytest.mark.parametrize("entry", ["/etc/hostname", "../outside.png", "link.png"])
def test_more_images_outside_the_dataset_folder_are_refused(tmp_path, entry):
    d = tmp_path / "data"
    d.mkdir()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(str(tmp_path / "outside.png"))
    os.symlink(str(tmp_path / "outside.png"), str(d / "link.png"))
    data = bench(d / "b.json", {"c": ["p1", "p2"]}, extra={"p1": {"more": [entry]}})
    out = tmp_path / "out"
    cfg = config(tmp_path, data, out, extra="dataset:\n  more_images: more\n")
    r = run(cfg)
    assert r.returncode == 1, r.stderr
    pairs = {p["id"]: p for p in report(out)["pairs"]}
    assert "more[1]" in pairs["p1"]["error"] and "refused" in pairs["p1"]["error"], pairs["p1"]["error"]
    assert pairs["p2"]["score"] is not None


# ---- 13. a report that fails half-way leaves none ----------------------------------------------

def test_a_failed_report_write_leaves_no_report_files(tmp_path):
    data = bench(tmp_path / "b.json", ["c"], per_category=3)
    out = tmp_path / "out"
    cfg = config(tmp_path, data, out)
    os.makedirs(os.path.join(str(out), "results", "latest.json"))   # the last file renamed into place fails
    r = run(cfg, "--resume")   # the folder is not empty; nothing to replay yet
    assert r.returncode == 1, r.stderr
    assert "report: cannot write" in r.stderr, r.stderr
    assert not glob.glob(os.path.join(str(out), "results", "evaluation_report_*")), os.listdir(
        os.path.join(str(out), "results"))
    assert not glob.glob(os.path.join(str(out), "results", "*.tmp"))
    os.rmdir(os.path.join(str(out), "results", "latest.json"))
    r = run(cfg, "--resume")
    assert r.returncode == 0, r.stderr
    assert all(s is not None for _, _, s, _ in results(out))
