#!/usr/bin/env python3
"""Writes the hostile inputs of tests/data/hostile/ (committed; rerun only
to change them):  .venv/bin/python tests/data/hostile/make_hostile.py

Each file is something a stranger could hand evalhost — a benchmark, a
config, an image, a tokenizer.json, a server reply — built to hit one
defence.  tests/e2e/test_hostile.py runs every file through the binary
and checks its exit code and error text (the table there names each)."""
import base64
import io
import json
import os
import struct
import zlib

from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))


def put(sub, name, data):
    d = os.path.join(HERE, sub)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def png_bytes(w=4, h=3, mode="RGB"):
    b = io.BytesIO()
    Image.new(mode, (w, h), (200, 30, 90) if mode == "RGB" else None).save(b, "PNG")
    return b.getvalue()


def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)


def png_header_only(w, h, idat=b""):
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + (chunk(b"IDAT", idat) if idat else b"") + chunk(b"IEND", b""))


GOOD_B64 = base64.b64encode(png_bytes()).decode()


def pair(i, **kw):
    p = {"id": "pair_%03d" % i, "original_image_b64": GOOD_B64, "edit_instruction": "make it red"}
    p.update(kw)
    return {k: v for k, v in p.items() if v is not None}


def bench(pairs, cat="cat"):
    return json.dumps({cat: {"data_pairs": pairs}}, ensure_ascii=False)


def images():
    good = png_bytes()
    put("images", "truncated.png", good[:len(good) // 2])
    put("images", "zero_bytes.png", b"")
    put("images", "html_named.png", b"<!DOCTYPE html><html><body>404 Not Found</body></html>\n")
    put("images", "header_100000x100000.png", png_header_only(100000, 100000))
    put("images", "side_70000x1.png", png_header_only(70000, 1))
    put("images", "sides_overflow.png", png_header_only(0xdda2e006, 0xc0e52b70))
    # a PNG whose IDAT chunk claims 2 GB: a 60-byte file must not allocate it
    head = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 6, 8, 2, 0, 0, 0))
    put("images", "idat_claims_2gb.png", head + struct.pack(">I", 0x7ffffff0) + b"IDAT" + b"x" * 16)
    put("images", "zero_width.png", png_header_only(0, 5))
    b = io.BytesIO()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(b, "JPEG")
    jpg = b.getvalue()
    put("images", "truncated.jpg", jpg[:len(jpg) // 2])
    # SOF0 claiming 65500x65500 in an otherwise tiny JPEG
    sof = jpg.find(b"\xff\xc0")
    put("images", "sof_65500x65500.jpg", jpg[:sof + 5] + struct.pack(">HH", 65500, 65500) + jpg[sof + 9:])
    put("images", "jpeg_magic_only.jpg", b"\xff\xd8\xff\xe0")
    bmp = io.BytesIO()
    Image.new("RGB", (4, 4)).save(bmp, "BMP")
    bm = bytearray(bmp.getvalue())
    bm[18:26] = struct.pack("<ii", 1 << 20, -(1 << 20))   # 1M x 1M, top-down
    put("images", "bmp_1Mx1M.bmp", bytes(bm))
    put("images", "gif_header_only.gif", b"GIF89a")
    put("images", "webp_truncated.webp", b"RIFF\x24\x00\x00\x00WEBPVP8 \x18\x00\x00\x00" + b"\x00" * 8)
    put("images", "riff_not_webp.webp", b"RIFF\x04\x00\x00\x00WAVE")


def b64s():
    put("b64", "bad_char.txt", GOOD_B64[:40] + "*" + GOOD_B64[41:])
    put("b64", "truncated.txt", GOOD_B64[:-7])
    put("b64", "data_url_not_base64.txt", "data:image/png,plain-text-not-base64")
    put("b64", "only_padding.txt", "====")


def datasets():
    put("datasets", "truncated.json", bench([pair(1), pair(2)])[:-40])
    put("datasets", "not_json.json", "this is not JSON at all\n")
    put("datasets", "empty.json", "")
    put("datasets", "number_root.json", "42\n")
    put("datasets", "deep_nesting.json", '{"cat": {"data_pairs": [' + json.dumps(pair(1))[:-1]
        + ', "x": ' + "[" * 100 + "]" * 100 + "}]}}")
    put("datasets", "trailing_garbage.json", bench([pair(1)]) + "\n}}} garbage")
    put("datasets", "nul_in_file.json", bench([pair(1)]).replace('"make', '\x00"make', 1))
    put("datasets", "unsafe_ids.json", bench([pair(1, id="../../escape"), pair(2, id="/etc/passwd"),
                                              pair(3, id="a/b"), pair(4, id="nul\x00id"), pair(5, id="bell\x07"),
                                              pair(6, id=".hidden"), pair(7, id="ok_one")]))
    put("datasets", "duplicate_ids.json", bench([pair(1), pair(1, edit_instruction="again")]))
    put("datasets", "missing_fields.json", bench([pair(1, edit_instruction=None), pair(2, original_image_b64=None),
                                                  pair(3, id=None), pair(4)]))
    put("datasets", "bad_base64.json", bench([pair(1, original_image_b64="iVBORw0K***notbase64***"), pair(2)]))
    put("datasets", "non_image_b64.json", bench([pair(1, original_image_b64=base64.b64encode(b"<html>hi</html>").decode()),
                                                 pair(2)]))
    put("datasets", "huge_header_b64.json", bench([pair(1, original_image_b64=base64.b64encode(
        png_header_only(100000, 100000)).decode()), pair(2)]))
    bad_utf8 = bench([pair(1, edit_instruction="PLACEHOLDER"), pair(2)]).replace("PLACEHOLDER", "bad \udcff\udcfe bytes")
    put("datasets", "invalid_utf8.json", bad_utf8)
    put("datasets", "lone_surrogate.json", bench([pair(1, edit_instruction="x"), pair(2)])
        .replace('"edit_instruction": "x"', '"edit_instruction": "\\ud800 alone"', 1))
    put("datasets", "image_path_escape.json", bench([pair(1, original_image_b64=None, image_path="../../../../etc/passwd"),
                                                     pair(2, original_image_b64=None, image_path="/etc/passwd"),
                                                     pair(3)]))
    put("datasets", "id_too_long.json", bench([pair(1, id="x" * 300), pair(2)]))
    put("datasets", "unsafe_category.json", bench([pair(1)], cat="../../outside"))
    put("datasets", "garbage_lines.jsonl", json.dumps(pair(1)) + "\n{\"id\": \"half\n" + json.dumps(pair(3)) + "\n")
    put("datasets", "wrong_types.json", bench([pair(1, edit_instruction=12345), pair(2, id=["a"]),
                                               pair(3, original_image_b64={"x": 1}), pair(4)]))


def configs():
    put("configs", "billion_laughs.yaml", "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
        + "".join("%s: &%s [%s]\n" % (n, n, ", ".join(["*" + p] * 9)) for p, n in zip("abcdefgh", "bcdefghi")))
    put("configs", "deep_nesting.yaml", "run: " + "[" * 100 + "]" * 100 + "\n")
    put("configs", "python_tag.yaml", "run: !!python/object/apply:os.system ['touch /tmp/evalhost_pwned']\n")
    put("configs", "lua_tag.yaml", "run:\n  out: !lua \"os.execute('touch /tmp/evalhost_pwned')\"\n")
    put("configs", "misspelled_section.yaml", "benchmark: {data_path: x.json}\njugde: {backend: builtin}\n")
    put("configs", "list_root.yaml", "- run\n- judge\n")
    put("configs", "binary_garbage.yaml", bytes(range(256)) * 2)
    put("configs", "invalid_utf8.yaml", b"run:\n  out: \"\xff\xfe\"\n")
    put("configs", "tab_indent.yaml", "run:\n\tout: x\n")
    put("configs", "duplicate_key.yaml", "run: {out: a}\nrun: {out: b}\n")
    put("configs", "recursive_alias.yaml", "run: &r {out: *r}\n")
    put("configs", "unclosed_flow.yaml", "benchmark: {categories: [a, b\n")
    put("configs", "scalar_root.yaml", "just a string\n")


def tokenizers():
    ok = {"version": "1.0", "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]},
          "added_tokens": [], "normalizer": None,
          "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
          "post_processor": None, "decoder": {"type": "ByteLevel"}}
    put("tokenizers", "not_json.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0,")
    put("tokenizers", "wordpiece.json", json.dumps(dict(ok, model={"type": "WordPiece", "vocab": {"a": 0}})))
    put("tokenizers", "merge_unknown_token.json", json.dumps(dict(ok, model=dict(ok["model"], merges=["a zz"]))))
    put("tokenizers", "negative_id.json", json.dumps(dict(ok, model=dict(ok["model"], vocab={"a": -5, "b": 1}))))
    put("tokenizers", "huge_id.json", json.dumps(dict(ok, model=dict(ok["model"], vocab={"a": 2000000000, "b": 1}))))
    put("tokenizers", "deep_nesting.json", "{\"model\": " + "[" * 5000 + "]" * 5000 + "}")
    put("tokenizers", "bad_regex.json", json.dumps(dict(ok, pre_tokenizer={"type": "Split", "pattern": {"Regex": "(unclosed"},
                                                                          "behavior": "Isolated", "invert": False})))
    put("tokenizers", "no_model.json", json.dumps({"version": "1.0"}))


def replies():
    def completion(content, **extra):
        c = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        c.update(extra)
        return json.dumps({"id": "x", "object": "chat.completion", "choices": [c]})
    put("replies", "no_score.json", completion("The picture shows a cat. I cannot rate it."))
    put("replies", "score_out_of_range.json", completion("Score: 11"))
    put("replies", "score_negative.json", completion("Score: -3"))
    put("replies", "malformed.json", '{"choices": [{"message": {"content": "Score: 7"')
    put("replies", "login_page.html", "<html><body><h1>Please sign in</h1></body></html>")
    put("replies", "empty_choices.json", json.dumps({"choices": []}))
    put("replies", "content_null.json", completion(None))
    put("replies", "content_number.json", completion(7))
    put("replies", "deep_nesting.json", '{"choices": ' + "[" * 3000 + "]" * 3000 + "}")
    put("replies", "only_thinking.json", completion("<think>Score: 9, clearly</think>"))
    put("replies", "long_digits.json", completion("Score: " + "5" * 400))
    put("replies", "logprobs_garbage.json", completion("Score: 7", logprobs={"content": [{"token": 7}, "x", None]}))
    put("replies", "empty_body.json", "")


if __name__ == "__main__":
    images()
    b64s()
    datasets()
    configs()
    tokenizers()
    replies()
