-- lua/evalhost/datasets/*: the benchmark adapters over the generated
-- fixtures in tests/data/adapters (make_fixtures.py), and their scoring
-- profiles' arithmetic. Images are decoded only in the end-to-end test
-- (tests/e2e/test_compare.py runs every adapter through the binary).
local fake = require "fake_host"

local FIX = "tests/data/adapters/"

local function collect(ds)
  local out = {}
  for _, cat in ipairs(ds:categories()) do
    for i, p in ds:pairs(cat) do
      assert.are.equal(i, p.index)
      out[#out + 1] = p
    end
  end
  return out
end

local function by_id(list)
  local t = {}
  for _, p in ipairs(list) do t[p.category .. "/" .. p.id] = p end
  return t
end

describe("dataset adapters", function()
  before_each(function() fake.install() end)
  after_each(function() fake.uninstall() end)

  it("imgedit: keys in numeric order, edit types as categories, images under singleturn/", function()
    local ds = assert(require("evalhost.datasets.imgedit").open(FIX .. "imgedit/basic_edit.json"))
    assert.are.same({ "adjust", "remove", "style" }, ds:categories())
    assert.are.equal(5, #ds)
    assert.are.equal(2, ds:count("adjust"))
    local ps = collect(ds)
    assert.are.same({ "2", "10", "3", "4", "7" }, { ps[1].id, ps[2].id, ps[3].id, ps[4].id, ps[5].id })
    local p = by_id(ps)["adjust/10"]
    assert.are.equal("Change the tortoise's shell to a smooth surface.", p.instruction)
    assert.are.equal(FIX .. "imgedit/singleturn/animal/000342021.jpg", p.image_path)
    assert.are.equal("adjust", p:field("edit_type"))
    assert.is_nil(p.error)
    assert.matches('entry 4: image path "../../outside.jpg" leaves', by_id(ps)["remove/4"].error, 1, true)
    assert.are.equal(FIX .. "imgedit/basic_edit.json", ds:path())
    assert.are.equal(evalhost.hash_file(FIX .. "imgedit/basic_edit.json"), ds:hash())
    ds:close()
    assert.has_error(function() ds:categories() end, "attempt to use a closed Dataset")
  end)

  it("kris: one category per folder with annotation.json, the first ori_img, missing instruction named", function()
    local ds = assert(require("evalhost.datasets.kris").open(FIX .. "kris/KRIS_Bench"))
    assert.are.same({ "color_change", "temperature" }, ds:categories())
    local ps = by_id(collect(ds))
    assert.are.equal(FIX .. "kris/KRIS_Bench/color_change/2.jpg", ps["color_change/2"].image_path)
    assert.are.same({ "2.jpg", "2_b.jpg" }, ps["color_change/2"]:field("ori_img"))
    assert.are.equal("The apple becomes yellow.", ps["color_change/1"].description)
    assert.are.equal("temperature/3 (#2) in " .. FIX .. "kris/KRIS_Bench: no instruction", ps["temperature/3"].error)
    local again = require("evalhost.datasets.kris").open(FIX .. "kris/KRIS_Bench")
    assert.are.equal(ds:hash(), again:hash())
  end)

  it("rise: items in file order, images relative to the JSON's folder", function()
    local ds = assert(require("evalhost.datasets.rise").open(FIX .. "rise/data/data_total.json"))
    assert.are.same({ "temporal_reasoning", "causal_reasoning", "logical_reasoning", "spatial_reasoning" }, ds:categories())
    local ps = by_id(collect(ds))
    local p = ps["temporal_reasoning/temporal_reasoning_1"]
    assert.are.equal(FIX .. "rise/data/images/temporal_reasoning/1.png", p.image_path)
    assert.are.equal("A rotten apple.", p.description)
    assert.are.equal("Path drawn.", ps["logical_reasoning/logical_reasoning_1"]:field("reference_txt"))
  end)

  it("bad layouts fail with the file and the reason", function()
    local ok, err = require("evalhost.datasets.imgedit").open(FIX .. "rise/data/data_total.json")
    assert.is_nil(ok)
    assert.matches("imgedit: .*data_total.json: expected an object of {id, prompt, edit_type}", err)
    ok, err = require("evalhost.datasets.rise").open(FIX .. "imgedit/basic_edit.json")
    assert.is_nil(ok)
    assert.matches("rise: .*basic_edit.json: expected a list", err)
    ok, err = require("evalhost.datasets.kris").open(FIX .. "imgedit")
    assert.is_nil(ok)
    assert.are.equal("kris: " .. FIX .. "imgedit has no <category>/annotation.json", err)
    ok, err = require("evalhost.datasets.imgedit").open(FIX .. "nope.json")
    assert.is_nil(ok)
    assert.matches("^imgedit: " .. FIX:gsub("%-", "%%-") .. "nope.json: ", err)
  end)

  it("a duplicate id within a category is the second pair's error", function()
    local base = require "evalhost.datasets.base"
    local ds = base.new({
      { category = "a", id = "x", instruction = "i", image_path = "/tmp/1.png" },
      { category = "a", id = "x", instruction = "j", image_path = "/tmp/2.png" },
      { category = "b", id = "x", instruction = "k", image_path = "/tmp/3.png" },
    }, "mem", "h", "test")
    assert.is_nil(ds:pair("a", 1).error)
    assert.are.equal("a/x (#2) in mem: duplicate id (first at #1)", ds:pair("a", 2).error)
    assert.is_nil(ds:pair("b", 1).error)
  end)

  it("pair.image and pair:image() both give the Image; a bad image gives nil and the message", function()
    local base = require "evalhost.datasets.base"
    local ds = base.new({
      { category = "a", id = "ok", instruction = "i", image = function() return fake.image(4, 3, "px") end },
      { category = "a", id = "bad", instruction = "j", image = function() return nil, "truncated PNG" end },
    }, "mem", "h", "test")
    local good = ds:pair("a", 1)
    assert.are.same({ 4, 3 }, { good.image:size() })
    assert.are.same({ 4, 3 }, { good:image():size() })
    local img, err = ds:pair("a", 2):image()
    assert.is_nil(img)
    assert.are.equal("truncated PNG", err)
  end)
end)

describe("scoring profiles", function()
  it("parse the benchmarks' score lines", function()
    local base = require "evalhost.datasets.base"
    assert.are.same({ 4, 5, 3 }, base.parse_scores("The edit is good.\n**Final Score**: 4, 5, 3"))
    assert.are.same({ 7, 2 }, base.parse_scores('{"score": [7, 2], "reasoning": "ok"}'))
    assert.is_nil(base.parse_scores("no numbers here"))
  end)

  it("turn judge replies into scores, or name what is missing", function()
    fake.install()
    local ip = require("evalhost.datasets.imgedit").profile
    local s, d = ip.from_text("Looks right.\nFinal Scores: 4, 5, 3")
    assert.are.equal(4, s)
    assert.are.same({ prompt_compliance = 4, visual_naturalness = 5, physical_detail_integrity = 3 }, d)
    assert.are.same({ nil, "imgedit: rating 9 is outside 1..5" }, { ip.from_text("Final Scores: 4, 9, 3") })
    assert.are.same({ nil, "imgedit: expected 3 ratings, found 2" }, { ip.from_text("Final Scores: 4, 5") })
    local rp = require("evalhost.datasets.rise").profile
    s, d = rp.from_text("Final Score: 5, 4", "logical_reasoning")
    assert(math.abs(s - (0.3 * 5 + 0.7 * 4)) < 1e-12)
    assert.is_nil(d.plausibility)
    assert.are.same({ nil, "rise: expected 3 ratings, found 2" }, { rp.from_text("Final Score: 5, 4", "causal_reasoning") })
    local gp = require("evalhost.datasets.gedit").profile
    s, d = gp.from_text("**SC**: 8, 6\nPQ: 9, 4\nScore: 5")
    assert(math.abs(s - math.sqrt(24)) < 1e-12)
    assert.are.equal(6, d.SC)
    assert.are.same({ nil, "gedit: SC/PQ lines: expected 1 ratings, found 0" }, { gp.from_text("Score: 5") })
    assert.are.same({ nil, "gedit: SC rating outside 0..10" }, { gp.from_text("SC: 8, 16\nPQ: 9, 4") })
    fake.uninstall()
  end)

  it("imgedit and kris: means of the ratings given", function()
    assert.are.equal(4, require("evalhost.datasets.imgedit").profile.score({ 4, 5, 3 }))
    assert.is_nil(require("evalhost.datasets.imgedit").profile.score({ 4, 5 }))
    local kp = require("evalhost.datasets.kris").profile
    assert.are.equal(3.5, kp.score({ consistency = 3, quality = 4, instruction = 2, knowledge = 5 }))
    assert.are.equal(3, kp.score({ quality = 4, instruction = 2 }))   -- consistency not rated
  end)

  it("rise: weights per category, the reasoning-1 penalty, accuracy when all are 5", function()
    local rp = require("evalhost.datasets.rise").profile
    local function near(a, b) assert(math.abs(a - b) < 1e-12, ("%.17g vs %.17g"):format(a, b)) end
    near(rp.score({ consistency = 4, reasoning = 3, plausibility = 5 }, "causal_reasoning"), 0.3 * 4 + 0.5 * 3 + 0.2 * 5)
    near(rp.score({ consistency = 5, reasoning = 4 }, "logical_reasoning"), 0.3 * 5 + 0.7 * 4)
    near(rp.score({ reasoning = 2, plausibility = 5 }, "temporal_reasoning", true), 0.2 * 5 + 0.8 * 2)
    near(rp.score({ consistency = 5, reasoning = 1, plausibility = 5 }, "spatial_reasoning"), (1.5 + 0.5 + 1) * 0.5)
    near(rp.score({ consistency = 1, reasoning = 1, plausibility = 1 }, "spatial_reasoning"), 1)   -- not below 1
    assert.is_nil(rp.score({ reasoning = 5 }, "causal_reasoning"))
    local acc = rp.accuracy({
      { category = "causal_reasoning", dims = { consistency = 5, reasoning = 5, plausibility = 5 } },
      { category = "causal_reasoning", dims = { consistency = 5, reasoning = 5, plausibility = 4 } },
      { category = "logical_reasoning", dims = { consistency = 5, reasoning = 5 } },
      { category = "temporal_reasoning", dims = { reasoning = 5, plausibility = 5 }, consistency_free = true },
    })
    assert.are.equal(0.5, acc.categories.causal_reasoning)
    assert.are.equal(1, acc.categories.logical_reasoning)
    assert.are.equal(1, acc.categories.temporal_reasoning)
    assert.are.equal(0.75, acc.overall)
  end)

  it("gedit: SC, PQ as minima, O = sqrt(SC*PQ), group means then their mean", function()
    local gp = require("evalhost.datasets.gedit").profile
    local r = gp.score({ 8, 6 }, { 9, 4 })
    assert.are.same({ SC = 6, PQ = 4 }, { SC = r.SC, PQ = r.PQ })
    assert(math.abs(r.O - math.sqrt(24)) < 1e-12)
    local agg = gp.aggregate_rows({
      { category = "a", SC = 6, PQ = 4, O = 2 }, { category = "a", SC = 8, PQ = 8, O = 8 },
      { category = "b", SC = 2, PQ = 2, O = 2 },
    })
    assert.are.equal(5, agg.categories.a.O)
    assert.are.equal(2, agg.categories.b.O)
    assert.are.equal(3.5, agg.overall.O)   -- group mean: (5 + 2) / 2, not the pair mean 4
    assert.are.equal(4.5, agg.overall.SC)
  end)
end)
