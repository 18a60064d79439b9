"""The ImageWriter binding through the real binary: files written in the
background decode (with Pillow) to the pixels submitted and hash as
evalhost.hash_file says; results in submission order; per-image errors as
`error` strings naming the path; loads; in_flight at its limits and one past;
double close, close-then-collect, <close>, closed-handle misuse (exit 2)."""
import os
import subprocess

import numpy as np
import pytest
from PIL import Image

BIN = os.environ.get("EVALHOST_BIN", "")
SRC = os.environ.get("EVALHOST_SRC", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
DATA = os.path.join(SRC, "tests", "data")

pytestmark = pytest.mark.skipif(not BIN or not os.path.exists(BIN), reason="EVALHOST_BIN not built")


def run_lua(tmp_path, body):
    script = tmp_path / "t.lua"
    script.write_text('local DATA, OUT = "%s", "%s"\n%s\n' % (DATA, tmp_path, body))
    return subprocess.run([BIN, str(script)], capture_output=True, text=True, timeout=60)


def test_writes_in_order_with_hashes_and_errors(tmp_path):
    r = run_lua(tmp_path, r'''
local w = assert(evalhost.image_writer.new({ in_flight = 2 }))
local img = assert(evalhost.image.load(DATA .. "/images/photo.png"))
local paths = {}
for i = 1, 6 do
  paths[i] = OUT .. ("/w%d.png"):format(i)
  if i == 4 then paths[i] = OUT .. "/missing/w4.png" end
  assert(w:submit(img, paths[i]))
end
img:close()                                    -- the writer saves its own copy
local got = w:flush()
assert(#got == 6 and w:pending() == 0, #got)
for i, r in ipairs(got) do
  assert(r.path == paths[i], r.path)
  if i == 4 then
    assert(r.hash == nil and r.error:find(OUT .. "/missing/w4.png: ", 1, true), r.error)
  else
    assert(r.error == nil and r.hash == evalhost.hash_file(r.path), r.path)
  end
end
assert(#w:collect() == 0)
assert(w:load(paths[1]))
assert(w:load(OUT .. "/nothere.png"))
local ok, err = w:load(paths[2])
assert(ok == nil and err:find("2 loads not collected (in flight at most 2;", 1, true), err)
got = w:flush()
assert(tostring(got[1].image) == "Image(96x64)", tostring(got[1].image))
assert(got[2].image == nil and got[2].error:find("nothere.png", 1, true), got[2].error)
got[1].image:close()
w:close()
print("done")
''')
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "done"
    want = np.asarray(Image.open(os.path.join(DATA, "images", "photo.png")).convert("RGB"))
    for i in (1, 2, 3, 5, 6):
        assert np.array_equal(np.asarray(Image.open(tmp_path / ("w%d.png" % i))), want)
    assert not os.path.exists(tmp_path / "missing")
    assert [f for f in os.listdir(tmp_path) if ".tmp." in f] == []


def test_in_flight_limits(tmp_path):
    r = run_lua(tmp_path, r'''
for _, n in ipairs({ 1, 64 }) do assert(evalhost.image_writer.new({ in_flight = n })):close() end
assert(evalhost.image_writer.new()):close()
for _, n in ipairs({ 0, 65, 2.5, "x" }) do
  local ok, err = pcall(evalhost.image_writer.new, { in_flight = n })
  assert(not ok and err:find("in_flight must be an integer 1..64", 1, true), tostring(n) .. ": " .. tostring(err))
end
print("done")
''')
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "done"


def test_close_is_idempotent_and_collectable(tmp_path):
    r = run_lua(tmp_path, r'''
local img = assert(evalhost.image.load(DATA .. "/images/photo.png"))
local w = assert(evalhost.image_writer.new())
assert(tostring(w) == "ImageWriter(0 pending)", tostring(w))
assert(w:submit(img, OUT .. "/a.png"))
w:close()                                      -- finishes the queued write
w:close()
assert(tostring(w) == "ImageWriter(closed)")
assert(evalhost.hash_file(OUT .. "/a.png"))
collectgarbage(); collectgarbage()
for i = 1, 20 do assert(evalhost.image_writer.new()):submit(img, OUT .. "/g.png") end   -- never closed: __gc
collectgarbage(); collectgarbage()
local kept
do
  local x <close> = assert(evalhost.image_writer.new())
  kept = x
end
assert(tostring(kept) == "ImageWriter(closed)")
for _, m in ipairs({ "submit", "collect", "flush", "pending", "load" }) do
  local ok, err = pcall(kept[m], kept, img, "x.png")
  assert(not ok and err:find("attempt to use a closed ImageWriter", 1, true), m .. ": " .. tostring(err))
end
img:close()
print("done")
''')
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "done"
    assert Image.open(tmp_path / "g.png").size == (96, 64)


def test_closed_writer_use_is_a_script_error(tmp_path):
    r = run_lua(tmp_path, r'''
local w = assert(evalhost.image_writer.new())
w:close()
w:flush()
''')
    assert r.returncode == 2, r.stderr
    assert "attempt to use a closed ImageWriter" in r.stderr and "traceback" in r.stderr
