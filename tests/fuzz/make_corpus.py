#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora under tests/fuzz/corpus/ (committed; rerun
after changing a harness's option byte).  Run with the venv's python:

    .venv/bin/python tests/fuzz/make_corpus.py

Images are tiny (libFuzzer mutates small inputs faster); the hostile files
of tests/data/ are copied in, with the harness's leading option byte."""
import base64
import io
import os
import shutil

from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
C = os.path.join(HERE, "corpus")


def put(parser, name, data, opt=None):
    d = os.path.join(C, parser)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    if opt is not None:
        data = bytes([opt]) + data
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def img_bytes(fmt, mode="RGB", size=(8, 6), **kw):
    im = Image.new(mode, size)
    for y in range(size[1]):
        for x in range(size[0]):
            v = (x * 31 + y * 17) % 256
            im.putpixel((x, y), {"RGB": (v, 255 - v, x * 20), "RGBA": (v, 0, 255 - v, y * 40),
                                 "L": v, "P": v % 4}[mode])
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


def images():
    def add(fmt, name, data):
        put(os.path.join("image", fmt), name, data, 0)
        put(os.path.join("image", fmt), name + ".alpha_b64", data, 3)
    add("png", "rgb.png", img_bytes("PNG"))
    add("png", "rgba.png", img_bytes("PNG", "RGBA"))
    add("png", "gray.png", img_bytes("PNG", "L"))
    add("png", "palette.png", img_bytes("PNG", "P"))
    add("png", "optimized.png", img_bytes("PNG", optimize=True))
    add("jpeg", "rgb.jpg", img_bytes("JPEG", quality=80))
    add("jpeg", "progressive.jpg", img_bytes("JPEG", quality=60, progressive=True))
    add("jpeg", "gray.jpg", img_bytes("JPEG", "L"))
    ex = Image.Exif()
    ex[0x0112] = 6
    add("jpeg", "exif6.jpg", img_bytes("JPEG", exif=ex.tobytes()))
    add("bmp", "rgb.bmp", img_bytes("BMP"))
    add("bmp", "gray.bmp", img_bytes("BMP", "L"))
    add("gif", "rgb.gif", img_bytes("GIF"))
    add("webp", "lossy.webp", img_bytes("WEBP", quality=50))
    add("webp", "lossless.webp", img_bytes("WEBP", lossless=True))
    add("webp", "alpha.webp", img_bytes("WEBP", "RGBA", lossless=True))
    bad = os.path.join(ROOT, "tests", "data", "bad")
    for name, fmt in [("truncated.png", "png"), ("huge_header.png", "png"), ("bad_filter.png", "png"),
                      ("rgb16.png", "png"), ("truncated.jpg", "jpeg"), ("cmyk.jpg", "jpeg"),
                      ("exif_rotated.jpg", "jpeg"), ("truncated.webp", "webp"), ("lossy.webp", "webp"),
                      ("anim.gif", "gif"), ("not_an_image.png", "png")]:
        with open(os.path.join(bad, name), "rb") as f:
            put(os.path.join("image", fmt), "bad_" + name, f.read(), 0)


def base64s():
    raw = bytes(range(256))
    put("base64", "std", base64.b64encode(raw))
    put("base64", "url_nopad", base64.urlsafe_b64encode(raw[:100]).rstrip(b"="))
    put("base64", "wrapped", base64.encodebytes(raw))
    put("base64", "data_url", b"data:image/png;base64," + base64.b64encode(img_bytes("PNG")))
    put("base64", "bad_char", "QUJD*REVG")
    put("base64", "bad_pad", "QQ=A")
    put("base64", "short", "Q")
    put("base64", "empty", "")


YAML = {
    "example.yaml": open(os.path.join(ROOT, "config", "example.yaml")).read(),
    "anchors.yaml": "base: &b {device: cpu, dtype: float32}\nmodels:\n  editor: {<<: *b, backend: builtin}\n"
                    "  judge: *b\n",
    "laughs.yaml": "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                   "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
    "deep.yaml": "a: " + "[" * 80 + "]" * 80 + "\n",
    "tags.yaml": "run: !!python/object:os.system [ls]\n",
    "lua_tag.yaml": "run: !lua 'os.execute()'\n",
    "scalars.yaml": "run: {out: 'x', n: 0x1f, f: .inf, g: -.NaN, b: true, s: 'no', d: 1e6, z: ~}\n",
    "multi.yaml": "run: {}\n---\nmodels: {}\n",
    "typo.yaml": "modles: {}\n",
    "unicode.yaml": "run:\n  out: \"\\u00e9\\U0001F600\\x00\"\n  \"k\\0\": 1\n",
    "recursive.yaml": "a: &a [*a]\n",
    "dupkey.yaml": "run: {}\nrun: {}\n",
    "block.yaml": "prompts:\n  system: |\n    line one\n    line two\n  user: >-\n    folded\n    text\n",
}


DATASETS = ["catlist.json", "flat.json", "hostile.json", "lines.json", "notjson.json", "pairs.jsonl",
            "paths.json", "seed.json", "truncated.json"]


def datasets():
    d = os.path.join(ROOT, "tests", "data", "datasets")
    for name in DATASETS:
        p = os.path.join(d, name)
        if not os.path.exists(p):
            continue
        with open(p, "rb") as f:
            data = f.read()
        put("dataset", name, data, 2 if name.endswith(".jsonl") else 0)
        put("dataset", name + ".tight", data, 4 | (2 if name.endswith(".jsonl") else 0))
    put("dataset", "escapes.json", r'{"c\u00e9": [{"id": "a\"b\\c\/d\u0041\ud83d\ude00", "edit_instruction": "x\n\t", '
        r'"original_image_b64": "QUJD", "n": -1.5e+3, "o": {"x": [true, false, null]}}]}', 0)
    put("dataset", "dup_ids.json", '[{"category": "a", "id": "1", "edit_instruction": "x", "image": "QQ=="},'
        '{"category": "a", "id": "1", "edit_instruction": "y", "image": "QQ=="},'
        '{"category": "../b", "id": "../../etc/passwd", "edit_instruction": "z", "image": "/etc/passwd"}]', 0)
    put("dataset", "deep.json", '{"a": {"data_pairs": [{"id": "x", "o": ' + "[" * 70 + "]" * 70 + "}]}}", 0)
    put("dataset", "jsonl_mixed.jsonl", '{"id": "a", "edit_instruction": "x", "image": "QQ=="}\n\n'
        '{"id": "b"\n[1]\n{"id": "c", "edit_instruction": "\\ud800", "image": "QQ=="}\n', 2)
    put("dataset", "custom_field.json", '{"k": [{"id": "a", "edit_instruction": "x", "img": "QQ=="}]}', 8)


SCORES = {
    "json": '{"score": 7, "reason": "ok"}',
    "label": "The edit is fine.\nScore: 8",
    "bold": "Overall rating: **8.5**",
    "fen": "评分：7分",
    "fraction": "I'd give it 7/10, or 7 out of 10.",
    "think": "<think>Score: 2</think>Final score: 9",
    "unclosed_think": "<think>Score: 2",
    "none": "I cannot judge this image.",
    "over": "Score: 11",
    "negative": "Score: -3",
    "many": "Score: 3\nScore: 4\n" * 20 + "**5**",
    "utf8": "分数：十分 \xff\xfe 8.0",
}


def scores():
    for k, v in SCORES.items():
        put("score_parse", k, v.encode("utf-8", "surrogateescape") if isinstance(v, str) else v)


def tokenizer():
    small = os.path.join(HERE, "corpus", "tokenizer", "qwen2_small.json")
    if not os.path.exists(small):
        import subprocess
        import sys
        import tempfile
        with tempfile.TemporaryDirectory() as t:
            subprocess.check_call([sys.executable, os.path.join(ROOT, "tools", "make_tokenizer_fixture.py"), t,
                                   "--vocab", "400", "--lines", "10", "--extra"])
            os.makedirs(os.path.dirname(small), exist_ok=True)
            shutil.copy(os.path.join(t, "tokenizer.json"), small)
    # qwen2_small.json starts with '{' (odd: text mode); a copy with a 0 byte in front loads it
    with open(small, "rb") as f:
        put("tokenizer", "qwen2_small.seed", f.read(), 0)
    for i, text in enumerate(["Replace the sky with a sunset.", "<|im_start|>user\n图像编辑 café<|im_end|>",
                              "don't  \n\n 123 ½ 👍🏽", "\xff\xfe invalid", "a" * 300]):
        put("tokenizer", "text%d" % i, text.encode("utf-8", "surrogateescape"), 1 + 2 * (i % 2))
    put("tokenizer", "minimal.json", '{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, '
        '"merges": ["a b"]}, "added_tokens": [{"id": 3, "content": "<s>", "special": true}], '
        '"pre_tokenizer": {"type": "ByteLevel"}, "decoder": {"type": "ByteLevel"}}', 0)
    put("tokenizer", "wordpiece.json", '{"model": {"type": "WordPiece", "vocab": {}}}', 0)
    put("tokenizer", "bad_merge.json", '{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a zz"]}}', 0)


# tests/fuzz/corpus/journal/ was cut from a real run's journal.jsonl (two_stage on
# examples/benchmark.json): 6 lines, torn, damaged in the middle, header only,
# empty, no header, a NUL; each twice (option byte 0: read-only, 1: --resume=force).


if __name__ == "__main__":
    images()
    base64s()
    for k, v in YAML.items():
        put("yaml", k, v)
    datasets()
    scores()
    tokenizer()
