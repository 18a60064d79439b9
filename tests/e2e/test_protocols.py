"""The benchmarks' official judging protocols (issue 25): evalhost on a
sample in each benchmark's official layout (tests/data/protocols, written
by make_samples.py), its judge the recorded-replies server
(tools/recorded_judge.py) answering from the committed replies, against
what the official evaluation code computed from the same replies
(reference.json, written by tools/protocols/run_official.py from a
checkout of the official repository at the revision it names).

Always: evalhost equals the committed reference, per item and aggregate, to
the printed precision, and sends the official code's requests (count,
order, text first, pictures and their sizes). With EVALHOST_OFFICIAL_GEDIT
(a Step1X-Edit checkout), EVALHOST_OFFICIAL_IMGEDIT, EVALHOST_OFFICIAL_RISE
or EVALHOST_OFFICIAL_KRIS set, or a git mirror of the first three
(EVALHOST_MIRROR, default the fetch tool's /work/.mirror), and
tools/protocols/requirements-official.txt installed (make deps does), the
official code also runs live on this run's edits and must
give the reference again. RISEBench's prompts are not copied (no license):
its tests read utils.py from EVALHOST_OFFICIAL_RISE or a git mirror of the
repository (EVALHOST_MIRROR, as for the live runs) and skip, saying so,
without one.
"""
import json
import math
import os
import re
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tools"))
sys.path.insert(0, HERE)
from recorded_judge import RecordedJudge  # noqa: E402
from test_rejudge import http_judge, report, run  # noqa: E402

DATA = os.path.join(SRC, "tests", "data", "protocols")


def run_resume(cfg, out):
    from test_rejudge import BIN
    return subprocess.run([BIN, os.path.join(SRC, "scripts", "two_stage.lua"), str(cfg), "--quiet", "--resume",
                           "--set", "run.out=" + out], cwd=SRC, capture_output=True, text=True, timeout=60)


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def run_official(bench, checkout, sample, edits, replies, live, more=()):
    """tools/protocols/run_official.py: the official code of bench (a checkout)
    on this run's edits and the recorded replies, its output written to live."""
    return subprocess.run([sys.executable, os.path.join(SRC, "tools", "protocols", "run_official.py"), bench,
                           "--checkout", checkout, "--sample", sample, "--edits", edits, "--replies", replies,
                           "--out", live] + list(more), capture_output=True, text=True, timeout=600)


# Where each benchmark's official code comes from: a checkout named by its
# environment variable, else the matched revision's files exported from a git
# mirror (EVALHOST_MIRROR/<owner>+<name>/repo, the fetch tool's layout); a test
# that needs one skips, naming the variable, without either. Kris_Bench has no
# mirror (the repository is over 500 MB). bench -> (variable, mirror, revision, paths)
OFFICIAL = {"gedit": ("EVALHOST_OFFICIAL_GEDIT", "stepfun-ai+Step1X-Edit", "570eba6", ["GEdit-Bench"]),
            "imgedit": ("EVALHOST_OFFICIAL_IMGEDIT", "PKU-YuanGroup+ImgEdit", "547185d", ["Benchmark"]),
            "rise": ("EVALHOST_OFFICIAL_RISE", "PhoenixZ810+RISEBench", "5f22651", ["utils.py", "gpt_eval.py"]),
            "kris": ("EVALHOST_OFFICIAL_KRIS", None, None, None)}
# what run_official.py's runs import, from tools/protocols/requirements-official.txt
OFFICIAL_MODULES = {"gedit": ("pandas", "regex", "requests", "tqdm"), "imgedit": ("openai", "tenacity", "tqdm"),
                    "rise": ("pandas", "xlsxwriter", "openpyxl", "requests", "tqdm"), "kris": ("openai", "tqdm")}
_EXPORTED = {}


def export_mirror(git, revision, paths):
    """The revision's paths from a bare git mirror into a temporary folder
    (with REVISION naming the full commit, as run_official.py reads it)."""
    import io
    import tarfile
    import tempfile
    tar = subprocess.run(["git", "--git-dir", git, "archive", revision] + paths, capture_output=True, timeout=60)
    if tar.returncode != 0:
        return None
    d = tempfile.mkdtemp(prefix="official-")
    tarfile.open(fileobj=io.BytesIO(tar.stdout)).extractall(d)
    with open(os.path.join(d, "REVISION"), "w") as f:
        f.write(subprocess.run(["git", "--git-dir", git, "rev-parse", revision], capture_output=True,
                               text=True).stdout.strip())
    return d


def official_checkout(bench, modules=False):
    """The official repository of bench (see OFFICIAL), or a skip saying how
    to supply it; with modules, also a skip when the packages its code
    imports are not installed."""
    env, mirror, revision, paths = OFFICIAL[bench]
    where = os.environ.get(env)
    if not where and mirror:
        if bench not in _EXPORTED:
            git = os.path.join(os.environ.get("EVALHOST_MIRROR", "/work/.mirror"), mirror, "repo")
            _EXPORTED[bench] = export_mirror(git, revision, paths) if os.path.isdir(git) else None
        where = _EXPORTED[bench]
    if not where:
        pytest.skip("needs %s's official code: set %s to a checkout%s" % (
            bench, env, " at %s (or EVALHOST_MIRROR to a folder holding %s/repo)" % (revision, mirror)
            if mirror else " (metrics_*.py at the revisions reference.json names)"))
    if modules:
        for mod in OFFICIAL_MODULES[bench]:
            pytest.importorskip(mod, reason="the official code needs tools/protocols/requirements-official.txt")
    return where


def official_live_gives(tmp, bench, out, ref):
    """The official code of bench run live on this run's edits (out) and the
    recorded replies gives the reference's items and aggregates again, every
    request one the replies hold."""
    live = str(tmp / "live-reference.json")
    r = run_official(bench, official_checkout(bench), os.path.join(DATA, bench), out,
                     os.path.join(DATA, bench, "replies.json"), live)
    assert r.returncode == 0, r.stderr + r.stdout
    got = load(live)
    assert got["items"] == ref["items"] and got["aggregates"] == ref["aggregates"]
    assert not got["official"]["unrecorded_requests"] and got["official"]["requests"] == ref["official"]["requests"]


def run_recorded(tmp, replies, name, dataset, model, policy=None):
    """two_stage on dataset (the inside of its YAML map), the builtin editor,
    the recorded judge answering as model (recording with policy): the
    run, its output folder and the judge's request log."""
    log = str(tmp / (name + "-requests.jsonl"))
    cfg = tmp / (name + ".yaml")
    out = str(tmp / name)
    with RecordedJudge(replies, log=log, policy=policy) as j:
        cfg.write_text("dataset: {%s}\neditor: {backend: builtin, name: imageops}\njudge: %s\n"
                       "report: {bootstrap: {resamples: 20}}\n" % (dataset, http_judge(j.url, model)), encoding="utf-8")
        r = run("two_stage.lua", str(cfg), "run.out=" + out)
        reqs = list(j.log)
    return r, out, reqs


def gedit_dataset(tmp, source=None):
    conv = subprocess.run([sys.executable, os.path.join(SRC, "tools", "convert_gedit.py"),
                           source or os.path.join(DATA, "gedit"), str(tmp / "gedit")], capture_output=True, text=True,
                          timeout=60)
    assert conv.returncode == 0, conv.stderr
    return str(tmp / "gedit" / "gedit.jsonl")


def run_gedit(tmp, replies, name="run", extra="", policy=None, source=None):
    """source: a sample folder in the published layout (default the committed one)."""
    data = gedit_dataset(tmp, source) if not (tmp / "gedit").exists() else str(tmp / "gedit" / "gedit.jsonl")
    return run_recorded(tmp, replies, name, "path: %s, adapter: gedit, language: all%s" % (json.dumps(data), extra),
                        "gpt-4.1", policy)


def fmt3(x):
    return "%.3f" % x


def check_gedit(tmp_path, replies, ref):
    """evalhost on the replies gives what the official code gave (ref)."""
    r, out, reqs = run_gedit(tmp_path, replies)
    assert r.returncode == 0, r.stderr
    rep = report(out)
    pairs = {p["id"]: p for p in rep["pairs"]}
    assert len(pairs) == 44 and all(p["score"] is not None for p in pairs.values())
    # every item: SC and PQ as the official code read them, O = sqrt(SC*PQ)
    assert set(ref["items"]) == set(pairs)
    for pid, want in ref["items"].items():
        d = pairs[pid]["dims"]
        assert (d["SC"], d["PQ"]) == (want["SC"], want["PQ"]), pid
        assert pairs[pid]["score"] == pytest.approx(math.sqrt(want["SC"] * want["PQ"]))
    # the aggregates, as calculate_statistics.py prints them
    prof = rep["profile"]
    for lang in ("en", "cn"):
        for part in ("fullset", "intersection"):
            got, want = prof["languages"][lang][part], ref["aggregates"][lang][part]
            for g in got["order"]:
                c = got["categories"][g]
                assert [fmt3(c["SC"]), fmt3(c["PQ"]), fmt3(c["O"])] == want[g], (lang, part, g)
            a = got["average"]
            assert [fmt3(a["SC"]), fmt3(a["PQ"]), fmt3(a["O"])] == want["Average"], (lang, part)
            assert not got["missing"]   # all 11 task types present (an empty list is {} in JSON)
    # the requests: two per pair (SC, then PQ), one user message, text first,
    # JPEG pictures; SC [source, edit at the source's size], PQ [that edit]
    assert len(reqs) == 88 == ref["official"]["requests"] and all(e["found"] for e in reqs)
    assert not any(e["system"] for e in reqs) and all(e["n_messages"] == 1 and e["text_first"] for e in reqs)
    assert all(set(e["mimes"]) == {"image/jpeg"} for e in reqs)
    sc = [e for e in reqs if "Editing instruction:" in e["text"]]
    pq = [e for e in reqs if "naturalness" in e["text"]]
    assert len(sc) == len(pq) == 44
    assert all(len(e["sizes"]) == 2 and e["sizes"][0] == e["sizes"][1] for e in sc)
    assert sorted(e["sizes"][0] for e in sc) == sorted(e["sizes"][0] for e in pq)
    # the Markdown and HTML reports carry the official table layout
    md = open(os.path.join(out, "results", os.path.basename(rep["files"]["markdown"])) if "files" in rep else
              sorted(p for p in (os.path.join(out, "results", f) for f in os.listdir(os.path.join(out, "results")))
                     if p.endswith(".md"))[0], encoding="utf-8").read()
    assert "GEdit-Bench en, full set (SC / PQ / O, 0-10)" in md and "GEdit-Bench cn, intersection subset" in md
    a = prof["languages"]["en"]["fullset"]["average"]
    assert "| Average | %s | %s | %s |" % (fmt3(a["SC"]), fmt3(a["PQ"]), fmt3(a["O"])) in md
    html = [f for f in os.listdir(os.path.join(out, "results")) if f.endswith(".html")]
    page = open(os.path.join(out, "results", html[0]), encoding="utf-8").read()
    assert "GEdit-Bench en, full set" in page


def test_gedit_unparseable_reply_fails_the_pair_and_reports_the_official_guess(tmp_path):
    """VIEScore re-asks and then counts a random 0-10 guess; evalhost fails
    the pair, keeps the others, and reports the official rule's expected
    figure beside its own."""
    doc = load(os.path.join(DATA, "gedit", "replies.json"))
    victim = next(k for k in sorted(doc["replies"]) if "," in k.split(":")[1])   # an SC request: two pictures
    doc["replies"][victim] = "I would rather not give numbers."
    path = tmp_path / "replies.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    r, out, reqs = run_gedit(tmp_path, str(path))
    assert r.returncode == 1
    rep = report(out)
    assert len(rep["failures"]) == 1
    f = rep["failures"][0]
    assert "gedit: SC reply has no VIEScore JSON (official code: re-asked, then a random guess)" in f["error"]
    ref = load(os.path.join(DATA, "gedit", "reference.json"))
    for p in rep["pairs"]:
        if p["id"] != f["id"]:
            assert (p["dims"]["SC"], p["dims"]["PQ"]) == (ref["items"][p["id"]]["SC"], ref["items"][p["id"]]["PQ"])
    prof = rep["profile"]
    assert prof["unparsed"] == 1
    lang = f["id"].rsplit("_", 1)[1]
    cat = f["category"]
    full, guess = prof["languages"][lang]["fullset"], prof["languages"][lang]["with_guess"]["fullset"]
    # the failed pair's expected official figures: SC a uniform 0..10 guess, PQ as replied
    pq = ref["items"][f["id"]]["PQ"]
    others = [p for p in rep["pairs"] if p["category"] == cat and p["id"].endswith("_" + lang) and p["id"] != f["id"]]
    want_sc = (sum(p["dims"]["SC"] for p in others) + 5.0) / (len(others) + 1)
    want_o = (sum(p["dims"]["O"] for p in others) + sum(math.sqrt(u * pq) for u in range(11)) / 11) / (len(others) + 1)
    assert guess["categories"][cat]["SC"] == pytest.approx(want_sc)
    assert guess["categories"][cat]["O"] == pytest.approx(want_o)
    assert full["categories"][cat]["SC"] == pytest.approx(sum(p["dims"]["SC"] for p in others) / len(others))
    # every pair was still asked twice; the failure is in the journal with the replies
    assert len(reqs) == 88


def test_gedit_compact_protocol_is_one_request_per_pair(tmp_path):
    """dataset.protocol: compact keeps evalhost's one-request approximation
    (one request per pair, its own prompt with a system message, the pictures
    as they are); official is two (SC, PQ) -- the test above."""
    r, out, reqs = run_gedit(tmp_path, str(tmp_path / "compact-replies.json"), "compact", extra=", protocol: compact",
                             policy=lambda text, sizes: "SC: 8, 6\nPQ: 9, 4\nScore: 5")
    assert r.returncode == 0, r.stderr
    assert len(reqs) == 44 and all(e["system"] for e in reqs)
    assert any(e["sizes"][0] != e["sizes"][1] for e in reqs)   # a rotated edit is not resized back
    rep = report(out)
    assert all(p["score"] == pytest.approx(math.sqrt(6 * 4)) for p in rep["pairs"])
    assert "languages" not in rep["profile"]   # the compact summary, not the official tables
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: {path: %s, adapter: gedit, protocol: vie}\neditor: {backend: builtin, name: imageops}\n"
                   "judge: %s\n" % (json.dumps(str(tmp_path / "gedit" / "gedit.jsonl")),
                                    http_judge("http://127.0.0.1:9", "x")), encoding="utf-8")
    r = run("two_stage.lua", str(bad), "run.out=" + str(tmp_path / "bad"))
    assert r.returncode != 0 and "dataset.protocol" in r.stderr and "vie" in r.stderr


def run_imgedit(tmp, replies, name="imgedit", official=True, policy=None, data=None):
    extra = ", official: %s" % json.dumps(os.path.join(DATA, "imgedit", "prompts.json")) if official else ""
    return run_recorded(tmp, replies, name, "path: %s, adapter: imgedit%s" % (
        json.dumps(data or os.path.join(DATA, "imgedit", "basic_edit.json")), extra), "gpt-4o", policy)


def check_imgedit(tmp_path, replies, ref):
    r, out, reqs = run_imgedit(tmp_path, replies)
    assert r.returncode == 0, r.stderr
    rep = report(out)
    pairs = {p["id"]: p for p in rep["pairs"]}
    assert set(pairs) == set(ref["items"]) and len(pairs) == 27
    for key, want in ref["items"].items():   # step1: the mean of the "name: N" lines, round(.., 2)
        assert pairs[key]["dims"]["item"] == want and pairs[key]["score"] == want, key
    prof = rep["profile"]
    assert prof["types"] == ref["aggregates"]["types"]   # step2: per edit type, round(.., 2)
    assert prof["overall"] == pytest.approx(sum(ref["aggregates"]["types"].values()) / 9)
    # one request per pair: the edit type's rubric with the instruction, then [original, edit]
    assert len(reqs) == 27 == ref["official"]["requests"] and all(e["found"] for e in reqs)
    assert all(e["text_first"] and not e["system"] and len(e["sizes"]) == 2 for e in reqs)
    md = [f for f in os.listdir(os.path.join(out, "results")) if f.endswith(".md")][0]
    text = open(os.path.join(out, "results", md), encoding="utf-8").read()
    assert "### ImgEdit Basic: score per edit type (1-5)" in text and "| add | %.2f | 3 |" % prof["types"]["add"] in text


def test_imgedit_reply_without_a_rating_drops_the_item_as_the_official_code_does(tmp_path):
    """step1 drops an item whose reply has no "name: N" line; evalhost fails
    the pair (listed), and the edit type's score is the official one over
    the rest."""
    doc = load(os.path.join(DATA, "imgedit", "replies.json"))
    victim = sorted(doc["replies"])[0]
    doc["replies"][victim] = "Prompt Compliance: high\nVisual Naturalness: 4/5"
    path = tmp_path / "replies.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    r, out, reqs = run_imgedit(tmp_path, str(path))
    assert r.returncode == 1
    rep = report(out)
    assert len(rep["failures"]) == 1 and "has no \"<criterion>: N\" line" in rep["failures"][0]["error"]
    f = rep["failures"][0]
    ref = load(os.path.join(DATA, "imgedit", "reference.json"))
    rest = [ref["items"][p["id"]] for p in rep["pairs"] if p["category"] == f["category"] and p["id"] != f["id"]]
    assert rep["profile"]["types"][f["category"]] == round(sum(rest) / len(rest), 2)
    assert rep["profile"]["dropped"] == 1


def test_imgedit_official_protocol_needs_the_benchmarks_rubrics(tmp_path):
    r, out, reqs = run_imgedit(tmp_path, os.path.join(DATA, "imgedit", "replies.json"), official=False)
    assert r.returncode != 0 and reqs == []
    assert "dataset.official must name the ImgEdit checkout" in r.stderr


def test_gedit_groups_batch_and_resume_per_pair(tmp_path):
    """Two requests per pair go out in batches of the judge's batch_size
    (flat, a pair's SC before its PQ); a pair whose PQ the judge could not
    answer is journaled as failed, and --resume asks that pair again -- both
    its requests, no other's."""
    doc = load(os.path.join(DATA, "gedit", "replies.json"))
    victim = next(k for k in sorted(doc["replies"]) if "," not in k.split(":")[1])   # a PQ request
    partial = dict(doc, replies={k: v for k, v in doc["replies"].items() if k != victim})
    path = tmp_path / "partial.json"
    path.write_text(json.dumps(partial), encoding="utf-8")
    data = gedit_dataset(tmp_path)
    out = str(tmp_path / "run")
    cfg = tmp_path / "batch.yaml"

    with RecordedJudge(str(path)) as j:   # one server (its URL is part of the run key) for both runs
        judge = json.loads(http_judge(j.url, "gpt-4.1"))
        judge["batch_size"] = 4
        cfg.write_text("dataset: {path: %s, adapter: gedit, language: all}\neditor: {backend: builtin, name: imageops}\n"
                       "judge: %s\nreport: {bootstrap: {resamples: 20}}\n" % (json.dumps(data), json.dumps(judge)),
                       encoding="utf-8")
        r = run("two_stage.lua", str(cfg), "run.out=" + out)
        reqs = list(j.log)
        assert len(reqs) == 88
        rep = report(out)
        assert len(rep["failures"]) == 1 and "PQ:" in rep["failures"][0]["error"]
        failed = rep["failures"][0]["id"]
        # batches are flat lists of requests: each pair's SC right before its PQ
        kinds = ["SC" if "," in e["key"].split(":")[1] else "PQ" for e in reqs]
        assert kinds.count("SC") == 44
        j.replies.update(doc["replies"])
        del j.log[:]
        r = run_resume(cfg, out)
        reqs = list(j.log)
    assert r.returncode == 0, r.stderr
    assert len(reqs) == 2 and victim in [e["key"] for e in reqs]   # only the failed pair, both its calls
    rep = load(os.path.join(out, "results", "latest.json"))   # the resumed run's report
    ref = load(os.path.join(DATA, "gedit", "reference.json"))
    p = next(p for p in rep["pairs"] if p["id"] == failed)
    assert (p["dims"]["SC"], p["dims"]["PQ"]) == (ref["items"][failed]["SC"], ref["items"][failed]["PQ"])


# ---------------------------------------------------------------- RISEBench

RISE = os.path.join(DATA, "rise")


# the two prompt sets the replies were recorded with: RISEBench's own (utils.py from a checkout; the test
# skips without one) and stand-ins under its names (always there): name -> (replies, reference)
RISE_SETS = {"utils.py": ("replies.json", "reference.json"),
             "stand_in": ("replies-standin.json", "reference-standin.json")}
STAND_IN = os.path.join(RISE, "stand_in_prompts.py")


def run_rise(tmp, replies, name="rise", official=True, policy=None, data=None, prompts="utils.py"):
    extra = ""
    if official:
        extra = ", official: %s" % json.dumps(STAND_IN if prompts == "stand_in" else official_checkout("rise"))
    return run_recorded(tmp, replies, name, "path: %s, adapter: rise%s" % (
        json.dumps(data or os.path.join(RISE, "data", "data_total.json")), extra), "gpt-4.1-2025-04-14", policy)


RISE_DIMS = {"consistency": "ApprConsistency", "reasoning": "Reasoning", "plausibility": "VisualPlausibility"}


def g15(row):
    """Numbers to the 15 significant digits evalhost's JSON report prints
    (cJSON; the sums behind them are numpy's pairwise ones, bit for bit:
    busted protocols_spec); gpt_eval.py's CSV prints repr floats."""
    return [("%.15g" % x) if isinstance(x, (int, float)) and not isinstance(x, bool) else x for x in row]


def check_rise(tmp_path, replies, ref, prompts="utils.py"):
    r, out, reqs = run_rise(tmp_path, replies, prompts=prompts)
    assert r.returncode == 0, r.stderr
    rep = report(out)
    pairs = {p["id"]: p for p in rep["pairs"]}
    assert set(pairs) == set(ref["items"]) and len(pairs) == 16
    for pid, want in ref["items"].items():   # main(): the ratings, calculate_score, calculate_completion
        d = pairs[pid]["dims"]
        for ours, theirs in RISE_DIMS.items():
            assert d.get(ours) == want[theirs], (pid, ours)
        assert g15([pairs[pid]["score"]]) == g15([want["score"]]) and d["complete"] == want["complete"], pid
    # a logical item's 0/1 judgements come out as 1 or 5 (4 * min(x, 1) + 1); it has no plausibility
    logical = [p["dims"] for p in pairs.values() if p["category"] == "logical_reasoning"]
    assert logical and all(d["consistency"] in (1, 5) and d["reasoning"] in (1, 5) for d in logical)
    assert not any("plausibility" in d for d in logical)
    # the CSV's rows, in its order, every figure as printed (repr floats)
    prof = rep["profile"]
    got = [[row["name"], row.get("score"), row.get("percent"), row.get("accuracy")] for row in prof["rows"]]
    assert [g15(row) for row in got] == [g15(row) for row in ref["aggregates"]["table"]]
    # consistency_free items: no consistency call; logical: no quality call
    data = load(os.path.join(RISE, "data", "data_total.json"))
    want_calls = sum(3 - (it.get("consistency_free") is not None) - (it["category"] == "logical_reasoning")
                     for it in data)
    assert len(reqs) == want_calls == ref["official"]["requests"] and all(e["found"] for e in reqs)
    assert all(e["text_first"] and not e["system"] and e["n_messages"] == 1 for e in reqs)
    assert all(set(e["mimes"]) == {"image/jpeg"} for e in reqs)
    # every picture within 768 px: the 900x600 input goes as PIL's 768x512 thumbnail
    sizes = [tuple(map(int, s.split("x"))) for e in reqs for s in e["sizes"]]
    assert max(max(s) for s in sizes) == 768 and (768, 512) in sizes
    md = [f for f in os.listdir(os.path.join(out, "results")) if f.endswith(".md")][0]
    text = open(os.path.join(out, "results", md), encoding="utf-8").read()
    # printed from the official CSV's repr floats (the JSON's 15 digits can round a tie the other way)
    name, score, percent, accuracy = ref["aggregates"]["table"][0]
    assert name == "Overall" and "| Overall | %.3f | %.3f | %.3f |" % (score, percent, accuracy) in text
    html = [f for f in os.listdir(os.path.join(out, "results")) if f.endswith(".html")][0]
    page = open(os.path.join(out, "results", html), encoding="utf-8").read()
    assert "RISEBench (score 1-5, accuracy over 16 scored items)" in page and "Score-Percentage" in page



def rise_official(checkout, out, replies, live, prompts):
    return run_official("rise", checkout, RISE, out, replies, live,
                        ["--prompts", STAND_IN] if prompts == "stand_in" else [])


@pytest.mark.parametrize("prompts", sorted(RISE_SETS))
def test_rise_official_code_gives_the_reference_again(tmp_path, prompts):
    """gpt_eval.py itself on this run's edits and the recorded replies (its
    requests must all be recorded ones: same prompts, same picture sizes)."""
    checkout = official_checkout("rise", modules=True)
    if not os.path.exists(os.path.join(checkout, "gpt_eval.py")):
        pytest.skip("%s has no gpt_eval.py to run" % checkout)
    replies, reference = RISE_SETS[prompts]
    r, out, reqs = run_rise(tmp_path, os.path.join(RISE, replies), prompts=prompts)
    assert r.returncode == 0, r.stderr
    live = str(tmp_path / "live-reference.json")
    r = rise_official(checkout, out, os.path.join(RISE, replies), live, prompts)
    assert r.returncode == 0, r.stderr + r.stdout
    got, ref = load(live), load(os.path.join(RISE, reference))
    assert got["items"] == ref["items"] and got["aggregates"] == ref["aggregates"]
    assert got["official"]["requests"] == len(reqs) and not got["official"]["unrecorded_requests"]
    if prompts != "stand_in":
        return
    # and with the unreadable reply: reference-unread.json
    r = rise_official(checkout, out, rise_unread_replies(tmp_path), live, prompts)
    assert r.returncode == 0, r.stderr + r.stdout
    got, ref = load(live), load(os.path.join(RISE, "reference-unread.json"))
    assert got["items"] == ref["items"] and got["aggregates"] == ref["aggregates"]


UNREAD_REPLY = "I would rather not give numbers."


def rise_unread_replies(tmp):
    """replies-standin.json with its first key's reply turned into one
    without a number: reference-unread.json is run_official.py's output on
    exactly this file (with the stand-in prompts)."""
    doc = load(os.path.join(RISE, "replies-standin.json"))
    victim = sorted(doc["replies"])[0]
    doc["replies"][victim] = UNREAD_REPLY
    path = tmp / "replies-unread.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return str(path)


def test_rise_unreadable_reply_fails_the_pair_and_reports_the_official_figures(tmp_path):
    """gpt_eval.py gives an item whose reply has no Final Score number a NaN
    score (left out of the means) and counts it inaccurate (accuracy over
    every item); evalhost fails the pair -- its accuracy is over the scored
    pairs -- and reports gpt_eval.py's table beside its own."""
    ref = load(os.path.join(RISE, "reference-unread.json"))
    failed = [k for k, v in ref["items"].items() if v["match_log"] == "failed"]
    r, out, reqs = run_rise(tmp_path, rise_unread_replies(tmp_path), prompts="stand_in")
    assert r.returncode == 1
    rep = report(out)
    assert [f["id"] for f in rep["failures"]] == failed
    assert re.search(r"rise: the (consistency|reasoning|quality) reply has no Final Score number "
                     r"\(gpt_eval\.py: NaN score, counted inaccurate\)", rep["failures"][0]["error"])
    prof = rep["profile"]
    assert prof["unparsed"] == 1 and prof["n"] == 15
    official = [[row["name"], row.get("score"), row.get("percent"), row.get("accuracy")] for row in prof["official"]]
    assert [g15(row) for row in official] == [g15(row) for row in ref["aggregates"]["table"]]
    # ours: the same means (NaN is left out of them there too), the accuracy over the 15 scored pairs
    ours = {row["name"]: row for row in prof["rows"]}
    for name, score, pct, acc in ref["aggregates"]["table"]:
        assert g15([ours[name].get("score"), ours[name].get("percent")]) == g15([score, pct]), name
    good = {k: v for k, v in ref["items"].items() if k not in failed}
    assert ours["Overall"]["accuracy"] == pytest.approx(sum(v["complete"] for v in good.values()) / 15)
    assert ours["Overall"]["accuracy"] != ref["aggregates"]["table"][0][3]
    md = [f for f in os.listdir(os.path.join(out, "results")) if f.endswith(".md")][0]
    text = open(os.path.join(out, "results", md), encoding="utf-8").read()
    assert "RISEBench as gpt_eval.py counts it (1 unread items: NaN score, inaccurate)" in text
    assert len(reqs) == 41   # the pair was still asked all its calls


def test_rise_official_protocol_needs_the_benchmarks_prompts(tmp_path):
    r, out, reqs = run_rise(tmp_path, os.path.join(RISE, "replies.json"), official=False)
    assert r.returncode != 0 and reqs == []
    assert "dataset.official must name the RISEBench checkout (or its utils.py)" in r.stderr
    bad = tmp_path / "utils.py"
    bad.write_text('prompt_consist = """only one"""\n', encoding="utf-8")
    log = str(tmp_path / "bad.jsonl")
    with RecordedJudge(os.path.join(RISE, "replies.json"), log=log) as j:
        cfg = tmp_path / "bad.yaml"
        cfg.write_text("dataset: {path: %s, adapter: rise, official: %s}\neditor: {backend: builtin, name: imageops}\n"
                       "judge: %s\n" % (json.dumps(os.path.join(RISE, "data", "data_total.json")), json.dumps(str(bad)),
                                        http_judge(j.url, "x")), encoding="utf-8")
        r = run("two_stage.lua", str(cfg), "run.out=" + str(tmp_path / "bad"))
    assert r.returncode != 0 and "utils.py has no prompt_reasoning (is it RISEBench's utils.py?)" in r.stderr


# ---------------------------------------------------------------- KRIS-Bench

KRIS = os.path.join(DATA, "kris")


def run_kris(tmp, replies, name="kris", official=True, policy=None):
    # the stand-in prompts the replies were recorded with, in utils/prompts.py's layout
    extra = ", official: %s" % json.dumps(KRIS) if official else ""
    return run_recorded(tmp, replies, name, "path: %s, adapter: kris%s" % (
        json.dumps(os.path.join(KRIS, "KRIS_Bench")), extra), "gpt-4o", policy)


KRIS_DIMS = {"consistency": "consistency_score", "instruction": "instruction_score", "knowledge": "knowledge_score",
             "quality": "quality_score"}


def kris_means(items):
    """The aggregation evalhost documents for KRIS-Bench (its repository has
    none): per category and overall, each metric's mean over the items
    rated on it."""
    per, allv = {}, {}
    for key, rec in items.items():
        cat = key.split("/")[0]
        for ours, theirs in KRIS_DIMS.items():
            v = rec.get(theirs)
            if isinstance(v, int):
                per.setdefault(cat, {}).setdefault(ours, []).append(v)
                allv.setdefault(ours, []).append(v)
    mean = lambda xs: sum(xs) / len(xs)
    return ({c: {k: mean(v) for k, v in d.items()} for c, d in per.items()}, {k: mean(v) for k, v in allv.items()})


def check_kris(tmp_path, replies, ref):
    r, out, reqs = run_kris(tmp_path, replies)
    assert r.returncode == 0, r.stderr
    rep = report(out)
    pairs = {"%s/%s" % (p["category"], p["id"]): p for p in rep["pairs"]}
    assert set(pairs) == set(ref["items"]) and len(pairs) == 14
    for key, want in ref["items"].items():   # what each script stores in metrics.json
        d = pairs[key]["dims"]
        assert {k: d.get(k) for k in KRIS_DIMS if k in d and k != "score"} == \
            {ours: want[theirs] for ours, theirs in KRIS_DIMS.items() if theirs in want}, key
        assert pairs[key]["score"] == pytest.approx(sum(want.values()) / len(want))
    cats, overall = kris_means(ref["items"])
    prof = rep["profile"]
    for cat, means in cats.items():
        for k, v in means.items():
            assert prof["categories"][cat][k] == pytest.approx(v, abs=5e-4), (cat, k)
    for k, v in overall.items():
        assert prof["overall"][k] == pytest.approx(v, abs=5e-4), k
    # three requests per item, each the scripts' content: the prompt, then a label before every picture
    assert len(reqs) == 42 == ref["official"]["requests"] and all(e["found"] for e in reqs)
    assert all(e["text_first"] and not e["system"] and e["n_messages"] == 1 for e in reqs)
    labels = {}
    for e in reqs:
        parts = e["text"].split("\n\x00")
        assert len(parts) == 1 + len(e["sizes"])   # one label per picture
        labels.setdefault(parts[1], 0)
        labels[parts[1]] += 1
    assert labels["This is the original image:"] == 2 * 10   # common, knowledge, viewpoint: consistency + instruction
    assert labels["This is the edited image:"] == 10          # their quality request
    assert labels["Reference Image 1:"] == 4 and labels["This is the image to evaluate:"] == 4
    assert sum(v for k, v in labels.items() if k.startswith("Frame ")) == 4
    # viewpoint_change's ground truth is never sent (the script tests category == "view_pair")
    assert not any("ground truth" in e["text"] for e in reqs)
    md = [f for f in os.listdir(os.path.join(out, "results")) if f.endswith(".md")][0]
    text = open(os.path.join(out, "results", md), encoding="utf-8").read()
    assert "### KRIS-Bench: mean rating per metric (1-5)" in text and "| Overall (every item) | 14 |" in text
    html = [f for f in os.listdir(os.path.join(out, "results")) if f.endswith(".html")][0]
    assert "KRIS-Bench: mean rating per metric (1-5)" in open(os.path.join(out, "results", html), encoding="utf-8").read()


def test_kris_official_scripts_give_the_reference_again(tmp_path):
    checkout = official_checkout("kris", modules=True)
    if not os.path.exists(os.path.join(checkout, "metrics_common.py")):
        pytest.skip("%s has no metrics_common.py to run" % checkout)
    r, out, reqs = run_kris(tmp_path, os.path.join(KRIS, "replies.json"))
    assert r.returncode == 0, r.stderr
    live = str(tmp_path / "live-reference.json")
    r = run_official("kris", checkout, KRIS, out, os.path.join(KRIS, "replies.json"), live)
    assert r.returncode == 0, r.stderr + r.stdout
    got, ref = load(live), load(os.path.join(KRIS, "reference.json"))
    assert got["items"] == ref["items"]
    assert got["official"]["requests"] == len(reqs) and not got["official"]["unrecorded_requests"]
    r = run_official("kris", checkout, KRIS, out, kris_unread_replies(tmp_path), live)
    assert r.returncode == 0, r.stderr + r.stdout
    assert load(live)["items"] == load(os.path.join(KRIS, "reference-unread.json"))["items"]


def kris_unread_replies(tmp):
    """replies.json with its first quality request's reply turned into one
    with no rating: reference-unread.json is run_official.py's output on
    exactly this file."""
    doc = load(os.path.join(KRIS, "replies.json"))
    victim = next(k for k in sorted(doc["replies"]) if "[quality]" in doc["prompts"][k])
    doc["replies"][victim] = "Nothing to rate here."
    path = tmp / "replies-unread.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return str(path)


def test_kris_reply_without_a_rating_fails_the_pair_and_keeps_the_scripts_figure(tmp_path):
    """A script stores null for a rating it cannot read (and its other
    ratings); evalhost fails the pair and shows the scripts' means beside
    its own: the null left out of its metric, the item's other ratings kept."""
    ref = load(os.path.join(KRIS, "reference-unread.json"))
    nulls = [k for k, v in ref["items"].items() if None in v.values()]
    assert len(nulls) == 1
    r, out, reqs = run_kris(tmp_path, kris_unread_replies(tmp_path))
    assert r.returncode == 1
    rep = report(out)
    assert ["%s/%s" % (f["category"], f["id"]) for f in rep["failures"]] == nulls
    assert "kris: no quality rating in the reply (the script stores null)" in rep["failures"][0]["error"]
    prof = rep["profile"]
    assert prof["unparsed"] == 1
    cats, overall = kris_means(ref["items"])   # the scripts' metrics.json, null left out
    for cat, means in cats.items():
        for k, v in means.items():
            assert prof["official"]["categories"][cat][k] == pytest.approx(v, abs=5e-4), (cat, k)
    ours_cats, ours_overall = kris_means({k: v for k, v in ref["items"].items() if k not in nulls})
    assert prof["overall"]["consistency"] == pytest.approx(ours_overall["consistency"], abs=5e-4)
    assert prof["official"]["overall"]["consistency"] == pytest.approx(overall["consistency"], abs=5e-4)
    assert prof["overall"]["n"] == 13 and prof["official"]["overall"]["n"] == 14
    md = [f for f in os.listdir(os.path.join(out, "results")) if f.endswith(".md")][0]
    assert "KRIS-Bench as the scripts store it (1 items with a null or off-scale rating kept)" in \
        open(os.path.join(out, "results", md), encoding="utf-8").read()


def test_kris_official_protocol_needs_the_benchmarks_prompts(tmp_path):
    r, out, reqs = run_kris(tmp_path, os.path.join(KRIS, "replies.json"), official=False)
    assert r.returncode != 0 and reqs == []
    assert "dataset.official must name the Kris_Bench checkout (or its utils/prompts.py)" in r.stderr


# ---- every reply read as the official reader reads it (tools/protocols/parse_cases.py)

sys.path.insert(0, os.path.join(SRC, "tools", "protocols"))
import parse_cases  # noqa: E402

BENCHES = ("gedit", "imgedit", "rise", "kris")


def committed_cases(bench):
    c = load(os.path.join(DATA, bench, "parse_cases.json"))
    assert c["format"] == "evalhost-parse-cases/1" and c["bench"] == bench and len(c["cases"]) > 400
    return c


@pytest.mark.parametrize("bench", BENCHES)
def test_replies_read_as_the_official_reader_read_them(bench):
    """Each committed reply (hand-picked ones where a non-Python reader goes
    wrong: Unicode digits, spaces, line breaks and case folds, strict JSON,
    int() and min(); then generated ones) gives evalhost's adapter the
    reading the official function gave (parse_cases.json, recorded from
    the checkout it names); where that function raised, no rating."""
    c = committed_cases(bench)
    ours = parse_cases.evalhost_readings(bench, [x["reply"] for x in c["cases"]])
    bad = [(x["reply"], x["official"], o) for x, o in zip(c["cases"], ours) if not parse_cases.agrees(o, x["official"])]
    assert not bad, bad[:5]
    # the cases reach every kind of reading: a rating, none, and (where the reader can raise) an exception
    def kinds(v):
        if isinstance(v, dict):
            return {"raises"} if "raises" in v or "nonfinite" in v else set().union(*map(kinds, v.values()))
        if isinstance(v, list):
            return {"rating"} if all(isinstance(x, int) for x in v) else set().union(*map(kinds, v))
        return {"none"} if v is None else {"rating"}
    seen = set().union(*(kinds(x["official"]) for x in c["cases"]))
    assert seen == ({"rating", "none", "raises"} if bench in ("gedit", "imgedit") else {"rating", "none"}), seen


@pytest.mark.parametrize("bench", BENCHES)
def test_official_reader_gives_the_committed_readings_again(bench):
    checkout = official_checkout(bench, modules=True)
    c = committed_cases(bench)
    replies = [x["reply"] for x in c["cases"]]
    r = subprocess.run([sys.executable, "-c", "import json, sys; sys.path.insert(0, %r); import parse_cases; "
                        "print(json.dumps(parse_cases.official_readings(%r, %r, %r, json.load(sys.stdin))))"
                        % (os.path.join(SRC, "tools", "protocols"), bench, checkout, KRIS),
                        ], input=json.dumps(replies), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    theirs = json.loads(r.stdout.splitlines()[-1])
    assert [x["official"] for x in c["cases"]] == theirs


# ---- other replies: recorded anew from the sample policy with a salt, the official code run live on them

sys.path.insert(0, DATA)
import policy as sample_policy  # noqa: E402

RUNS = {"gedit": (run_gedit, lambda t, ref, rp, prompts=None: check_gedit(t, rp, ref)),
        "imgedit": (run_imgedit, lambda t, ref, rp, prompts=None: check_imgedit(t, rp, ref)),
        "rise": (run_rise, lambda t, ref, rp, prompts="utils.py": check_rise(t, rp, ref, prompts)),
        "kris": (run_kris, lambda t, ref, rp, prompts=None: check_kris(t, rp, ref))}
# the committed replies and what the official code computed from them, and the revision it ran at
COMMITTED = {"gedit": ("gedit/replies.json", "gedit/reference.json", "570eba6"),
             "imgedit": ("imgedit/replies.json", "imgedit/reference.json", "547185d"),
             "rise:utils.py": ("rise/replies.json", "rise/reference.json", "5f22651"),
             "rise:stand_in": ("rise/replies-standin.json", "rise/reference-standin.json", "5f22651"),
             "kris": ("kris/replies.json", "kris/reference.json", "7f7a944")}


@pytest.mark.parametrize("bench", ("gedit", "imgedit"))
def test_official_code_gives_the_reference_again(tmp_path, bench):
    """The official code live on this run's edits and the committed replies
    (RISE's and KRIS's own tests also run their unreadable-reply cases)."""
    official_checkout(bench, modules=True)
    r, out, _ = RUNS[bench][0](tmp_path, os.path.join(DATA, bench, "replies.json"))
    assert r.returncode == 0, r.stderr
    official_live_gives(tmp_path, bench, out, load(os.path.join(DATA, bench, "reference.json")))


@pytest.mark.parametrize("case", sorted(COMMITTED))
def test_official_protocol_equals_the_official_code(tmp_path, case):
    """evalhost on the committed replies: every per-item figure and
    aggregate the official code computed from them (reference.json), the
    requests it sends, the report's tables (check_<bench>)."""
    replies, reference, revision = COMMITTED[case]
    bench, _, prompts = case.partition(":")
    ref = load(os.path.join(DATA, reference))
    assert revision in ref["official"]["revision"]
    RUNS[bench][1](tmp_path, ref, os.path.join(DATA, replies), *([prompts] if prompts else []))


@pytest.mark.parametrize("salt", (1, 2))
@pytest.mark.parametrize("bench", BENCHES)
def test_other_replies_give_the_official_figures(tmp_path, bench, salt):
    """The policy's reply forms with other values (its hash salted): evalhost
    records them, the official code reads the same replies live, and every
    per-item figure and aggregate of evalhost's equals the official one."""
    checkout = official_checkout(bench, modules=True)
    sample = {"gedit": os.path.join(DATA, "gedit"), "imgedit": os.path.join(DATA, "imgedit"), "rise": RISE,
              "kris": KRIS}[bench]
    replies = str(tmp_path / "replies.json")
    run_bench, check = RUNS[bench]
    (tmp_path / "record").mkdir()
    r, out, _ = run_bench(tmp_path / "record", replies,
                          policy=lambda text, sizes: sample_policy.reply(text + "\n#salt %d" % salt, sizes))
    assert r.returncode == 0, r.stderr
    live = str(tmp_path / "live.json")
    r = run_official(bench, checkout, sample, out, replies, live)
    assert r.returncode == 0, r.stderr + r.stdout
    ref = load(live)
    assert not ref["official"]["unrecorded_requests"]
    (tmp_path / "check").mkdir()
    check(tmp_path / "check", ref, replies)
    assert ref["items"] != load(os.path.join(sample, "reference.json"))["items"]   # other replies, other figures


def subset(tmp, bench, keep):
    """A copy of bench's sample holding only the items keep(index, item) keeps:
    the sample folder and its item file (ImgEdit's basic_edit.json, RISE's
    data/data_total.json)."""
    shutil.copytree(os.path.join(DATA, bench), str(tmp / bench))
    if bench == "gedit":   # the published parquet
        import pyarrow as pa
        import pyarrow.parquet as pq
        path = str(tmp / bench / "data" / "train-00000-of-00001.parquet")
        rows = pq.read_table(path).to_pylist()
        pq.write_table(pa.Table.from_pylist([v for i, v in enumerate(rows) if keep(i, v)]), path)
        return str(tmp / bench), None
    path = str(tmp / bench / ("basic_edit.json" if bench == "imgedit" else os.path.join("data", "data_total.json")))
    items = load(path)
    if isinstance(items, dict):
        items = {k: v for i, (k, v) in enumerate(items.items()) if keep(i, v)}
    else:
        items = [v for i, v in enumerate(items) if keep(i, v)]
    with open(path, "w", encoding="utf-8") as f:
        json.dump(items, f)
    return str(tmp / bench), path


SUBSETS = {"gedit-no-ps_human": ("gedit", lambda i, v: v["task_type"] != "ps_human" and i % 5),
           "imgedit-no-add": ("imgedit", lambda i, v: v["edit_type"] != "add" and i % 4),
           "rise-no-logical": ("rise", lambda i, v: v["category"] != "logical_reasoning"),
           "rise-no-spatial": ("rise", lambda i, v: v["category"] != "spatial_reasoning" and i % 3 != 1)}


@pytest.mark.parametrize("name", sorted(SUBSETS))
def test_sample_subsets_give_the_official_figures(tmp_path, name):
    """Fewer items, a type or category left out: the official code's per-item
    figures and tables (live, on replies recorded here) are evalhost's."""
    bench, keep = SUBSETS[name]
    checkout = official_checkout(bench, modules=True)
    (tmp_path / "sample").mkdir()
    sample, data = subset(tmp_path / "sample", bench, keep)
    replies = str(tmp_path / "replies.json")
    policy = lambda text, sizes: sample_policy.reply(text + "\n#salt 5", sizes)  # noqa: E731
    if bench == "gedit":
        r, out, _ = run_gedit(tmp_path, replies, policy=policy, source=sample)
    else:
        r, out, _ = (run_imgedit if bench == "imgedit" else run_rise)(tmp_path, replies, data=data, policy=policy)
    assert r.returncode == 0, r.stderr
    live = str(tmp_path / "live.json")
    r = run_official(bench, checkout, sample, out, replies, live)
    assert r.returncode == 0, r.stderr + r.stdout
    ref, rep = load(live), report(out)
    assert not ref["official"]["unrecorded_requests"] and len(rep["pairs"]) == len(ref["items"]) < len(load(
        os.path.join(DATA, bench, "reference.json"))["items"])
    if bench == "gedit":   # a task type left out: the official average is NaN, evalhost's over the types scored
        assert {p["id"]: (p["dims"]["SC"], p["dims"]["PQ"]) for p in rep["pairs"]} == \
            {k: (v["SC"], v["PQ"]) for k, v in ref["items"].items()}
        for lang in ("en", "cn"):
            for part in ("fullset", "intersection"):
                got, want = rep["profile"]["languages"][lang][part], ref["aggregates"][lang][part]
                assert "ps_human" in got["missing"] and want["ps_human"] == ["nan"] * 3 == want["Average"]
                for g in got["order"]:
                    c = got["categories"][g]
                    assert [fmt3(c["SC"]), fmt3(c["PQ"]), fmt3(c["O"])] == want[g], (lang, part, g)
                means = [got["categories"][g]["O"] for g in got["order"]]
                assert got["average"]["O"] == pytest.approx(sum(means) / len(means))
        md = [f for f in os.listdir(os.path.join(out, "results")) if f.endswith(".md")][0]
        text = open(os.path.join(out, "results", md), encoding="utf-8").read()
        assert "| ps_human (no scored pair) |" in text and text.count("as calculate_statistics.py prints it: nan") == 4
    elif bench == "imgedit":
        assert {p["id"]: p["score"] for p in rep["pairs"]} == ref["items"]
        assert rep["profile"]["types"] == ref["aggregates"]["types"] and "add" not in ref["aggregates"]["types"]
    else:
        got = [[row["name"], row.get("score"), row.get("percent"), row.get("accuracy")] for row in rep["profile"]["rows"]]
        assert [g15(row) for row in got] == [g15(row) for row in ref["aggregates"]["table"]]
