-- A journal record checked like any other input. A journal may come from
-- another machine (merge's shards, rejudge's source, reuse_edits_from) or
-- have been edited by hand; nothing in it is trusted because evalhost once
-- wrote something like it.
--
--   local records = require "evalhost.records"
--   local range = records.score_range(config, "judge")   -- {lo, hi}, default {0, 10}
--   local rec, why = records.check(entry, { range = range, file = path })
--
-- entry is one of journal:entries() ({stage=, category=, id=, record=, line=});
-- on a bad record `why` names the file, the line and what is wrong, and the
-- caller fails that pair with it; a third value "path" says only the edited
-- image's path was bad (a resumed run may simply redo that edit).
local util = require "evalhost.util"

local records = {}

records.DEFAULT_RANGE = { 0, 10 }

-- The judge's score range: judge.score_range = [lo, hi] (the judge config's
-- key), default 0..10.
function records.score_range(cfg, section)
  local sec = type(cfg) == "table" and cfg[section or "judge"]
  local r = type(sec) == "table" and sec.score_range
  if type(r) == "table" and type(r[1]) == "number" and type(r[2]) == "number" and r[1] < r[2] then
    return { r[1], r[2] }
  end
  return records.DEFAULT_RANGE
end

local function finite(x) return type(x) == "number" and x == x and x ~= math.huge and x ~= -math.huge end

-- The stages evalhost writes: edit, score and judge_repeat's score#k.
function records.known_stage(s)
  return type(s) == "string" and (s == "edit" or s == "score" or s:match("^score#%d+$") ~= nil)
end

-- A path a record may name: relative, below images/, no "..", no control
-- characters, valid UTF-8. Anything else would read outside the run folder.
function records.inside_path(p)
  if type(p) ~= "string" or p == "" or #p > 4096 then return nil, "is not a path" end
  if p:sub(1, 1) == "/" then return nil, "is an absolute path" end
  if p:find("[%z\1-\31\127\\]") or not utf8.len(p) then return nil, "holds control characters or invalid UTF-8" end
  for comp in p:gmatch("[^/]+") do
    if comp == ".." or comp == "." then return nil, "leaves the run folder" end
  end
  if p:sub(1, 7) ~= "images/" then return nil, "is not below images/" end
  return p
end

-- The read options for a file a record names, rel below a run folder
-- (images/<cat>/<id>.png): none of its components is followed, the folders
-- above the file included (a category folder swapped for a link is refused),
-- a FIFO or device never blocks, only a regular file is read.
function records.read_opts(rel)
  local n = 0
  for comp in tostring(rel):gmatch("[^/]+") do
    if comp ~= "." then n = n + 1 end
  end
  return { no_follow = true, depth = math.max(1, math.min(n, 64)) }
end

local function check_record(stage, rec, range)
  if type(rec) ~= "table" then return nil, "record is not an object" end
  if rec.seconds ~= nil and not (finite(rec.seconds) and rec.seconds >= 0) then
    return nil, ("seconds %s is not a finite number >= 0"):format(tostring(rec.seconds))
  end
  if rec.error ~= nil then
    if type(rec.error) ~= "string" then return nil, "error is not a string" end
    if rec.stage ~= nil and type(rec.stage) ~= "string" then return nil, "failed stage is not a string" end
    if rec.code ~= nil and type(rec.code) ~= "string" then return nil, "code is not a string" end
    return rec
  end
  if stage == "edit" then
    local ok, why = records.inside_path(rec.image)
    if not ok then return nil, ("image %s %s"):format(util.shown(rec.image), why), "path" end
    if rec.hash ~= nil and (type(rec.hash) ~= "string" or not rec.hash:match("^%x+$")) then
      return nil, "hash is not a hex string"
    end
    if rec.input ~= nil and type(rec.input) ~= "string" then return nil, "input is not a string" end
  else
    -- "7" is not 7: a string would make the console and the JSON disagree
    if type(rec.score) ~= "number" then
      return nil, ("score %s is not a number"):format(rec.score == nil and "(none)"
        or type(rec.score) == "string" and util.shown(rec.score) or ("(a %s)"):format(type(rec.score)))
    end
    if not finite(rec.score) then return nil, ("score %s is not finite"):format(tostring(rec.score)) end
    if rec.score < range[1] or rec.score > range[2] then
      return nil, ("score %s is outside %s..%s"):format(tostring(rec.score), tostring(range[1]), tostring(range[2]))
    end
    if rec.text ~= nil and (type(rec.text) ~= "string" or not utf8.len(rec.text)) then
      return nil, "text is not a valid UTF-8 string"
    end
    if rec.dims ~= nil and type(rec.dims) ~= "table" then return nil, "dims is not an object" end
    for k, v in pairs(type(rec.dims) == "table" and rec.dims or {}) do
      if type(v) == "number" and not finite(v) then
        return nil, ("dims[%s] is not finite"):format(util.shown(k))
      end
    end
  end
  return rec
end

-- The entry's record when sound; else nil and "<file> line N: [cat/id] stage: why".
function records.check(entry, opts)
  opts = opts or {}
  local where = ("%s line %s"):format(opts.file or "journal", tostring(entry.line or "?"))
  for _, k in ipairs({ "category", "id" }) do
    local ok, why = util.safe_component(entry[k])
    if not ok then return nil, ("%s: %s %s"):format(where, k, why) end
  end
  if not records.known_stage(entry.stage) then
    return nil, ("%s: %s/%s: unknown stage %s"):format(where, entry.category, entry.id, util.shown(entry.stage))
  end
  local rec, why, kind = check_record(entry.stage, entry.record, opts.range or records.DEFAULT_RANGE)
  if not rec then return nil, ("%s: %s/%s %s: %s"):format(where, entry.category, entry.id, entry.stage, why), kind end
  return rec
end

-- Failure codes that belong to the server, the network or the device's
-- memory (ENOMEM: a batch that did not fit), never to the pair: such a
-- record is not final, resume retries the step.
local TRANSIENT = { ENET = true, ESERVER = true, ENOMEM = true }
function records.transient(code) return TRANSIENT[code] == true end

-- The record that stands for a bad one: the pair's failure at its stage.
function records.failure(why)
  return { error = why, stage = "journal" }
end

return records
