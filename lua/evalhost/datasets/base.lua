-- What every benchmark adapter shares: a list of pair specs becomes an
-- object with evalhost.Dataset's methods (categories, count, pairs, pair,
-- hash, path, close, #), so the schedule runs another benchmark's layout
-- unchanged (config: dataset.adapter: imgedit|kris|rise|gedit).
--
-- A spec is {category=, id=, instruction=, description=, image_path=
-- (absolute) | image=function() -> Image, fields={...}}. Pairs come out as
-- tables like the C dataset's: {id, category, index, instruction,
-- description, fields, error} with pair:image() (a new Image each call;
-- the caller closes it) and pair:field(name). Bad data (no instruction, no
-- image, an id used twice in a category) sets pair.error, as the C reader
-- does, so the schedule records the pair as failed without a model call.
local util = require "evalhost.util"

local base = {}

local Pair = {}

-- `pair.image` is the decoded Image too (SPEC §3), as with the C dataset:
-- an Image called as a method returns itself, so `pair:image()` keeps
-- working; a bad image gives a function that returns nil and the message.
function Pair.__index(self, k)
  if k == "image" then
    local img, err = Pair.decode(self)
    if img then return img end
    return function() return nil, err end
  end
  return Pair[k]
end

function Pair:decode()
  if self.load then return self.load() end
  local h = util.host()
  if type(self.image_path) ~= "string" then return nil, ("%s/%s: image: no image file"):format(self.category, self.id) end
  local img, err = h.image.load(self.image_path)
  if not img then return nil, ("%s/%s: image: %s"):format(self.category, tostring(self.id), tostring(err)) end
  return img
end

-- pair:image_source() as the C dataset's: "path", the image file; nil when
-- the adapter decodes the picture itself (or has none).
function Pair:image_source()
  if self.load == nil and type(self.image_path) == "string" then return "path", self.image_path end
  return nil
end

function Pair:field(name)
  return self.fields and self.fields[name]
end

local Dataset = {}
Dataset.__index = Dataset
Dataset.__len = function(d) return d.total end

local function check(d)
  if d.closed then error("attempt to use a closed Dataset", 3) end
  return d
end

function Dataset:categories()
  check(self)
  return table.move(self.order, 1, #self.order, 1, {})
end

function Dataset:count(cat)
  check(self)
  local list = self.by_cat[cat]
  if not list then error(("unknown category %q in %s (check with ds:count first)"):format(tostring(cat), self.file), 2) end
  return #list
end

function Dataset:pairs(cat)
  check(self)
  local list = self.by_cat[cat]
  if not list then error(("unknown category %q in %s"):format(tostring(cat), self.file), 2) end
  local i = 0
  return function()
    i = i + 1
    if list[i] then return i, list[i] end
    return nil
  end
end

function Dataset:pair(cat, i)
  check(self)
  local list = self.by_cat[cat]
  return list and list[i] or nil
end

function Dataset:path() return check(self).file end
function Dataset:hash() return check(self).digest end
function Dataset:close() self.closed = true end

-- specs: array in file order; file: what :path() names; digest: the
-- content hash (run keys); adapter: its name.
function base.new(specs, file, digest, adapter)
  local d = setmetatable({ order = {}, by_cat = {}, total = 0, file = file, digest = digest, adapter = adapter }, Dataset)
  local seen = {}
  for _, s in ipairs(specs) do
    local cat = tostring(s.category or "default")
    if not d.by_cat[cat] then
      d.by_cat[cat], seen[cat] = {}, {}
      d.order[#d.order + 1] = cat
    end
    local list = d.by_cat[cat]
    local p = setmetatable({
      id = s.id ~= nil and tostring(s.id) or nil, category = cat, index = #list + 1,
      instruction = s.instruction, description = s.description, fields = s.fields or {},
      image_path = s.image_path, load = s.image, error = s.error,
    }, Pair)
    local where = ("%s/%s (#%d) in %s"):format(cat, tostring(p.id), p.index, file)
    if p.error == nil then
      if p.id == nil or p.id == "" then
        p.error = ("%s: no id"):format(where)
      elseif seen[cat][p.id] then
        p.error = ("%s: duplicate id (first at #%d)"):format(where, seen[cat][p.id])
      elseif type(p.instruction) ~= "string" or p.instruction == "" then
        p.error = ("%s: no instruction"):format(where)
      elseif p.image_path == nil and p.load == nil then
        p.error = ("%s: no image"):format(where)
      end
    end
    if p.id and not seen[cat][p.id] then seen[cat][p.id] = p.index end
    list[#list + 1] = p
    d.total = d.total + 1
  end
  return d
end

-- 1-based line and column of byte offset off in text, in characters (UTF-8
-- continuation bytes and a leading BOM not counted), as the datasets' own
-- reader (host/core/jscan.c) gives them: what an editor jumps to.
function base.line_col(text, off)
  local line, col = 1, 1
  local start = text:sub(1, 3) == "\239\187\191" and off >= 3 and 4 or 1
  for i = start, math.min(off, #text) do
    local b = text:byte(i)
    if b == 10 then line, col = line + 1, 1
    elseif b < 0x80 or b >= 0xC0 then col = col + 1 end
  end
  return line, col
end

-- Whether byte i of text sits inside an object (not an array), outside strings.
local function in_object(text, i)
  local stack, in_str, esc = {}, false, false
  for j = 1, i do
    local c = text:sub(j, j)
    if in_str then
      if esc then esc = false elseif c == "\\" then esc = true elseif c == '"' then in_str = false end
    elseif c == '"' then in_str = true
    elseif c == "{" or c == "[" then stack[#stack + 1] = c
    elseif c == "}" or c == "]" then stack[#stack] = nil end
  end
  return stack[#stack] == "{"
end

-- The byte offset of the mistake from cJSON's error offset: cJSON points one
-- past a bad object key (`{"a": 1,}` at the end, `,,` past the second comma).
local function json_error_offset(text, off)
  local c = text:sub(off, off)
  if off < 1 or c:match("^%s?$") then return off end
  local before = text:sub(1, off - 1):match("()[^%s]%s*$")
  local p = before and text:sub(before, before)
  if (p == "," or p == "{") and in_object(text, before) then return off - 1 end
  return off
end

-- JSON file -> value, its bytes' hash; or nil and "adapter: file:line:col: why".
function base.read_json(name, path)
  local h = util.host()
  local text, err = h.fs.read(path)
  if not text then return nil, ("%s: %s: %s"):format(name, path, tostring(err)) end
  -- a BOM (Windows editors write one) is no JSON, and no content either
  local body = text:sub(1, 3) == "\239\187\191" and text:sub(4) or text
  local v
  v, err = h.json.decode(body)
  if v == nil then
    local off = tonumber(tostring(err):match("at offset (%d+)"))
    if off then
      local line, col = base.line_col(text, json_error_offset(body, off) + #text - #body)
      return nil, ("%s: %s:%d:%d: not valid JSON"):format(name, path, line, col)
    end
    return nil, ("%s: %s: not JSON: %s"):format(name, path, tostring(err))
  end
  return v, h.hash(text)
end

-- A path named by the benchmark, resolved under root; nil when it would
-- leave root (absolute, "..").
function base.under(root, rel)
  if type(rel) ~= "string" or rel == "" or util.is_absolute(rel) then return nil end
  for part in rel:gmatch("[^/\\]+") do
    if part == ".." then return nil end
  end
  return util.join(root, rel)
end

-- Keys of a JSON object in numeric order when they are numbers ("2" < "10").
local function numbers_first(a, b)
  local na, nb = tonumber(a), tonumber(b)
  if na and nb and na ~= nb then return na < nb end
  if (na == nil) ~= (nb == nil) then return na ~= nil end
  return tostring(a) < tostring(b)
end

function base.sorted_keys(t)
  return util.sorted_keys(t, numbers_first)
end

-- The mean of the numbers among its arguments, nils skipped (nil when none).
function base.mean(...)
  local s, n = 0.0, 0
  for i = 1, select("#", ...) do
    local x = select(i, ...)
    if type(x) == "number" then s, n = s + x, n + 1 end
  end
  return n > 0 and s / n or nil
end

-- Every integer after "Final Score(s):", or the numbers of a JSON
-- {"score": [a, b, ...]}: the shapes the benchmarks' judge prompts ask for.
function base.parse_scores(text)
  if type(text) ~= "string" then return nil end
  local list = text:match('"score"%s*:%s*%[([^%]]*)%]')
  if not list then list = text:lower():match("final scores?%**%s*:?%s*([%d%s,%*]+)") end
  if not list then return nil end
  local out = {}
  for n in list:gmatch("%-?%d+%.?%d*") do out[#out + 1] = tonumber(n) end
  return #out > 0 and out or nil
end

-- The numbers after a "<label>:" line ("SC: 8, 6"), or nil.
function base.labelled(text, label)
  if type(text) ~= "string" then return nil end
  local list
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    local l = line:gsub("[%*`]", "")
    local got = l:match("^%s*" .. label .. "%s*[:：]%s*(.+)$")
    if got then list = got end   -- the last such line wins, like the score parser
  end
  if not list then return nil end
  local out = {}
  for n in list:gmatch("%d+%.?%d*") do out[#out + 1] = tonumber(n) end
  return #out > 0 and out or nil
end

-- Ratings in [lo, hi]: nil and why when one is missing or out of range.
function base.check_range(nums, want, lo, hi)
  if type(nums) ~= "table" or #nums < want then
    return nil, ("expected %d ratings, found %d"):format(want, type(nums) == "table" and #nums or 0)
  end
  for i = 1, want do
    if nums[i] < lo or nums[i] > hi then return nil, ("rating %s is outside %s..%s"):format(nums[i], lo, hi) end
  end
  return true
end

-- "Final Scores: a, b, ..." -> {[names[i]] = rating i} with every rating
-- in [lo, hi]; or nil and "tag: why".
function base.ratings(text, names, lo, hi, tag)
  local nums = base.parse_scores(text)
  local ok, why = base.check_range(nums, #names, lo, hi)
  if not ok then return nil, tag .. ": " .. why end
  local dims = {}
  for i, k in ipairs(names) do dims[k] = nums[i] end
  return dims
end

-- Mean of each named dimension per category and overall (rows carry dims).
function base.dimension_means(rows, names)
  local per, order, all = {}, {}, {}
  for _, r in ipairs(rows) do
    if type(r.dims) == "table" then
      if not per[r.category] then per[r.category], order[#order + 1] = {}, r.category end
      for _, k in ipairs(names) do
        local v = r.dims[k]
        if type(v) == "number" then
          per[r.category][k] = per[r.category][k] or {}
          table.insert(per[r.category][k], v)
          all[k] = all[k] or {}
          table.insert(all[k], v)
        end
      end
    end
  end
  local out = { categories = {}, overall = {} }
  for _, c in ipairs(order) do
    out.categories[c] = {}
    for _, k in ipairs(names) do
      out.categories[c][k] = per[c][k] and base.mean(table.unpack(per[c][k])) or nil
    end
  end
  for _, k in ipairs(names) do out.overall[k] = all[k] and base.mean(table.unpack(all[k])) or nil end
  return out
end

return base
