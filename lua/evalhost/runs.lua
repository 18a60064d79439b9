-- An earlier run's output folder, read-only: its journal (steps, header, run
-- key), its edited images and its latest report. rejudge, compare,
-- judge_repeat and run.reuse_edits_from read other runs through this.
--
--   local r, err = runs.open("outputs/x")
--   r.dir, r.header, r.run_key, r.report (latest evaluation_report_*.json or nil)
--   r:step("edit", cat, id) -> journal record or nil
--   r:scores() -> {{category=, id=, score=, text=, error=, image=, instruction=}, ...}
--
-- Scores come from the latest report when there is one (it is what the run
-- published, merged rounds included), else from the journal.
local util = require "evalhost.util"
local records = require "evalhost.records"

local runs = {}

local Run = {}
Run.__index = Run

local function log(level, fmt, ...) util.host().log(level, fmt, ...) end

-- The newest results/evaluation_report_*.json of dir (names sort by time).
function runs.latest_report(dir)
  local h = util.host()
  local names = h.fs.list(util.join(dir, "results")) or {}
  local best
  for _, n in ipairs(names) do
    if n:match("^evaluation_report_.*%.json$") and (best == nil or n > best) then best = n end
  end
  if not best then return nil end
  local path = util.join(dir, "results", best)
  local text, err = h.fs.read(path)
  if not text then return nil, ("%s: %s"):format(path, tostring(err)) end
  local rep
  rep, err = h.json.decode(text)
  if type(rep) ~= "table" then return nil, ("%s: not a report: %s"):format(path, tostring(err)) end
  return rep, path
end

-- Returns a Run, or nil and "runs: <dir>: why".
function runs.open(dir)
  local h = util.host()
  if type(dir) ~= "string" or dir == "" then return nil, "runs: no folder given" end
  local J = rawget(h, "journal")
  local r = setmetatable({ dir = dir, steps = {}, order = {} }, Run)
  if J and h.fs.exists(util.join(dir, J.file)) then
    local header, entries = J.read(dir)
    if not header then return nil, ("runs: %s: %s"):format(dir, tostring(entries)) end
    r.header, r.run_key = header, header.run_key
    local hc = type(header.config) == "table" and header.config or {}
    local opts = { range = records.score_range(hc, hc.judge == nil and "reward_model" or "judge"),
      file = util.join(dir, J.file) }
    for _, e in ipairs(entries) do
      -- another run's journal is input like any other: a bad record fails its pair
      local rec, why = records.check(e, opts)
      if not rec then log("warn", "runs: %s", why) end
      if rec or (type(e.category) == "string" and type(e.id) == "string" and records.known_stage(e.stage)) then
        local key = e.stage .. "\t" .. e.category .. "\t" .. e.id
        if r.steps[key] == nil then r.order[#r.order + 1] = key end
        r.steps[key] = rec or records.failure(why)   -- a later line replaces an earlier one (resumed run)
      end
    end
  end
  local rep, where = runs.latest_report(dir)
  if rep == nil and where then return nil, "runs: " .. where end
  r.report, r.report_path = rep, rep and where or nil
  if r.header == nil and r.report == nil then
    return nil, ("runs: %s holds neither a journal nor a report (results/evaluation_report_*.json)"):format(dir)
  end
  if r.run_key == nil and rep and type(rep.run) == "table" then r.run_key = rep.run.run_key end
  log("info", "runs: %s: %d journal step(s)%s", dir, #r.order, r.report_path and (", report " .. r.report_path) or "")
  return r
end

function Run:step(stage, cat, id)
  return self.steps[stage .. "\t" .. cat .. "\t" .. id]
end

-- Every pair's outcome, in report order (or journal order without a report).
function Run:scores()
  local out = {}
  local null = util.host().json.null
  local function v(x) if x == null then return nil end return x end
  if self.report and type(self.report.pairs) == "table" then
    for _, p in ipairs(self.report.pairs) do
      out[#out + 1] = { category = p.category, id = p.id, score = v(p.score), text = v(p.text),
        error = v(p.error), image = v(p.image), instruction = v(p.instruction), index = v(p.index) }
    end
    return out
  end
  local seen = {}
  for _, key in ipairs(self.order) do
    local stage, cat, id = key:match("^([^\t]*)\t([^\t]*)\t(.*)$")
    if (stage == "edit" or stage == "score") and not seen[cat .. "\t" .. id] then
      seen[cat .. "\t" .. id] = true
      local e, s = self:step("edit", cat, id) or {}, self:step("score", cat, id) or {}
      out[#out + 1] = { category = cat, id = id, score = s.score, text = s.text,
        error = e.error or s.error, image = e.image }
    end
  end
  return out
end

-- A copy of an earlier run's record that says where it came from.
function runs.carried(rec, src)
  local t = {}
  for k, v in pairs(rec) do t[k] = v end
  if t.from == nil then t.from = { run = src.dir, run_key = src.run_key } end
  return t
end

-- Takes src's edit of (cat, id) into `run` (a schedule Run): the image is
-- copied, hash-checked, into run.out and the step recorded with its origin;
-- a missing or failed edit is recorded as the pair's failure.
function runs.take_edit(run, src, cat, id)
  local h = util.host()
  local e = src:step("edit", cat, id)
  if e == nil then
    return run:record("edit", cat, id, { error = ("%s has no edit of this pair"):format(src.dir), stage = "source" })
  end
  if e.error or not e.image then return run:record("edit", cat, id, runs.carried(e, src)) end
  local path = util.join(src.dir, e.image)
  local bytes, err = h.fs.read(path, nil, records.read_opts(e.image))
  if bytes and e.hash and h.hash(bytes) ~= e.hash then bytes, err = nil, "does not match its recorded hash" end
  if not bytes then
    return run:record("edit", cat, id, { error = ("edited image %s: %s"):format(path, tostring(err)), stage = "source" })
  end
  local ok
  -- e.image comes from another folder's journal: mkdir_beneath refuses ".." and planted symlinks
  ok, err = h.fs.mkdir_beneath(run.out, util.dirname(e.image))
  if ok then ok, err = h.fs.write(util.join(run.out, e.image), bytes) end
  if not ok then
    require("evalhost.schedule").stop(("cannot write %s: %s"):format(util.join(run.out, e.image), tostring(err)))
  end
  return run:record("edit", cat, id, runs.carried(e, src))
end

return runs
