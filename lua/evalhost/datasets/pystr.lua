-- evalhost.datasets.pystr — the parts of Python's str, re and json that
-- the benchmarks' official reply parsers lean on (issue 25), so that a
-- reply reads here as it reads there: code points, re's \w \s \d and its
-- IGNORECASE folds on str patterns, str.strip / splitlines / isdigit,
-- int(str) and json.loads. The classes come from pystr_tables.lua
-- (tools/protocols/make_pystr_tables.py, from Python's own re).
local T = require "evalhost.datasets.pystr_tables"
local util = require "evalhost.util"

local M = {}

-- The code point at byte i and the byte after it (a stray byte stands for itself).
function M.cp_at(s, i)
  local c = s:byte(i)
  if not c then return nil, i end
  local n = c < 0x80 and 1 or c >= 0xF0 and 4 or c >= 0xE0 and 3 or c >= 0xC0 and 2 or 1
  if n == 1 then return c, i + 1 end
  local cp = c & (0x3F >> (n - 1))
  for k = 1, n - 1 do cp = (cp << 6) | ((s:byte(i + k) or 0x80) & 0x3F) end
  return cp, i + n
end

-- The code point ending just before byte i (nil at the start).
function M.cp_before(s, i)
  local j = i - 1
  while j > 1 and (s:byte(j) or 0) & 0xC0 == 0x80 do j = j - 1 end
  if j < 1 then return nil end
  return (M.cp_at(s, j))
end

-- The run of list (flat first, last pairs, sorted) holding cp: its first code point.
local function run_of(list, cp)
  if cp == nil then return nil end
  local lo, hi = 1, #list // 2
  while lo <= hi do
    local mid = (lo + hi) // 2
    local a, b = list[2 * mid - 1], list[2 * mid]
    if cp < a then hi = mid - 1 elseif cp > b then lo = mid + 1 else return a end
  end
  return nil
end

function M.is_word(cp) return run_of(T.word, cp) ~= nil end
function M.is_space(cp) return run_of(T.space, cp) ~= nil end
-- \d's value of cp (every digit run starts at a zero), or nil.
function M.digit(cp)
  local a = run_of(T.digit, cp)
  return a and (cp - a) % 10 or nil
end

-- Past \s* from byte i.
function M.skip_spaces(s, i)
  while true do
    local cp, nx = M.cp_at(s, i)
    if not M.is_space(cp) then return i end
    i = nx
  end
end

-- The same classes in the regex package (GEdit's viescore does
-- "import regex as re"): newer Unicode, and \w without superscripts.
M.regex = {
  is_word = function(cp) return run_of(T.regex_word, cp) ~= nil end,
  is_digit = function(cp) return run_of(T.regex_digit, cp) ~= nil end,
  fold = T.regex_fold,
}

-- The byte after word (ASCII, lower case) matched at byte i of s under
-- re.IGNORECASE (fold: regex's folds instead), or nil.
function M.match_ci(s, i, word, fold)
  fold = fold or T.fold
  for k = 1, #word do
    local cp, nx = M.cp_at(s, i)
    if cp == nil then return nil end
    local w = word:byte(k)
    local folded = cp < 0x80 and (cp >= 65 and cp <= 90 and cp + 32 or cp) or (fold[cp] or ""):byte()
    if folded ~= w then return nil end
    i = nx
  end
  return i
end

-- The first match of word (ASCII, lower case) at or after byte init under
-- re.IGNORECASE: its first byte and the byte after it.
function M.find_ci(s, word, init)
  local i = init or 1
  while i <= #s do
    local j = M.match_ci(s, i, word)
    if j then return i, j end
    local _, nx = M.cp_at(s, i)
    i = nx
  end
  return nil
end

-- str.strip(): s without its leading and trailing whitespace.
function M.strip(s)
  local a, b = M.skip_spaces(s, 1), #s + 1
  while b > a do
    local j = b - 1
    while j > a and (s:byte(j) or 0) & 0xC0 == 0x80 do j = j - 1 end
    if not M.is_space((M.cp_at(s, j))) then break end
    b = j
  end
  return s:sub(a, b - 1)
end

-- str.splitlines(): the lines of s (\r\n one break; no empty last line).
function M.splitlines(s)
  local out, start, i = {}, 1, 1
  while i <= #s do
    local cp, nx = M.cp_at(s, i)
    if T.lines[cp] then
      out[#out + 1] = s:sub(start, i - 1)
      if cp == 13 and s:byte(nx) == 10 then nx = nx + 1 end
      start = nx
    end
    i = nx
  end
  if start <= #s then out[#out + 1] = s:sub(start) end
  return out
end

-- str.isdigit() (true for superscripts too, which int() refuses).
function M.isdigit(s)
  if s == "" then return false end
  local i = 1
  while i <= #s do
    local cp, nx = M.cp_at(s, i)
    if not (M.digit(cp) or run_of(T.isdigit, cp)) then return false end
    i = nx
  end
  return true
end

-- int(s) for a str: surrounding whitespace, a sign, decimal digits of any
-- script with single underscores between them; nil where int() raises.
function M.int(s)
  s = M.strip(s)
  local i, sign = 1, 1
  local c = s:sub(1, 1)
  if c == "+" or c == "-" then sign, i = c == "-" and -1 or 1, 2 end
  local v, n, under = 0, 0, false
  while i <= #s do
    local cp, nx = M.cp_at(s, i)
    local d = M.digit(cp)
    if d then
      v, n, under = v * 10 + d, n + 1, false
    elseif cp == 95 and n > 0 and not under then
      under = true
    else
      return nil
    end
    i = nx
  end
  if n == 0 or under then return nil end
  return sign * v
end

------------------------------------------------------------------------
-- json.loads (the C scanner, strict): ASCII whitespace and digits, no
-- control character in a string, NaN / Infinity / -Infinity read, a
-- repeated key's last value kept, nothing after the value. Objects are
-- tables, arrays tables with metatable M.ARRAY, null the host's json.null.
------------------------------------------------------------------------

M.ARRAY = {}

function M.is_array(v) return type(v) == "table" and getmetatable(v) == M.ARRAY end

local WS = { [32] = true, [9] = true, [10] = true, [13] = true }
local ESC = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }
local CONST = { { "NaN", 0 / 0 }, { "Infinity", math.huge }, { "-Infinity", -math.huge }, { "true", true },
  { "false", false } }

local function ws(s, i)
  while WS[s:byte(i)] do i = i + 1 end
  return i
end

local value

local function string_at(s, i)   -- s:byte(i) is the opening quote
  local out, j = {}, i + 1
  while true do
    local b = s:byte(j)
    if b == nil or b < 32 then return nil end
    if b == 34 then return table.concat(out), j + 1 end
    if b == 92 then
      local e = s:sub(j + 1, j + 1)
      if e == "u" then
        local cp = tonumber(s:sub(j + 2, j + 5):match("^%x%x%x%x$") or "", 16)
        if not cp then return nil end
        j = j + 6
        if cp >= 0xD800 and cp <= 0xDBFF and s:sub(j, j + 1) == "\\u" then
          local lo = tonumber(s:sub(j + 2, j + 5):match("^%x%x%x%x$") or "", 16)
          if lo and lo >= 0xDC00 and lo <= 0xDFFF then
            cp, j = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00), j + 6
          end
        end
        out[#out + 1] = utf8.char(cp)
      elseif ESC[e] then
        out[#out + 1], j = ESC[e], j + 2
      else
        return nil
      end
    else
      local k = s:find('["\\\0-\31]', j)
      if not k then return nil end
      out[#out + 1], j = s:sub(j, k - 1), k
    end
  end
end

local function number_at(s, i)
  local int = s:match("^%-?0", i) or s:match("^%-?[1-9]%d*", i)
  if not int then return nil end
  local j = i + #int
  local frac = s:match("^%.%d+", j) or ""
  j = j + #frac
  local exp = s:match("^[eE][-+]?%d+", j) or ""
  j = j + #exp
  if frac == "" and exp == "" then return math.tointeger(tonumber(int)) or tonumber(int .. ".0"), j end
  return tonumber(int .. frac .. exp), j
end

local function container(s, i, close, item)
  local t = close == "]" and setmetatable({}, M.ARRAY) or {}
  i = ws(s, i + 1)
  if s:sub(i, i) == close then return t, i + 1 end
  while true do
    local ni = item(t, i)
    if not ni then return nil end
    i = ws(s, ni)
    local c = s:sub(i, i)
    if c == close then return t, i + 1 end
    if c ~= "," then return nil end
    i = ws(s, i + 1)
  end
end

function value(s, i)
  local c = s:sub(i, i)
  if c == '"' then return string_at(s, i) end
  if c == "{" then
    return container(s, i, "}", function(t, j)
      if s:sub(j, j) ~= '"' then return nil end
      local k, nj = string_at(s, j)
      if not k then return nil end
      nj = ws(s, nj)
      if s:sub(nj, nj) ~= ":" then return nil end
      local v, after = value(s, ws(s, nj + 1))
      if after == nil then return nil end
      t[k] = v
      return after
    end)
  end
  if c == "[" then
    return container(s, i, "]", function(t, j)
      local v, after = value(s, j)
      if after == nil then return nil end
      t[#t + 1] = v
      return after
    end)
  end
  if s:sub(i, i + 3) == "null" then return util.host().json.null, i + 4 end
  for _, k in ipairs(CONST) do
    if s:sub(i, i + #k[1] - 1) == k[1] then return k[2], i + #k[1] end
  end
  return number_at(s, i)
end

-- json.loads(s): the value, or nil where it raises.
function M.json_loads(s)
  if type(s) ~= "string" or s:sub(1, 3) == "\239\187\191" then return nil end
  local v, j = value(s, ws(s, 1))
  if j == nil or ws(s, j) <= #s then return nil end
  return v
end

return M
