"""The Dataset binding through the real binary: the pair tables, per-pair
errors with their exact text, pair:image() for good and hostile images, image
paths relative to the dataset, options and config limits, closed-handle misuse
(a script error) and double close."""
import base64
import io
import json
import os
import subprocess

import pytest
from PIL import Image

BIN = os.environ.get("EVALHOST_BIN", "")
SRC = os.environ.get("EVALHOST_SRC", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
DS = os.path.join(SRC, "tests", "data", "datasets")

pytestmark = pytest.mark.skipif(not BIN or not os.path.exists(BIN), reason="EVALHOST_BIN not built")


def run_lua(tmp_path, body, config=None):
    script = tmp_path / "t.lua"
    script.write_text('local DS = "%s"\nlocal dataset = evalhost.dataset\n%s\n' % (DS, body))
    args = [BIN, str(script)]
    if config is not None:
        (tmp_path / "c.yaml").write_text(config)
        args.append(str(tmp_path / "c.yaml"))
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def ok(r):
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_seed_shape_pairs_are_tables(tmp_path):
    out = ok(run_lua(tmp_path, r'''
local ds = assert(dataset.open(DS .. "/seed.json"))
assert(#ds == 3 and ds:count("物理") == 2 and ds:count("empty") == 0)
assert(table.concat(ds:categories(), ",") == "物理,环境,empty")
local n, err = ds:count("社会")
assert(n == nil and err:find('unknown category "社会"', 1, true), err)
local seen = {}
for i, p in ds:pairs("物理") do
  seen[#seen + 1] = i .. ":" .. p.id .. ":" .. p.category .. ":" .. p.index .. ":" .. p.name
  assert(p.error == nil)
  local img <close> = assert(p:image())
  assert(tostring(img):match("^Image%("), tostring(img))
  local field <close> = p.image          -- SPEC §3: the field is the Image too
  assert(tostring(field):match("^Image%("), tostring(field))
end
assert(table.concat(seen, " ") == "1:pair_001:物理:1:pair_001 2:pair_002:物理:2:pair_002", table.concat(seen, " "))
local p = ds:pair("物理", 1)
assert(p.instruction == '把球变成红色 "quoted" 中\u{1F600}\n', p.instruction)
assert(p.description == "a ball")
assert(p.fields.difficulty == 3 and math.type(p.fields.difficulty) == "integer")
assert(p.fields.id == nil and p.fields.original_image_b64 == nil)   -- only pass-through fields
assert(ds:pair("物理", 2).fields.source == "synthetic")
local w, h = ds:pair("环境", 1):image():size()                        -- escaped "\/" base64
assert(w == 4 and h == 3)
local none, why = ds:pair("物理", 3)
assert(none == nil and why == 'no pair #3 in category "物理" (2 pairs)', why)
local all = 0
for _, q in ds:pairs() do all = all + 1 end
assert(all == 3)
assert(ds:hash() == evalhost.hash_file(DS .. "/seed.json"), ds:hash())
assert(ds:path() == DS .. "/seed.json")
print("ok")
'''))
    assert out.strip() == "ok"


def test_nested_pass_through_fields(tmp_path):
    ok(run_lua(tmp_path, r'''
local p = assert(dataset.open(DS .. "/seed.json")):pair("物理", 1)
local tags = p.fields.tags
assert(type(tags) == "table" and tags[1] == "a" and tags[2].b == evalhost.json.null)
assert(evalhost.json.encode(p:field("tags")) == '["a",{"b":null}]')
'''))


def test_hostile_pairs_keep_going(tmp_path):
    out = ok(run_lua(tmp_path, r'''
local ds = assert(dataset.open(DS .. "/hostile.json"))
local bad = 0
for i, p in ds:pairs("h") do
  if p.error then bad = bad + 1 end
  local img, err = p:image()
  print(i, p.name, p.error or "-", img and "image" or err)
end
print("bad", bad)
'''))
    lines = out.splitlines()
    assert lines[-1] == "bad\t13"
    assert lines[1] == "2\tpair_001\th/pair_001 (#2): duplicate id (first at #1)\timage"
    assert lines[2].startswith("3\t_._x-") and "\th/../x (#3): unsafe id (not usable as a file name)\timage" in lines[2]
    assert lines[6] == "7\tpair_7\th/#7: missing field \"id\" (the config key dataset.id names it)\timage"
    assert lines[7] == ('8\tno_image\th/no_image (#8): missing field "original_image_b64" (the config key dataset.image '
                        'names it)\t'
                        'h/no_image (#8): image: missing field "original_image_b64"')
    for line in lines[:-1]:
        assert "/" not in line.split("\t")[1]   # every output name stays in its folder


def test_bad_images_name_the_pair(tmp_path):
    png = io.BytesIO()
    Image.new("RGB", (8, 6), (1, 2, 3)).save(png, "JPEG")
    good = base64.b64encode(png.getvalue()).decode()
    bench = {"c": [
        {"id": "ok", "original_image_b64": good, "edit_instruction": "x"},
        {"id": "truncated", "original_image_b64": good[: len(good) // 2], "edit_instruction": "x"},
        {"id": "not_image", "original_image_b64": base64.b64encode(b"hello world, not an image" * 200).decode(),
         "edit_instruction": "x"},
        {"id": "bad_b64", "original_image_b64": "QUJD" * 1500 + "*" + "QUJD" * 10, "edit_instruction": "x"},
    ]}
    (tmp_path / "b.json").write_text(json.dumps(bench))
    out = ok(run_lua(tmp_path, r'''
local ds = assert(dataset.open("%s"))
for i, p in ds:pairs("c") do
  local img, err = p:image()
  print(img and ("image " .. table.concat({img:size()}, "x")) or err)
end
''' % (tmp_path / "b.json")))
    lines = out.splitlines()
    assert lines[0] == "image 8x6"
    assert lines[1].startswith("c/truncated (#2): image: ")
    assert lines[2].startswith("c/not_image (#3): image: not an image")
    assert lines[3] == "c/bad_b64 (#4): image: bad base64 at offset 6000 (invalid character)"


def test_image_paths_relative_to_the_dataset(tmp_path):
    out = ok(run_lua(tmp_path, r'''
local ds = assert(dataset.open(DS .. "/paths.json"))
for i, p in ds:pairs("p") do
  local img, err = p:image()
  print(p.id, img and ("image " .. table.concat({img:size()}, "x")) or err)
end
'''))
    got = dict(line.split("\t") for line in out.splitlines())
    assert got["ok_path"] == "image 4x3" and got["ok_guess"] == "image 4x3"
    assert got["dotdot"] == 'p/dotdot (#3): image: image path "../datasets/img/red.png" escapes the dataset folder (refused)'
    assert got["absolute"] == ('p/absolute (#4): image: image path "/etc/passwd" is absolute '
                               '(refused: paths are relative to the dataset)')
    assert got["symlink"] == 'p/symlink (#7): image: image path "img/link.png" resolves outside the dataset folder (refused)'
    assert got["missing"].startswith('p/missing (#5): image: image file "img/nope.png" (in ')


def test_options_and_config_limits(tmp_path):
    out = ok(run_lua(tmp_path, r'''
local ds = assert(dataset.open(DS .. "/catlist.json", {image = "image", instruction = "edit_instruction"}))
print(ds:pair("a", 2).error)
print(select(2, dataset.open(DS .. "/seed.json", {limits = {max_pairs = 2, max_json_depth = 64}})))
print(select(2, dataset.open(DS .. "/seed.json")))
print(select(2, pcall(dataset.open, DS .. "/seed.json", {imagee = "x"})))
print(select(2, dataset.open(DS .. "/lines.json", {format = "json"})))
''', config="limits:\n  max_json_depth: 3\n"))
    lines = out.splitlines()
    assert lines[0] == 'a/x2 (#2): missing field "image" (the config key dataset.image names it)'
    assert lines[1].endswith("seed.json:6:24: more than 2 pairs (limits.max_pairs)\tELIMIT")
    assert lines[2].endswith("nesting deeper than 3 (limits.max_json_depth)\tELIMIT")   # from the config
    assert 'unknown option "imagee"' in lines[3]
    assert lines[4].endswith('lines.json:1:8: category "id": expected an object with "data_pairs" or a list of pairs\tEINVAL')


def test_structural_errors_are_data_errors(tmp_path):
    out = ok(run_lua(tmp_path, r'''
print(select(2, dataset.open(DS .. "/truncated.json")))
print(select(2, dataset.open(DS .. "/notjson.json")))
print(select(2, dataset.open(DS .. "/nope.json")))
'''))
    lines = out.splitlines()
    assert lines[0].startswith(DS + "/truncated.json:") and lines[0].endswith(": unterminated string (truncated?)\tEINVAL")
    assert lines[1] == DS + "/notjson.json:1:1: not a benchmark: expected '{' (categories) or '[' (pairs)\tEINVAL"
    assert lines[2] == DS + "/nope.json: No such file or directory\tEIO"


def test_close_is_idempotent_and_misuse_raises(tmp_path):
    out = ok(run_lua(tmp_path, r'''
local ds = assert(dataset.open(DS .. "/seed.json"))
local p = ds:pair("物理", 1)
ds:close()
ds:close()
assert(tostring(ds) == "evalhost.Dataset (closed)")
print(select(2, pcall(ds.categories, ds)))
print(select(2, pcall(function() return p:image() end)))
print(select(2, pcall(function() return #ds end)))
do local d <close> = assert(dataset.open(DS .. "/seed.json")) end
for i = 1, 20 do dataset.open(DS .. "/seed.json") end   -- never closed: the collector frees them
collectgarbage(); collectgarbage()
print(select(2, pcall(getmetatable(p).__index, {}, "image")))
'''))
    lines = out.splitlines()
    assert lines[0].endswith("attempt to use a closed Dataset")
    assert lines[1].endswith("attempt to use a closed Dataset")
    assert lines[2].endswith("attempt to use a closed Dataset")
    assert lines[3].endswith("not a pair from evalhost.dataset")
    r = run_lua(tmp_path, 'local ds = dataset.open(DS .. "/seed.json")\nfor _ in ds:pairs("nope") do end')
    assert r.returncode == 2 and 'unknown category "nope"' in r.stderr


def test_examples_benchmark_is_generated_and_opens(tmp_path):
    out = tmp_path / "benchmark.json"
    subprocess.run([os.path.join(SRC, ".venv", "bin", "python"), os.path.join(SRC, "tools", "make_examples.py"),
                    "--out", str(out)], check=True, capture_output=True, timeout=120)
    committed = os.path.join(SRC, "examples", "benchmark.json")
    assert out.read_bytes() == open(committed, "rb").read(), "examples/benchmark.json is stale: rerun tools/make_examples.py"
    assert os.path.getsize(committed) < 1_500_000
    text = ok(run_lua(tmp_path, r'''
local ds = assert(dataset.open("%s"))
assert(table.concat(ds:categories(), ",") == "物理,环境,社会,因果,指代")
local kinds = {}
for _, p in ds:pairs() do
  assert(p.error == nil, p.error)
  local img <close> = assert(p:image())
  local w, h = img:size()
  assert(w >= 256 and w <= 512 and h >= 192 and h <= 384, w .. "x" .. h)
  local head = p:field("original_image_b64"):sub(1, 4)
  kinds[head] = (kinds[head] or 0) + 1
  assert(next(p.fields), "a pass-through field")
end
for _, c in ipairs(ds:categories()) do assert(ds:count(c) >= 4 and ds:count(c) <= 6) end
print(#ds, kinds["iVBO"], kinds["/9j/"])
''' % committed))
    n, png, jpeg = text.split()
    assert int(n) == 25 and int(png) > 0 and int(jpeg) > 0 and int(png) + int(jpeg) == 25


def test_pair_image_field_and_method(tmp_path):
    """SPEC §3: `pair.image` and `pair:image()` both give the decoded Image;
    on a bad image the method returns nil and the message."""
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"c": {"data_pairs": [
        {"id": "p1", "original_image_b64": "aGVsbG8gd29ybGQ=", "edit_instruction": "x"}]}}))
    committed = os.path.join(SRC, "examples", "benchmark.json")
    text = ok(run_lua(tmp_path, r'''
local ds = assert(dataset.open("%s"))
local p = ds:pair("物理", 1)
local a = p.image
local b = p:image()
assert(a ~= b, "decoded anew on each use")
local aw, ah = a:size()
local bw, bh = b:size()
assert(aw == bw and ah == bh)
a:close(); b:close()
local d2 = assert(dataset.open("%s"))
local q = d2:pair("c", 1)
local img, err = q:image()
assert(img == nil and err:find("c/p1"), tostring(err))
print("ok")
''' % (committed, bad)))
    assert text.strip() == "ok"
