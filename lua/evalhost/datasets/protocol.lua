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

-- s with every piece that starts where the pattern special matches
-- rewritten: step(i) gives the text for the piece at byte i and the byte
-- after it, or nil and why; the bytes between pieces stay as they are. The
-- text, or nil and why (the one scanner of format and the escape reader).
local function rewrite(s, special, step)
  local out, i = {}, 1
  while true do
    local a = s:find(special, i)
    if not a then break end
    local text, after = step(a)
    if text == nil then return nil, after end
    out[#out + 1] = s:sub(i, a - 1)
    out[#out + 1] = text
    i = after
  end
  out[#out + 1] = s:sub(i)
  return table.concat(out)
end

-- Python's str.format with keyword fields only ("{instruct}", "{{" and
-- "}}" for braces); nil and why for a field it was not given.
function M.format(s, fields)
  return rewrite(s, "[{}]", function(i)
    local c = s:sub(i, i)
    if s:sub(i + 1, i + 1) == c then return c, i + 2 end   -- "{{" or "}}"
    if c == "}" then return c, i + 1 end
    local j = s:find("}", i, true)
    if not j then return nil, "unmatched '{' in a prompt" end
    local name = s:sub(i + 1, j - 1)
    local v = fields[name]
    if v == nil then return nil, ("prompt field {%s} has no value"):format(name) end
    return tostring(v), j + 1
  end)
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

-- numpy's pairwise sum of xs[1..n] (add.reduce on float64: 8 accumulators
-- up to 128 numbers, halves beyond), bit for bit.
local function pairwise(xs, lo, n)
  if n < 8 then
    local r = 0.0
    for i = lo, lo + n - 1 do r = r + xs[i] end
    return r
  elseif n <= 128 then
    local r = {}
    for j = 0, 7 do r[j] = xs[lo + j] end
    local i = 8
    while i < n - (n % 8) do
      for j = 0, 7 do r[j] = r[j] + xs[lo + i + j] end
      i = i + 8
    end
    local res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
    while i < n do res = res + xs[lo + i]; i = i + 1 end
    return res
  end
  local n2 = n // 2
  n2 = n2 - n2 % 8
  return pairwise(xs, lo, n2) + pairwise(xs, lo + n2, n - n2)
end

function M.np_sum(xs, n) return pairwise(xs, 1, n or #xs) end

-- np.mean(xs): nil for none (numpy's NaN, with its warning).
function M.np_mean(xs)
  if #xs == 0 then return nil end
  return pairwise(xs, 1, #xs) / #xs
end

-- Python's escapes in a non-raw string literal (the ones a prompt file
-- uses); nil and why for one this reader does not know.
local ESCAPES = { ["\\"] = "\\", ['"'] = '"', ["'"] = "'", n = "\n", t = "\t", r = "\r", ["\n"] = "" }
local function unescape(body)
  return rewrite(body, "\\", function(i)
    local e = body:sub(i + 1, i + 1)
    local r = ESCAPES[e]
    if r then return r, i + 2 end
    if e:match("[0-7xuUN]") then return nil, ("escape \\%s is not read here"):format(e) end
    return "\\" .. e, i + 2   -- Python keeps an unknown escape as written
  end)
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

-- The file dataset.official names: the benchmark's checkout, the file
-- being rel inside it, or the file itself (named with rel's extension);
-- nil and a config message when unset. what: what the file holds.
function M.official_file(dcfg, bench, rel, what)
  local where = dcfg.official
  if type(where) ~= "string" or where == "" then
    return nil, ("config: dataset.official must name the %s checkout (or its %s): the official protocol's %s load "
      .. "from it (the repository has no license to copy them under)"):format(bench, rel, what)
  end
  local ext = rel:match("%.[^./]*$")
  if where:sub(-#ext) == ext then return where end
  return util.join(where, rel)
end

-- The official file's prompts when it is Python (its  name = """..."""
-- strings), each of names there: {prompts=, prompts_path=, prompts_hash=},
-- or nil and a config message.
function M.python_prompts(dcfg, bench, rel, names)
  local path, why = M.official_file(dcfg, bench, rel, "prompts")
  if not path then return nil, why end
  local text, err = util.host().fs.read(path)
  if not text then return nil, ("config: dataset.official: %s: %s"):format(path, tostring(err)) end
  local prompts
  prompts, why = M.python_strings(text)
  if not prompts then return nil, ("config: dataset.official: %s: %s"):format(path, why) end
  for _, name in ipairs(names) do
    if type(prompts[name]) ~= "string" then
      return nil, ("config: dataset.official: %s has no %s (is it %s's %s?)"):format(path, name, bench, rel)
    end
  end
  return { prompts = prompts, prompts_path = path, prompts_hash = util.host().hash(text) }
end

return M
