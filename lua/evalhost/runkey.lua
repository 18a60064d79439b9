-- The run key: what a journal must agree on before --resume may continue it.
--
-- It hashes five parts: the dataset's bytes, the config minus the keys that
-- cannot change a pair's result (where outputs go, how the report looks,
-- whether both models stay resident), the script file, the evalhost version
-- and the judge's chat layout (evalhost.chat.LAYOUT: a score asked with
-- other messages is another score). The journal's header keeps the parts and the filtered config, so a
-- mismatch can be explained key by key.
local util = require "evalhost.util"
local chat = require "evalhost.chat"

local runkey = {}

-- Config keys (dotted paths; a section name drops the whole section) left out
-- of the key. The dataset's path is covered by its hash: moving it is fine.
runkey.IGNORED = {
  "run.out", "run.keep_both", "run.device_memory", "run.pin", "run.reuse_edits_from", "report", "merge", "benchmark.data_path", "dataset.path",
}

local function copy(v)
  if type(v) ~= "table" then return v end
  local t = setmetatable({}, getmetatable(v))
  for k, x in pairs(v) do t[k] = copy(x) end
  return t
end

-- A copy of cfg without the ignored keys.
function runkey.filter(cfg, ignored)
  local c = copy(cfg or {})
  for _, path in ipairs(ignored or runkey.IGNORED) do
    local t = c
    local keys = {}
    for k in path:gmatch("[^.]+") do keys[#keys + 1] = k end
    for i = 1, #keys - 1 do
      t = type(t) == "table" and t[keys[i]] or nil
    end
    local last = keys[#keys]
    if type(t) == "table" then t[last] = nil end
  end
  return c
end

-- opts: {config=, dataset_hash=, script_path=, version=, shard={index,count}}
-- Returns key, parts, filtered config. The shard takes part in the key only
-- when there are several, so one shard's folder is never resumed as another's.
function runkey.compute(opts)
  local h = util.host()
  local cfg = runkey.filter(opts.config)
  local script = opts.script_path and opts.script_path ~= "" and h.hash_file(opts.script_path) or "none"
  local parts = {
    dataset = opts.dataset_hash or "none",
    config = h.hash(util.canonical(cfg)),
    script = script,
    version = opts.version or h.version,
    chat = opts.chat or chat.LAYOUT,
  }
  local shard = opts.shard or { index = 0, count = 1 }
  local keyed = { parts = parts }
  if (shard.count or 1) > 1 then keyed.shard = ("%d/%d"):format(shard.index, shard.count) end
  return h.hash(util.canonical(keyed)), parts, cfg
end

-- Leaf paths of a config: {["editor.name"] = canonical text}.
local function flatten(v, prefix, out)
  out = out or {}
  local is_map = type(v) == "table" and next(v) ~= nil and #v == 0
  if is_map then
    for k, x in pairs(v) do
      flatten(x, prefix and (prefix .. "." .. tostring(k)) or tostring(k), out)
    end
  elseif prefix then
    out[prefix] = util.canonical(v)
  end
  return out
end

local function short(s)
  s = tostring(s)
  if #s > 40 then s = s:sub(1, 37) .. "..." end
  return s
end

-- The config keys that differ between two filtered configs, sorted:
-- {"editor.name (imageops -> identity)", "judge.x (added)", ...}
function runkey.config_diff(old, new)
  local a, b = flatten(old or {}), flatten(new or {})
  local out = {}
  for k, v in pairs(b) do
    if a[k] == nil then
      out[#out + 1] = ("%s (added: %s)"):format(k, short(v))
    elseif a[k] ~= v then
      out[#out + 1] = ("%s (%s -> %s)"):format(k, short(a[k]), short(v))
    end
  end
  for k, v in pairs(a) do
    if b[k] == nil then out[#out + 1] = ("%s (removed: was %s)"):format(k, short(v)) end
  end
  table.sort(out)
  return out
end

-- Why a journal's header does not match this run: one line naming what
-- differs (dataset, config keys, script, version, chat layout, shard).
function runkey.explain(path, old, parts, cfg, shard)
  if type(old) ~= "table" then
    return ("%s belongs to a different run (its header is unreadable)"):format(path)
  end
  local op = type(old.parts) == "table" and old.parts or {}
  local why = {}
  if op.dataset ~= parts.dataset then
    why[#why + 1] = ("the dataset differs (hash %s, now %s)"):format(short(op.dataset), short(parts.dataset))
  end
  if op.config ~= parts.config then
    local keys = runkey.config_diff(old.config, cfg)
    if #keys == 0 then
      why[#why + 1] = "the config differs"
    else
      local shown = {}
      for i = 1, math.min(#keys, 8) do shown[i] = keys[i] end
      if #keys > 8 then shown[#shown + 1] = ("and %d more"):format(#keys - 8) end
      why[#why + 1] = "config keys changed: " .. table.concat(shown, ", ")
    end
  end
  if op.script ~= parts.script then
    why[#why + 1] = ("the script differs (%s was %s)"):format(tostring(old.script_path or "script"),
      old.script_path and "edited or replaced" or "another file")
  end
  if op.version ~= parts.version then
    why[#why + 1] = ("the evalhost version differs (%s, now %s)"):format(tostring(op.version), tostring(parts.version))
  end
  if op.chat ~= parts.chat then
    why[#why + 1] = ("the judge's chat layout differs (%s, now %s)"):format(tostring(op.chat or "before layouts were named"),
      tostring(parts.chat))
  end
  local os_ = type(old.shard) == "table" and old.shard or { index = 0, count = 1 }
  shard = shard or { index = 0, count = 1 }
  if (os_.index or 0) ~= shard.index or (os_.count or 1) ~= shard.count then
    why[#why + 1] = ("the shard differs (%d/%d, now %d/%d)"):format(os_.index or 0, os_.count or 1, shard.index, shard.count)
  end
  if #why == 0 then why[1] = "its run key differs" end
  return ("%s belongs to a different run: %s. Use --resume=force to continue it anyway, or set run.out to a new folder")
    :format(path, table.concat(why, "; "))
end

return runkey
