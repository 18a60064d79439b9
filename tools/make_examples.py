#!/usr/bin/env python3
"""Writes examples/benchmark.json: a small benchmark in the seed's exact shape,
{category: {"data_pairs": [pair, ...]}} for the five seed categories, with
procedurally drawn images (shapes, gradients, stripes; PNG and JPEG) so it
runs anywhere.  Deterministic: the same seed gives the same bytes.

    .venv/bin/python tools/make_examples.py [--seed 20240601] [--out examples/benchmark.json]

Several instructions use words the builtin `imageops` editor understands
(colour words, flip, rotate, blur, brighten, darken), so its edits differ
visibly between pairs.
"""
import argparse
import base64
import io
import json
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

SIZES = [(256, 192), (320, 240), (384, 288), (448, 336), (512, 384)]

PALETTE = {
    "red": (215, 40, 40), "green": (40, 170, 70), "blue": (40, 80, 210), "yellow": (240, 210, 40),
    "orange": (245, 140, 30), "purple": (130, 50, 170), "grey": (128, 128, 128), "white": (245, 245, 245),
    "brown": (120, 80, 40), "sky": (150, 200, 245), "grass": (90, 170, 80), "black": (25, 25, 25),
}

# (category, id, scene, instruction, description, extra field)
PAIRS = [
    ("物理", "ball_ramp", "把斜坡上的球变成红色", "一个蓝色的球停在灰色斜坡的顶端", {"difficulty": 1}),
    ("物理", "stack", "Rotate the scene so the tower of blocks lies on its side", "A tower of three coloured blocks on a table", {"difficulty": 2}),
    ("物理", "pendulum", "让摆锤向右摆到最高点", "A pendulum hanging straight down from a bar", {"difficulty": 3}),
    ("物理", "ball_ramp", "Make the ball roll halfway down the ramp and blur it to show motion", "一个球停在斜坡顶端", {"difficulty": 3}),
    ("物理", "glass", "把杯子里的水加满，并且变亮一些", "A half-full glass of water on a table", {"difficulty": 2}),
    ("环境", "landscape", "把白天的场景变暗，变成夜晚", "Green hills under a blue sky with a yellow sun", {"season": "summer"}),
    ("环境", "landscape", "Make the sky orange like a sunset", "绿色山丘、蓝天和太阳", {"season": "summer"}),
    ("环境", "trees", "给树林加上积雪，整体变成白色", "A row of green trees on grass", {"season": "autumn"}),
    ("环境", "water", "Flip the lake scene horizontally", "湖面上有条纹状的波浪和远处的山", {"season": "spring"}),
    ("环境", "trees", "把树叶变成黄色，表现秋天", "Five pine trees in a row", {"season": "autumn"}),
    ("社会", "street", "在房子前面加一个红色的邮筒", "A street with two houses and a stop sign", {"setting": "town"}),
    ("社会", "people", "Make everyone in the crowd wear green", "三个人站在一起，穿着不同颜色的衣服", {"setting": "square"}),
    ("社会", "street", "把停车标志换成蓝色的方形路牌", "Two houses with a stop sign", {"setting": "town"}),
    ("社会", "people", "把画面上下翻转", "Three people standing side by side", {"setting": "square"}),
    ("因果", "dominoes", "推倒第一块多米诺骨牌之后会怎样？画出全部倒下的样子", "A row of upright dominoes", {"chain": 6}),
    ("因果", "glass", "Show the glass after it has been knocked over: water spilled, darken the table", "桌上的一杯水", {"chain": 2}),
    ("因果", "ice", "冰块在阳光下融化成一滩水，让画面更明亮", "An ice cube in bright sunlight", {"chain": 1}),
    ("因果", "dominoes", "Rotate 180 degrees and make the last domino purple", "一排竖立的多米诺骨牌", {"chain": 6}),
    ("因果", "ice", "Make the ice cube blue and blur the melting edges", "冰块在阳光下", {"chain": 1}),
    ("指代", "shapes", "把最左边的圆形变成黄色", "A red circle, a green square and a blue triangle from left to right", {"targets": 1}),
    ("指代", "shapes", "Make the shape between the circle and the triangle purple", "红色圆形、绿色正方形和蓝色三角形", {"targets": 1}),
    ("指代", "cups", "把第二个杯子变成粉色", "Four cups in a row, the second one is taller", {"targets": 1}),
    ("指代", "cups", "Remove the tallest cup and mirror the rest", "四个杯子排成一排", {"targets": 2}),
    ("指代", "shapes", "把那个有角的、最大的形状变成橙色", "Three shapes of different sizes", {"targets": 1}),
    ("指代", "stripes", "Make the widest stripe green", "竖条纹背景，宽窄不一", {"targets": 1}),
]


def gradient(w, h, top, bottom):
    """A vertical gradient image (RGB)."""
    img = Image.new("RGB", (w, h))
    px = img.load()
    for y in range(h):
        t = y / max(1, h - 1)
        c = tuple(int(top[k] + (bottom[k] - top[k]) * t) for k in range(3))
        for x in range(w):
            px[x, y] = c
    return img


def jitter(rng, c, amount=25):
    return tuple(max(0, min(255, v + rng.randint(-amount, amount))) for v in c)


def draw_scene(rng, scene, w, h):
    """Returns (image, prefers_jpeg): smooth scenes go to JPEG, flat ones to PNG."""
    P = PALETTE
    if scene in ("landscape", "water", "ice"):
        img = gradient(w, h, jitter(rng, P["sky"]), jitter(rng, (235, 240, 255)))
        d = ImageDraw.Draw(img)
        if scene == "water":
            for k, y in enumerate(range(h // 2, h, 8)):
                d.rectangle([0, y, w, y + 4], fill=jitter(rng, (40, 100 + 4 * k % 80, 190), 10))
            d.polygon([(0, h // 2), (w // 3, h // 5), (2 * w // 3, h // 2)], fill=jitter(rng, P["grey"]))
        else:
            d.ellipse([w * 0.7, h * 0.08, w * 0.7 + h * 0.2, h * 0.28], fill=P["yellow"])
            for k in range(3):
                cx = rng.randint(0, w)
                d.ellipse([cx - w // 3, h * 0.55, cx + w // 3, h * 1.3], fill=jitter(rng, P["grass"]))
            if scene == "ice":
                s = h // 4
                x, y = w // 2 - s // 2, h // 2
                d.rectangle([x, y, x + s, y + s], fill=(200, 235, 250), outline=(120, 170, 210), width=3)
        return img.filter(ImageFilter.GaussianBlur(0.8)), True
    bg = jitter(rng, P["white"], 10)
    img = Image.new("RGB", (w, h), bg)
    d = ImageDraw.Draw(img)
    floor = int(h * 0.78)
    if scene != "stripes":
        d.rectangle([0, floor, w, h], fill=jitter(rng, P["brown"]))
    if scene == "ball_ramp":
        d.polygon([(w * 0.1, floor), (w * 0.7, floor), (w * 0.1, h * 0.35)], fill=P["grey"])
        r = h // 10
        d.ellipse([w * 0.1, h * 0.35 - 2 * r, w * 0.1 + 2 * r, h * 0.35], fill=P["blue"])
    elif scene == "stack":
        bw = w // 5
        for k, col in enumerate(["red", "green", "blue"]):
            y1 = floor - k * (h // 7)
            d.rectangle([w // 2 - bw // 2, y1 - h // 7, w // 2 + bw // 2, y1], fill=P[col], outline=P["black"])
    elif scene == "pendulum":
        d.rectangle([w * 0.2, h * 0.1, w * 0.8, h * 0.13], fill=P["black"])
        d.line([w / 2, h * 0.13, w / 2, h * 0.6], fill=P["black"], width=2)
        d.ellipse([w / 2 - h * 0.06, h * 0.6, w / 2 + h * 0.06, h * 0.72], fill=P["orange"])
    elif scene == "glass":
        gx, gw, gh = w // 2 - w // 12, w // 6, h // 3
        d.rectangle([gx, floor - gh // 2, gx + gw, floor], fill=P["sky"])
        d.rectangle([gx, floor - gh, gx + gw, floor], outline=P["black"], width=2)
    elif scene == "trees":
        for k in range(5):
            cx = int(w * (0.1 + 0.2 * k))
            d.rectangle([cx - 4, floor - h // 10, cx + 4, floor], fill=P["brown"])
            d.polygon([(cx - w // 14, floor - h // 10), (cx + w // 14, floor - h // 10), (cx, floor - h // 2)],
                      fill=jitter(rng, P["green"]))
    elif scene == "street":
        for k in range(2):
            x = int(w * (0.1 + 0.45 * k))
            d.rectangle([x, floor - h // 3, x + w // 4, floor], fill=jitter(rng, (200, 170, 130)))
            d.polygon([(x - 8, floor - h // 3), (x + w // 4 + 8, floor - h // 3), (x + w // 8, floor - h // 2)],
                      fill=P["red"])
        d.line([w * 0.9, floor, w * 0.9, floor - h * 0.3], fill=P["grey"], width=3)
        cx, cy, r = w * 0.9, floor - h * 0.3, h * 0.06
        d.regular_polygon((cx, cy, r), 8, fill=P["red"])
    elif scene == "people":
        for k, col in enumerate(["red", "blue", "yellow"]):
            cx = int(w * (0.25 + 0.25 * k))
            d.ellipse([cx - 12, floor - h * 0.55, cx + 12, floor - h * 0.55 + 24], fill=(230, 190, 160))
            d.rectangle([cx - 16, floor - h * 0.55 + 26, cx + 16, floor - h * 0.2], fill=P[col])
            d.line([cx - 8, floor - h * 0.2, cx - 8, floor], fill=P["black"], width=4)
            d.line([cx + 8, floor - h * 0.2, cx + 8, floor], fill=P["black"], width=4)
    elif scene == "dominoes":
        for k in range(6):
            x = int(w * (0.12 + 0.13 * k))
            d.rectangle([x, floor - h // 4, x + w // 30, floor], fill=P["black"], outline=P["white"])
    elif scene == "shapes":
        s = h // 5
        y = floor - s - 10
        d.ellipse([w * 0.15, y, w * 0.15 + s, y + s], fill=P["red"])
        d.rectangle([w * 0.45, y, w * 0.45 + s * 1.2, y + s * 1.2], fill=P["green"])
        d.polygon([(w * 0.75, y + s), (w * 0.75 + s, y + s), (w * 0.75 + s / 2, y - s / 3)], fill=P["blue"])
    elif scene == "cups":
        for k in range(4):
            x, tall = int(w * (0.12 + 0.2 * k)), (h // 3 if k == 1 else h // 5)
            d.rectangle([x, floor - tall, x + w // 10, floor], fill=jitter(rng, P["white"], 20), outline=P["black"])
    elif scene == "stripes":
        x = 0
        for k in range(8):
            sw = rng.choice([12, 20, 32, 48, 64])
            d.rectangle([x, 0, x + sw, h], fill=jitter(rng, list(P.values())[k % len(P)], 10))
            x += sw
    return img, False


def encode(img, jpeg):
    buf = io.BytesIO()
    if jpeg:
        img.save(buf, "JPEG", quality=82, optimize=True)
    else:
        img.save(buf, "PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def build(seed):
    rng = random.Random(seed)
    out = {}
    counters = {}
    for cat, scene, instruction, description, extra in PAIRS:
        counters[cat] = counters.get(cat, 0) + 1
        w, h = rng.choice(SIZES)
        img, jpeg = draw_scene(rng, scene, w, h)
        if not jpeg and rng.random() < 0.3:
            jpeg = True   # some flat scenes as JPEG too: both decoders get exercised
        pair = {
            "id": "pair_%03d" % counters[cat],
            "original_image_b64": encode(img, jpeg),
            "edit_instruction": instruction,
            "original_description": description,
        }
        pair.update(extra)   # the pass-through field the report keeps
        out.setdefault(cat, {"data_pairs": []})["data_pairs"].append(pair)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "examples" / "benchmark.json"))
    args = ap.parse_args()
    data = build(args.seed)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    Path(args.out).write_text(text, encoding="utf-8")
    n = sum(len(v["data_pairs"]) for v in data.values())
    print("%s: %d categories, %d pairs, %d bytes" % (args.out, len(data), n, len(text.encode("utf-8"))))


if __name__ == "__main__":
    main()
