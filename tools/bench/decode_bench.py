"""Driver for tools/bench/decode: prepares PNG re-encodings of the JPEG
inputs, then for every file times our decode, raw TurboJPEG (both in the
decode_bench process) and Pillow (here) interleaved rep by rep, all pinned to
one CPU, checks that the pixels agree and prints medians and ratios."""
import io
import math
import os
import statistics
import subprocess
import sys
import time

import numpy as np
from PIL import Image


def pillow_once(data):
    t0 = time.perf_counter()
    im = Image.open(io.BytesIO(data))
    im.load()
    rgb = im.convert("RGB")
    return (time.perf_counter() - t0) * 1e3, rgb


def main():
    exe, work, reps, files = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
    cpu = sorted(os.sched_getaffinity(0))[-1]
    os.sched_setaffinity(0, {cpu})  # one core for both sides (the child inherits it)
    inputs = list(files)
    for f in files:                 # PNG re-encodings of the photos (Pillow's default level 6)
        if f.lower().endswith((".jpg", ".jpeg")):
            out = os.path.join(work, os.path.basename(f).rsplit(".", 1)[0] + ".reenc.png")
            Image.open(f).convert("RGB").save(out, format="PNG")
            inputs.append(out)
    proc = subprocess.Popen([exe] + inputs, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)

    def ask(line):
        proc.stdin.write(line + "\n")
        proc.stdin.flush()
        return proc.stdout.readline().split()

    print("decode bench: %d reps interleaved, medians in ms, pinned to CPU %d, Pillow %s, load %.1f"
          % (reps, cpu, Image.__version__, os.getloadavg()[0]))
    print("%-28s %4s %10s %8s %8s %8s %8s %8s %7s" % ("file", "fmt", "size", "ours", "pillow", "raw-tj",
                                                   "pil/ours", "ours/raw", "maxdiff"))
    ratios, raw_ratios, min_ratios, min_raw = {}, [], {}, []
    for i, path in enumerate(inputs):
        with open(path, "rb") as f:
            data = f.read()
        fmt = "jpeg" if data[:3] == b"\xff\xd8\xff" else "png" if data[:4] == b"\x89PNG" else "other"
        ref = np.asarray(pillow_once(data)[1])
        dump = os.path.join(work, "dump.rgb")
        w, h, c = (int(x) for x in ask("d %d %s" % (i, dump)))
        mine = np.fromfile(dump, np.uint8)
        diff = int(np.abs(mine.astype(int) - ref.reshape(-1).astype(int)).max()) if mine.size == ref.size else "shape!"
        os.remove(dump)
        t_ours, t_pil, t_raw = [], [], []
        ask("o %d" % i)                 # warm-up
        if fmt == "jpeg":
            ask("r %d" % i)
        for _ in range(reps):
            t_ours.append(float(ask("o %d" % i)[0]))
            t_pil.append(pillow_once(data)[0])
            if fmt == "jpeg":
                t_raw.append(float(ask("r %d" % i)[0]))
        ours, pil = statistics.median(t_ours), statistics.median(t_pil)
        raw = statistics.median(t_raw) if t_raw else None
        ratios.setdefault(fmt, []).append(pil / ours)
        min_ratios.setdefault(fmt, []).append(min(t_pil) / min(t_ours))
        if raw:
            raw_ratios.append(ours / raw)
            min_raw.append(min(t_ours) / min(t_raw))
        print("%-28s %4s %10s %8.2f %8.2f %8s %8.2f %8s %7s" % (
            os.path.basename(path)[:28], fmt, "%dx%d" % (w, h), ours, pil, "%.2f" % raw if raw else "-",
            pil / ours, "%.3f" % (ours / raw) if raw else "-", diff))
    proc.stdin.close()
    proc.wait()
    print()
    def gmean(r):
        return math.exp(sum(math.log(x) for x in r) / len(r))
    for fmt, r in sorted(ratios.items()):
        print("%-4s vs Pillow: %.2fx faster (geometric mean of per-file median ratios; median %.2fx, "
              "worst %.2fx, %d files; from best-of-%d times: %.2fx)"
              % (fmt, gmean(r), statistics.median(r), min(r), len(r), reps, gmean(min_ratios[fmt])))
    if raw_ratios:
        print("jpeg vs raw tjDecompress2: ours takes %.3fx its time (median over files; worst %.3fx; "
              "from best-of-%d times: %.3fx)" % (statistics.median(raw_ratios), max(raw_ratios), reps,
                                                 statistics.median(min_raw)))
    print("(a loaded machine spreads these; the load average is printed at the top)")


if __name__ == "__main__":
    main()
