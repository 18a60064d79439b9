"""Run comparison (scripts/compare.lua) and judge repeatability
(scripts/judge_repeat.lua) through the built binary, their numbers checked
against numpy/scipy (scipy.stats.wilcoxon and binomtest with their defaults,
spearmanr) and against tests/data/stats_reference.py's bootstrap.

The judges are the loopback OpenAI-compatible server with two extra
scenarios added here: "shift" moves pair_NNN's known score by NNN % 3 - 1
(zeros and ties: scipy's permutation and normal-approximation paths),
"noisy" adds -1/0/+1 from a seeded generator on every request (a judge with
injected noise for judge_repeat), and a hub id ("Org/Name") scores like
"text".

Environment: EVALHOST_BIN (default build/evalhost), EVALHOST_SRC (repo root).
"""
import glob
import json
import math
import os
import random
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
from scipy import stats as sps

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "data"))
import fake_openai_server as fos  # noqa: E402
from stats_reference import bootstrap  # noqa: E402
from test_rejudge import BIN, config, http_judge, journal, make_doc, report, run, write_json  # noqa: E402,F401

RESAMPLES = 50


# prompt text -> reply, for the "dims" scenario (profiles of the dataset adapters)
DIMS_REPLIES = [
    ("Final Scores: A, B, C, D", "Final Scores: 3, 4, 2, 5"),
    ("Final Scores: A, B, C", "Final Scores: 4, 5, 3"),
    ("Final Score: C, R, P", "Final Score: 5, 5, 4"),
    ("SC: a, b", "SC: 8, 6\nPQ: 9, 4\nScore: 5"),
]


class _Handler(fos._Handler):
    def _chat(self, srv, body):
        req = json.loads(body)
        model = req.get("model", "")
        if model not in ("shift", "noisy", "dims") and "/" not in model:   # a hub id: scored like "text"
            return super()._chat(srv, body)
        self.entry["model"] = model
        user = "".join(p.get("text", "") for m in req["messages"] if m["role"] == "user"
                       for p in (m["content"] if isinstance(m["content"], list) else [{"type": "text", "text": m["content"]}])
                       if p.get("type") == "text")
        pid = self.entry["id"] = re.search(r"id=([^\s)]+)", user).group(1)
        if model == "dims":   # the ratings a benchmark profile's prompt asks for
            for ask, reply in DIMS_REPLIES:
                if ask in user:
                    return self._send(200, fos.chat_completion(model, "Reasons.\n" + reply, False))
            return self._send(200, fos.chat_completion(model, "Score: 1", False))
        num = int(re.search(r"(\d+)", pid).group(1))
        s = fos.expected_score(pid)
        if model == "shift":
            s = min(10, max(0, s + num % 3 - 1))
        elif model == "noisy":
            with srv.lock:
                s = min(10, max(0, s + srv.rng.choice([-1, 0, 0, 1])))
        return self._send(200, fos.chat_completion(model, "Looks fine.\nScore: %d" % s, False))


class Server(fos.FakeOpenAI):
    def __enter__(self):
        self.rng = random.Random(11)
        saved, fos._Handler = fos._Handler, _Handler
        try:
            return super().__enter__()
        finally:
            fos._Handler = saved


def comparison(out):
    files = sorted(glob.glob(os.path.join(out, "results", "comparison_*.json")))
    assert len(files) == 1, files
    with open(files[0], encoding="utf-8") as f:
        return json.load(f), files[0]


def expected(rep_a, rep_b):
    """The comparison computed independently from the two reports."""
    b = {(p["category"], p["id"]): p for p in rep_b["pairs"]}
    per, order, all_d = {}, [], []
    for p in rep_a["pairs"]:
        q = b.get((p["category"], p["id"]))
        if q is None or p["score"] is None or q["score"] is None:
            continue
        if p["category"] not in per:
            per[p["category"]] = []
            order.append(p["category"])
        per[p["category"]].append(q["score"] - p["score"])
        all_d.append(q["score"] - p["score"])

    def one(d):
        d = np.array(d, dtype=np.float64)
        nz = d[d != 0]
        out = {"n": len(d), "mean_diff": float(np.mean(d)), "ci95": bootstrap([list(d)], RESAMPLES, 0),
               "sign_p": None, "wilcoxon_p": None}
        if len(nz):
            out["sign_p"] = sps.binomtest(int((nz > 0).sum()), len(nz)).pvalue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out["wilcoxon_p"] = float(sps.wilcoxon(d).pvalue)
        return out

    return {c: one(per[c]) for c in order}, one(all_d), order


def check(got, want):
    assert got["n"] == want["n"]
    assert got["mean_diff"] == pytest.approx(want["mean_diff"], abs=1e-12)
    assert got["ci95"] == pytest.approx(want["ci95"], abs=1e-12)
    for k, g in (("sign_p", got["sign_test"]["p"]), ("wilcoxon_p", got["wilcoxon"]["p"])):
        if want[k] is None:
            assert g is None
        else:
            assert g == pytest.approx(want[k], rel=1e-9, abs=1e-15), (k, got)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    if not os.access(BIN, os.X_OK):
        pytest.fail("evalhost binary not found at %s (build it or set EVALHOST_BIN)" % BIN)
    tmp = tmp_path_factory.mktemp("cmp")
    doc = make_doc(per_category=8)
    data = write_json(tmp / "bench.json", doc)
    # B's benchmark: 环境/pair_008 gone, 环境/pair_009 new, 物理/pair_005's image broken
    doc_b = make_doc(per_category=8)
    extra = dict(doc_b["环境"]["data_pairs"].pop(), id="pair_009")
    doc_b["环境"]["data_pairs"].append(extra)
    doc_b["物理"]["data_pairs"][4]["original_image_b64"] = "bm90IGFuIGltYWdl"
    data_b = write_json(tmp / "bench_b.json", doc_b)
    out = {}
    with Server() as srv:
        for name, d, judge in (("builtin", data, "{backend: builtin, name: metrics}"),
                               ("a", data, http_judge(srv.url, "text")),
                               ("b", data_b, http_judge(srv.url, "shift"))):
            cfg = config(tmp, name + ".yaml", d, judge=judge)
            out[name] = str(tmp / name)
            r = run("two_stage.lua", cfg, "run.out=" + out[name])
            assert r.returncode == (1 if name == "b" else 0), r.stderr
    return {"tmp": tmp, "out": out, "cfg": config(tmp, "cmp.yaml", data)}


@pytest.mark.parametrize("a,b", [("a", "b"), ("builtin", "a")])
def test_compare_numbers_match_numpy_and_scipy(runs, a, b):
    out = str(runs["tmp"] / ("cmp-%s-%s" % (a, b)))
    r = run("compare.lua", runs["cfg"], "compare.runs=[%s,%s]" % (runs["out"][a], runs["out"][b]), "run.out=" + out)
    assert r.returncode == 0, r.stderr
    got, path = comparison(out)
    cats, overall, order = expected(report(runs["out"][a]), report(runs["out"][b]))
    assert got["category_order"] == order
    for c in order:
        check(got["categories"][c], cats[c])
    check(got["overall"], overall)
    methods = {got["categories"][c]["wilcoxon"]["method"] for c in order} | {got["overall"]["wilcoxon"]["method"]}
    if (a, b) == ("a", "b"):
        # zeros and ties: exact permutation per category (n <= 13), normal approximation overall
        assert methods == {"permutation", "approx"}
        assert got["only_a"] == [{"category": "环境", "id": "pair_008", "score": 2}]
        assert got["only_b"] == [{"category": "环境", "id": "pair_009", "score": 4}]   # 27 % 11 = 5, shifted by -1
        assert [(u["category"], u["id"]) for u in got["unscored"]] == [("物理", "pair_005")]
        assert "image" in got["unscored"][0]["error_b"]
        # moved most: |diff| = 1 for ids 2,3,5,6,8 (3*id % 11 away from 0 and 10)
        assert all(abs(m["diff"]) == 1 for m in got["moved"]) and len(got["moved"]) >= 4
        # the fake server reports the model it serves, so the pinned revision changes too
        assert got["comparison"]["changed"] == ["judge name: text -> shift", "judge revision: text -> shift"]
    else:
        assert "exact" in methods
        assert got["only_a"] == [] and got["only_b"] == [] and got["unscored"] == []
        assert "judge backend: builtin -> http" in got["comparison"]["changed"]
    md = open(path[:-5] + ".md", encoding="utf-8").read()
    html = open(path[:-5] + ".html", encoding="utf-8").read()
    assert "| **总体 / overall** | %d |" % overall["n"] in md
    assert 'id="comparison"' in html and html.count("<figure") == len(got["moved"])
    if got["moved"]:
        assert "data:image/jpeg;base64," in html


def test_compare_bad_input_is_named(runs):
    out = str(runs["tmp"] / "bad")
    r = run("compare.lua", runs["cfg"], "compare.runs=[%s]" % runs["out"]["a"], "run.out=" + out)
    assert r.returncode == 1 and "compare: set compare.runs to two run folders" in r.stderr
    r = run("compare.lua", runs["cfg"], "compare.runs=[%s,%s]" % (runs["out"]["a"], runs["tmp"] / "missing"),
            "run.out=" + out)
    assert r.returncode == 1 and "holds neither a journal nor a report" in r.stderr
    assert not os.path.exists(out)


def test_judge_repeat_measures_injected_noise(runs):
    k = 4
    results = {}
    with Server() as srv:
        for model in ("noisy", "text"):
            cfg = config(runs["tmp"], "rep-%s.yaml" % model, report(runs["out"]["a"])["dataset"]["path"],
                         judge=http_judge(srv.url, model))
            out = str(runs["tmp"] / ("rep-" + model))
            srv.reset_log()
            r = run("judge_repeat.lua", cfg, "judge_repeat.from=" + runs["out"]["builtin"],
                    "judge_repeat.k=%d" % k, "run.out=" + out)
            assert r.returncode == 0, r.stderr
            assert len(srv.requests()) == 16 * k and srv.requests("/v1/images/edits") == []
            rep = report(out)
            assert rep["swaps"]["count"] == 0 and "editor" not in rep["models"]
            results[model] = rep["judge_repeat"]
            assert glob.glob(os.path.join(out, "results", "judge_repeat_*.md"))
            stages = {s["stage"] for s in journal(out)}
            assert stages == {"edit", "score", "score#2", "score#3", "score#4"}
    noisy = results["noisy"]
    cols = np.array([p["scores"] for p in noisy["pairs"]], dtype=np.float64)
    assert cols.shape == (16, k)
    for p in noisy["pairs"]:
        assert all(abs(s - fos.expected_score(p["id"])) <= 1 for s in p["scores"])
        assert p["std"] == pytest.approx(float(np.std(p["scores"], ddof=1)), abs=1e-12)
    changed = int(sum(len(set(row)) > 1 for row in cols.tolist()))
    assert noisy["changed"] == changed and noisy["changed_share"] == pytest.approx(changed / 16)
    assert 0 < changed <= 16
    assert noisy["mean_std"] == pytest.approx(float(np.mean(np.std(cols, axis=1, ddof=1))), abs=1e-12)
    rhos = [sps.spearmanr(cols[:, i], cols[:, j]).statistic for i in range(k) for j in range(i + 1, k)]
    assert [r["rho"] for r in noisy["spearman"]] == pytest.approx(rhos, abs=1e-12)
    assert noisy["spearman_mean"] == pytest.approx(float(np.mean(rhos)), abs=1e-12)
    assert noisy["spearman_mean"] < 1
    clean = results["text"]
    assert clean["changed"] == 0 and clean["mean_std"] == 0 and clean["spearman_mean"] == pytest.approx(1.0)


def test_judge_repeat_k_must_be_two_or_more(runs):
    r = run("judge_repeat.lua", runs["cfg"], "judge_repeat.k=1", "run.out=" + str(runs["tmp"] / "k1"))
    # the config schema refuses it before the script runs (a --set mistake: exit 2)
    assert r.returncode == 2 and "--set judge_repeat.k=1: judge_repeat.k must be at least 2, got 1" in r.stderr


def test_adapters_and_gedit_converter_through_the_binary(tmp_path):
    """Every adapter's fixture (tests/data/adapters) edited and scored by the
    builtin models; GEdit-Bench first converted from its parquet layout."""
    src = os.path.join(HERE, "..", "..")
    fix = os.path.join(src, "tests", "data", "adapters")
    conv = subprocess.run([sys.executable, os.path.join(src, "tools", "convert_gedit.py"),
                           os.path.join(fix, "gedit"), str(tmp_path / "gedit")], capture_output=True, text=True, timeout=60)
    assert conv.returncode == 1   # the unsafe key is skipped and reported
    assert "key '../x' / task_type 'text_change' / language 'en' cannot name a file" in conv.stderr
    with open(tmp_path / "gedit" / "gedit.jsonl", encoding="utf-8") as f:
        rows = [json.loads(x) for x in f]
    assert [r["id"] for r in rows] == ["a1_en", "a1_cn", "b2_en", "c3_en"]
    cases = [
        ("imgedit", os.path.join(fix, "imgedit", "basic_edit.json"), "", ["adjust", "remove", "style"], 4,
         {"4": 'image path "../../outside.jpg" leaves'}),
        ("kris", os.path.join(fix, "kris", "KRIS_Bench"), "", ["color_change", "temperature"], 3, {"3": "no instruction"}),
        ("rise", os.path.join(fix, "rise", "data", "data_total.json"), "",
         ["temporal_reasoning", "causal_reasoning", "logical_reasoning", "spatial_reasoning"], 3,
         {"spatial_reasoning_1": "missing.png"}),
        ("gedit", str(tmp_path / "gedit" / "gedit.jsonl"), "", ["background_change", "color_alter", "text_change"], 3, {}),
        ("gedit", str(tmp_path / "gedit" / "gedit.jsonl"), ", language: cn", ["background_change"], 1, {}),
    ]
    for i, (name, path, extra, cats, n, fails) in enumerate(cases):
        cfg = tmp_path / ("%s-%d.yaml" % (name, i))
        cfg.write_text("dataset: {path: %s, adapter: %s%s}\neditor: {backend: builtin, name: imageops}\n"
                       "judge: {backend: builtin, name: metrics}\nreport: {aggregate: categories, bootstrap: {resamples: 20}}\n"
                       % (json.dumps(path), name, extra), encoding="utf-8")
        out = str(tmp_path / ("out-%d" % i))
        r = run("two_stage.lua", str(cfg), "run.out=" + out)
        assert r.returncode == (1 if fails else 0), r.stderr
        rep = report(out)
        assert rep["category_order"] == cats and rep["overall"]["n"] == n and rep["aggregate"] == "categories"
        got = {f["id"]: f["error"] for f in rep["failures"]}
        assert set(got) == set(fails)
        for k, why in fails.items():
            assert why in got[k], got[k]
        for p in rep["pairs"]:
            if p["score"] is not None:
                assert os.path.exists(os.path.join(out, p["image"]))
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("dataset: {path: x.json, adapter: magicbrush}\neditor: {backend: builtin, name: imageops}\n"
                   "judge: {backend: builtin, name: metrics}\n", encoding="utf-8")
    r = run("two_stage.lua", str(cfg), "run.out=" + str(tmp_path / "bad"))
    assert r.returncode == 1 and 'dataset.adapter must be one of imgedit, kris, rise, gedit, got "magicbrush"' in r.stderr


def test_adapter_profiles_score_with_their_benchmark_rules(tmp_path):
    """An http judge answering each profile's prompt with known ratings: the
    report's scores are the benchmarks' formulas, with the ratings per pair
    and the profile's summary (RISE accuracy, GEdit group means)."""
    src = os.path.join(HERE, "..", "..")
    fix = os.path.join(src, "tests", "data", "adapters")
    conv = subprocess.run([sys.executable, os.path.join(src, "tools", "convert_gedit.py"),
                           os.path.join(fix, "gedit"), str(tmp_path / "gedit")], capture_output=True, text=True, timeout=60)
    assert conv.returncode == 1, conv.stderr
    reps = {}
    with Server() as srv:
        for name, path in (("imgedit", os.path.join(fix, "imgedit", "basic_edit.json")),
                           ("kris", os.path.join(fix, "kris", "KRIS_Bench")),
                           ("rise", os.path.join(fix, "rise", "data", "data_total.json")),
                           ("gedit", str(tmp_path / "gedit" / "gedit.jsonl"))):
            cfg = tmp_path / (name + ".yaml")
            # compact: evalhost's one-request prompts (the official protocols: test_protocols.py)
            cfg.write_text("dataset: {path: %s, adapter: %s, protocol: compact}\neditor: {backend: builtin, name: imageops}\n"
                           "judge: %s\nreport: {bootstrap: {resamples: 20}}\n" % (json.dumps(path), name,
                                                                                 http_judge(srv.url, "dims")),
                           encoding="utf-8")
            out = str(tmp_path / ("out-" + name))
            r = run("two_stage.lua", str(cfg), "run.out=" + out)
            assert r.returncode == (0 if name == "gedit" else 1), r.stderr   # the fixtures' bad entries fail
            reps[name] = report(out)
    scored = {n: [p for p in rep["pairs"] if p["score"] is not None] for n, rep in reps.items()}
    assert len(scored["imgedit"]) == 4 and all(p["score"] == 4 for p in scored["imgedit"])
    assert scored["imgedit"][0]["dims"] == {"prompt_compliance": 4, "visual_naturalness": 5,
                                            "physical_detail_integrity": 3}
    assert reps["imgedit"]["aggregate"] == "categories"
    assert reps["imgedit"]["profile"]["dimensions"]["overall"]["visual_naturalness"] == 5
    assert len(scored["kris"]) == 3 and all(p["score"] == 3.5 for p in scored["kris"])
    rise = {p["id"]: p for p in scored["rise"]}
    assert rise["temporal_reasoning_1"]["score"] == pytest.approx(0.3 * 5 + 0.5 * 5 + 0.2 * 4)
    assert rise["logical_reasoning_1"]["score"] == pytest.approx(0.3 * 5 + 0.7 * 5)
    acc = reps["rise"]["profile"]["accuracy"]
    assert acc["categories"] == {"temporal_reasoning": 0, "causal_reasoning": 0, "logical_reasoning": 1}
    assert acc["overall"] == pytest.approx(1 / 3)
    assert reps["rise"]["aggregate"] == "pairs"
    g = reps["gedit"]
    assert all(p["score"] == pytest.approx(math.sqrt(6 * 4)) for p in scored["gedit"]) and len(scored["gedit"]) == 3
    assert g["aggregate"] == "categories" and g["profile"]["overall"]["SC"] == 6 and g["profile"]["overall"]["PQ"] == 4
    assert g["overall"]["mean"] == pytest.approx(math.sqrt(24))
    # the profile's prompt reached the judge: the user prompt carried the benchmark's ask
    # (and a reply without the ratings is the pair's failure, never a score)
