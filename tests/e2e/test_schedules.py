"""End-to-end runs of the three schedules (scripts/*.lua) through the built
binary: identical per-pair scores, exchange counts 2C-1 / 2N-1 / 1, reports
on disk, bad input recorded by name, the HTML report rendered by headless
Chromium, and peak memory over a 300-pair run.

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

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

SRC = os.environ.get("EVALHOST_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("EVALHOST_BIN") or os.path.join(SRC, "build", "evalhost")
CATEGORIES = ["物理", "环境", "社会", "因果", "指代"]
INSTRUCTIONS = [
    "把天空变成红色", "make the car blue", "水平翻转图像", "rotate the picture 90 degrees",
    "让画面变模糊", "brighten the room", "把场景变暗", "turn the grass green",
    "add falling snow", "让杯子里的水结冰", "replace the left apple with a pear", "make it look like dusk",
]


def draw_image(rng, w, h):
    """A procedural picture: gradient background, a few shapes, some texture."""
    c0 = np.array([rng.randrange(256) for _ in range(3)], dtype=np.float64)
    c1 = np.array([rng.randrange(256) for _ in range(3)], dtype=np.float64)
    t = np.linspace(0.0, 1.0, h)[:, None, None]
    rows = (c0 + (c1 - c0) * t).astype(np.uint8)
    img = Image.fromarray(np.ascontiguousarray(np.broadcast_to(rows, (h, w, 3))), "RGB")
    d = ImageDraw.Draw(img)
    for _ in range(rng.randrange(3, 7)):
        x0, y0 = rng.randrange(w), rng.randrange(h)
        x1, y1 = x0 + rng.randrange(8, w // 2), y0 + rng.randrange(8, h // 2)
        fill = tuple(rng.randrange(256) for _ in range(3))
        (d.ellipse if rng.random() < 0.5 else d.rectangle)([x0, y0, x1, y1], fill=fill)
    return img.filter(ImageFilter.SMOOTH)


def make_benchmark(path, per_category, size=(96, 72), seed=1, categories=CATEGORIES, bad=None):
    """Writes a benchmark in the seed's exact shape; returns {cat: [ids]}.
    bad: {(cat, index): {field: value}} overrides to inject broken pairs."""
    rng = random.Random(seed)
    doc, ids = {}, {}
    for ci, cat in enumerate(categories):
        pairs = []
        for i in range(per_category):
            img = draw_image(rng, *size)
            buf = io.BytesIO()
            fmt = "PNG" if (i + ci) % 2 == 0 else "JPEG"
            img.save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
            pair = {
                "id": "pair_%03d" % (i + 1),
                "original_image_b64": base64.b64encode(buf.getvalue()).decode(),
                "edit_instruction": INSTRUCTIONS[(i * 7 + ci * 3) % len(INSTRUCTIONS)],
                "original_description": "第 %d 张测试图 / test picture %d" % (i + 1, i + 1),
                "difficulty": rng.choice(["easy", "hard"]),
            }
            pair.update((bad or {}).get((cat, i), {}))
            pairs.append(pair)
        doc[cat] = {"data_pairs": pairs}
        ids[cat] = [p["id"] for p in pairs]
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False)
    return ids


def write_config(path, data_path, out, extra=""):
    with open(path, "w", encoding="utf-8") as f:
        f.write(
            "benchmark:\n  data_path: %s\n"
            "editor: {backend: builtin, name: imageops}\n"
            "judge: {backend: builtin, name: metrics}\n"
            "run:\n  out: %s\n"
            "report:\n  bootstrap: {resamples: 300}\n%s" % (json.dumps(data_path), json.dumps(out), extra))
    return path


def run(script, config, *args, cwd=SRC, quiet=True):
    cmd = [BIN, os.path.join(SRC, "scripts", script + ".lua"), config, *(["--quiet"] if quiet else []), *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)


def load_report(out):
    files = sorted(glob.glob(os.path.join(out, "results", "evaluation_report_*.json")))
    assert len(files) == 1, files
    with open(files[0], encoding="utf-8") as f:
        return json.load(f), files[0][:-len(".json")]


def scores(rep):
    return {(p["category"], p["id"]): p["score"] for p in rep["pairs"]}


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench")
    path = str(d / "bench.json")
    ids = make_benchmark(path, 4, categories=CATEGORIES[:3])
    return path, ids


SWAPS = {"two_stage": lambda c, n: 2 * c - 1, "single_stage": lambda c, n: 2 * n - 1, "cross_category": lambda c, n: 1}


def test_three_schedules_same_scores_and_swap_counts(binary, bench, tmp_path):
    path, ids = bench
    c, n = len(ids), sum(len(v) for v in ids.values())
    results = {}
    for script, want in SWAPS.items():
        out = str(tmp_path / script)
        cfg = write_config(str(tmp_path / (script + ".yaml")), path, out)
        r = run(script, cfg)
        assert r.returncode == 0, r.stderr
        rep, stem = load_report(out)
        assert rep["swaps"]["count"] == want(c, n), (script, rep["swaps"])
        assert rep["run"]["schedule"] == script
        assert len(rep["pairs"]) == n and rep["failures"] == []
        for p in rep["pairs"]:
            assert isinstance(p["score"], (int, float)) and 0 <= p["score"] <= 10
            assert p["image"] == "images/%s/%s.png" % (p["category"], p["id"])
            with Image.open(os.path.join(out, p["image"])) as im:
                assert sorted(im.size) == [72, 96]  # "rotate" turns it
        for ext in (".md", ".html"):
            assert os.path.getsize(stem + ext) > 500
        assert rep["categories"]["物理"]["n"] == 4
        results[script] = scores(rep)
    assert results["two_stage"] == results["single_stage"] == results["cross_category"]
    assert len(set(results["two_stage"].values())) > 1, "scores differ between pairs"

    # The README's custom schedule, run as the README shows it: chunks of 5
    # over 12 pairs swap E->J, J->E, E->J, J->E, E->J = 5 times.
    out = str(tmp_path / "chunked")
    cfg = write_config(str(tmp_path / "chunked.yaml"), path, out)
    r = run("examples/my_schedule", cfg, "--set", "script.chunk=5", quiet=False)
    assert r.returncode == 0, r.stderr
    rep, _ = load_report(out)
    assert rep["swaps"]["count"] == 5
    assert scores(rep) == results["two_stage"]
    assert "[物理] mean " in r.stderr and "lowest: pair_" in r.stderr


def test_example_benchmark_two_stage(binary, tmp_path):
    example = os.path.join(SRC, "examples", "benchmark.json")
    if not os.path.exists(example):
        pytest.fail("examples/benchmark.json is missing")
    out = str(tmp_path / "out")
    r = run("two_stage", os.path.join(SRC, "config", "example.yaml"), "--set", "run.out=" + out, quiet=False)
    assert r.returncode == 0, r.stderr
    rep, _ = load_report(out)
    assert rep["category_order"] == CATEGORIES
    assert rep["swaps"]["count"] == 2 * 5 - 1
    assert all(rep["categories"][c]["n"] >= 4 for c in CATEGORIES)
    # the seed's log: banners, bars, the mean per category (ui.language: both)
    assert "=" * 60 in r.stderr and "[物理] 编辑图像 / edit" in r.stderr and "[物理] 评分 / score" in r.stderr
    for c in CATEGORIES:
        assert "[%s] 平均分 / mean: %.3f" % (c, rep["categories"][c]["mean"]) in r.stderr


def test_report_statistics_match_numpy_on_the_pairs(binary, bench, tmp_path):
    """The report's numbers, recomputed with numpy from its own per-pair
    scores, for both aggregation rules."""
    for rule in ("pairs", "categories"):
        out = str(tmp_path / rule)
        r = run("cross_category", write_config(str(tmp_path / (rule + ".yaml")), bench[0], out),
                "--set", "report.aggregate=" + rule)
        assert r.returncode == 0, r.stderr
        rep, _ = load_report(out)
        assert rep["aggregate"] == rule
        by_cat = {}
        for p in rep["pairs"]:
            by_cat.setdefault(p["category"], []).append(p["score"])
        for cat, xs in by_cat.items():
            s, a = rep["categories"][cat], np.array(xs)
            assert s["n"] == len(xs) and s["failed"] == 0
            assert s["mean"] == pytest.approx(a.mean(), abs=1e-12)
            assert s["std"] == pytest.approx(a.std(ddof=1), abs=1e-12)
            assert s["median"] == pytest.approx(np.median(a), abs=1e-12)
            assert (s["min"], s["max"]) == (a.min(), a.max())
            assert s["ci95"][0] <= s["mean"] <= s["ci95"][1]
        allx = np.concatenate([np.array(v) for v in by_cat.values()])
        cat_mean = np.mean([np.mean(v) for v in by_cat.values()])
        o = rep["overall"]
        assert o["pair_mean"] == pytest.approx(allx.mean(), abs=1e-12)
        assert o["category_mean"] == pytest.approx(cat_mean, abs=1e-12)
        assert o["mean"] == pytest.approx(allx.mean() if rule == "pairs" else cat_mean, abs=1e-12)


def test_keep_both_true_means_no_exchange(binary, bench, tmp_path):
    out = str(tmp_path / "out")
    cfg = write_config(str(tmp_path / "c.yaml"), bench[0], out)
    r = run("two_stage", cfg, "--set", "run.keep_both=true")
    assert r.returncode == 0, r.stderr
    rep, _ = load_report(out)
    assert rep["swaps"]["count"] == 0


def test_bad_pairs_are_recorded_by_name(binary, tmp_path):
    path = str(tmp_path / "bad.json")
    make_benchmark(path, 3, categories=CATEGORIES[:2], bad={
        ("物理", 1): {"original_image_b64": "bm90IGFuIGltYWdl"},  # "not an image"
        ("环境", 2): {"edit_instruction": None},
    })
    out = str(tmp_path / "out")
    cfg = write_config(str(tmp_path / "c.yaml"), path, out, "")
    r = run("two_stage", cfg, "--set", "benchmark.categories=[物理,环境]")
    assert r.returncode == 1, r.stderr
    rep, stem = load_report(out)
    failed = {(f["category"], f["id"]): f for f in rep["failures"]}
    assert set(failed) == {("物理", "pair_002"), ("环境", "pair_003")}, failed
    assert failed[("物理", "pair_002")]["stage"] == "data"
    assert "pair_002" in r.stderr and "pair_003" in r.stderr
    by = scores(rep)
    assert by[("物理", "pair_002")] is None and by[("环境", "pair_003")] is None
    assert (rep["categories"]["物理"]["n"], rep["categories"]["物理"]["failed"]) == (2, 1)
    assert rep["swaps"]["count"] == 3
    with open(stem + ".md", encoding="utf-8") as f:
        md = f.read()
    assert "## 失败 / Failures (2)" in md and "| 物理 | pair_002 | data |" in md


def test_an_unknown_category_stops_before_models_load_naming_the_known_ones(binary, tmp_path):
    path = str(tmp_path / "b.json")
    make_benchmark(path, 3, categories=CATEGORIES[:2])
    out = str(tmp_path / "out")
    cfg = write_config(str(tmp_path / "c.yaml"), path, out, "")
    r = run("two_stage", cfg, "--set", "benchmark.categories=[物理,天文,环境]")
    assert r.returncode == 1, r.stderr
    assert f'config: benchmark.categories: unknown category "天文" ({path} has: 物理, 环境)' in r.stderr, r.stderr
    assert "[swap]" not in r.stderr and "evalhost two_stage:" not in r.stderr
    assert not os.path.exists(os.path.join(out, "results"))


def test_the_banner_counts_the_pairs_that_run(binary, tmp_path):
    path = str(tmp_path / "b.json")
    make_benchmark(path, 3, categories=CATEGORIES[:3])
    out = str(tmp_path / "out")
    cfg = write_config(str(tmp_path / "c.yaml"), path, out, "")
    r = run("two_stage", cfg, "--set", "benchmark.categories=[环境]", "--set", "ui.language=en", quiet=False)
    assert r.returncode == 0, r.stderr
    assert "evalhost two_stage: 1 categories, 3 pairs" in r.stderr, r.stderr


def test_config_errors_stop_before_models_load(binary, bench, tmp_path):
    out = str(tmp_path / "out")
    cfg = write_config(str(tmp_path / "c.yaml"), bench[0], out,
                       "prompts:\n  templates:\n    物理: {user: 'rate {{instruction}} {{scor}}'}\n")
    r = run("two_stage", cfg)
    assert r.returncode == 1
    assert "prompts: template 物理.user (config prompts.templates) names unknown placeholder {{scor}}" in r.stderr
    assert not os.path.exists(os.path.join(out, "images"))
    cfg = write_config(str(tmp_path / "d.yaml"), str(tmp_path / "missing.json"), out)
    r = run("two_stage", cfg)
    assert r.returncode == 1
    assert "missing.json" in r.stderr


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    pytest.fail("headless Chromium is needed for the HTML report test: apt-get install chromium")


def test_html_report_renders_in_chromium(binary, bench, tmp_path):
    out = str(tmp_path / "out")
    r = run("two_stage", write_config(str(tmp_path / "c.yaml"), bench[0], out))
    assert r.returncode == 0, r.stderr
    _, stem = load_report(out)
    html = stem + ".html"
    with open(html, encoding="utf-8") as f:
        text = f.read()
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in text
    exe = chromium()
    flags = [exe, "--headless", "--disable-gpu", "--no-sandbox", "--user-data-dir=" + str(tmp_path / "prof")]
    dom = subprocess.run(flags + ["--dump-dom", "file://" + html], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr
    assert '<table id="categories">' in dom.stdout
    assert dom.stdout.count('<svg class="hist"') == 4  # three categories + overall
    # the pictures are thumbnail files beside the report (tests/e2e/test_report_page.py drives the page)
    assert "data:image" not in text
    assert dom.stdout.count('src="../thumbs/') == 2 * 12
    shot = str(tmp_path / "shot.png")
    s = subprocess.run(flags + ["--screenshot=" + shot, "--window-size=1200,1600", "file://" + html],
                       capture_output=True, text=True, timeout=120)
    assert s.returncode == 0 and os.path.exists(shot), s.stderr
    with Image.open(shot) as im:
        colors = im.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 50, "screenshot looks blank"


RSS_PROBE = ("import resource, subprocess, sys\n"
             "r = subprocess.run(sys.argv[1:], capture_output=True)\n"
             "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")


def peak_rss_kb(cmd):
    p = subprocess.run([sys.executable, "-c", RSS_PROBE, *cmd], capture_output=True, text=True, timeout=900)
    rc, kb = p.stdout.split()
    return int(rc), int(kb)


def test_memory_flat_over_300_pairs(binary, tmp_path):
    """Edited images go to disk as they are made: peak RSS must not grow with
    the number of pairs beyond the (mapped) benchmark file itself."""
    figures = {}
    for n in (12, 60):
        path = str(tmp_path / ("b%d.json" % n))
        make_benchmark(path, n, size=(512, 384), seed=n)
        out = str(tmp_path / ("o%d" % n))
        cfg = write_config(str(tmp_path / ("c%d.yaml" % n)), path, out)
        rc, kb = peak_rss_kb([BIN, os.path.join(SRC, "scripts", "two_stage.lua"), cfg, "--quiet"])
        assert rc == 0
        rep, _ = load_report(out)
        assert len(rep["pairs"]) == 5 * n and rep["swaps"]["count"] == 9
        figures[n] = (kb, os.path.getsize(path))
    (kb60, size60), (kb300, size300) = figures[12], figures[60]
    print("peak RSS: 60 pairs %.1f MB (benchmark %.1f MB), 300 pairs %.1f MB (benchmark %.1f MB)"
          % (kb60 / 1024, size60 / 2**20, kb300 / 1024, size300 / 2**20))
    # 240 more 512x384 pairs would add 240 * 2 * 590 KB = 280 MB if images were kept.
    growth = (kb300 - kb60) * 1024
    assert growth < (size300 - size60) + 40 * 2**20, figures
