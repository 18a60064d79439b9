-- Paired comparison of two runs on the pairs both scored: per category and
-- overall mean difference (B - A), paired bootstrap 95% CI, sign test,
-- Wilcoxon signed-rank p, the pairs that moved most; pairs only one run has
-- (or only one scored) are listed. No model is opened.
--
--   evalhost scripts/compare.lua CONFIG --set compare.runs=[outputs/a,outputs/b] --set run.out=outputs/a-vs-b
--
-- Writes <run.out>/results/comparison_<ts>.{json,md,html}; the HTML shows
-- the two edits (or, after a rejudge, the same edit) with both judge texts.
-- compare.top (default 10): how many moved pairs to show. The bootstrap
-- uses report.bootstrap.{resamples,seed} as the run reports do.
local runs = require "evalhost.runs"
local compare = require "evalhost.compare"
local report = require "evalhost.report"
local util = require "evalhost.util"

local h = evalhost
local cfg = h.config
local ccfg = cfg.compare or {}
local boot = (cfg.report or {}).bootstrap or {}
local out = (cfg.run or {}).out or "outputs"

local list = ccfg.runs
if type(list) ~= "table" or #list ~= 2 then
  h.log("error", "compare: set compare.runs to two run folders, e.g. --set compare.runs=[outputs/a,outputs/b]")
  return 1
end
local side = {}
for i, dir in ipairs(list) do
  local r, err = runs.open(tostring(dir))
  if not r then
    h.log("error", "compare: %s", err)
    return 1
  end
  side[i] = r
end
local A, B = side[1], side[2]

local function identity(r)
  return r.report and r.report.judge_identity or nil
end

-- What differs between the two runs' judges and prompts, in words.
local function changes()
  local out_, ia, ib = {}, identity(A) or {}, identity(B) or {}
  for _, k in ipairs({ "backend", "name", "revision", "dtype", "temperature", "seed", "prompt_language" }) do
    local a, b = util.canonical(ia[k]), util.canonical(ib[k])
    if a ~= b then out_[#out_ + 1] = ("judge %s: %s -> %s"):format(k, tostring(ia[k]), tostring(ib[k])) end
  end
  local ta, tb = ia.prompt_templates or {}, ib.prompt_templates or {}
  local cats = {}
  for c in pairs(ta) do cats[c] = true end
  for c in pairs(tb) do cats[c] = true end
  for _, c in ipairs(util.sorted_keys(cats)) do
    for _, f in ipairs({ "system", "user" }) do
      local a, b = (ta[c] or {})[f], (tb[c] or {})[f]
      if a ~= b then out_[#out_ + 1] = ("prompt %s.%s: %s -> %s"):format(c, f, tostring(a), tostring(b)) end
    end
  end
  return out_
end

local res = compare.runs(A:scores(), B:scores(), { resamples = boot.resamples, seed = boot.seed, top = ccfg.top })
local function meta(r)
  return { dir = r.dir, run_key = r.run_key or h.json.null, report = r.report_path or h.json.null,
    judge_identity = identity(r) or h.json.null }
end
local c = report.comparison(res, {
  a = meta(A), b = meta(B), changed = setmetatable(changes(), h.json.array_mt),
  method = compare.method({ resamples = boot.resamples, seed = boot.seed }),
})

-- Thumbnails of each side's edited image for the gallery.
local size = (cfg.report or {}).thumb or 192
local function thumbnail(which, rel)
  if type(rel) ~= "string" then return nil end
  return report.thumb_url((h.image.load(util.join((which == "a" and A or B).dir, rel))), size)
end

local paths, err = report.write_comparison(c, out, { thumbnail = thumbnail })
if not paths then
  h.log("error", "compare: %s", err)
  return 1
end
local o = res.overall
h.log("info", "compare: B - A = %s (95%% CI [%s, %s]) over %d pair(s); sign p %s, Wilcoxon p %s (%s)",
  util.fmt(o.mean_diff, 3), util.fmt(o.ci95 and o.ci95[1], 3), util.fmt(o.ci95 and o.ci95[2], 3), o.n,
  report.pval(o.sign.p), report.pval(o.wilcoxon.p), o.wilcoxon.method or "no non-zero difference")
for _, ch in ipairs(c.comparison.changed) do h.log("info", "compare: changed: %s", ch) end
if #res.only_a + #res.only_b + #res.unscored > 0 then
  h.log("warn", "compare: %d pair(s) only in A, %d only in B, %d not scored by both (listed in the report)",
    #res.only_a, #res.only_b, #res.unscored)
end
-- the paths under --quiet too, as a run's report paths: they are what it made
for _, p in ipairs(paths) do
  if (h.options or {}).quiet then io.stderr:write("comparison: ", p, "\n") else h.log("info", "comparison: %s", p) end
end
return 0
