#!/usr/bin/env python3
"""Generates the hostile and odd image files under tests/data/bad/ and the
small good ones (with Pillow's decoding as reference PNGs) under
tests/data/images/.  Run with the venv's python from the repository root:

    .venv/bin/python tests/data/make_bad_images.py

The outputs are committed; rerunning rewrites them byte-for-byte the same
(fixed seeds, no timestamps), so a diff shows a real change."""
import base64
import io
import os
import struct
import zlib

import numpy as np
from PIL import Image, ImageOps

ROOT = os.path.dirname(os.path.abspath(__file__))
BAD = os.path.join(ROOT, "bad")
GOOD = os.path.join(ROOT, "images")


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def save_png(path, img):
    img.save(path, format="PNG", optimize=False)


def photo(w, h, seed=1):
    """An asymmetric test picture: gradients, a red block top-left and a
    blue block bottom-right, so any wrong flip or rotation shows."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    a = np.zeros((h, w, 3), np.float64)
    a[..., 0] = 255 * x / max(w - 1, 1)
    a[..., 1] = 255 * y / max(h - 1, 1)
    a[..., 2] = 128 + 60 * np.sin(x / 5.0) * np.cos(y / 7.0)
    a += rng.normal(0, 4, a.shape)
    a[: h // 4, : w // 3] = (230, 20, 20)
    a[-h // 5:, -w // 4:] = (20, 30, 220)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB")


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def raw_png(w, h, depth, ctype, rows, filters=None):
    """A PNG written by hand: rows are bytes without the filter byte."""
    filters = filters or [0] * h
    raw = b"".join(bytes([f]) + r for f, r in zip(filters, rows))
    ihdr = struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(raw, 9))
            + png_chunk(b"IEND", b""))


def adam7_png(a):
    """8-bit RGB PNG with Adam7 interlacing, unfiltered passes."""
    h, w, _ = a.shape
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    raw = b""
    for x0, y0, dx, dy in passes:
        sub = a[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        raw += b"".join(b"\0" + row.tobytes() for row in sub)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 1)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(raw, 9))
            + png_chunk(b"IEND", b""))


def scan_bomb(img):
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90, progressive=True)
    b = buf.getvalue()
    i, last = 2, None
    while b[i + 1] != 0xD9:                     # walk the segments up to EOI
        n = struct.unpack(">H", b[i + 2:i + 4])[0]
        if b[i + 1] != 0xDA:
            i += 2 + n
            continue
        j = i + 2 + n                           # entropy-coded data ends at the next real marker
        while not (b[j] == 0xFF and b[j + 1] != 0 and not 0xD0 <= b[j + 1] <= 0xD7):
            j += 1
        last, i = (i, j), j
    s, e = last
    return b[:e] + b[s:e] * 600 + b[e:]


def jpeg_bytes(img, **kw):
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90, **kw)
    return buf.getvalue()


def main():
    os.makedirs(BAD, exist_ok=True)
    os.makedirs(GOOD, exist_ok=True)
    pic = photo(96, 64)

    # Truncated JPEG: a baseline JPEG cut in the middle of its scan.
    j = jpeg_bytes(pic)
    write(os.path.join(BAD, "truncated.jpg"), j[: len(j) // 2])
    # Truncated PNG: cut in the middle of the IDAT chunk.
    buf = io.BytesIO()
    pic.save(buf, format="PNG")
    p = buf.getvalue()
    write(os.path.join(BAD, "truncated.png"), p[: len(p) // 2])
    # A progressive JPEG whose last scan repeats 600 times: small file, huge
    # CPU cost; TurboJPEG's scan limit (500) must refuse it.
    write(os.path.join(BAD, "scan_bomb.jpg"), scan_bomb(photo(16, 16, seed=5)))
    # Non-image bytes with an image name.
    write(os.path.join(BAD, "not_an_image.png"), b"<html><body>404 Not Found</body></html>\n")
    # Zero bytes.
    write(os.path.join(BAD, "empty.jpg"), b"")
    # A PNG whose header claims 100000x100000 (valid CRCs, tiny IDAT).
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    write(os.path.join(BAD, "huge_header.png"),
          b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
          + png_chunk(b"IEND", b""))
    # A PNG with an undefined filter type (7) in its second row.
    rows = [bytes(range(12)), bytes(range(12, 24))]
    write(os.path.join(BAD, "bad_filter.png"), raw_png(4, 2, 8, 2, rows, filters=[0, 7]))

    # Bad base64: a good PNG in base64 with '!' at offset 100 ...
    text = base64.b64encode(p).decode()
    write(os.path.join(BAD, "bad_base64.txt"), (text[:100] + "!" + text[100:]).encode())
    # ... and base64 that ends with one stray character (6 bits: no byte).
    write(os.path.join(BAD, "truncated_base64.txt"), (text[: (len(text) // 4) * 4 - 4] + "Q").encode())
    # The same PNG as URL-safe base64 without padding, split into lines, in a data URL.
    url = base64.urlsafe_b64encode(p).decode().rstrip("=")
    lines = "\n".join(url[i:i + 76] for i in range(0, len(url), 76))
    write(os.path.join(GOOD, "photo_dataurl.txt"), ("data:image/png;base64," + lines + "\n").encode())
    save_png(os.path.join(GOOD, "photo.png"), pic)
    write(os.path.join(GOOD, "photo.rgb"), pic.tobytes())   # raw 96x64 RGB: a reference no decoder touched

    # A JPEG with junk bytes before its EOI marker: libjpeg warns "extraneous
    # bytes" but every pixel is there, so it must decode like the original.
    jb = jpeg_bytes(pic)
    write(os.path.join(GOOD, "extraneous.jpg"), jb[:-2] + b"\x00\x11\x22" + jb[-2:])
    save_png(os.path.join(GOOD, "extraneous_ref.png"), Image.open(io.BytesIO(jb)).convert("RGB"))
    # An interlaced (Adam7) PNG, written by hand (Pillow cannot write one).
    write(os.path.join(GOOD, "interlaced.png"), adam7_png(np.asarray(pic)))

    # CMYK JPEG (Pillow writes an Adobe marker and inverted values) and
    # Pillow's RGB conversion of it.
    cmyk = pic.convert("CMYK")
    cj = jpeg_bytes(cmyk)
    write(os.path.join(BAD, "cmyk.jpg"), cj)
    save_png(os.path.join(BAD, "cmyk_ref.png"), Image.open(io.BytesIO(cj)).convert("RGB"))

    # 16-bit RGB PNG (written by hand: Pillow has no 16-bit RGB mode) and its
    # 8-bit reference: the high byte of each sample.
    rng = np.random.default_rng(7)
    a16 = rng.integers(0, 65536, (20, 30, 3), dtype=np.uint16)
    rows = [a16[y].astype(">u2").tobytes() for y in range(20)]
    write(os.path.join(BAD, "rgb16.png"), raw_png(30, 20, 16, 2, rows))
    save_png(os.path.join(BAD, "rgb16_ref.png"), Image.fromarray((a16 >> 8).astype(np.uint8), "RGB"))

    # EXIF-rotated JPEGs: every orientation, references from exif_transpose.
    for o in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = o
        jb = jpeg_bytes(pic, exif=exif.tobytes())
        name = "exif_rotated" if o == 6 else "exif_o%d" % o
        folder = BAD if o == 6 else GOOD
        write(os.path.join(folder, name + ".jpg"), jb)
        ref = ImageOps.exif_transpose(Image.open(io.BytesIO(jb))).convert("RGB")
        save_png(os.path.join(folder, name + "_ref.png"), ref)

    # GIF with two frames: the first is what we decode.
    frames = [pic.convert("P", palette=Image.Palette.ADAPTIVE, colors=64),
              pic.transpose(Image.Transpose.ROTATE_180).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    g = buf.getvalue()
    write(os.path.join(BAD, "anim.gif"), g)
    save_png(os.path.join(BAD, "anim_ref.png"), Image.open(io.BytesIO(g)).convert("RGB"))

    # WebP: lossless (exact reference) and lossy (Pillow's decode as reference).
    buf = io.BytesIO()
    pic.save(buf, format="WEBP", lossless=True)
    write(os.path.join(BAD, "lossless.webp"), buf.getvalue())
    buf = io.BytesIO()
    pic.save(buf, format="WEBP", quality=80)
    w = buf.getvalue()
    write(os.path.join(BAD, "lossy.webp"), w)
    save_png(os.path.join(BAD, "lossy_ref.png"), Image.open(io.BytesIO(w)).convert("RGB"))
    write(os.path.join(BAD, "truncated.webp"), w[: len(w) // 2])

    # PNG variants for the fast path and the stb fallback, each with
    # Pillow's RGB (and RGBA) decoding as reference.
    small = photo(40, 30, seed=3)
    rgba = small.copy()
    rgba.putalpha(Image.fromarray(np.tile(np.arange(40, dtype=np.uint8) * 6, (30, 1)), "L"))
    variants = {
        "gray": small.convert("L"),
        "graya": rgba.convert("LA"),
        "rgba": rgba,
        "pal": small.convert("P", palette=Image.Palette.ADAPTIVE, colors=200),
        "bilevel": small.convert("1"),
    }
    pal_t = small.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal_t.info["transparency"] = 3
    variants["pal_trns"] = pal_t
    for name, im in variants.items():
        path = os.path.join(GOOD, "v_%s.png" % name)
        im.save(path, format="PNG")
        back = Image.open(path)
        save_png(os.path.join(GOOD, "v_%s_rgb_ref.png" % name), back.convert("RGB"))
        if name in ("graya", "rgba", "pal_trns"):
            save_png(os.path.join(GOOD, "v_%s_rgba_ref.png" % name), Image.open(path).convert("RGBA"))
    small.save(os.path.join(GOOD, "v_rgb.bmp"), format="BMP")

    # Resize references: Pillow's four filters, down and up.
    for name, flt in (("bilinear", Image.Resampling.BILINEAR), ("bicubic", Image.Resampling.BICUBIC),
                      ("lanczos", Image.Resampling.LANCZOS), ("nearest", Image.Resampling.NEAREST)):
        save_png(os.path.join(GOOD, "resize_%s_down.png" % name), pic.resize((37, 23), flt))
        save_png(os.path.join(GOOD, "resize_%s_up.png" % name), pic.resize((150, 101), flt))
    # ... and of an RGBA picture (Pillow resamples it premultiplied).
    rgba.resize((17, 11), Image.Resampling.BICUBIC).save(os.path.join(GOOD, "resize_rgba_down.png"))
    rgba.resize((67, 45), Image.Resampling.BILINEAR).save(os.path.join(GOOD, "resize_rgba_up.png"))


if __name__ == "__main__":
    main()
