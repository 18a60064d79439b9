#!/usr/bin/env python3
"""Writes a benchmark of a requested size in the seed's shape by repeating a
small pool of procedurally drawn images: what tools/bench/dataset opens.

    .venv/bin/python tools/make_big_benchmark.py --size 1G --out /tmp/evalhost-bench/big.json
    .venv/bin/python tools/make_big_benchmark.py --size 200M --format jsonl --out /tmp/b.jsonl

The file is streamed out, so generating 1 GB needs little memory.  Images
are JPEGs (and every fifth a PNG) of photo-like noise and gradients at
--side pixels wide, about 0.3-1 MB of base64 each, like the seed's.
"""
import argparse
import base64
import io
import json
import random
import re
from pathlib import Path

import numpy as np
from PIL import Image

CATEGORIES = ["物理", "环境", "社会", "因果", "指代"]
INSTRUCTIONS = ["把球变成红色", "Make the sky orange like a sunset", "flip it horizontally", "把画面变暗",
                "Rotate the picture and blur the background", "让天空更明亮", "把最左边的物体变成蓝色"]


def parse_size(text):
    m = re.fullmatch(r"\s*([0-9.]+)\s*([kKmMgG]?)i?[bB]?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError("size like 1G, 300M, 5000000")
    return int(float(m.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()])


def image_pool(n, side, seed):
    """n base64 images: smooth gradients plus noise, so JPEG cannot squeeze them to nothing."""
    rng = np.random.default_rng(seed)
    pool = []
    for k in range(n):
        w, h = side, side * 3 // 4
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        base = np.stack([(x / w) * 255, (y / h) * 255, ((x + y) / (w + h)) * 255], axis=-1)
        base = base * rng.uniform(0.5, 1.0, 3) + rng.normal(0, 28, (h, w, 3))
        img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
        buf = io.BytesIO()
        if k % 5 == 4:
            img.resize((w // 2, h // 2)).save(buf, "PNG", compress_level=1)
        else:
            img.save(buf, "JPEG", quality=90)
        pool.append(base64.b64encode(buf.getvalue()).decode("ascii"))
    return pool


def pairs(pool, budget, seed):
    """Yields (category, pair dict) until about `budget` bytes of pairs were made."""
    rng = random.Random(seed)
    made, k = 0, 0
    counters = {c: 0 for c in CATEGORIES}
    while made < budget:
        cat = CATEGORIES[k % len(CATEGORIES)]
        counters[cat] += 1
        img = pool[k % len(pool)]
        pair = {"id": "pair_%06d" % counters[cat], "original_image_b64": img,
                "edit_instruction": rng.choice(INSTRUCTIONS), "original_description": "generated pair %d" % k,
                "source": "make_big_benchmark"}
        made += len(img) + 200
        k += 1
        yield cat, pair


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=parse_size, default=parse_size("1G"), help="target file size (1G, 300M, ...)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--format", choices=["seed", "jsonl"], default="seed")
    ap.add_argument("--side", type=int, default=1024, help="image width in pixels")
    ap.add_argument("--pool", type=int, default=10, help="distinct images to repeat")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    pool = image_pool(args.pool, args.side, args.seed)
    by_cat = {c: [] for c in CATEGORIES}
    for cat, pair in pairs(pool, args.size, args.seed):
        by_cat[cat].append(pair)   # small: the strings are shared with the pool
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(out, "w", encoding="utf-8") as f:
        if args.format == "jsonl":
            for cat in CATEGORIES:
                for p in by_cat[cat]:
                    f.write(json.dumps(dict(p, category=cat), ensure_ascii=False) + "\n")
                    n += 1
        else:
            f.write("{\n")
            for ci, cat in enumerate(CATEGORIES):
                f.write('  %s: {"data_pairs": [\n' % json.dumps(cat, ensure_ascii=False))
                for pi, p in enumerate(by_cat[cat]):
                    f.write("    " + json.dumps(p, ensure_ascii=False) + (",\n" if pi + 1 < len(by_cat[cat]) else "\n"))
                    n += 1
                f.write("  ]}" + (",\n" if ci + 1 < len(CATEGORIES) else "\n"))
            f.write("}\n")
    print("%s: %d pairs, %d bytes" % (out, n, out.stat().st_size))


if __name__ == "__main__":
    main()
