-- Swaps and timings over a whole run, across the processes a resumed run
-- took. Each process that stops (a signal, a Stop) or finishes journals its
-- own counts as one "run" line (journal:record_run, not a step); a resumed
-- process replays those lines and its report adds them to its own, saying
-- how many processes the figures cover.
local util = require "evalhost.util"
local base = require "evalhost.schedule.run"
local Run, log = base.Run, base.log

local totals = {}

local function finite(x) return type(x) == "number" and x == x and x >= 0 and x < math.huge end

local SWAP_KEYS = { "count", "moves", "bytes", "seconds" }
local TIME_KEYS = { "edit_seconds", "score_seconds", "edited", "scored", "reused" }
local MODEL_KEYS = { "loads", "unloads", "bytes", "load_seconds", "unload_seconds" }

-- One replayed "run" line's record, checked: the counts or nil, why.
function totals.check(rec)
  if type(rec) ~= "table" or type(rec.swaps) ~= "table" or type(rec.timings) ~= "table" then
    return nil, "not a run record (swaps, timings)"
  end
  for _, k in ipairs(SWAP_KEYS) do
    if rec.swaps[k] ~= nil and not finite(rec.swaps[k]) then return nil, ("swaps.%s is not a count"):format(k) end
  end
  for _, k in ipairs(TIME_KEYS) do
    if rec.timings[k] ~= nil and not finite(rec.timings[k]) then return nil, ("timings.%s is not a count"):format(k) end
  end
  local bm = rec.swaps.by_model
  if bm ~= nil and type(bm) ~= "table" then return nil, "swaps.by_model is not an object" end
  for name, m in pairs(bm or {}) do
    if type(name) ~= "string" or type(m) ~= "table" then return nil, "swaps.by_model is not an object of objects" end
    for _, k in ipairs(MODEL_KEYS) do
      if m[k] ~= nil and not finite(m[k]) then
        return nil, ("swaps.by_model[%s].%s is not a count"):format(util.shown(name), k)
      end
    end
  end
  return rec
end

-- Replay: the earlier processes' counts (journal entry e of stage "run").
function Run:replay_totals(e, where)
  local rec, why = totals.check(e.record)
  if not rec then
    log("warn", "resume: %s line %s: %s (ignored)", where, tostring(e.line or "?"), why)
    return
  end
  self.prior = self.prior or {}
  self.prior[#self.prior + 1] = rec
end

-- Journals this process's swaps and timings once (stop or finish).
function Run:journal_totals()
  if not self.journal or self.totals_journaled then return end
  self.totals_journaled = true
  local sw, t = util.host().swaps(), self.timings
  local rec = { swaps = {}, timings = {}, started = self.started }
  for _, k in ipairs(SWAP_KEYS) do rec.swaps[k] = sw[k] end
  if type(sw.by_model) == "table" then
    rec.swaps.by_model = {}
    for name, m in pairs(sw.by_model) do
      local c = {}
      for _, k in ipairs(MODEL_KEYS) do c[k] = m[k] end
      rec.swaps.by_model[name] = c
    end
  end
  for _, k in ipairs(TIME_KEYS) do rec.timings[k] = t[k] end
  -- a name per process: this run's start and the clock (no two processes share both)
  local id = ("%s-%.6f"):format(self.started, util.host().clock()):gsub("[^%w%-%.]", "_")
  rec.process = id
  if not self.journal.record_run then return end
  local ok, err = self.journal:record_run(rec)
  if ok == nil and err then log("warn", "journal: %s (this process's swaps and timings are not kept)", err) end
end

local function copy_models(bm)
  local out = {}
  for name, m in pairs(bm or {}) do
    local c = {}
    for k, v in pairs(m) do c[k] = v end
    out[name] = c
  end
  return out
end

-- This process's swaps and timings plus the earlier processes' (resume):
-- swaps (h.swaps() shape, with processes = n) and a timings table like
-- run.timings. processes > 1 says the figures cover a resumed run.
function Run:whole_run(swaps)
  local sw, t = {}, {}
  for k, v in pairs(swaps) do sw[k] = v end
  for k, v in pairs(self.timings) do t[k] = v end
  local n = 1
  for _, p in ipairs(self.prior or {}) do
    n = n + 1
    for _, k in ipairs(SWAP_KEYS) do sw[k] = (sw[k] or 0) + (p.swaps[k] or 0) end
    -- per model too (a copy: h.swaps()'s tables are not changed)
    for name, m in pairs(p.swaps.by_model or {}) do
      if sw.by_model == swaps.by_model then sw.by_model = copy_models(swaps.by_model) end
      sw.by_model = sw.by_model or {}
      local c = sw.by_model[name] or {}
      sw.by_model[name] = c
      for _, k in ipairs(MODEL_KEYS) do
        if m[k] ~= nil then c[k] = (c[k] or 0) + m[k] end
      end
    end
    for _, k in ipairs(TIME_KEYS) do
      if p.timings[k] ~= nil then t[k] = (t[k] or 0) + p.timings[k] end
    end
  end
  sw.processes = n
  if n > 1 then
    sw.covers = ("the whole run: %d processes (resumed), this one's and the journal's"):format(n)
  end
  return sw, t
end

return totals
