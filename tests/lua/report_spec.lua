-- lua/evalhost/report.lua: JSON round trip, the Markdown layout and the HTML
-- page, built from a small fake run.
local fake = require "fake_host"
local report = require "evalhost.report"
local stats = require "evalhost.stats"

local function fake_run(h)
  local rows = {
    { category = "物理", id = "p1", index = 1, instruction = "变红 | red", score = 8.0, text = "Good.\nScore: 8",
      image = "images/物理/p1.png", edit_seconds = 1.5, score_seconds = 0.5 },
    { category = "物理", id = "p2", index = 2, instruction = "flip", score = 3.5, text = "Score: 3.5",
      image = "images/物理/p2.png", edit_seconds = 1.0, score_seconds = 0.25 },
    { category = "环境", id = "e1", index = 1, instruction = "<snow> & \"ice\"", error = "judge reply has no score",
      failed_stage = "score", image = "images/环境/e1.png", edit_seconds = 2.0 },
    { category = "环境", id = "e2", index = 2, instruction = "night", score = 10.0, text = "Score: 10" },
  }
  local agg = stats.aggregate(rows, { order = { "物理", "环境" }, resamples = 100 })
  return report.build({
    version = "0.1.0",
    run = { started = "2026-01-01T00:00:00Z", finished = "2026-01-01T00:01:00Z", script = "scripts/two_stage.lua",
      schedule = "two_stage", config_path = "config/example.yaml", out = "outputs", run_key = "k" },
    config = { run = { out = "outputs" }, benchmark = { categories = { "物理", "环境" } } },
    config_hash = h.hash("c"),
    dataset = { path = "examples/benchmark.json", hash = h.hash("d") },
    models = { editor = { backend = "builtin", name = "imageops", device = "cpu" },
      judge = { backend = "builtin", name = "metrics", device = "cpu" } },
    prompts = { language = "zh" },
    swaps = { count = 3, moves = 4, bytes = 2e6, seconds = 0.5, by_model = {} },
    timings = { edit_seconds = 4.5, score_seconds = 0.75, swap_seconds = 0.5, edit_per_item = 1.5, score_per_item = 0.375 },
    stats = agg,
    stats_method = stats.method({ resamples = 100 }),
    rows = rows,
    extra_failures = { { category = "天文", stage = "data", error = "unknown category \"天文\"" } },
  })
end

describe("report", function()
  local h, dir
  fake.each_test(function(d, host) dir, h = d, host end, { install = true })

  it("writes json, md and html under results/ with the seed's file names", function()
    local paths = assert(report.write(fake_run(h), dir, { stamp = "20260101_120000" }))
    assert.are.same({ dir .. "/results/evaluation_report_20260101_120000.json",
      dir .. "/results/evaluation_report_20260101_120000.md",
      dir .. "/results/evaluation_report_20260101_120000.html" }, paths)
  end)

  it("round-trips through JSON with nulls for missing values", function()
    local paths = assert(report.write(fake_run(h), dir, { stamp = "x", html = false }))
    assert.are.equal(2, #paths)
    local rep = assert(h.json.decode(assert(h.fs.read(paths[1]))))
    assert.are.equal("0.1.0", rep.evalhost.version)
    assert.are.same({ "物理", "环境" }, rep.category_order)
    assert.are.equal(2, rep.categories["物理"].n)
    assert.are.equal(5.75, rep.categories["物理"].mean)
    assert.are.equal(1, rep.categories["环境"].n)
    assert.are.equal(1, rep.categories["环境"].failed)
    assert.are.equal(h.json.null, rep.categories["环境"].std)
    assert.are.equal(3, rep.overall.n)
    assert.is_true(math.abs(rep.overall.mean - 43 / 6) < 1e-12)
    assert.are.equal(2, #rep.overall.ci95)
    assert.are.equal(4, #rep.pairs)
    assert.are.equal(h.json.null, rep.pairs[3].score)
    assert.are.equal("judge reply has no score", rep.pairs[3].error)
    assert.are.equal(h.json.null, rep.pairs[4].image)
    assert.are.same({ category = "天文", id = h.json.null, stage = "data", error = "unknown category \"天文\"" },
      rep.failures[1])
    assert.are.same({ category = "环境", id = "e1", stage = "score", error = "judge reply has no score" }, rep.failures[2])
    assert.are.equal(3, rep.swaps.count)
    assert.are.equal(0.375, rep.timings.score_per_item)
    assert.are.equal("sample (ddof=1)", rep.stats_method.std)
  end)

  it("keeps empty pair and failure lists as JSON arrays", function()
    local r = report.build({ version = "v", run = {}, config = {}, dataset = {}, models = {}, swaps = {},
      timings = {}, stats = stats.aggregate({}), stats_method = stats.method(), rows = {} })
    local text = h.json.encode(r)
    assert.truthy(text:find('"pairs":[]', 1, true))
    assert.truthy(text:find('"failures":[]', 1, true))
  end)

  it("lays the Markdown out like the seed: run info, category table, failures, pairs", function()
    local md = report.markdown(fake_run(h))
    local order = { "# 图像编辑评估报告", "## 运行信息 / Run", "## 各类别统计 / Per category",
      "## 失败 / Failures (2)", "## 详细结果 / Per pair", "### 物理", "### 环境" }
    local pos = 0
    for _, head in ipairs(order) do
      local at = md:find(head, pos + 1, true)
      assert.is_truthy(at, head)
      pos = at
    end
    assert.truthy(md:find("| 物理 | 2 | 0 | 5.750 | 3.182 | 5.75 | 3.50 | 8.00 | [", 1, true))
    assert.truthy(md:find("| 环境 | 1 | 1 | 10.000 | — | 10.00 | 10.00 | 10.00 | [10.00, 10.00] |", 1, true))
    assert.truthy(md:find("| **总体 / overall** | 3 | 1 | 7.167 |", 1, true))
    assert.truthy(md:find("| 环境 | e1 | score | judge reply has no score |", 1, true))
    assert.truthy(md:find("| p1 | 变红 \\| red | 8.00 | [png](../images/物理/p1.png) | Good. Score: 8 |", 1, true))
    assert.truthy(md:find("| e1 | <snow> & \"ice\" | 失败 / failed: judge reply has no score | [png]", 1, true))
    assert.truthy(md:find("模型交换 / swaps: 3 (0.50 s, 2.0 MB moved)", 1, true))
  end)

  it("makes a single-file page (report.embed): data inline with '<' escaped, histograms, the explorer", function()
    local seen = {}
    local html = report.html(fake_run(h), { thumbnail = function(p)
      seen[#seen + 1] = p.id
      return "data:image/jpeg;base64,QUJD", p.image ~= h.json.null and "data:image/jpeg;base64,REVG" or nil
    end })
    assert.are.same({ "p1", "p2", "e1", "e2" }, seen)
    assert.truthy(html:find('<table id="categories">', 1, true))
    assert.truthy(html:find('<table id="failures">', 1, true))
    assert.are.equal(3, select(2, html:gsub('<svg class="hist" ', "")))
    assert.truthy(html:find('<div id="controls">', 1, true))
    assert.falsy(html:find("<snow>", 1, true))
    -- the chunk: the pairs as the JSON report has them, then their pictures
    local chunk = assert(html:match("<script>EH%.chunk%(0,(.-)%);\n</script>"))
    local rows = assert(h.json.decode("[" .. chunk .. "]"))
    local pairs_, pics = rows[1], rows[2]
    assert.are.equal(4, #pairs_)
    assert.are.equal('<snow> & "ice"', pairs_[3].instruction)
    assert.are.equal("judge reply has no score", pairs_[3].error)
    assert.are.same({ "物理", "p1", 8.0 }, { pairs_[1].category, pairs_[1].id, pairs_[1].score })
    assert.are.same({ "data:image/jpeg;base64,QUJD", "data:image/jpeg;base64,REVG", h.json.null, h.json.null,
      h.json.null }, pics[1], "an embedded page points at no file")
    assert.are.equal(h.json.null, pics[4][2])
    assert.falsy(html:find("https?://[^w]"), "no network references")
    assert.falsy(html:find("<script src", 1, true))
  end)

  it("keeps a judge text that says </script> inside its data", function()
    local rep = fake_run(h)
    rep.pairs[1].text = "bad </script><script>alert(1)</script>"
    local html = report.html(rep, {})
    assert.falsy(html:find("</script><script>alert", 1, true))
    assert.truthy(html:find("bad \\u003c/script>", 1, false))
  end)

  it("streams rows given as a function: the same JSON as an array, failures gathered on the way", function()
    local arr = fake_run(h)
    local two = {
      { category = "物理", id = "p1", index = 1, instruction = "i", score = 8, text = "t", image = "images/物理/p1.png",
        score_method = "logprobs", probs = { 0.5, 0.5 } },
      { category = "环境", id = "e1", index = 1, error = "boom", failed_stage = "edit" },
    }
    local calls = 0
    local function build(rows)
      return report.build({
        version = "0.1.0", run = arr.run, config = arr.config, config_hash = arr.config_hash, dataset = arr.dataset,
        models = arr.models, prompts = arr.prompts, swaps = arr.swaps, timings = arr.timings,
        stats = stats.aggregate({}, { order = { "物理", "环境" } }), stats_method = arr.stats_method, rows = rows,
      })
    end
    local streamed = build(function(emit)
      calls = calls + 1
      for _, r in ipairs(two) do emit(r) end
    end)
    local as_array = assert(report.write(build(two), dir, { stamp = "a" }))
    assert.are.equal("function", type(streamed.pairs))
    local paths = assert(report.write(streamed, dir, { stamp = "s", chunk_rows = 1 }))
    assert.are.equal(1, calls, "one pass over the rows")
    local rep = assert(h.json.decode(assert(h.fs.read(paths[1]))))
    local want = assert(h.json.decode(assert(h.fs.read(as_array[1]))))
    assert.are.same(want.pairs, rep.pairs)
    assert.are.same(want.failures, rep.failures)
    assert.are.equal(2, #rep.pairs)
    assert.are.equal("logprobs", rep.pairs[1].score_method)
    assert.are.same({ 0.5, 0.5 }, rep.pairs[1].probs)
    assert.are.same({ category = "环境", id = "e1", stage = "edit", error = "boom" }, rep.failures[1])
    local md = assert(h.fs.read(paths[2]))
    assert.truthy(md:find("## 失败 / Failures (1)", 1, true))
    assert.truthy(md:find("### 环境", 1, true))
    -- the page's data: two chunks of one row each beside it, named in EH.meta
    local html = assert(h.fs.read(paths[3]))
    assert.truthy(html:find('"chunks":["evaluation_report_s_files/data-00000.js","evaluation_report_s_files/data-00001.js"]', 1, true))
    local c1 = assert(h.fs.read(dir .. "/results/evaluation_report_s_files/data-00001.js"))
    assert.truthy(c1:find('^EH%.chunk%(1,%['))
    assert.truthy(c1:find('"error":"boom"', 1, true))
    local c0 = assert(h.fs.read(dir .. "/results/evaluation_report_s_files/data-00000.js"))
    assert.truthy(c0:find('%[null,null,null,null,"%.%./images/物理/p1%.png"%]'), c0)
  end)

  it("writes samples.jsonl (a line per pair) and latest.* copies of the newest report", function()
    local paths = assert(report.write(fake_run(h), dir, { stamp = "20260101_120000" }))
    local lines = {}
    for line in assert(h.fs.read(dir .. "/results/samples.jsonl")):gmatch("[^\n]+") do
      lines[#lines + 1] = assert(h.json.decode(line))
    end
    assert.are.equal(4, #lines)
    assert.are.same({ "p1", "物理", 8.0, "Good.\nScore: 8", "images/物理/p1.png", 1.5, 0.5 },
      { lines[1].id, lines[1].category, lines[1].score, lines[1].text, lines[1].image, lines[1].edit_seconds,
        lines[1].score_seconds })
    assert.are.equal(h.json.null, lines[3].score)
    assert.are.equal("judge reply has no score", lines[3].error)
    for _, p in ipairs(paths) do
      assert.are.equal(h.fs.read(p), h.fs.read(dir .. "/results/latest" .. p:match("%.%w+$")))
    end
  end)

  it("leaves no half-written report when the pass fails or a file cannot be written", function()
    local rep = fake_run(h)
    local boom = report.build({ version = "v", run = rep.run, config = {}, dataset = rep.dataset, models = rep.models,
      swaps = rep.swaps, timings = {}, stats = stats.aggregate({}), stats_method = stats.method(),
      rows = function(emit)
        emit({ category = "c", id = "a", score = 1 })
        error("row source failed")
      end })
    assert.has_error(function() report.write(boom, dir, { stamp = "f" }) end, "row source failed")
    assert.are.same({}, h.fs.list(dir .. "/results"))
    -- samples.jsonl.tmp is a folder with a file in it: that file cannot be written
    assert(h.fs.mkdir(dir .. "/results/samples.jsonl.tmp"))
    assert(h.fs.write(dir .. "/results/samples.jsonl.tmp/x", "x"))
    local paths, err = report.write(rep, dir, { stamp = "g" })
    assert.is_nil(paths)
    assert.truthy(err:find("^cannot write " .. dir .. "/results/samples.jsonl: "), err)
    local left = h.fs.list(dir .. "/results")
    table.sort(left)
    assert.are.same({ "samples.jsonl.tmp" }, left)
  end)

  it("spells the page's picture paths as JSON whatever they hold", function()
    local text = report.page_files({ image = 'images/c/a"b\\c\n.png' },
      { thumb_original = "thumbs/c/x.orig.jpg", more = { "originals/c/x.2.png" } })
    assert.are.same({ "../thumbs/c/x.orig.jpg", h.json.null, h.json.null, { "../originals/c/x.2.png" },
      '../images/c/a"b\\c\n.png' }, h.json.decode(text))
  end)

  it("bins scores 0..10 in the histogram, 10 in the last bin", function()
    local svg = report.histogram_svg({ 0, 0.5, 9.99, 10, 10, 4 }, "t")
    assert.truthy(svg:find("<title>0–1: 2</title>", 1, true))
    assert.truthy(svg:find("<title>9–10: 3</title>", 1, true))
    assert.truthy(svg:find("<title>4–5: 1</title>", 1, true))
  end)

  it("says which file it could not write", function()
    local _, err = report.write(fake_run(h), "/proc/nonexistent/out", {})
    assert.truthy(err:find("^cannot create /proc/nonexistent/out/results"))
  end)
end)
