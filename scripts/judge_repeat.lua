-- The judge's own noise: scores every pair K times and reports, per pair,
-- the standard deviation of its K scores, the share of pairs whose score
-- changes between repeats, and Spearman's rank correlation between repeats
-- -- the floor under which compare.lua's differences mean nothing.
--
--   evalhost scripts/judge_repeat.lua CONFIG --set judge_repeat.k=5 --set judge_repeat.from=outputs/a --set run.out=outputs/a-noise
--
-- judge_repeat.k: repeats (default 3, at least 2). judge_repeat.from: an
-- earlier run whose edits are scored (only the judge is opened); without it
-- the pairs are edited first. Repeat 1 is the report's score; repeat k is
-- journaled as stage "score#k", so --resume continues mid-repeat. The
-- figures are in the report's JSON under `judge_repeat` and in
-- results/judge_repeat_<ts>.md.
local schedule = require "evalhost.schedule"
local runs = require "evalhost.runs"
local stats = require "evalhost.stats"
local compare = require "evalhost.compare"
local util = require "evalhost.util"

local h = evalhost
local jcfg = h.config.judge_repeat or {}
local K = jcfg.k or 3
if math.type(K) ~= "integer" or K < 2 then
  h.log("error", "judge_repeat: judge_repeat.k must be an integer >= 2, got %s", tostring(K))
  return 1
end

local function stage(k) return k == 1 and "score" or ("score#" .. k) end

-- Noise figures from the K scores of every pair scored all K times.
local function figures(run)
  local per_pair, columns, changed, cats = {}, {}, 0, {}
  for k = 1, K do columns[k] = {} end
  for _, cat in ipairs(run.categories) do
    cats[cat] = cats[cat] or { stds = {}, changed = 0, n = 0 }
    for _, pair in run:pairs(cat) do
      local id = pair.id or ("#" .. tostring(pair.index))
      local xs = {}
      for k = 1, K do
        local r = run:done(stage(k), cat, id)
        if r and type(r.score) == "number" then xs[#xs + 1] = r.score end
      end
      if #xs == K then
        local sd = stats.std(xs)
        local moved = false
        for k = 2, K do if xs[k] ~= xs[1] then moved = true end end
        if moved then changed = changed + 1; cats[cat].changed = cats[cat].changed + 1 end
        cats[cat].n = cats[cat].n + 1
        table.insert(cats[cat].stds, sd)
        for k = 1, K do table.insert(columns[k], xs[k]) end
        per_pair[#per_pair + 1] = { category = cat, id = id, scores = setmetatable(xs, h.json.array_mt), std = sd }
      end
    end
  end
  local rhos = {}
  for i = 1, K - 1 do
    for j = i + 1, K do
      local rho = compare.spearman(columns[i], columns[j])
      rhos[#rhos + 1] = { a = i, b = j, rho = rho or h.json.null }
    end
  end
  local rvals, stds = {}, {}
  for _, r in ipairs(rhos) do if type(r.rho) == "number" then rvals[#rvals + 1] = r.rho end end
  for _, p in ipairs(per_pair) do stds[#stds + 1] = p.std end
  local by_cat = {}
  for _, cat in ipairs(run.categories) do
    local c = cats[cat]
    by_cat[cat] = { n = c.n, mean_std = stats.mean(c.stds) or h.json.null,
      changed_share = c.n > 0 and c.changed / c.n or h.json.null }
  end
  local n = #per_pair
  return {
    k = K, n = n,
    mean_std = stats.mean(stds) or h.json.null, max_std = (n > 0 and math.max(table.unpack(stds))) or h.json.null,
    changed = changed, changed_share = n > 0 and changed / n or h.json.null,
    spearman_mean = stats.mean(rvals) or h.json.null,
    spearman = setmetatable(rhos, h.json.array_mt),
    categories = by_cat,
    pairs = setmetatable(per_pair, h.json.array_mt),
    method = "std: sample (ddof=1) over the K scores of a pair; changed: any repeat differs from the first; "
      .. "spearman: average-rank Pearson r between repeats i and j over the pairs scored K times (scipy.stats.spearmanr)",
  }
end

local function markdown(f)
  local L = { "# 评分模型重复性 / Judge repeatability", "",
    ("- K = %d repeats over %d pair(s); %s"):format(f.k, f.n, f.method), "",
    "| 类别 / category | n | mean std | changed |", "|---|---:|---:|---:|" }
  for _, cat in ipairs(f.order) do
    local c = f.categories[cat]
    L[#L + 1] = ("| %s | %d | %s | %s |"):format(util.md_cell(cat), c.n, util.fmt(c.mean_std, 3), util.fmt(c.changed_share, 3))
  end
  L[#L + 1] = ("| **overall** | %d | %s | %s (%d) |"):format(f.n, util.fmt(f.mean_std, 3), util.fmt(f.changed_share, 3), f.changed)
  L[#L + 1] = ""
  L[#L + 1] = "| repeats | Spearman ρ |"
  L[#L + 1] = "|---|---:|"
  for _, r in ipairs(f.spearman) do L[#L + 1] = ("| %d vs %d | %s |"):format(r.a, r.b, util.fmt(r.rho, 4)) end
  L[#L + 1] = ""
  return table.concat(L, "\n")
end

local from = jcfg.from
return schedule.main("judge_repeat", function(run)
  local src
  if from ~= nil then
    local err
    src, err = runs.open(tostring(from))
    if not src or not src.header then schedule.stop("judge_repeat: judge_repeat.from: " .. (err or "no journal")) end
    run.sources[#run.sources + 1] = { role = "judge_repeat.from", dir = src.dir, run_key = src.run_key }
  end
  for _, cat in ipairs(run.categories) do
    if src then
      for _, pair in run:pairs(cat) do
        local id = pair.id or ("#" .. tostring(pair.index))
        if run:done("edit", cat, id) == nil then runs.take_edit(run, src, cat, id) end
      end
    else
      run:edit_all(cat)
    end
  end
  for k = 1, K do
    schedule.banner(schedule.say(("重复评分 %d/%d"):format(k, K), ("judge repeat %d/%d"):format(k, K)))
    run.score_stage = stage(k)
    for _, cat in ipairs(run.categories) do
      local list = {}
      for _, pair in run:pairs(cat) do list[#list + 1] = pair end
      local bar = h.progress(("[%s] %s %d/%d"):format(cat, schedule.say("评分", "score"), k, K), #list)
      run:score_pairs(cat, list, function() bar:tick() end)
      bar:close()
    end
  end
  run.score_stage = "score"
  local f = figures(run)
  run.report_extra = { judge_repeat = f }
  f.order = nil
  local md = markdown(setmetatable({ order = run.categories }, { __index = f }))
  local path = util.join(run.out, "results", "judge_repeat_" .. os.date("%Y%m%d_%H%M%S") .. ".md")
  local ok, err = h.fs.write(path, md)
  if not ok then schedule.stop(("judge_repeat: cannot write %s: %s"):format(path, tostring(err))) end
  h.log("info", "judge_repeat: K=%d, %d pair(s): mean std %s, %s changed, Spearman %s; %s", K, f.n,
    util.fmt(f.mean_std, 3), util.fmt(f.changed_share, 3), util.fmt(f.spearman_mean, 4), path)
end, { models = from ~= nil and { "judge" } or { "editor", "judge" } })
