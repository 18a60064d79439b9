"""The Image binding through the real binary: double close, close-then-collect,
<close> variables, closed-handle misuse (a script error, exit 2), `nil, err`
for every hostile file, limits from --set, and interop with Pillow (what we
encode, Pillow reads back to the same pixels)."""
import base64
import io
import os
import subprocess

import numpy as np
import pytest
from PIL import Image

BIN = os.environ.get("EVALHOST_BIN", "")
SRC = os.environ.get("EVALHOST_SRC", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
DATA = os.path.join(SRC, "tests", "data")

pytestmark = pytest.mark.skipif(not BIN or not os.path.exists(BIN), reason="EVALHOST_BIN not built")


def run_lua(tmp_path, body, *args):
    script = tmp_path / "t.lua"
    script.write_text('local DATA = "%s"\nlocal image = evalhost.image\n%s\n' % (DATA, body))
    return subprocess.run([BIN, str(script), *args], capture_output=True, text=True, timeout=60)


def photo():
    return np.fromfile(os.path.join(DATA, "images", "photo.rgb"), np.uint8).reshape(64, 96, 3)


def test_close_is_idempotent_and_collectable(tmp_path):
    r = run_lua(tmp_path, r'''
local img = assert(image.load(DATA .. "/images/photo.png"))
assert(tostring(img) == "Image(96x64)", tostring(img))
local w, h = img:size()
assert(w == 96 and h == 64 and img:channels() == 3)
img:close()
img:close()                                   -- double close: no error
assert(tostring(img) == "Image(closed)")
collectgarbage(); collectgarbage()            -- close-then-collect: __gc runs on a closed handle
for i = 1, 50 do image.load(DATA .. "/images/photo.png") end   -- never closed: the collector frees them
collectgarbage(); collectgarbage()
local kept
do
  local x <close> = assert(image.decode(io.open(DATA .. "/images/photo.png", "rb"):read("a")))
  kept = x
end
assert(tostring(kept) == "Image(closed)")     -- __close ran at the end of the block
local ok, err = pcall(kept.size, kept)
assert(not ok and err:find("attempt to use a closed Image", 1, true), err)
ok, err = pcall(img.png, img)
assert(not ok and err:find("attempt to use a closed Image", 1, true), err)
print("done")
return 0
''')
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "done"


def test_closed_image_use_is_a_script_error(tmp_path):
    r = run_lua(tmp_path, r'''
local img = assert(image.load(DATA .. "/images/photo.png"))
img:close()
img:resize(10, 10)
''')
    assert r.returncode == 2
    assert "attempt to use a closed Image" in r.stderr


def test_misuse_raises(tmp_path):
    r = run_lua(tmp_path, r'''
local img = assert(image.load(DATA .. "/images/photo.png"))
local ok, err = pcall(img.resize, img, 10, 10, "sharpest")
assert(not ok and err:find("invalid option 'sharpest'", 1, true), err)
ok, err = pcall(img.resize, img, 0, 10)
assert(not ok and err:find("positive integer", 1, true), err)
ok, err = pcall(img.png, img, 12)
assert(not ok and err:find("level must be 0..9", 1, true), err)
ok, err = pcall(img.jpeg, img, 0)
assert(not ok and err:find("quality must be 1..100", 1, true), err)
ok, err = pcall(image.decode, {})
assert(not ok and err:find("string expected", 1, true), err)
ok, err = pcall(img.size, "not an image")
assert(not ok and err:find("evalhost.Image expected", 1, true), err)
print("done")
return 0
''')
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "done"


HOSTILE = {
    "bad/truncated.jpg": "truncated JPEG (",
    "bad/truncated.png": "truncated PNG (",
    "bad/not_an_image.png": "not an image (first bytes 3c 68 74 6d 6c 3e 3c 62)",
    "bad/empty.jpg": "not an image (empty, 0 bytes)",
    "bad/huge_header.png": "image 100000x100000 exceeds image.max_pixels (64000000)",
    "bad/truncated.webp": "corrupt or truncated WebP",
    "bad/no_such_file.jpg": "No such file or directory",
}


def test_hostile_files_return_nil_and_message(tmp_path):
    lines = []
    for rel in HOSTILE:
        lines.append('do local img, err = image.load(DATA .. "/%s"); assert(img == nil); print("%s", err) end' % (rel, rel))
    lines.append('do local s = io.open(DATA .. "/bad/bad_base64.txt"):read("a"); '
                 'local img, err = image.decode_b64(s); assert(img == nil); print("b64", err) end')
    lines.append('do local img, err = image.decode("GIF89a"); assert(img == nil); print("gif", err) end')
    lines.append("return 0")
    r = run_lua(tmp_path, "\n".join(lines))
    assert r.returncode == 0, r.stderr
    got = dict(line.split("\t", 1) for line in r.stdout.strip().split("\n"))
    for rel, want in HOSTILE.items():
        assert got[rel].startswith(os.path.join(DATA, rel) + ": "), got[rel]
        assert want in got[rel], (rel, got[rel])
    assert got["b64"] == "bad base64 at offset 100 (invalid character)"
    assert got["gif"] == "corrupt GIF (header gives 0x0)", got["gif"]


def test_limits_come_from_config(tmp_path):
    body = r'''
local img, err = image.load(DATA .. "/images/photo.png")
print(img and "ok" or err)
return 0
'''
    at = run_lua(tmp_path, body, "--set", "image.max_pixels=6144")
    assert at.returncode == 0, at.stderr
    assert at.stdout.strip() == "ok"
    past = run_lua(tmp_path, body, "--set", "image.max_pixels=6143")
    assert past.stdout.strip().endswith("image 96x64 exceeds image.max_pixels (6143)"), past.stdout
    side = run_lua(tmp_path, body, "--set", "image.max_side=95")
    assert side.stdout.strip().endswith("image 96x64 exceeds image.max_side (95)"), side.stdout
    rs = run_lua(tmp_path, r'''
local img = assert(image.load(DATA .. "/images/photo.png"))
print(img:resize(200, 200))
return 0
''', "--set", "image.max_pixels=10000")
    assert rs.stdout.strip() == "nil\tresize: 200x200 exceeds image.max_pixels (10000)\tELIMIT", rs.stdout


def test_encodings_read_back_in_pillow(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    r = run_lua(tmp_path, r'''
local out = ...
local img = assert(image.load(DATA .. "/images/photo.png"))
assert(img:save(out .. "/a.png") == true)
assert(img:save(out .. "/b.jpg") == true)
local f = io.open(out .. "/c.png", "wb"); f:write(img:png(9)); f:close()
f = io.open(out .. "/d.jpg", "wb"); f:write(img:jpeg(95)); f:close()
f = io.open(out .. "/e.b64", "wb"); f:write(img:b64()); f:close()
f = io.open(out .. "/f.b64", "wb"); f:write(img:b64("webp")); f:close()
assert(img:resize(37, 23, "bicubic"):save(out .. "/g.png"))
local ok, err = img:save(out .. "/missing/x.png")
assert(ok == nil and err:find("cannot write", 1, true), err)
ok, err = img:save(out .. "/x.tiff")
assert(ok == nil and err:find("unsupported image format", 1, true), err)
local back = assert(image.decode_b64(img:b64()))
assert(back:png() == img:png())
return 0
'''.replace("local out = ...", 'local out = "%s"' % out))
    assert r.returncode == 0, r.stderr
    ref = photo()
    for name in ("a.png", "c.png"):
        assert np.array_equal(np.asarray(Image.open(out / name).convert("RGB")), ref), name
    for name in ("b.jpg", "d.jpg"):
        got = np.asarray(Image.open(out / name).convert("RGB")).astype(int)
        assert np.abs(got - ref).mean() < 3.0, name
    png = base64.b64decode((out / "e.b64").read_text())
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")), ref)
    webp = Image.open(io.BytesIO(base64.b64decode((out / "f.b64").read_text())))
    assert webp.format == "WEBP" and webp.size == (96, 64)
    pil = np.asarray(Image.fromarray(ref).resize((37, 23), Image.Resampling.BICUBIC)).astype(int)
    assert np.array_equal(np.asarray(Image.open(out / "g.png")).astype(int), pil)
    assert sorted(os.listdir(out)) == ["a.png", "b.jpg", "c.png", "d.jpg", "e.b64", "f.b64", "g.png"]
