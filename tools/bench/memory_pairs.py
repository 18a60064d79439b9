"""Memory in the loop at many pairs (issue 20): RSS of one two_stage run over
N tiny pairs (builtin identity editor, builtin metrics judge, no HTML report:
the HTML writer's own memory belongs to the report), sampled from
/proc/<pid>/status every 0.1 s and split by phase (editing, scoring, the
report at the end: from the last category's mean line on) from the console's
progress lines.

  .venv/bin/python tools/bench/memory_pairs.py --pairs 100000 [--bin build/evalhost] [--out /dev/shm/x] [--resume]

--resume runs the finished run once more with --resume: every step is
replayed from the journal and the report rewritten (resume_peak_rss_mb).

A tmpfs output folder (the default, /dev/shm) keeps the per-edit fsync from
dominating the time. Prints one JSON line: pairs, seconds, peak RSS (MB)
overall and per phase, and RSS at 10% and 90% of the editing and of the
scoring (flat memory: each pair agrees within a few MB)."""
import argparse
import base64
import io
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time

from PIL import Image

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def tiny_png_b64(i):
    img = Image.new("RGB", (8, 8), (i % 251, (i * 7) % 253, (i * 13) % 255))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


CATS = 4


def write_dataset(path, n, cats=CATS):
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"id": "p%06d" % i, "category": "c%d" % (i % cats), "original_image_b64": tiny_png_b64(i),
                                "edit_instruction": "make it red", "original_description": "a tiny picture"}) + "\n")


def rss_mb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=100000)
    ap.add_argument("--bin", default=os.path.join(SRC, "build", "evalhost"))
    ap.add_argument("--out", default=None, help="work folder (default: a new one under /dev/shm)")
    ap.add_argument("--resume", action="store_true", help="then replay the finished run (--resume) and measure that")
    args = ap.parse_args()
    work = args.out or tempfile.mkdtemp(prefix="eh_mem_", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    os.makedirs(work, exist_ok=True)
    data = os.path.join(work, "bench.jsonl")
    write_dataset(data, args.pairs)
    out = os.path.join(work, "out")
    shutil.rmtree(out, ignore_errors=True)
    cfg = os.path.join(work, "config.yaml")
    with open(cfg, "w") as f:
        f.write("benchmark:\n  data_path: %s\neditor: {backend: builtin, name: identity}\n"
                "judge: {backend: builtin, name: metrics}\nrun:\n  out: %s\nreport:\n  html: false\n"
                "  bootstrap: {resamples: 100}\n" % (json.dumps(data), json.dumps(out)))
    p = subprocess.Popen([args.bin, os.path.join(SRC, "scripts", "two_stage.lua"), cfg], cwd=SRC,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    phase = {"now": "setup"}
    edits = {"n": 0}

    last_cat = "[c%d]" % (CATS - 1)

    def read_log():
        for line in p.stderr:
            if "评分" in line or "score" in line and "%" in line:
                phase["now"] = "score"
            elif "编辑" in line or "edit" in line and "%" in line:
                phase["now"] = "edit"
            # the last category's mean line ends the loop: what follows (rows, statistics,
            # the report files) is the report's, printed as "evaluation finished" only after it
            if line.startswith(last_cat) and ("平均分" in line or "mean" in line) and "%" not in line:
                phase["now"] = "report"

    t = threading.Thread(target=read_log, daemon=True)
    t.start()
    peaks, samples = {}, []
    t0 = time.monotonic()
    while p.poll() is None:
        r = rss_mb(p.pid)
        if r is not None:
            ph = phase["now"]
            peaks[ph] = max(peaks.get(ph, 0.0), r)
            try:
                with open(os.path.join(out, "journal.jsonl"), "rb") as jf:
                    jf.seek(0, 2)
                    size = jf.tell()
            except OSError:
                size = 0
            samples.append((time.monotonic() - t0, ph, r, size))
        time.sleep(0.1)
    secs = time.monotonic() - t0
    t.join(timeout=5)
    def at(phase, frac):
        xs = [s for s in samples if s[1] == phase]
        return round(xs[int(len(xs) * frac)][2], 1) if xs else None
    # flat memory: the RSS at 10% and 90% of each phase agree within a few MB
    resumed = {}
    if args.resume:
        q = subprocess.Popen([args.bin, os.path.join(SRC, "scripts", "two_stage.lua"), cfg, "--resume", "--quiet"],
                             cwd=SRC, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        peak, t1 = 0.0, time.monotonic()
        while q.poll() is None:
            peak = max(peak, rss_mb(q.pid) or 0.0)
            time.sleep(0.1)
        resumed = {"resume_exit": q.returncode, "resume_seconds": round(time.monotonic() - t1, 1),
                   "resume_peak_rss_mb": round(peak, 1)}
    print(json.dumps({"pairs": args.pairs, "exit": p.returncode, "seconds": round(secs, 1), **resumed,
                      "peak_rss_mb": round(max(peaks.values()), 1),
                      "peak_rss_mb_by_phase": {k: round(v, 1) for k, v in peaks.items()},
                      "edit_rss_mb_at_10pct": at("edit", 0.1), "edit_rss_mb_at_90pct": at("edit", 0.9),
                      "score_rss_mb_at_10pct": at("score", 0.1), "score_rss_mb_at_90pct": at("score", 0.9)}))
    if not args.out:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
