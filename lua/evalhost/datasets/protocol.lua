-- evalhost.datasets.protocol — running a benchmark's official judging
-- protocol (issue 25): which profile a run uses, and the helpers the
-- adapters share to reproduce their official evaluation code (text
-- substitution as Python does it, PIL's thumbnail size).
--
-- dataset.protocol: official (default) | compact. "official" asks the judge
-- what the benchmark's own code asks (its prompts, several requests per
-- pair, its pictures in its order: profile.official.requests/combine);
-- an http or native judge sends such requests (builtin and torch judges
-- cannot). "compact" keeps the one-request approximation (profile.template +
-- from_text), for those judges and quick runs.
local util = require "evalhost.util"

local M = {}

M.PROTOCOLS = { official = true, compact = true }
-- the judge backends that send a benchmark's own requests (judge_layout in C)
M.LAYOUT_BACKENDS = { http = true, native = true }

-- The layered profile an official run uses: the official table's fields
-- first, the compact profile's for the rest (dimensions, scale ...).
local function layered(prof)
  return setmetatable({}, {
    __index = function(_, k)
      local v = prof.official[k]
      if v ~= nil then return v end
      return prof[k]
    end,
  })
end

-- The judge section's key k (the section's own, else its params:'s), as
-- config_check reads it; nil when unset.
function M.judge_option(run, k)
  local spec = ((run.config or {})[(run.sections or {}).judge or "judge"]) or {}
  if type(spec) ~= "table" then return nil end
  if spec[k] ~= nil then return spec[k] end
  return type(spec.params) == "table" and spec.params[k] or nil
end

-- Sets run.profile_requests/profile_combine/profile_state for an official
-- run; true, or nil and a config message.
function M.select(run, dcfg, judge)
  local proto = dcfg.protocol
  if proto == nil then proto = "official" end
  if not M.PROTOCOLS[proto] then
    return nil, ("config: dataset.protocol must be official or compact, got %s"):format(tostring(proto))
  end
  local prof = run.profile
  run.protocol = proto
  if proto == "compact" or type(prof.official) ~= "table" then return true end
  local backend = judge and judge:info().backend
  if judge and not M.LAYOUT_BACKENDS[backend] then
    return nil, ("config: dataset.protocol official: %s's judge requests (its prompts, %s) need an http or "
      .. "native judge; the %s judge builds its own chat. Serve the model over an OpenAI-compatible server, run "
      .. "it with backend: native (mode: generate), or set dataset.protocol: compact (one request per pair, "
      .. "evalhost's approximation)")
      :format(run.dataset.adapter, prof.official.requests_per_pair or "several requests per pair", tostring(backend))
  end
  if backend == "native" and M.judge_option(run, "mode") ~= "generate" then
    -- mode logits replies with the score's distribution, not text the benchmark's parser reads
    return nil, ("config: dataset.protocol official: %s's parser reads the judge's reply text: set mode: generate "
      .. "on the native judge, or set dataset.protocol: compact (one request per pair, evalhost's approximation)")
      :format(run.dataset.adapter)
  end
  local state = {}
  if prof.official.prepare then
    local why
    state, why = prof.official.prepare(dcfg, run.dataset)
    if not state then return nil, why end
  end
  run.profile = layered(prof)
  run.profile_requests, run.profile_combine, run.profile_state = prof.official.requests, prof.official.combine, state
  if prof.official.aggregate and ((run.config or {}).report or {}).aggregate == nil then
    run.aggregate = prof.official.aggregate
  end
  return true
end

-- Python's str.replace(old, new) for every occurrence (no patterns).
function M.replace(s, old, new)
  local out, i = {}, 1
  while true do
    local a, b = s:find(old, i, true)
    if not a then break end
    out[#out + 1] = s:sub(i, a - 1)
    out[#out + 1] = new
    i = b + 1
  end
  out[#out + 1] = s:sub(i)
  return table.concat(out)
end

-- Python's str.format with keyword fields only ("{instruct}", "{{" and
-- "}}" for braces); nil and why for a field it was not given.
function M.format(s, fields)
  local out, i, n = {}, 1, #s
  while i <= n do
    local c = s:sub(i, i)
    if c == "{" and s:sub(i + 1, i + 1) == "{" then
      out[#out + 1], i = "{", i + 2
    elseif c == "}" and s:sub(i + 1, i + 1) == "}" then
      out[#out + 1], i = "}", i + 2
    elseif c == "{" then
      local j = s:find("}", i, true)
      if not j then return nil, "unmatched '{' in a prompt" end
      local name = s:sub(i + 1, j - 1)
      local v = fields[name]
      if v == nil then return nil, ("prompt field {%s} has no value"):format(name) end
      out[#out + 1], i = tostring(v), j + 1
    else
      out[#out + 1], i = c, i + 1
    end
  end
  return table.concat(out)
end

-- The size PIL's img.thumbnail((size, size)) gives (Pillow >= 7: the
-- aspect kept, rounding to whichever neighbour keeps it best); unchanged
-- when the picture already fits.
function M.thumbnail_size(w, h, size)
  if w <= size and h <= size then return w, h end
  local x, y = size, size
  local aspect = w / h
  local function round_aspect(number, key)
    local lo, hi = math.floor(number), math.ceil(number)
    local pick = key(lo) <= key(hi) and lo or hi
    return math.max(pick, 1)
  end
  if x / y >= aspect then
    x = round_aspect(y * aspect, function(v) return math.abs(aspect - v / y) end)
  else
    y = round_aspect(x / aspect, function(v) return v == 0 and 0 or math.abs(aspect - x / v) end)
  end
  return x, y
end

-- img shrunk as PIL's thumbnail(size) does (bicubic), owned by ctx; img
-- itself when it fits. nil and why when the resize fails.
function M.thumbnail(ctx, img, size)
  local w, h = img:size()
  local tw, th = M.thumbnail_size(w, h, size)
  if tw == w and th == h then return img end
  local out, err = img:resize(tw, th, "bicubic")
  if not out then return nil, err end
  return ctx:own(out)
end

-- An image named by a path the adapter resolved (a reference picture).
function M.load(ctx, path, what)
  if type(path) ~= "string" then return nil, ("%s: no %s"):format(ctx.id, what) end
  local img, err = util.host().image.load(path)
  if not img then return nil, ("%s: %s %s: %s"):format(ctx.id, what, path, tostring(err)) end
  return ctx:own(img)
end

-- Python's round(x, 2) on the float x (round half to even on the exact
-- binary value): what ImgEdit's scripts print.
function M.round2(x)
  local s = string.format("%.2f", x)   -- C rounds the exact binary value, as CPython does
  return tonumber(s)
end

-- The mean of a list (nil when empty).
function M.mean(xs)
  if #xs == 0 then return nil end
  local s = 0.0
  for _, x in ipairs(xs) do s = s + x end
  return s / #xs
end

-- Python's escapes in a non-raw string literal (the ones a prompt file
-- uses); nil and why for one this reader does not know.
local ESCAPES = { ["\\"] = "\\", ['"'] = '"', ["'"] = "'", n = "\n", t = "\t", r = "\r", ["\n"] = "" }
local function unescape(body)
  local out, i = {}, 1
  while i <= #body do
    local c = body:sub(i, i)
    if c == "\\" then
      local e = body:sub(i + 1, i + 1)
      local r = ESCAPES[e]
      if r then
        out[#out + 1], i = r, i + 2
      elseif e:match("[0-7xuUN]") then
        return nil, ("escape \\%s is not read here"):format(e)
      else
        out[#out + 1], i = "\\" .. e, i + 2   -- Python keeps an unknown escape as written
      end
    else
      out[#out + 1], i = c, i + 1
    end
  end
  return table.concat(out)
end

-- A Python module's top-level  name = """..."""  strings (a benchmark's
-- prompts file): {name = text}, escapes read as Python reads them; nil and
-- why for an escape this reader does not know.
function M.python_strings(text)
  text = "\n" .. text
  local out, at = {}, 1
  while true do
    local a, b, name, raw = text:find("\n([%w_]+)%s*=%s*([rR]?)\"\"\"", at)
    if not a then break end
    local close, i = nil, b + 1
    while i <= #text do
      local c = text:sub(i, i)
      if c == "\\" and raw == "" then
        i = i + 2
      elseif text:sub(i, i + 2) == '"""' then
        close = i; break
      else
        i = i + 1
      end
    end
    if not close then return nil, ("%s: unterminated string"):format(name) end
    local body = text:sub(b + 1, close - 1)
    if raw == "" then
      local why
      body, why = unescape(body)
      if not body then return nil, ("%s: %s"):format(name, why) end
    end
    out[name] = body
    at = close + 3
  end
  return out
end

return M
