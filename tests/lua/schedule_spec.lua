-- lua/evalhost/schedule.lua and the three scripts, on a fake host: swap
-- counts, identical scores, failures recorded (never 0), files on disk,
-- progress labels, residency policy, config errors, shards and the journal hooks.
local fake = require "fake_host"

local function dataset(extra)
  local d = {
    categories = { "物理", "环境", "社会" },
    data = {
      ["物理"] = {
        { id = "p1", instruction = "make it red", description = "a cup" },
        { id = "p2", instruction = "flip", description = "a car" },
        { id = "p3", instruction = "rotate 90", description = "a tree" },
      },
      ["环境"] = {
        { id = "e1", instruction = "add snow", description = "a street" },
        { id = "e2", instruction = "make it night", description = "a park" },
      },
      ["社会"] = {
        { id = "s1", instruction = "add a crowd", description = "a square" },
        { id = "s2", instruction = "brighten", description = "a room" },
      },
    },
  }
  for cat, pairs in pairs(extra or {}) do
    for _, p in ipairs(pairs) do table.insert(d.data[cat], p) end
  end
  return d
end

local function setup(dir, cfg, opts)
  opts = opts or {}
  local config = {
    benchmark = { data_path = "bench.json" },
    editor = { backend = "builtin", name = "imageops" },
    judge = { backend = "builtin", name = "metrics" },
    run = { out = dir .. "/out" },
    report = { bootstrap = { resamples = 200 } },
  }
  for k, v in pairs(cfg or {}) do config[k] = v end
  for k, v in pairs(opts.drop or {}) do config[k] = v and nil end
  return fake.install({ config = config, datasets = { ["bench.json"] = opts.dataset or dataset() },
    gpu = opts.gpu, shard = opts.shard, config_path = dir .. "/cfg.yaml" })
end

local function run_script(name) return dofile("scripts/" .. name .. ".lua") end

local function read_report(dir, out)
  local h = _G.evalhost
  out = out or dir .. "/out"
  local names = h.fs.list(out .. "/results")
  -- html, json, md, the page's data folder, latest.{html,json,md}, samples.jsonl
  assert.are.equal(8, #names, table.concat(names, " "))
  local json = assert(h.fs.read(out .. "/results/" .. names[2]))
  assert.truthy(names[2]:match("^evaluation_report_%d%d%d%d%d%d%d%d_%d%d%d%d%d%d%.json$"))
  return assert(h.json.decode(json)), names
end

describe("schedules", function()
  local dir
  fake.each_test(function(d) dir = d end)

  it("two_stage makes 2C-1 exchanges in the seed's order and reports every pair", function()
    local _, st = setup(dir)
    assert.are.equal(0, run_script("two_stage"))
    assert.are.equal(5, st.swaps.count)
    local ev = table.concat(st.events, ";")
    assert.truthy(ev:find("^load editor;edit make it red;edit flip;edit rotate 90;unload editor;load judge;"
      .. "score p1;score p2;score p3;unload judge;load editor;edit add snow;", 1))
    assert.are.equal(0, st.live_images, "every image closed")
    local rep, names = read_report(dir)
    assert.are.equal(7, #rep.pairs)
    assert.are.equal(0, #rep.failures)
    -- the page's pictures are files the writer made beside the report: p1's
    -- original (full size and thumbnail) and its edit's thumbnail
    local html = _G.evalhost.fs.read(dir .. "/out/results/" .. names[1])
    assert.truthy(html:find('"chunks":["' .. names[4] .. '/data-00000.js"]', 1, true))
    local chunk = assert(_G.evalhost.fs.read(dir .. "/out/results/" .. names[4] .. "/data-00000.js"))
    local pics = assert(chunk:match('%["%.%./thumbs/物理/p1%.orig%.jpg",[^%]]*%]'))
    local seen = 0
    for rel in pics:gmatch('"%.%./([^"]+)"') do
      assert.truthy(_G.evalhost.fs.exists(dir .. "/out/" .. rel), rel)
      seen = seen + 1
    end
    assert.are.equal(4, seen, pics)   -- thumbnails of both, the original, the edited image
    assert.truthy(pics:find('"../thumbs/物理/p1.edit.', 1, true))
    assert.are.equal(5, rep.swaps.count)
    assert.are.same({ "物理", "环境", "社会" }, rep.category_order)
    assert.are.equal(3, rep.categories["物理"].n)
    assert.are.equal("two_stage", rep.run.schedule)
    assert.are.equal("pairs", rep.aggregate)
    assert.are.equal(200, rep.stats_method.resamples)
    for _, p in ipairs(rep.pairs) do
      assert.are.equal(("images/%s/%s.png"):format(p.category, p.id), p.image)
      assert.is_true(_G.evalhost.fs.exists(dir .. "/out/" .. p.image))
      assert.is_number(p.score)
    end
  end)

  it("single_stage makes 2N-1 and cross_category 1, with the same scores as two_stage", function()
    setup(dir)
    run_script("two_stage")
    local base = fake.scores(read_report(dir))
    for script, swaps in pairs({ single_stage = 13, cross_category = 1 }) do
      fake.rmtree(dir .. "/out")
      local _, st = setup(dir)
      assert.are.equal(0, run_script(script))
      assert.are.equal(swaps, st.swaps.count, script)
      local rep = read_report(dir)
      assert.are.same(base, fake.scores(rep), script)
      assert.are.equal(script, rep.run.schedule)
    end
  end)

  it("the README's custom schedule (chunks of K) runs with the same scores", function()
    setup(dir)
    run_script("two_stage")
    local base = fake.scores(read_report(dir))
    fake.rmtree(dir .. "/out")
    local _, st = setup(dir, { script = { chunk = 3 } })
    assert.are.equal(0, run_script("examples/my_schedule"))
    assert.are.equal(5, st.swaps.count) -- chunks of 3, 3, 1: E J E J E J
    assert.are.same(base, fake.scores(read_report(dir)))
    assert.truthy(fake.log_text(st, "info"):find("[物理] mean ", 1, true))
  end)

  it("uses the seed's progress labels, one bar per category and stage, in ui.language", function()
    local function labels_of(st)
      local labels = {}
      for _, b in ipairs(st.bars) do
        labels[#labels + 1] = ("%s %d/%d%s"):format(b.label, b.ticks, b.total, b.closed and "" or " open")
      end
      return labels
    end
    local _, st = setup(dir, { ui = { language = "zh" } })
    run_script("two_stage")
    assert.are.same({ "[物理] 编辑图像 3/3", "[物理] 评分 3/3", "[环境] 编辑图像 2/2", "[环境] 评分 2/2",
      "[社会] 编辑图像 2/2", "[社会] 评分 2/2" }, labels_of(st))
    assert.truthy(fake.log_text(st, "info"):find("[物理] 平均分: ", 1, true))
    assert.truthy(fake.log_text(st, "info"):find("evalhost two_stage: 3 个类别, 7 对", 1, true))
    _, st = setup(dir, { ui = { language = "en" }, run = { out = dir .. "/out-en" } })
    run_script("two_stage")
    assert.are.same({ "[物理] edit 3/3", "[物理] score 3/3", "[环境] edit 2/2", "[环境] score 2/2",
      "[社会] edit 2/2", "[社会] score 2/2" }, labels_of(st))
    assert.truthy(fake.log_text(st, "info"):find("[物理] mean: ", 1, true))
    assert.truthy(fake.log_text(st, "info"):find("evalhost two_stage: 3 categories, 7 pairs", 1, true))
    assert.falsy(fake.log_text(st, "info"):find("评分", 1, true))
    _, st = setup(dir, { run = { out = dir .. "/out-both" } })   -- the default
    run_script("two_stage")
    assert.are.equal("[物理] 编辑图像 / edit 3/3", labels_of(st)[1])
    assert.truthy(fake.log_text(st, "info"):find("[物理] 平均分 / mean: ", 1, true))
  end)

  it("sends the category's prompts and both images to the judge", function()
    local _, st = setup(dir, { prompts = { language = "en" } })
    run_script("cross_category")
    local req = st.requests[1]
    assert.are.equal("物理", req.category)
    assert.are.equal("p1", req.id)
    assert.are.equal("make it red", req.instruction)
    assert.are.equal("a cup", req.description)
    assert.truthy(req.user_prompt:find("Edit instruction: make it red", 1, true))
    assert.truthy(req.system_prompt:find("physics", 1, true))
    assert.are.equal("img:p1+make it red", req.image.data) -- read back from disk
    assert.are.equal("img:p1", req.original.data)
  end)

  it("records bad data, editor and judge failures with reasons, never as 0, and exits 1", function()
    local _, st = setup(dir, {
      editor = { name = "imageops", fail_on = "EDITFAIL" },
      judge = { name = "metrics", fail_on = "JUDGEFAIL" },
    }, { dataset = dataset({
      ["物理"] = {
        { id = "p4", error = "missing edit_instruction" },
        { id = "p5", instruction = "x", bad_image = true },
        { id = "p6", instruction = "EDITFAIL please" },
        { id = "p7", instruction = "JUDGEFAIL please" },
        { id = "../p8", instruction = "escape" },
      },
    }) })
    assert.are.equal(1, run_script("two_stage"))
    local rep = read_report(dir)
    local by = {}
    for _, f in ipairs(rep.failures) do by[f.id] = f.stage .. ": " .. f.error end
    assert.are.same({
      p4 = "data: missing edit_instruction",
      p5 = "data: image: not a PNG/JPEG/WebP (物理/p5)",
      p6 = "edit: editor: refused (EDITFAIL please)",
      p7 = "score: judge: HTTP 503 after 3 retries",
      ["../p8"] = 'data: id: name "../p8" contains a path separator',
    }, by)
    assert.are.equal(3, rep.categories["物理"].n)
    assert.are.equal(5, rep.categories["物理"].failed)
    for _, p in ipairs(rep.pairs) do
      if by[p.id] then assert.are.equal(_G.evalhost.json.null, p.score) end
    end
    assert.is_false(_G.evalhost.fs.exists(dir .. "/out/images/p8.png"))
    local warn = fake.log_text(st, "warn")
    assert.truthy(warn:find("[物理] p6: edit failed: editor: refused (EDITFAIL please) (bench.json)", 1, true))
    local md = _G.evalhost.fs.read(dir .. "/out/results/" .. _G.evalhost.fs.list(dir .. "/out/results")[3])
    assert.truthy(md:find("| 物理 | p7 | score | judge: HTTP 503 after 3 retries |", 1, true))
  end)

  it("an image that cannot be saved stops the run (not the pair's fault); so does an unwritable output folder", function()
    local _, st = setup(dir)
    st.fail_save = true
    assert.are.equal(1, run_script("cross_category"))
    assert.truthy(fake.log_text(st, "error"):find("^cannot save the edit of 物理/p1: save: disk full %("))
    assert.are.same({}, _G.evalhost.fs.list(dir .. "/out/results"))
    fake.uninstall()
    local h
    h, st = fake.install({ config = { benchmark = { data_path = "b" }, editor = {}, judge = {}, run = { out = "/ro/out" } },
      datasets = { b = dataset() }, readonly = "/ro" })
    assert.is_table(h)
    assert.are.equal(1, run_script("two_stage"))
    assert.are.equal("output: cannot create /ro/out: Permission denied (/ro/out/results)", fake.log_text(st, "error"))
  end)

  it("scores through score_batch in the judge's batch_size, with the same scores", function()
    setup(dir)
    assert.are.equal(0, run_script("two_stage"))
    local one = fake.scores(read_report(dir))
    fake.rmtree(dir .. "/out")
    local _, st = setup(dir, { judge = { name = "metrics", batch_size = 2 } })
    assert.are.equal(0, run_script("two_stage"))
    assert.are.same(one, fake.scores(read_report(dir)))
    assert.are.same({ 2, 1, 2, 2 }, st.batches)   -- categories of 3, 2 and 2 pairs
  end)

  it("a judge that fails as a whole stops the run, records nothing against the pairs, and resumes", function()
    local _, st = setup(dir, { judge = { name = "metrics", down = true } })
    assert.are.equal(1, run_script("two_stage"))
    assert.truthy(fake.log_text(st, "error"):find("the server looks down", 1, true))
    local journal = _G.evalhost.fs.read(dir .. "/out/journal.jsonl") or ""
    assert.falsy(journal:find('"stage":"score"', 1, true))
  end)

  it("a judge reply without a score is a failure", function()
    setup(dir, { judge = { name = "metrics", no_score = true } })
    assert.are.equal(1, run_script("cross_category"))
    local rep = read_report(dir)
    assert.are.equal(7, #rep.failures)
    assert.are.equal("judge reply has no score", rep.failures[1].error)
    assert.are.equal(0, rep.overall.n)
    assert.are.equal(_G.evalhost.json.null, rep.overall.mean)
  end)

  it("a score outside 0..10 or NaN is a failure, not clipped", function()
    for _, case in ipairs({ { 11.5, "judge score 11.5 is outside 0..10" }, { -1, "judge score -1 is outside 0..10" },
      { 0 / 0, "judge reply has no score" } }) do
      fake.rmtree(dir .. "/out")
      setup(dir, { judge = { name = "metrics", fixed_score = case[1] } })
      assert.are.equal(1, run_script("cross_category"))
      local rep = read_report(dir)
      assert.are.equal(7, #rep.failures)
      assert.are.equal(case[2], rep.failures[1].error)
    end
  end)

  it("an unknown category is a config error before any model loads, naming the known ones", function()
    local _, st = setup(dir, { benchmark = { data_path = "bench.json", categories = { "环境", "天文", "物理" } } })
    assert.are.equal(1, run_script("two_stage"))
    assert.are.equal('config: benchmark.categories: unknown category "天文" (bench.json has: 物理, 环境, 社会)',
      fake.log_text(st, "error"))
    assert.are.equal(0, #st.events)
  end)

  it("accepts the seed's diffusion_model / reward_model sections", function()
    local _, st = setup(dir, { diffusion_model = { name = "imageops" }, reward_model = { name = "metrics" } },
      { drop = { editor = true, judge = true } })
    assert.are.equal(0, run_script("two_stage"))
    assert.truthy(table.concat(st.events, ";"):find("load diffusion_model;edit", 1, true))
    assert.are.equal("diffusion_model", read_report(dir).models.editor.section)
  end)

  describe("residency", function()
    local cuda = { editor = { name = "e", device = "cuda", footprint = 50e9 },
      judge = { name = "j", device = "cuda:0", footprint = 45e9 } }

    it("keep_both=true never swaps", function()
      local _, st = setup(dir, { run = { out = dir .. "/out", keep_both = true } })
      run_script("two_stage")
      assert.are.equal(0, st.swaps.count)
    end)

    it("auto keeps both CUDA models when the second fits", function()
      local _, st = setup(dir, cuda, { gpu = { free = 60e9, total = 80e9 } })
      run_script("two_stage")
      assert.are.equal(0, st.swaps.count)
      assert.truthy(fake.log_text(st, "info"):find("keep_both=auto: judge needs 46.10 GB, 55.88 GB free on cuda:0: keeping both", 1, true))
    end)

    it("auto swaps when the second does not fit, and for CPU models", function()
      local _, st = setup(dir, cuda, { gpu = { free = 30e9, total = 80e9 } })
      run_script("two_stage")
      assert.are.equal(5, st.swaps.count)
      fake.rmtree(dir .. "/out")
      _, st = setup(dir, nil, { gpu = { free = 1e12, total = 1e12 } })
      run_script("two_stage")
      assert.are.equal(5, st.swaps.count)
    end)

    it("a model that cannot load fails its pairs with the reason, once per pair", function()
      local _, st = setup(dir, { judge = { name = "metrics", load_error = "judge.pt: No such file" } })
      assert.are.equal(1, run_script("two_stage"))
      local rep = read_report(dir)
      assert.are.equal(7, #rep.failures)
      assert.are.equal("judge: load failed: judge.pt: No such file", rep.failures[7].error)
      assert.are.equal(1, select(2, fake.log_text(st, "error"):gsub("load failed", "")))
    end)
  end)

  describe("config problems stop before any model loads (exit 1)", function()
    local cases = {
      { "no dataset path", { benchmark = {} }, "config: no dataset path (benchmark.data_path or dataset.path)" },
      -- the rest of the message names the absolute paths tried (from the current folder, the config's)
      { "missing dataset", { benchmark = { data_path = "nope.json" } },
        "config: benchmark.data_path: nope.json does not exist; tried ", prefix = true },
      { "bad keep_both", { run = { keep_both = "sometimes" } },
        "config: run.keep_both must be auto, true or false, got sometimes" },
      { "bad aggregate", { report = { aggregate = "mean" } },
        "config: report.aggregate must be pairs or categories, got mean" },
      { "unknown model", { judge = { name = "nonexistent" } },
        'config: judge: unknown builtin model "nonexistent"' },
      { "bad prompt", { prompts = { templates = { default = { user = "{{x}}" } } } },
        "prompts: template default.user (config prompts.templates) names unknown placeholder {{x}}"
        .. " (known: category, description, id, instruction)" },
    }
    for _, c in ipairs(cases) do
      it(c[1], function()
        local _, st = setup(dir, c[2])
        assert.are.equal(1, run_script("two_stage"))
        local got = fake.log_text(st, "error")
        assert.are.equal(c[3], c.prefix and got:sub(1, #c[3]) or got)
        assert.are.equal(0, #st.events)
      end)
    end

    it("no judge section", function()
      local _, st = setup(dir, nil, { drop = { judge = true } })
      assert.are.equal(1, run_script("two_stage"))
      assert.are.equal("config: no judge section (judge or reward_model)", fake.log_text(st, "error"))
    end)
  end)

  it("a shard handles its balanced slice of each category in a folder of its own", function()
    setup(dir, nil, { shard = { index = 1, count = 2 } })
    run_script("two_stage")
    local ids = {}
    for _, p in ipairs(read_report(dir, dir .. "/out/shard-1-of-2").pairs) do ids[#ids + 1] = p.id end
    assert.are.same({ "p2", "e1", "s1" }, ids)
  end)

  it("puts every step through the journal and skips finished steps on replay", function()
    local h, st = setup(dir)
    local log = {}
    local journal = {
      open = function(out, key)
        assert.are.equal(dir .. "/out", out)
        assert.are.equal(32, #key)
        return {
          entries = function() return {
            { stage = "edit", category = "物理", id = "p1", record = { image = "images/物理/p1.png", seconds = 1 } },
            { stage = "score", category = "物理", id = "p1", record = { score = 9.5, text = "Score: 9.5" } },
          } end,
          record = function(_, stage, cat, id) log[#log + 1] = stage .. " " .. cat .. "/" .. id return true end,
          is_new = function() return false end,
          path = function() return dir .. "/out/journal.jsonl" end,
          close = function() end,
        }
      end,
    }
    h.journal = journal
    -- the replayed edit's image exists (resume re-checks it)
    assert(h.fs.mkdir(dir .. "/out/images/物理"))
    assert(h.fs.write(dir .. "/out/images/物理/p1.png", "64 48 img:p1+make it red"))
    run_script("two_stage")
    assert.are.equal(12, #log)
    assert.are.equal("edit 物理/p2", log[1])
    local ev = table.concat(st.events, ";")
    assert.falsy(ev:find("score p1", 1, true))
    assert.falsy(ev:find("edit make it red", 1, true))
    assert.truthy(ev:find("edit flip", 1, true))
    local rep = read_report(dir)
    assert.are.equal(9.5, rep.pairs[1].score)
    assert.are.equal(32, #rep.run.run_key)
  end)
end)
