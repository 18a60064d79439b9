-- lua/evalhost/datasets/protocol.lua and the official profiles' pieces that
-- reproduce the benchmarks' Python (issue 25): VIEScore's reply reader,
-- Python's str.format / replace / round, PIL's thumbnail size, and which
-- protocol a run gets. The end-to-end comparison with the official code is
-- tests/e2e/test_protocols.py.
local fake = require "fake_host"

describe("benchmark protocols", function()
  before_each(function() fake.install() end)
  after_each(function() fake.uninstall() end)

  it("gedit: reads every reply form mllm_output_to_dict reads, and nothing else", function()
    local parse = require("evalhost.datasets.gedit").profile.official.parse
    local function sc(t) local d = parse(t); return d and d.score end
    assert.are.same({ 5, 9 }, sc('{\n"score" : [5, 9],\n"reasoning" : "fine"\n}'))
    assert.are.same({ 3, 4 }, sc('```json\n{"score": [3, 4], "reasoning": "ok"}\n```'))
    assert.are.same({ 7, 1 }, sc('||V^=^V||\n{"score": [7, 1], "reasoning": "d"}\n||V^=^V||'))
    assert.are.same({ 6, 0 }, sc("[6, 0]"))
    assert.are.same({ 6, 0 }, sc("[6,0]"))
    assert.are.same({ 8 }, sc(" 8 "))
    assert.are.same({ 4 }, sc('{"score": 4, "reasoning": "not a list"}'))
    assert.are.same({ 2 }, sc("{score: 2, reasoning: unquoted}"))   -- fix_json's repair
    assert.is_nil(parse("I would rather not give numbers."))
    assert.is_nil(parse("11"))                 -- a bare number outside 0..10
    assert.is_nil(parse("[6, 0, 2]"))          -- a bare list of three is not read
    assert.is_nil(parse("}{"))
    assert.is_nil(parse('{"score": [5, "x"'))  -- broken JSON fix_json cannot mend
  end)

  it("gedit: SC and PQ are their lists' minima, O their geometric mean; a failed call keeps the other", function()
    local off = require("evalhost.datasets.gedit").profile.official
    local ctx = { pair = { fields = { language = "en", intersection_exist = true } } }
    local s, d = off.combine({ SC = '{"score": [8, 5]}', PQ = "[9, 4]" }, ctx)
    assert.are.equal(math.sqrt(20), s)
    assert.are.same({ SC = 5, PQ = 4, O = math.sqrt(20), language = "en", intersection = true }, d)
    local none, why, official = off.combine({ SC = "no", PQ = "[9, 4]" }, ctx)
    assert.is_nil(none)
    assert.matches("SC reply has no VIEScore JSON", why)
    assert.are.equal(4, official.PQ)
    assert.is_nil(official.SC)
  end)

  it("gedit: the summary averages task types, per language, full set and intersection", function()
    local off = require("evalhost.datasets.gedit").profile.official
    local rows = {
      { category = "color_alter", dims = { SC = 8, PQ = 2, O = 4, language = "en", intersection = true } },
      { category = "color_alter", dims = { SC = 4, PQ = 4, O = 4, language = "en", intersection = false } },
      { category = "background_change", dims = { SC = 9, PQ = 1, O = 3, language = "en", intersection = false } },
      { category = "background_change", error = "x", official = { PQ = 4, language = "en", intersection = false } },
    }
    local sum = off.summary(rows)
    local en = sum.languages.en
    assert.are.same({ "background_change", "color_alter" }, en.fullset.order)   -- the official GROUPS order
    assert.are.equal(6, en.fullset.categories.color_alter.SC)
    assert.are.equal((9 + 6) / 2, en.fullset.average.SC)
    assert.are.same({ "color_alter" }, en.intersection.order)
    assert.are.equal(1, sum.unparsed)
    local o = 0
    for u = 0, 10 do o = o + math.sqrt(u * 4) end
    assert.are.equal((3 + o / 11) / 2, en.with_guess.fullset.categories.background_change.O)
    assert.are.equal(11, #off.GROUPS)
    assert.are.equal(2, #sum.tables)
    assert.are.same({ "task type", "SC", "PQ", "O" }, sum.tables[1].header)
  end)

  it("imgedit: every line splitting on ': ' into two parts, digits after, is a rating; item = round(mean, 2)", function()
    local off = require("evalhost.datasets.imgedit").profile.official
    assert.are.same({ 4, 3, 5 }, off.ratings("Brief reasoning: fine; a: b\nPrompt Compliance: 4\n  Visual: 3  \nX: 5\r"))
    assert.are.same({}, off.ratings("Score: 4/5\nA: b: 3\nB:4\nC: four"))
    local s, d = off.combine({ rating = "A: 1\nB: 2\nC: 2" })
    assert.are.equal(1.67, s)
    assert.are.same({ 1, 2, 2 }, d.ratings)
    local none, why, official = off.combine({ rating = "no ratings" })
    assert.is_nil(none)
    assert.matches("drop the item", why)
    assert.is_true(official.dropped)
  end)

  it("rise: an unreadable reply leaves our accuracy's denominator and counts as inaccurate in the official one", function()
    local rp = require("evalhost.datasets.rise").profile
    local rows = {
      { category = "temporal_reasoning", dims = { consistency = 5, reasoning = 5, plausibility = 5 } },
      { category = "temporal_reasoning", dims = { consistency = 5, reasoning = 4, plausibility = 5 } },
      { category = "temporal_reasoning", failed_stage = "score" },
      { category = "temporal_reasoning", failed_stage = "edit" },   -- no edit: gpt_eval.py stops; not counted
    }
    local s = rp.summary(rows)
    assert.are.equal(0.5, s.accuracy.overall)
    assert.are.equal(1, s.unparsed)
    assert.are.equal(1 / 3, s.accuracy_with_unparsed)
  end)

  it("python's format, replace and round; PIL's thumbnail size", function()
    local p = require "evalhost.datasets.protocol"
    assert.are.equal("a {x} b", p.format("a {{x}} {y}", { y = "b" }))
    local none, why = p.format("{nope}", {})
    assert.is_nil(none)
    assert.matches("{nope}", why)
    assert.are.equal("1 % 1", p.replace("<i> % <i>", "<i>", "1"))
    assert.are.equal(3.33, p.round2(3.335))   -- the binary value is below .335, as Python rounds it
    assert.are.equal(2.67, p.round2(2.675))
    assert.are.equal(4.0, p.round2(4.005))
    for _, c in ipairs({ { 1000, 500, 768, 384 }, { 769, 768, 768, 767 }, { 1023, 767, 768, 576 },
      { 500, 1000, 384, 768 }, { 3000, 7, 768, 2 }, { 7, 3000, 2, 768 }, { 800, 800, 768, 768 },
      { 768, 1024, 576, 768 }, { 1365, 2048, 512, 768 }, { 640, 480, 640, 480 } }) do
      local w, h = p.thumbnail_size(c[1], c[2], 768)
      assert.are.same({ c[3], c[4] }, { w, h }, ("%dx%d"):format(c[1], c[2]))
    end
  end)

  it("an official protocol needs an http judge; compact and bad values", function()
    local p = require "evalhost.datasets.protocol"
    local gedit = require("evalhost.datasets.gedit").profile
    local function judge(b) return { info = function() return { backend = b } end } end
    local run = { profile = gedit, dataset = { adapter = "gedit" }, config = {} }
    local ok, why = p.select(run, {}, judge("native"))
    assert.is_nil(ok)
    assert.matches("need an http judge; the native judge builds its own chat", why, 1, true)
    assert.matches("dataset.protocol: compact", why, 1, true)
    run = { profile = gedit, dataset = { adapter = "gedit" }, config = {} }
    assert.is_true(p.select(run, { protocol = "compact" }, judge("native")))
    assert.is_nil(run.profile_requests)
    ok, why = p.select(run, { protocol = "viescore" }, judge("http"))
    assert.is_nil(ok)
    assert.matches("dataset.protocol must be official or compact, got viescore", why, 1, true)
    run = { profile = gedit, dataset = { adapter = "gedit" }, config = {} }
    assert.is_true(p.select(run, {}, judge("http")))
    assert.are.equal(gedit.official.requests, run.profile_requests)
    assert.are.equal("categories", run.aggregate)
    assert.are.equal(gedit.official.summary, run.profile.summary)
    assert.are.equal(gedit.dimensions, run.profile.dimensions)   -- the compact profile's fields show through
  end)
end)
