-- Merges the journals of a sharded run into one output folder and one report,
-- the same per-pair results as a single process would have written.
--
--   evalhost scripts/merge.lua CONFIG --set merge.inputs=[out/shard-0-of-2,out/shard-1-of-2] --set run.out=out/merged
--
-- CONFIG must be the shards' config (the run key's dataset and config parts
-- are checked; merge.force=true accepts a difference). An input folder without
-- a journal but with shard-<i>-of-<N>/ folders stands for all of them. Edited
-- images are copied (hash-checked) into run.out/images/, so the merged folder
-- looks like a single run's. Pairs no shard finished, and pairs two shards
-- both did, are named in the log; the exit code is 1 when any is missing.
local schedule = require "evalhost.schedule"
local util = require "evalhost.util"
local runkey = require "evalhost.runkey"
local records = require "evalhost.records"

local h = evalhost
local mcfg = h.config.merge or {}

local function log(level, fmt, ...) h.log(level, fmt, ...) end

-- The input folders, shard folders expanded, in a stable order.
local function input_dirs()
  local inputs = mcfg.inputs
  if type(inputs) == "string" then inputs = { inputs } end
  if type(inputs) ~= "table" or #inputs == 0 then
    return nil, "merge: set merge.inputs to the shards' output folders, e.g. --set merge.inputs=[out/shard-0-of-2,out/shard-1-of-2]"
  end
  local dirs = {}
  for _, d in ipairs(inputs) do
    d = tostring(d)
    if h.fs.exists(util.join(d, h.journal.file)) then
      dirs[#dirs + 1] = d
    else
      local names = h.fs.list(d)
      local found = false
      for _, n in ipairs(names or {}) do
        if n:match("^shard%-%d+%-of%-%d+$") and h.fs.exists(util.join(d, n, h.journal.file)) then
          dirs[#dirs + 1], found = util.join(d, n), true
        end
      end
      if not found then return nil, ("merge: %s holds no journal (%s) and no shard-<i>-of-<N> folders"):format(d, h.journal.file) end
    end
  end
  return dirs
end

-- Why a shard's header does not fit this merge, or nil.
local function mismatch(header, run)
  local p = type(header.parts) == "table" and header.parts or {}
  local why = {}
  if p.dataset ~= run.key_parts.dataset then why[#why + 1] = "the dataset differs" end
  if p.config ~= run.key_parts.config then
    local keys = runkey.config_diff(header.config, run.key_config)
    why[#why + 1] = #keys > 0 and ("config keys differ: " .. table.concat(keys, ", ")) or "the config differs"
  end
  if p.version ~= run.key_parts.version then why[#why + 1] = ("evalhost %s, now %s"):format(tostring(p.version), tostring(run.key_parts.version)) end
  if p.chat ~= run.key_parts.chat then
    why[#why + 1] = ("the judge's chat layout %s, now %s"):format(tostring(p.chat or "unnamed"), tostring(run.key_parts.chat))
  end
  return #why > 0 and table.concat(why, "; ") or nil
end

-- One input's steps, later lines replacing earlier ones (a resumed shard).
local function load_input(dir, run)
  local header, entries = h.journal.read(dir)
  if not header then return nil, ("merge: %s"):format(entries) end
  local why = mismatch(header, run)
  if why then
    if mcfg.force ~= true then
      return nil, ("merge: %s comes from another run (%s); set merge.force=true to merge it anyway"):format(dir, why)
    end
    log("warn", "merge: %s comes from another run (%s); merging it anyway (merge.force)", dir, why)
  end
  local steps, order = {}, {}
  -- shard journals are untrusted (README): every record is checked like any
  -- input, and a bad one fails its pair with the file and line
  local opts = { range = records.score_range(run.config, run.sections.judge or "judge"),
    file = util.join(dir, h.journal.file) }
  for _, e in ipairs(entries) do
    local rec, bad = records.check(e, opts)
    if not rec then
      log("warn", "merge: %s", bad)
      if type(e.category) == "string" and type(e.id) == "string" and records.known_stage(e.stage) then
        e = { stage = e.stage, category = e.category, id = e.id, line = e.line, record = records.failure(bad) }
      else
        e = nil
      end
    end
    if e then
      local key = e.stage .. "\t" .. e.category .. "\t" .. e.id
      if steps[key] == nil then order[#order + 1] = key end
      steps[key] = e
    end
  end
  local shard = type(header.shard) == "table" and header.shard or { index = 0, count = 1 }
  log("info", "merge: %s: shard %d/%d, %d step(s)", dir, shard.index or 0, shard.count or 1, #order)
  return { dir = dir, steps = steps, order = order, shard = shard }
end

local function same_result(a, b)
  local function strip(r)
    local t = {}
    for k, v in pairs(r or {}) do
      if k ~= "seconds" then t[k] = v end
    end
    return util.canonical(t)
  end
  return strip(a) == strip(b)
end

-- Copies an input's edited image into run.out, checking its recorded hash.
local function copy_image(run, input, rec)
  local src = util.join(input.dir, rec.image)
  local bytes, err = h.fs.read(src, nil, records.read_opts(rec.image))
  if not bytes then return nil, err end
  if rec.hash and h.hash(bytes) ~= rec.hash then return nil, ("%s does not match its recorded hash"):format(src) end
  local dst = util.join(run.out, rec.image)
  local ok
  -- rec.image comes from a shard's journal: "../" or a planted symlink must not lead outside run.out
  ok, err = h.fs.mkdir_beneath(run.out, util.dirname(rec.image))
  if ok then ok, err = h.fs.write(dst, bytes) end
  if not ok then schedule.stop(("merge: cannot write %s: %s"):format(dst, tostring(err))) end
  return true
end

return schedule.main("merge", function(run)
  local dirs, err = input_dirs()
  if not dirs then schedule.stop(err) end
  local inputs = {}
  for _, d in ipairs(dirs) do
    local input, lerr = load_input(d, run)
    if not input then schedule.stop(lerr) end
    inputs[#inputs + 1] = input
  end

  local owner, dups = {}, {}
  for _, input in ipairs(inputs) do
    for _, key in ipairs(input.order) do
      local e = input.steps[key]
      local first = owner[key]
      if first then
        local a = first.steps[key].record
        if not same_result(a, e.record) then
          dups[#dups + 1] = ("%s/%s (%s: %s and %s differ)"):format(e.category, e.id, e.stage, first.dir, input.dir)
          run.failures[#run.failures + 1] = { category = e.category, id = e.id, stage = "merge",
            error = ("%s recorded by %s and %s with different results"):format(e.stage, first.dir, input.dir) }
        elseif e.stage == "edit" then
          dups[#dups + 1] = ("%s/%s (in %s and %s)"):format(e.category, e.id, first.dir, input.dir)
        end
      elseif run:done(e.stage, e.category, e.id) == nil then   -- not merged by an earlier, resumed merge
        owner[key] = input
        local rec = e.record
        if e.stage == "edit" and type(rec) == "table" and rec.image and not rec.error then
          local ok, cerr = copy_image(run, input, rec)
          if not ok then
            log("warn", "merge: %s/%s: edited image: %s; the pair counts as missing", e.category, e.id, cerr)
            rec = nil
          end
        end
        if rec then
          run:record(e.stage, e.category, e.id, rec)
          local t = run.timings
          if e.stage == "edit" and type(rec.seconds) == "number" then
            t.edit_seconds, t.edited = t.edit_seconds + rec.seconds, t.edited + 1
          elseif e.stage == "score" and type(rec.seconds) == "number" then
            t.score_seconds, t.scored = t.score_seconds + rec.seconds, t.scored + 1
          end
        end
      else
        owner[key] = input
      end
    end
  end
  if #dups > 0 then log("warn", "merge: %d pair(s) found in more than one input: %s", #dups, table.concat(dups, ", ")) end

  local missing = {}
  for _, cat in ipairs(run.categories) do
    for _, pair in run:pairs(cat) do
      local id = pair.id or ("#" .. tostring(pair.index))
      local e = run:done("edit", cat, id)
      if e == nil or (e.error == nil and run:done("score", cat, id) == nil) then
        missing[#missing + 1] = ("%s/%s"):format(cat, id)
      end
    end
  end
  if #missing > 0 then
    log("error", "merge: %d pair(s) missing from the inputs: %s", #missing, table.concat(missing, ", "))
  end
  log("info", "merge: %d input(s), %d duplicate(s), %d missing", #inputs, #dups, #missing)
end, { models = {} })
