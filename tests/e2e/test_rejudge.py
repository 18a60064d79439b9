"""Judge-only re-runs (scripts/rejudge.lua) and edit reuse
(run.reuse_edits_from) through the built binary.

A first run edits and scores with the builtin models; rejudge then scores
its edits with another judge -- the loopback OpenAI-compatible server
(fake_openai_server.py), whose score for pair_NNN is known in advance -- and
the tests check that the editor never ran (no model exchange, no edit time,
no edit request, every edit record taken from the source with its origin)
and that every score is the new judge's. reuse_edits_from reruns a
benchmark in which two instructions changed and must edit exactly those.

Environment: EVALHOST_BIN (default build/evalhost), EVALHOST_SRC (repo root).
"""
import glob
import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_openai_server import FakeOpenAI, expected_score  # noqa: E402
from test_http_backend import bench_doc, report  # noqa: E402  (the same small test pictures, one report reader)

SRC = os.environ.get("EVALHOST_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("EVALHOST_BIN") or os.path.join(SRC, "build", "evalhost")
CATS = ["物理", "环境"]
INSTR = ["make the sky red", "flip horizontally", "blur the picture", "brighten the room"]


def make_doc(per_category=4, seed=7):
    return bench_doc(CATS, per_category, seed, INSTR)


def write_json(path, doc):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False)
    return str(path)


def http_judge(url, model="text"):
    return json.dumps({"backend": "http", "base_url": url, "model": model, "retries": 1, "backoff_s": 0.05,
                       "timeout_s": 10, "connect_timeout_s": 2})


def config(tmp, name, data, judge="{backend: builtin, name: metrics}", editor="{backend: builtin, name: imageops}"):
    path = tmp / name
    t = '    %s: {system: "Compare the images.", user: "id={{id}} instruction={{instruction}}. Score: N"}\n'
    with open(path, "w", encoding="utf-8") as f:
        f.write("benchmark:\n  data_path: %s\n  categories: %s\n" % (json.dumps(data), json.dumps(CATS, ensure_ascii=False)))
        f.write("editor: %s\njudge: %s\n" % (editor, judge))
        f.write("report:\n  bootstrap: {resamples: 50}\n")
        f.write("prompts:\n  templates:\n" + "".join(t % c for c in CATS))
    return str(path)


def run(script, cfg, *sets):
    args = [BIN, os.path.join(SRC, "scripts", script), cfg, "--quiet"]
    for s in sets:
        args += ["--set", s]
    return subprocess.run(args, cwd=SRC, capture_output=True, text=True, timeout=60)


def journal(out):
    with open(os.path.join(out, "journal.jsonl"), encoding="utf-8") as f:
        lines = [json.loads(x) for x in f if x.strip()]
    return [x for x in lines if x.get("type") == "step"]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """One builtin run every test rejudges (read-only)."""
    if not os.access(BIN, os.X_OK):
        pytest.fail("evalhost binary not found at %s (build it or set EVALHOST_BIN)" % BIN)
    tmp = tmp_path_factory.mktemp("src")
    data = write_json(tmp / "bench.json", make_doc())
    cfg = config(tmp, "a.yaml", data)
    out = str(tmp / "a")
    r = run("two_stage.lua", cfg, "run.out=" + out)
    assert r.returncode == 0, r.stderr
    return {"tmp": tmp, "data": data, "cfg": cfg, "out": out, "report": report(out)}


def test_rejudge_scores_every_edit_with_the_new_judge_and_never_edits(source, tmp_path):
    with FakeOpenAI() as srv:
        cfg = config(tmp_path, "rj.yaml", source["data"], judge=http_judge(srv.url))
        out = str(tmp_path / "rj")
        r = run("rejudge.lua", cfg, "rejudge.from=" + source["out"], "run.out=" + out)
        assert r.returncode == 0, r.stderr
        assert srv.requests("/v1/images/edits") == []
        assert len(srv.requests()) == 8
    rep = report(out)
    assert rep["swaps"]["count"] == 0
    assert "editor" not in rep["models"] and "editor" not in rep["swaps"].get("by_model", {})
    assert rep["timings"]["edit_seconds"] == 0
    assert rep["run"]["schedule"] == "rejudge"
    assert rep["sources"] == [{"role": "rejudge.from", "dir": source["out"],
                               "run_key": source["report"]["run"]["run_key"], "schedule": "two_stage"}]
    ident = rep["judge_identity"]
    assert (ident["backend"], ident["name"], ident["temperature"], ident["seed"]) == ("http", "text", 0, 0)
    assert set(ident["prompt_templates"]) == set(CATS)
    old = {(p["category"], p["id"]): p for p in source["report"]["pairs"]}
    for p in rep["pairs"]:
        assert p["score"] == expected_score(p["id"]), p
        assert p["provenance"]["score"]["run"] == out
        assert p["provenance"]["edit"] == {"run": source["out"], "run_key": source["report"]["run"]["run_key"]}
        # the very same edited image, copied byte for byte
        with open(os.path.join(out, p["image"]), "rb") as a, open(os.path.join(source["out"], p["image"]), "rb") as b:
            assert a.read() == b.read()
    steps = journal(out)
    edits = [s for s in steps if s["stage"] == "edit"]
    assert len(edits) == 8 and all(s["record"]["from"]["run"] == source["out"] for s in edits)
    # the builtin judge's scores differ from the server's: the rejudge changed them
    assert sum(p["score"] != old[(p["category"], p["id"])]["score"] for p in rep["pairs"]) >= 6


def test_rejudge_only_ids_keeps_the_other_scores_with_their_origin(source, tmp_path):
    with FakeOpenAI() as srv:
        cfg = config(tmp_path, "rj.yaml", source["data"], judge=http_judge(srv.url))
        out = str(tmp_path / "rj")
        r = run("rejudge.lua", cfg, "rejudge.from=" + source["out"], "run.out=" + out,
                "rejudge.only=[pair_002,环境/pair_003]")
        assert r.returncode == 0, r.stderr
        asked = sorted(e["id"] for e in srv.requests())
    # pair_002 in both categories, pair_003 only in 环境
    assert asked == ["pair_002", "pair_002", "pair_003"]
    old = {(p["category"], p["id"]): p for p in source["report"]["pairs"]}
    chosen = {("物理", "pair_002"), ("环境", "pair_002"), ("环境", "pair_003")}
    for p in report(out)["pairs"]:
        k = (p["category"], p["id"])
        if k in chosen:
            assert p["score"] == expected_score(p["id"]) and p["provenance"]["score"]["run"] == out
        else:
            assert p["score"] == old[k]["score"] and p["text"] == old[k]["text"]
            assert p["provenance"]["score"]["run"] == source["out"]


def test_rejudge_failed_rescores_only_the_failures_of_an_earlier_round(source, tmp_path):
    with FakeOpenAI() as srv:
        # round 1: a judge that never gives a score -> every pair failed
        cfg1 = config(tmp_path, "r1.yaml", source["data"], judge=http_judge(srv.url, "noscore"))
        out1 = str(tmp_path / "r1")
        r = run("rejudge.lua", cfg1, "rejudge.from=" + source["out"], "run.out=" + out1)
        assert r.returncode == 1
        assert all("judge reply has no score" in p["error"] for p in report(out1)["pairs"])
        # round 1b: rescore only 物理/pair_001 from the failed round, with a working judge
        cfg2 = config(tmp_path, "r2.yaml", source["data"], judge=http_judge(srv.url, "text"))
        out2 = str(tmp_path / "r2")
        r = run("rejudge.lua", cfg2, "rejudge.from=" + out1, "run.out=" + out2, "rejudge.only=[物理/pair_001]")
        assert r.returncode == 1
        # round 2: only=failed takes the rest; the pair fixed in 1b is kept, with 1b's provenance
        out3 = str(tmp_path / "r3")
        srv.reset_log()
        r = run("rejudge.lua", cfg2, "rejudge.from=" + out2, "run.out=" + out3, "rejudge.only=failed")
        assert r.returncode == 0, r.stderr
        assert len(srv.requests()) == 7
    rep = report(out3)
    assert rep["failures"] == []
    for p in rep["pairs"]:
        assert p["score"] == expected_score(p["id"])
        want = out2 if (p["category"], p["id"]) == ("物理", "pair_001") else out3
        assert p["provenance"]["score"]["run"] == want
        # the edits came from the first run through two rejudges
        assert p["provenance"]["edit"]["run"] == source["out"]


def test_rejudge_bad_input_is_named(source, tmp_path):
    cfg = config(tmp_path, "rj.yaml", source["data"])
    r = run("rejudge.lua", cfg, "run.out=" + str(tmp_path / "x"))
    assert r.returncode == 1
    assert "rejudge: set rejudge.from to an earlier run's folder" in r.stderr
    r = run("rejudge.lua", cfg, "rejudge.from=" + str(tmp_path / "nowhere"), "run.out=" + str(tmp_path / "y"))
    assert r.returncode == 1
    assert "holds neither a journal nor a report" in r.stderr
    # another dataset: refused unless forced
    doc = make_doc(seed=8)
    other = config(tmp_path, "other.yaml", write_json(tmp_path / "other.json", doc))
    r = run("rejudge.lua", other, "rejudge.from=" + source["out"], "run.out=" + str(tmp_path / "z"))
    assert r.returncode == 1
    assert "was made from another dataset" in r.stderr and "rejudge.force=true" in r.stderr
    r = run("rejudge.lua", cfg, "rejudge.from=" + source["out"], "run.out=" + str(tmp_path / "w"),
            "rejudge.only=maybe")
    assert r.returncode == 1 and "rejudge.only must be all, failed or a list of ids" in r.stderr
    r = run("rejudge.lua", cfg, "rejudge.from=" + source["out"], "run.out=" + source["out"])
    assert r.returncode == 1 and "run.out must differ from rejudge.from" in r.stderr
    for d in ("x", "y", "w"):   # refused before any output folder is made
        assert not os.path.exists(tmp_path / d)
    # a tampered edited image is that pair's failure, the rest go on
    import shutil
    src2 = str(tmp_path / "copy")
    shutil.copytree(source["out"], src2)
    with open(os.path.join(src2, "images", "物理", "pair_003.png"), "ab") as f:
        f.write(b"tampered")
    out = str(tmp_path / "t")
    r = run("rejudge.lua", cfg, "rejudge.from=" + src2, "run.out=" + out)
    assert r.returncode == 1
    fails = report(out)["failures"]
    assert len(fails) == 1 and fails[0]["id"] == "pair_003" and "does not match its recorded hash" in fails[0]["error"]


def test_reuse_edits_from_edits_only_the_changed_pairs(source, tmp_path):
    doc = make_doc()
    doc["物理"]["data_pairs"][1]["edit_instruction"] = "flip vertically"   # pair_002
    doc["环境"]["data_pairs"][3]["original_image_b64"] = doc["环境"]["data_pairs"][0]["original_image_b64"]  # pair_004
    data = write_json(tmp_path / "bench2.json", doc)
    cfg = config(tmp_path, "b.yaml", data)
    out = str(tmp_path / "b")
    r = run("two_stage.lua", cfg, "run.out=" + out, "run.reuse_edits_from=" + source["out"])
    assert r.returncode == 0, r.stderr
    edits = {(s["category"], s["id"]): s["record"] for s in journal(out) if s["stage"] == "edit"}
    made = {k for k, rec in edits.items() if "from" not in rec}
    assert made == {("环境", "pair_004"), ("物理", "pair_002")}
    rep = report(out)
    assert rep["timings"]["edits_reused"] == 6
    assert rep["sources"][0]["role"] == "reuse_edits_from"
    for k, rec in edits.items():
        if "from" in rec:
            assert rec["from"]["run"] == source["out"]
            with open(os.path.join(out, rec["image"]), "rb") as a, open(os.path.join(source["out"], rec["image"]), "rb") as b:
                assert a.read() == b.read()
    # the scores of reused pairs equal the source's (same judge, same edit)
    old = {(p["category"], p["id"]): p["score"] for p in source["report"]["pairs"]}
    for p in rep["pairs"]:
        if (p["category"], p["id"]) not in made:
            assert p["score"] == old[(p["category"], p["id"])]
    # another editor config: nothing is reused
    cfg3 = config(tmp_path, "c.yaml", source["data"], editor="{backend: builtin, name: identity}")
    out3 = str(tmp_path / "c")
    r = run("two_stage.lua", cfg3, "run.out=" + out3, "run.reuse_edits_from=" + source["out"])
    assert r.returncode == 0, r.stderr
    assert not any("from" in s["record"] for s in journal(out3) if s["stage"] == "edit")
    r = run("two_stage.lua", cfg3, "run.out=" + str(tmp_path / "d"), "run.reuse_edits_from=" + str(tmp_path / "none"))
    assert r.returncode == 1 and "run.reuse_edits_from: runs:" in r.stderr


def test_report_pins_the_judge_revision_from_the_hf_cache(source, tmp_path):
    """An http judge serving a hub id: its snapshot hash comes from the HF
    cache's refs/main (HF_HUB_CACHE), a revision in the config wins."""
    hub = tmp_path / "hub" / "models--Qwen--Qwen3-VL-30B-A3B-Instruct" / "refs"
    hub.mkdir(parents=True)
    (hub / "main").write_text("0123456789abcdef0123456789abcdef01234567\n")
    from test_compare import Server   # the loopback server, answering a hub id like "text"
    with Server() as srv:
        judge = http_judge(srv.url, "Qwen/Qwen3-VL-30B-A3B-Instruct")
        cfg = config(tmp_path, "rj.yaml", source["data"], judge=judge)
        out = str(tmp_path / "rj")
        args = [BIN, os.path.join(SRC, "scripts", "rejudge.lua"), cfg, "--quiet", "--set", "rejudge.from=" + source["out"],
                "--set", "run.out=" + out]
        r = subprocess.run(args, cwd=SRC, capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, HF_HUB_CACHE=str(tmp_path / "hub")))
        assert r.returncode == 0, r.stderr
        ident = report(out)["judge_identity"]
        assert ident["revision"] == "0123456789abcdef0123456789abcdef01234567" and ident["revision_source"] == "hf cache"
        out2 = str(tmp_path / "rj2")
        r = run("rejudge.lua", cfg, "rejudge.from=" + source["out"], "run.out=" + out2, "judge.revision=abc123")
        ident = report(out2)["judge_identity"]
        assert ident["revision"] == "abc123" and ident["revision_source"] == "config"
        md = open(glob.glob(os.path.join(out2, "results", "*.md"))[0], encoding="utf-8").read()
        assert "judge identity: http/Qwen/Qwen3-VL-30B-A3B-Instruct rev abc123, " in md
