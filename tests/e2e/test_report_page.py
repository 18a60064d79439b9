"""The HTML report and the comparison page in a real browser: Playwright
driving Debian's Chromium (headless, no browser download) against a real
25-pair run of config/example.yaml and a synthetic 100k-pair report
(tools/bench/report/synthetic.lua). Sort, filter, search, the detail view,
a link with hash parameters, the compare view. Screenshots go to
<build>/artifacts/report_page/."""
import json
import os
import pathlib
import resource
import subprocess
import sys

import pytest

from conftest import BIN, SRC, run_evalhost

CHROMIUM = "/usr/bin/chromium"
ART = BIN.parent / "artifacts" / "report_page"

try:
    from playwright.sync_api import sync_playwright
except ImportError as e:  # pragma: no cover - the skip says why
    sync_playwright = None
    WHY = "playwright is not installed (pip install -r tools/requirements.txt): %s" % e
else:
    WHY = None

pytestmark = [
    pytest.mark.skipif(sync_playwright is None, reason=WHY or ""),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not at %s (apt-get install chromium)" % CHROMIUM),
]


def sanitized(binary):
    """True when binary is an AddressSanitizer build (make test-asan)."""
    r = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
    return "libasan" in r.stdout


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def open_page(browser, path, hash_=""):
    """A page on file://path, every request it makes recorded."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.requests = []
    page.on("request", lambda r: page.requests.append(r.url))
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(pathlib.Path(path).as_uri() + hash_)
    page.wait_for_function("window.EH && EH.ready === true", timeout=120000)
    return page


def count(page):
    return page.evaluate("document.getElementById('count').textContent")


def thumbnails_loaded(page, timeout_ms=60000):
    """Waits until every card's picture has loaded from its file. The cards'
    images are loading="lazy", so one not yet near the viewport has not even
    started: each unloaded one in turn is scrolled into view. A broken image
    never counts as loaded, so the wait ends in the names of those left."""
    want = """() => {
      const todo = [...document.querySelectorAll('.card img')].filter(i => !(i.complete && i.naturalWidth > 0));
      if (todo.length) todo[0].scrollIntoView();
      return todo.length === 0;
    }"""
    try:
        page.wait_for_function(want, timeout=timeout_ms, polling=100)
    except Exception:
        left = page.evaluate("[...document.querySelectorAll('.card img')]"
                             ".filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
        raise AssertionError("thumbnails that did not load: %s" % left)
    page.evaluate("window.scrollTo(0, 0)")
    return True


def shot(page, name):
    ART.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ART / name), full_page=False)


@pytest.fixture(scope="module")
def run25(tmp_path_factory):
    out = tmp_path_factory.mktemp("run25") / "out"
    r = run_evalhost("scripts/two_stage.lua", "config/example.yaml", "--set", "run.out=%s" % out, timeout=300)
    assert r.returncode in (0, 1), r.stderr
    results = out / "results"
    rep = json.loads((results / "latest.json").read_text(encoding="utf-8"))
    samples = [json.loads(l) for l in (results / "samples.jsonl").read_text(encoding="utf-8").splitlines()]
    return {"out": out, "html": results / "latest.html", "rep": rep, "samples": samples}


def test_report_files_beside_the_page(run25):
    rep, out = run25["rep"], run25["out"]
    assert len(rep["pairs"]) == 25 and len(run25["samples"]) == 25
    assert [(s["category"], s["id"]) for s in run25["samples"]] == [(p["category"], p["id"]) for p in rep["pairs"]]
    for s, p in zip(run25["samples"], rep["pairs"]):
        assert (s["score"], s["text"], s["image"], s["error"]) == (p["score"], p["text"], p["image"], p["error"])
    html = run25["html"].read_text(encoding="utf-8")
    assert "data:image" not in html, "pictures are files beside the page, not embedded"
    names = sorted(os.listdir(out / "results"))
    assert not [n for n in names if n.endswith(".tmp")], names
    stem = [n for n in names if n.startswith("evaluation_report_") and n.endswith(".html")][0][:-5]
    assert (out / "results" / (stem + "_files") / "data-00000.js").exists()
    assert html == (out / "results" / (stem + ".html")).read_text(encoding="utf-8")
    from PIL import Image
    thumbs = list((out / "thumbs").rglob("*.jpg"))
    assert len(thumbs) == 2 * 25
    for t in thumbs[:6]:
        with Image.open(t) as im:
            assert max(im.size) <= 192
    assert len(list((out / "originals").rglob("*.png"))) == 25


def test_gallery_sort_filter_search(browser, run25):
    rep = run25["rep"]
    page = open_page(browser, run25["html"])
    assert count(page) == "25 / 25"
    assert page.locator(".card").count() == 25
    first = page.locator(".card").first
    assert first.locator("figcaption").all_inner_texts() == ["ORIGINAL / 原图", "EDITED / 编辑后"]
    # every thumbnail on the page loaded from its file
    assert thumbnails_loaded(page)
    shot(page, "gallery_25.png")

    page.select_option("#f-sort", "score-asc")
    scored = sorted(p["score"] for p in rep["pairs"] if p["score"] is not None)
    first_score = page.locator(".card .score").first.inner_text()
    assert float(first_score) == pytest.approx(scored[0], abs=0.006)
    assert "sort=score-asc" in page.evaluate("location.hash")

    page.select_option("#f-cat", "物理")
    n_phys = sum(1 for p in rep["pairs"] if p["category"] == "物理")
    assert count(page) == "%d / 25" % n_phys
    page.fill("#f-max", "9")
    want = sum(1 for p in rep["pairs"] if p["category"] == "物理" and p["score"] is not None and p["score"] < 9)
    assert count(page) == "%d / 25" % want

    page.select_option("#f-cat", "")
    page.fill("#f-max", "")
    word = rep["pairs"][3]["instruction"].split()[0]
    page.fill("#f-q", word)
    want = sum(1 for p in rep["pairs"] if any(word.lower() in (p.get(k) or "").lower()
                                              for k in ("id", "instruction", "description", "text", "error")))
    assert count(page) == "%d / 25" % want and want >= 1
    assert page.errors == []
    assert all(u.startswith("file://") for u in page.requests), [u for u in page.requests if not u.startswith("file://")]


def test_detail_view_full_size_and_toggle(browser, run25):
    rep = run25["rep"]
    p0 = rep["pairs"][0]
    page = open_page(browser, run25["html"])
    page.locator(".card").first.click()
    assert page.locator("#detail.open").count() == 1
    assert "pair=" in page.evaluate("location.hash")
    body = page.locator("#detail-body")
    assert p0["instruction"] in body.inner_text()
    assert page.locator("pre.judge").inner_text() == p0["text"]
    assert "this run" in body.inner_text() and "timings" in body.inner_text()
    from PIL import Image
    with Image.open(run25["out"] / p0["image"]) as im:
        edited_size = list(im.size)
    page.wait_for_function("[...document.querySelectorAll('#side img')].every(i => i.complete && i.naturalWidth > 0)")
    got = page.evaluate("[...document.querySelectorAll('#side img')].map(i => [i.alt, i.naturalWidth, i.naturalHeight, i.width])")
    assert [g[0] for g in got] == ["original", "edited"]
    assert got[1][1:3] == edited_size and got[1][3] == edited_size[0], "edited shown at full size"
    shot(page, "detail_25.png")
    page.click("#mode")
    assert page.inner_text("#mode") == "mode: swipe"
    page.fill("#slider", "30")
    assert page.evaluate("document.querySelector('#stackview .top').style.clipPath") == "inset(0px 70% 0px 0px)"
    page.click("#mode")
    assert page.inner_text("#mode") == "mode: blend"
    page.fill("#slider", "25")
    assert page.evaluate("document.querySelector('#stackview .top').style.opacity") == "0.25"
    shot(page, "detail_blend_25.png")
    page.keyboard.press("Escape")
    assert page.locator("#detail.open").count() == 0 and "pair=" not in page.evaluate("location.hash")


def test_hash_link_restores_the_view(browser, run25):
    rep = run25["rep"]
    p5 = rep["pairs"][5]
    page = open_page(browser, run25["html"], "#cat=%s&max=9.5&sort=score-desc&pair=%s/%s" % ("环境", p5["category"], p5["id"]))
    want = [p for p in rep["pairs"] if p["category"] == "环境" and p["score"] is not None and p["score"] < 9.5]
    assert count(page) == "%d / 25" % len(want)
    assert page.input_value("#f-cat") == "环境" and page.input_value("#f-max") == "9.5"
    assert page.input_value("#f-sort") == "score-desc"
    assert float(page.locator(".card .score").first.inner_text()) == pytest.approx(max(p["score"] for p in want), abs=0.006)
    assert page.locator("#detail.open").count() == 1 and p5["id"] in page.inner_text("#detail-body h2")


def test_embed_keeps_one_file(browser, tmp_path):
    out = tmp_path / "embed"
    r = run_evalhost("scripts/two_stage.lua", "config/example.yaml", "--set", "run.out=%s" % out,
                     "--set", "report.embed=true", timeout=300)
    assert r.returncode in (0, 1), r.stderr
    results = out / "results"
    assert not [n for n in os.listdir(results) if n.endswith("_files")], os.listdir(results)
    assert not (out / "thumbs").exists()
    html = (results / "latest.html").read_text(encoding="utf-8")
    assert "<script src" not in html and html.count("data:image/jpeg;base64,") >= 25
    # the page alone, moved away from its run folder, still shows everything
    alone = tmp_path / "alone.html"
    alone.write_text(html, encoding="utf-8")
    page = open_page(browser, alone)
    assert count(page) == "25 / 25"
    assert thumbnails_loaded(page)
    assert all(u.startswith("file://") or u.startswith("data:") for u in page.requests)


def test_compare_page(browser, run25, tmp_path):
    b = tmp_path / "b"
    r = run_evalhost("scripts/two_stage.lua", "config/example.yaml", "--set", "run.out=%s" % b,
                     "--set", "editor.name=identity", timeout=300)
    assert r.returncode in (0, 1), r.stderr
    cmp_out = tmp_path / "cmp"
    r = run_evalhost("scripts/compare.lua", "config/example.yaml", "--set", "compare.runs=[%s,%s]" % (run25["out"], b),
                     "--set", "run.out=%s" % cmp_out, timeout=300)
    assert r.returncode == 0, r.stderr
    (js,) = [n for n in os.listdir(cmp_out / "results") if n.endswith(".json")]
    got = json.loads((cmp_out / "results" / js).read_text(encoding="utf-8"))
    html = cmp_out / "results" / (js[:-5] + ".html")
    assert "`" not in html.read_text(encoding="utf-8"), "no literal Markdown backticks"
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(html.as_uri())
    dl = page.inner_text("dl")
    assert "A " + str(run25["out"]) in dl and "B " + str(b) in dl
    moved = got["moved"]
    assert moved and [abs(m["diff"]) for m in moved] == sorted((abs(m["diff"]) for m in moved), reverse=True)
    labels = page.locator("#moved figure").first.locator(".lbl").all_inner_texts()
    assert labels[0].startswith("A") and labels[1].startswith("B")
    assert page.locator("#delta-chart circle").count() == len(got["category_order"]) + 1
    n = len(got["pairs"])
    assert page.inner_text("#count") == "%d / %d" % (n, n)
    first_d = float(page.locator("#rows tr").first.locator("td").nth(4).inner_text())
    assert abs(first_d) == pytest.approx(max(abs(p["diff"]) for p in got["pairs"]), abs=0.006)
    cat = got["category_order"][0]
    page.select_option("#f-cat", cat)
    assert page.inner_text("#count") == "%d / %d" % (got["categories"][cat]["n"], n)
    shot(page, "compare.png")
    page.goto(html.as_uri() + "#sort=d-asc")
    page.reload()
    first_d = float(page.locator("#rows tr").first.locator("td").nth(4).inner_text())
    assert first_d == pytest.approx(min(p["diff"] for p in got["pairs"]), abs=0.006)


RSS_PROBE = ("import resource, subprocess, sys, time\n"
             "t = time.monotonic(); r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
             "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.monotonic() - t)\n"
             "sys.stderr.write(r.stderr)\n")


def test_100k_pairs(browser, tmp_path):
    out = tmp_path / "big"
    (out / "t").mkdir(parents=True)
    from PIL import Image
    Image.new("RGB", (192, 144), (200, 90, 40)).save(out / "t" / "a.jpg")
    Image.new("RGB", (192, 144), (40, 90, 200)).save(out / "t" / "b.jpg")
    p = subprocess.run([sys.executable, "-c", RSS_PROBE, str(BIN), "tools/bench/report/synthetic.lua", "config/example.yaml",
                        "--set", "script.pairs=100000", "--set", "run.out=%s" % out, "--set", "script.thumbs=t"],
                       cwd=SRC, capture_output=True, text=True, timeout=600)
    rc, kb, secs = p.stdout.split()
    assert rc == "0", p.stderr
    print("report writer, 100k pairs: %.1f s, peak RSS %.0f MB" % (float(secs), int(kb) / 1024))
    # an ASan build's shadow memory and quarantine multiply RSS: the bound is the plain binary's
    if not sanitized(BIN):
        assert int(kb) < 300 * 1024, "the report for 100k pairs must stay under 300 MB RSS"
    samples = [json.loads(l) for l in (out / "results" / "samples.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(samples) == 100000
    page = open_page(browser, out / "results" / "latest.html")
    assert count(page) == "100000 / 100000" and page.errors == []
    timing = page.evaluate("({paint: EH.first_cards_ms, loaded: EH.loaded_ms})")
    page.select_option("#f-cat", "物理")
    page.fill("#f-max", "3")
    want = sum(1 for s in samples if s["category"] == "物理" and s["score"] is not None and s["score"] < 3)
    assert count(page) == "%d / 100000" % want
    filter_ms = page.evaluate("EH.last_filter_ms")
    page.fill("#f-q", "partly")
    want = sum(1 for s in samples if s["category"] == "物理" and s["score"] is not None and s["score"] < 3
               and "partly" in (s["text"] or ""))
    assert count(page) == "%d / 100000" % want
    page.fill("#f-q", "")
    page.fill("#f-max", "")
    page.select_option("#f-sort", "conf-desc")
    assert page.locator(".card").count() == 60
    page.click("#next")
    assert page.inner_text("#pageno").startswith("page 2 / ")
    page.locator(".card").nth(3).click()
    assert page.locator("#detail.open").count() == 1 and page.locator(".bars rect").count() == 11
    shot(page, "detail_100k.png")
    print("page at 100k pairs: first cards %.0f ms, all loaded %.0f ms, filter %.1f ms"
          % (timing["paint"], timing["loaded"], filter_ms))
    link = open_page(browser, out / "results" / "latest.html", "#cat=物理&max=3")
    want = sum(1 for s in samples if s["category"] == "物理" and s["score"] is not None and s["score"] < 3)
    assert count(link) == "%d / 100000" % want
    shot(link, "gallery_100k.png")
