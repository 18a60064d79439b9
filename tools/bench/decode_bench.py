"""Driver for tools/bench/decode: prepares PNG re-encodings of the JPEG
inputs, runs decode_bench (ours and raw TurboJPEG) and Pillow on the same
bytes, pinned to one CPU, checks the pixels agree and prints ratios."""
import io
import math
import os
import statistics
import subprocess
import sys
import time

import numpy as np
from PIL import Image


def pillow_ms(data, reps):
    def once():
        im = Image.open(io.BytesIO(data))
        im.load()
        return im.convert("RGB")
    rgb = once()                    # warm-up, and the pixels to compare
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        once()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), np.asarray(rgb)


def main():
    work, reps, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    cpu = sorted(os.sched_getaffinity(0))[-1]
    os.sched_setaffinity(0, {cpu})  # one core for both sides (children inherit it)
    inputs = list(files)
    for f in files:                 # PNG re-encodings of the photos (Pillow's default level 6)
        if f.lower().endswith((".jpg", ".jpeg")):
            out = os.path.join(work, os.path.basename(f).rsplit(".", 1)[0] + ".reenc.png")
            Image.open(f).convert("RGB").save(out, format="PNG")
            inputs.append(out)
    dump = os.path.join(work, "dump")
    os.makedirs(dump, exist_ok=True)
    proc = subprocess.run([os.path.join(work, "decode_bench"), str(reps), dump] + inputs,
                          check=True, capture_output=True, text=True)
    print("decode bench: %d reps, medians in ms, pinned to CPU %d, Pillow %s" % (reps, cpu, Image.__version__))
    print("%-34s %5s %11s %9s %9s %9s %8s %8s %6s" % ("file", "fmt", "size", "ours", "pillow", "raw-tj",
                                                    "pil/ours", "ours/raw", "maxdiff"))
    ratios = {}
    raw_ratios = []
    for i, line in enumerate(proc.stdout.split("\n")):
        if not line:
            continue
        path, fmt, w, h, ours, raw = line.split()
        ours, raw = float(ours), float(raw)
        with open(path, "rb") as f:
            data = f.read()
        pil, ref = pillow_ms(data, reps)
        mine = np.fromfile(os.path.join(dump, "%d.rgb" % i), np.uint8)
        diff = "shape!" if mine.size != ref.size else int(np.abs(mine.astype(int) - ref.reshape(-1).astype(int)).max())
        ratios.setdefault(fmt, []).append(pil / ours)
        if raw > 0:
            raw_ratios.append(ours / raw)
        print("%-34s %5s %11s %9.2f %9.2f %9s %8.2f %8s %6s" % (
            os.path.basename(path)[:34], fmt, "%sx%s" % (w, h), ours, pil, "%.2f" % raw if raw > 0 else "-",
            pil / ours, "%.3f" % (ours / raw) if raw > 0 else "-", diff))
    print()
    for fmt, r in sorted(ratios.items()):
        g = math.exp(sum(math.log(x) for x in r) / len(r))
        print("%-5s vs Pillow: geometric mean %.2fx faster (median %.2fx, min %.2fx, %d files)"
              % (fmt, g, statistics.median(r), min(r), len(r)))
    if raw_ratios:
        print("jpeg  vs raw tjDecompress2: ours takes %.3fx the raw time (median; max %.3fx)"
              % (statistics.median(raw_ratios), max(raw_ratios)))


if __name__ == "__main__":
    main()
