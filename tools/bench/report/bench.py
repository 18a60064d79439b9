#!/usr/bin/env python3
"""Report benchmark: the writer's seconds and peak RSS for N synthetic pairs
(tools/bench/report/synthetic.lua through the real binary), then the page in
headless Chromium (Playwright, Debian's /usr/bin/chromium): time to the
first cards, to all data loaded, and one filter / search / sort each
(median of --repeat page loads).

  .venv/bin/python tools/bench/report/bench.py --bin build/evalhost [--pairs 100000] [--repeat 3]
"""
import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

SRC = pathlib.Path(__file__).resolve().parents[3]
PROBE = ("import resource, subprocess, sys, time\n"
         "t = time.monotonic(); r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
         "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
         "print(r.returncode, u.ru_maxrss, time.monotonic() - t, u.ru_utime + u.ru_stime)\n"
         "sys.stderr.write(r.stderr)\n")


def write_report(binary, pairs, out, resamples, lua_bootstrap=False):
    (out / "t").mkdir(parents=True, exist_ok=True)
    from PIL import Image
    Image.new("RGB", (192, 144), (200, 90, 40)).save(out / "t" / "a.jpg")
    Image.new("RGB", (192, 144), (40, 90, 200)).save(out / "t" / "b.jpg")
    p = subprocess.run([sys.executable, "-c", PROBE, str(binary), "tools/bench/report/synthetic.lua",
                        "config/example.yaml", "--set", "script.pairs=%d" % pairs, "--set", "run.out=%s" % out,
                        "--set", "script.thumbs=t", "--set", "script.resamples=%d" % resamples]
                       + (["--set", "script.lua_bootstrap=true"] if lua_bootstrap else []), cwd=SRC, capture_output=True, text=True, timeout=900)
    rc, kb, secs, cpu = p.stdout.split()
    if rc != "0":
        sys.exit("synthetic report failed:\n" + p.stderr)
    size = sum(f.stat().st_size for f in (out / "results").rglob("*") if f.is_file() and "latest" not in f.name)
    return float(secs), float(cpu), int(kb) / 1024, size / 1e6


def page_figures(html, repeat):
    from playwright.sync_api import sync_playwright
    rows = []
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox", "--disable-gpu"])
        for _ in range(repeat):
            page = b.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(html.as_uri())
            page.wait_for_function("window.EH && EH.ready === true", timeout=300000)
            f = page.evaluate("({paint: EH.first_cards_ms, loaded: EH.loaded_ms})")

            def timed(js):
                return page.evaluate("() => { const t = performance.now(); %s; return performance.now() - t; }" % js)
            f["filter"] = timed("document.getElementById('f-cat').value='物理';"
                                "document.getElementById('f-max').value='3';"
                                "document.getElementById('f-max').dispatchEvent(new Event('input'))")
            f["search"] = timed("document.getElementById('f-cat').value='';"
                                "document.getElementById('f-max').value='';"
                                "document.getElementById('f-q').value='partly';"
                                "document.getElementById('f-q').dispatchEvent(new Event('input'))")
            f["sort"] = timed("document.getElementById('f-q').value='';"
                              "document.getElementById('f-sort').value='score-asc';"
                              "document.getElementById('f-sort').dispatchEvent(new Event('change'))")
            rows.append(f)
            page.close()
        b.close()
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=str(SRC / "build" / "evalhost"))
    ap.add_argument("--pairs", type=int, default=100000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--resamples", type=int, default=2000, help="the CI's bootstrap resamples (report.bootstrap)")
    ap.add_argument("--lua-bootstrap", action="store_true",
                    help="also write the report with stats.lua's Lua bootstrap loop, for the C/Lua ratio")
    ap.add_argument("--no-page", action="store_true", help="the writer's figures only")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        out = pathlib.Path(d) / "r"
        secs, cpu, mb, size = write_report(a.bin, a.pairs, out, a.resamples)
        print("writer: %d pairs in %.1f s wall, %.1f s CPU (bootstrap B=%d included), peak RSS %.0f MB, "
              "%.1f MB written (JSON, MD, samples.jsonl, page + data)" % (a.pairs, secs, cpu, a.resamples, mb, size))
        if a.lua_bootstrap:
            lout = pathlib.Path(d) / "lua"
            lsecs, lcpu, lmb, _ = write_report(a.bin, a.pairs, lout, a.resamples, lua_bootstrap=True)
            print("writer with the Lua bootstrap loop: %.1f s wall, %.1f s CPU, peak RSS %.0f MB; "
                  "C loop / Lua loop CPU: %.2f" % (lsecs, lcpu, lmb, cpu / lcpu))
        if a.no_page:
            return
        f = page_figures(out / "results" / "latest.html", a.repeat)
        print("page (median of %d loads): first cards %.0f ms, all %d pairs loaded %.0f ms, "
              "filter (category + score) %.1f ms, search %.1f ms, sort %.1f ms"
              % (a.repeat, f["paint"], a.pairs, f["loaded"], f["filter"], f["search"], f["sort"]))


if __name__ == "__main__":
    main()
