-- Small helpers the Lua library shares: access to the host table, paths,
-- escaping and a canonical (sorted-key) serialisation for hashing.
local util = {}

-- The host preloads `evalhost`; specs run under plain lua5.4 and put a fake in
-- _G before calling in, so look it up at call time, never at require time.
function util.host()
  local h = rawget(_G, "evalhost")
  if h == nil then h = require "evalhost" end
  return h
end

function util.join(...)
  local parts = {}
  for i = 1, select("#", ...) do
    local p = select(i, ...)
    if p ~= nil and p ~= "" then
      if #parts > 0 then p = p:gsub("^/+", "") end
      if i < select("#", ...) then p = p:gsub("/+$", "") end
      parts[#parts + 1] = p
    end
  end
  return table.concat(parts, "/")
end

function util.dirname(path)
  local d = path:match("^(.*)/[^/]*$")
  if d == nil then return "." end
  if d == "" then return "/" end
  return d
end

function util.is_absolute(path) return path:sub(1, 1) == "/" end

-- A category or id becomes a path component: refuse anything that could
-- leave the output folder or hide a file, whatever the dataset reader let by.
function util.safe_component(s)
  if type(s) ~= "string" or s == "" then return nil, "empty name" end
  if s:find("%z") then return nil, ("name %s contains a NUL byte"):format(util.shown(s)) end
  if s:find("[\1-\31\127]") then return nil, ("name %s contains a control character"):format(util.shown(s)) end
  if s:find("[/\\]") then return nil, ("name %s contains a path separator"):format(util.shown(s)) end
  if s:sub(1, 1) == "." then return nil, ("name %s starts with a dot"):format(util.shown(s)) end
  if not utf8.len(s) then return nil, ("name %s is not valid UTF-8"):format(util.shown(s)) end
  return s
end

-- A name as messages show it: quoted, control bytes escaped, at most 80 bytes.
function util.shown(s)
  s = tostring(s)
  local cut = #s > 80
  if cut then s = s:sub(1, 80) end
  s = s:gsub("[%z\1-\31\127\\\"]", function(c) return ("\\x%02x"):format(c:byte()) end)
  return '"' .. s .. (cut and '..."' or '"')
end

-- The longest file-name stem taken as it is from an id or category: with
-- ".png" and the writer's ".tmp.<pid>" it stays well under the 255-byte limit.
util.MAX_STEM = 160

-- The file-name stem of a safe id or category: itself when short, else a
-- readable prefix (cut on a UTF-8 boundary) and 16 hex digits of its hash, so
-- that two long ids sharing a prefix still get two files.
function util.file_stem(s)
  if #s <= util.MAX_STEM then return s end
  local keep = util.MAX_STEM - 17
  while keep > 0 and (s:byte(keep + 1) or 0) & 0xC0 == 0x80 do keep = keep - 1 end
  return s:sub(1, keep) .. "~" .. util.host().hash(s):sub(1, 16)
end

local function by_type_then_value(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return ta < tb end
  return a < b
end

-- The keys of t, sorted by less (default: by type name, then by value).
function util.sorted_keys(t, less)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, less or by_type_then_value)
  return keys
end

local function is_array(t)
  local n = #t
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n and (n > 0 or getmetatable(t) ~= nil)
end

-- Deterministic text for a value (sorted keys), so that hashing a config
-- does not depend on Lua's table iteration order.
function util.canonical(v)
  local out = {}
  local function emit(x)
    local tx = type(x)
    if tx == "table" then
      if is_array(x) then
        out[#out + 1] = "["
        for i = 1, #x do
          if i > 1 then out[#out + 1] = "," end
          emit(x[i])
        end
        out[#out + 1] = "]"
      else
        out[#out + 1] = "{"
        for i, k in ipairs(util.sorted_keys(x)) do
          if i > 1 then out[#out + 1] = "," end
          out[#out + 1] = ("%q:"):format(tostring(k))
          emit(x[k])
        end
        out[#out + 1] = "}"
      end
    elseif tx == "string" then
      out[#out + 1] = ("%q"):format(x)
    elseif tx == "number" and math.type(x) == "float" then
      out[#out + 1] = ("%.17g"):format(x)
    else
      out[#out + 1] = tostring(x)
    end
  end
  emit(v)
  return table.concat(out)
end

local html_escapes = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }
function util.html(s)
  if s == nil then return "" end
  return (tostring(s):gsub("[&<>\"']", html_escapes))
end

-- One Markdown table cell: pipes and line breaks would break the row.
function util.md_cell(s)
  if s == nil then return "" end
  return (tostring(s):gsub("\\", "\\\\"):gsub("|", "\\|"):gsub("\r?\n", " "))
end

-- Format a number for people: fixed decimals, "—" for a missing value.
function util.fmt(x, decimals)
  if x == nil or type(x) ~= "number" or x ~= x then return "—" end
  return ("%." .. (decimals or 2) .. "f"):format(x)
end

-- A relative path a config names: from the current folder, else the
-- config's folder, else (when data_root) evalhost's data root (the checkout
-- or <prefix>/share/evalhost, which holds examples/). A leading ~/ is HOME's:
-- a config file never passes through a shell. When none exists: the path as
-- given and a message naming each absolute path tried, once, with the
-- folders it was reached from.
function util.find_config_path(path, key, data_root)
  local h = util.host()
  local home = os.getenv("HOME")
  if (path == "~" or path:sub(1, 2) == "~/") and home and home ~= "" then path = home .. path:sub(2) end
  if util.is_absolute(path) or h.fs.exists(path) then return path end
  local cwd = h.fs.cwd and h.fs.cwd() or "."
  local function abs(p) return util.is_absolute(p) and p or util.join(cwd, p) end
  local tried = { { abs(path), "the current folder " .. cwd } }
  local cfg = rawget(h, "config_path")
  if type(cfg) == "string" and cfg ~= "" then
    local dir = util.dirname(cfg)
    dir = dir == "." and cwd or abs(dir)
    tried[#tried + 1] = { util.join(dir, path), "the config's folder " .. dir }
  end
  local root = data_root and rawget(h, "data_dir")
  if type(root) == "string" and root ~= "" then tried[#tried + 1] = { util.join(root, path), "evalhost's folder " .. root } end
  for i = 2, #tried do
    if h.fs.exists(tried[i][1]) then return tried[i][1] end
  end
  local said, at = {}, {}
  for _, t in ipairs(tried) do
    if at[t[1]] then
      said[at[t[1]]] = said[at[t[1]]]:sub(1, -2) .. " and " .. t[2] .. ")"
    else
      said[#said + 1] = ("%s (from %s)"):format(t[1], t[2])
      at[t[1]] = #said
    end
  end
  return path, ("config: %s: %s does not exist; tried %s"):format(key, path, table.concat(said, ", "))
end

return util
