-- Checks a config against lua/evalhost/schema.lua: an unknown key at any
-- depth (with the nearest known one), a wrong type (naming the expected
-- one), a value outside its choices or range. The host runs it on
-- evalhost.config before the script, so a typo stops the run before any
-- model loads. Also renders the schema as README's configuration section.
local util = require "evalhost.util"
local schema = require "evalhost.schema"

local check = {}

local MAX_REPORTED = 20   -- a config with more mistakes than this is shown in part

local ARTICLE = { string = "a string", integer = "an integer", number = "a number", boolean = "true or false",
  list = "a list", map = "a mapping", any = "any value" }

local function contains(list, x)
  for _, y in ipairs(list) do
    if y == x then return true end
  end
  return false
end

local function is_list(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n == #t
end

local function fits(v, ty)
  if ty == "any" then return true end
  if ty == "string" then return type(v) == "string" end
  if ty == "integer" then return math.type(v) == "integer" end
  if ty == "number" then return type(v) == "number" end
  if ty == "boolean" then return type(v) == "boolean" end
  if ty == "list" then return type(v) == "table" and is_list(v) end
  if ty == "map" then return type(v) == "table" and (next(v) == nil or not is_list(v)) end
  -- the host pushes a sequence's null as a light userdata
  return false
end

local function fits_any(v, spec)
  for ty in spec:gmatch("[^|]+") do
    if fits(v, ty) then return true end
  end
  return false
end

local function expected(spec)
  local words = {}
  for ty in spec:gmatch("[^|]+") do words[#words + 1] = ARTICLE[ty] or ty end
  return table.concat(words, " or ")
end

local function shown(v)
  if type(v) == "string" then return ("%q"):format(#v > 40 and v:sub(1, 40) .. "..." or v) end
  if type(v) == "table" then return is_list(v) and "a list" or "a mapping" end
  return tostring(v)
end

local function got(v)
  local t = math.type(v) or type(v)
  if t == "table" then return is_list(v) and "a list" or "a mapping" end
  if t == "float" then t = "number" end
  if t == "boolean" then return ("a boolean (%s)"):format(tostring(v)) end
  if t == "userdata" then return "null (an empty item, ~ or null)" end   -- a list's null from the host
  return ("%s (%s)"):format(ARTICLE[t] or t, shown(v))
end

-- The keys a model section of `role` may hold when its backend is `backend`
-- (nil: not known before the model opens, so any backend's). owner[k]: the
-- backends reading k in this role; other_role[k]: {role, backends} of a key
-- only the other role reads (max_tokens is a judge's).
local function model_keys(role, backend)
  local keys, owner, other_role = {}, {}, {}
  for k, e in pairs(schema.model_common) do keys[k] = e end
  for name, bkeys in pairs(schema.model_backends) do
    for k, e in pairs(bkeys) do
      if e.role == nil or e.role == role then
        owner[k] = owner[k] or {}
        owner[k][#owner[k] + 1] = name
        if backend == nil or backend == name then keys[k] = keys[k] or e end
      else
        other_role[k] = other_role[k] or { role = e.role }
        table.insert(other_role[k], name)
      end
    end
  end
  for _, list in pairs(owner) do table.sort(list) end
  for _, list in pairs(other_role) do table.sort(list) end
  return keys, owner, other_role
end

local function ends_with(s, suffix) return s:sub(-#suffix):lower() == suffix end

-- The backend model.c will pick, where the section says it plainly.
local function model_backend(role, spec)
  local params = type(spec.params) == "table" and spec.params or {}
  local function opt(k) if spec[k] ~= nil then return spec[k] end return params[k] end
  local b = opt("backend")
  if type(b) == "string" then return schema.model_backends[b] and b or nil end
  local name = opt("name") or opt("model_name") or opt("model")
  for _, n in ipairs(schema.builtin_models[role] or {}) do
    if name == n then return "builtin" end
  end
  local path = opt("path")
  if type(path) == "string" and (ends_with(path, ".pt") or ends_with(path, ".ts") or ends_with(path, ".torchscript")) then
    return "torch"
  end
  if opt("base_url") ~= nil then return "http" end
  return nil
end

------------------------------------------------------------------------
-- The walk.
------------------------------------------------------------------------

local Walk = {}
Walk.__index = Walk

function Walk:where(path)
  local line, col = self.position(path)
  if line then return ("%s:%d:%d"):format(self.name, line, col), line, col end
  -- a node without a position came from --set: name the assignment
  local dotted = table.concat(path, ".")
  for i = #self.sets, 1, -1 do
    local key = self.sets[i]:match("^([^=]*)=") or self.sets[i]
    if dotted == key or dotted:sub(1, #key + 1) == key .. "." or key:sub(1, #dotted + 1) == dotted .. "." then
      return "--set " .. self.sets[i], math.huge, i, true
    end
  end
  return self.name, math.huge, 0
end

function Walk:fail(path, fmt, ...)
  local where, line, col, from_set = self:where(path)
  self.errors[#self.errors + 1] = { text = ("%s: " .. fmt):format(where, ...), line = line, col = col,
    from_set = from_set }
end

-- "a.b[2].c": list positions in brackets, as the messages print them.
local function dotted(path, k)
  local out = ""
  local all = { table.unpack(path) }
  if k ~= nil then all[#all + 1] = k end
  for _, p in ipairs(all) do
    if math.type(p) == "integer" then out = ("%s[%d]"):format(out, p)
    else out = out == "" and tostring(p) or out .. "." .. tostring(p) end
  end
  return out
end

local function child(path, k)
  local p = { table.unpack(path) }
  p[#p + 1] = k
  return p
end

function Walk:unknown(path, k, keys, owner, other_role)
  local names = util.sorted_keys(keys)
  local near = util.host().nearest(tostring(k), names)
  local full = dotted(path, k)
  local label = #path == 0 and "unknown top-level key" or "unknown key"
  local hint
  if owner and owner[k] and not keys[k] then
    hint = ("(a key of the %s backend, not of this one)"):format(table.concat(owner[k], ", "))
  elseif other_role and other_role[k] and not owner[k] then
    local theirs = other_role[k].role
    hint = ("(%s %s key of the %s backend: the %s does not read it)"):format(theirs == "editor" and "an" or "a",
      theirs, table.concat(other_role[k], ", "), theirs == "editor" and "judge" or "editor")
  elseif near then
    hint = ("(did you mean '%s'?)"):format(dotted(path, near))
  else
    -- a misspelt key of another backend: name it and whose it is
    local far = owner and util.host().nearest(tostring(k), util.sorted_keys(owner))
    if far and not keys[far] then
      hint = ("(did you mean '%s'? a key of the %s backend, not of this one)"):format(dotted(path, far),
        table.concat(owner[far], ", "))
    else
      hint = ("(known: %s)"):format(table.concat(names, ", "))
    end
  end
  self:fail(child(path, k), "%s '%s' %s", label, full, hint)
end

-- One value against one entry { TYPE, DEFAULT, DOC, ... }.
function Walk:value(path, v, e)
  local full = dotted(path)
  if e[1] and not fits_any(v, e[1]) then
    -- YAML read 2024, true or 1e3 as a number or a boolean: quoting keeps the text
    local quote = fits_any("", e[1]) and (type(v) == "number" or type(v) == "boolean")
      and (": quote it to mean the text, \"%s\""):format(tostring(v)) or ""
    -- YAML 1.1's yes/no/on/off are text under the 1.2 core schema
    local yes = type(v) == "string" and fits_any(true, e[1]) and ({ yes = 1, no = 1, on = 1, off = 1, y = 1, n = 1 })[v:lower()]
    if yes then quote = " (YAML 1.2 reads yes/no/on/off as text: write true or false)" end
    -- 1e6 and 4.0 are floats in YAML: the integer written out is
    if math.type(v) == "float" and fits_any(1, e[1]) and v == math.floor(v) and math.abs(v) < 2^53 then
      quote = (" (YAML reads it as a float: write %d)"):format(math.tointeger(v))
    end
    return self:fail(path, "%s must be %s, got %s%s", full, expected(e[1]), got(v), quote)
  end
  if e.one_of and type(v) ~= "table" then
    local ok = false
    for _, c in ipairs(e.one_of) do ok = ok or c == v end
    if not ok then
      local names = {}
      for i, c in ipairs(e.one_of) do names[i] = tostring(c) end
      local near = type(v) == "string" and util.host().nearest(v, names)
      return self:fail(path, "%s must be one of %s, got %s%s", full, table.concat(names, ", "), shown(v),
        near and (" (did you mean '%s'?)"):format(near) or "")
    end
  end
  if type(v) == "number" then
    if e.min and v < e.min then return self:fail(path, "%s must be at least %s, got %s", full, tostring(e.min), tostring(v)) end
    if e.max and v > e.max then return self:fail(path, "%s must be at most %s, got %s", full, tostring(e.max), tostring(v)) end
  end
  if type(v) ~= "table" then return end
  if e.nonempty and next(v) == nil then
    return self:fail(path, "%s is an empty list: %s", full, e.nonempty)
  end
  if e.length and is_list(v) and #v ~= e.length then
    return self:fail(path, "%s must be a list of %d, got %d item(s)", full, e.length, #v)
  end
  if e.increasing and is_list(v) then
    for i = 2, #v do
      if type(v[i]) == "number" and type(v[i - 1]) == "number" and v[i] <= v[i - 1] then
        local t = {}
        for j, x in ipairs(v) do t[j] = tostring(x) end
        return self:fail(path, "%s must be increasing ([lo, hi] with lo < hi), got [%s]", full, table.concat(t, ", "))
      end
    end
  end
  if e.items and is_list(v) then
    -- items: a TYPE, or an entry of its own (a list of mappings with keys)
    local item = type(e.items) == "table" and e.items or nil
    for i, x in ipairs(v) do
      if item then
        self:value(child(path, i), x, item)
      elseif not fits_any(x, e.items) then
        self:fail(child(path, i), "%s[%d] must be %s, got %s", full, i, expected(e.items), got(x))
      end
    end
  end
  if e.keys and not is_list(v) then self:map(path, v, e.keys) end
  if e.values and not is_list(v) then
    for _, k in ipairs(util.sorted_keys(v)) do self:value(child(path, k), v[k], e.values) end
  end
end

function Walk:map(path, t, keys, owner, other_role)
  for _, k in ipairs(util.sorted_keys(t)) do
    local e = type(k) == "string" and keys[k] or nil
    if e == nil then
      self:unknown(path, k, keys, owner, other_role)
    elseif e.adapter and not contains(e.adapter, t.adapter) then
      -- a dataset adapter's own option: read by that adapter alone
      self:fail(child(path, k), "%s is an option of the %s adapter%s, and %s", dotted(path, k),
        table.concat(e.adapter, ", "), #e.adapter > 1 and "s" or "",
        t.adapter == nil and "dataset.adapter is not set" or ("dataset.adapter is %s"):format(tostring(t.adapter)))
    elseif e.plain and t.adapter ~= nil then
      -- a field name of evalhost's own layout: an adapter reads its benchmark's fields, so it would be ignored
      self:fail(child(path, k), "%s is read by evalhost's own dataset layout only: the %s adapter reads its "
        .. "benchmark's own fields (leave %s out)", dotted(path, k), tostring(t.adapter), dotted(path, k))
    else
      self:value(child(path, k), t[k], e)
    end
  end
end

function Walk:model(section, role, spec)
  local path = { section }
  if type(spec) ~= "table" or (next(spec) ~= nil and is_list(spec)) then
    return self:fail(path, "%s must be a mapping (backend, name, path, ...), got %s", section, got(spec))
  end
  local backend = model_backend(role, spec)
  local keys, owner, other_role = model_keys(role, backend)
  self:map(path, spec, keys, owner, other_role)
  local params = type(spec.params) == "table" and spec.params or {}
  local function opt(k) if spec[k] ~= nil then return spec[k] end return params[k] end
  if backend == "builtin" and opt("name") == nil and opt("model_name") == nil and opt("model") == nil then
    -- the backend said (no name to infer it from): without one it is "unknown builtin model ''"
    self:fail(child(path, "backend"), "%s.name is not set: the builtin backend's %s models are %s", section, role,
      table.concat(schema.builtin_models[role] or {}, ", "))
  end
  if type(spec.params) == "table" and not is_list(spec.params) then
    local inner = {}
    for k, e in pairs(keys) do if k ~= "params" then inner[k] = e end end
    self:map(child(path, "params"), spec.params, inner, owner, other_role)
  end
end

-- cfg: evalhost.config. opts: name (the config file, for messages),
-- position(path) -> line, col (nil for a key from --set), sets (the --set
-- assignments, in order). Returns true, or nil, the messages (one a line,
-- in file order) and whether the first came from --set.
function check.config(cfg, opts)
  opts = opts or {}
  local w = setmetatable({ name = opts.name or "config", position = opts.position or function() return nil end,
    sets = opts.sets or {}, errors = {} }, Walk)
  if type(cfg) ~= "table" then return nil, w.name .. ": a config must be a mapping of sections", false end
  local known = {}
  for k in pairs(schema.sections) do known[k] = true end
  for _, k in ipairs(util.sorted_keys(cfg)) do
    local s = type(k) == "string" and schema.sections[k] or nil
    if s == nil then
      w:unknown({}, k, known)
    elseif s.model then
      w:model(k, s.model, cfg[k])
    elseif not s.free then
      if type(cfg[k]) ~= "table" or (next(cfg[k]) ~= nil and is_list(cfg[k])) then
        w:fail({ k }, "%s must be a mapping, got %s", k, got(cfg[k]))
      else
        w:map({ k }, cfg[k], s.keys)
      end
    end
  end
  -- a section under both its names: one is read, the other silently not
  for _, name in ipairs(util.sorted_keys(schema.sections)) do
    local s = schema.sections[name]
    if s.model and name ~= s.model and cfg[name] ~= nil and cfg[s.model] ~= nil then
      w:fail({ name }, "%s and %s are one section (%s is the seed's name): keep one, %s is read and %s ignored",
        s.model, name, name, s.model, name)
    end
  end
  if #w.errors == 0 then return true end
  table.sort(w.errors, function(a, b)
    if a.line ~= b.line then return a.line < b.line end
    return a.col < b.col
  end)
  local lines = {}
  for i = 1, math.min(#w.errors, MAX_REPORTED) do lines[i] = w.errors[i].text end
  if #w.errors > MAX_REPORTED then lines[#lines + 1] = ("... and %d more"):format(#w.errors - MAX_REPORTED) end
  return nil, table.concat(lines, "\n"), w.errors[1].from_set == true
end

-- The host's own check, before the script: evalhost.config against the
-- schema, positions from the config file, --set assignments by name.
function check.host()
  local h = util.host()
  local path = rawget(h, "config_path")
  return check.config(h.config, {
    name = type(path) == "string" and path ~= "" and path or "config",
    position = function(keys) return h.config_position(table.unpack(keys)) end,
    sets = (h.options or {}).sets,
  })
end

------------------------------------------------------------------------
-- README's configuration section.
------------------------------------------------------------------------

local function default_text(d)
  if d == nil then return "" end
  if type(d) == "string" then return "`" .. d .. "`" end
  return "`" .. tostring(d) .. "`"
end

local function doc_text(e)
  local parts = { e[3] or "" }
  if e.one_of then
    local c = {}
    for i, x in ipairs(e.one_of) do c[i] = tostring(x) end
    parts[#parts + 1] = "(" .. table.concat(c, ", ") .. ")"
  end
  if e.min or e.max then
    parts[#parts + 1] = ("[%s..%s]"):format(e.min and tostring(e.min) or "", e.max and tostring(e.max) or "")
  end
  if e.adapter then parts[#parts + 1] = "(adapter " .. table.concat(e.adapter, ", ") .. ")" end
  return (table.concat(parts, " "):gsub("|", "\\|"))
end

-- backend: nil for a plain section, else the model table's backend column.
local function rows(out, prefix, keys, backend)
  for _, k in ipairs(util.sorted_keys(keys)) do
    local e = keys[k]
    local ty = e[1]:gsub("|", " or ")
    local cells = { ("`%s%s`"):format(prefix, k), ty, default_text(e[2]), doc_text(e) }
    if backend then table.insert(cells, 2, backend) end
    out[#out + 1] = "| " .. table.concat(cells, " | ") .. " |"
    if e.keys then rows(out, prefix .. k .. ".", e.keys, backend) end
    if e.values and e.values.keys then rows(out, prefix .. k .. ".<name>.", e.values.keys, backend) end
  end
end

local HEAD = { "| key | type | default | meaning |", "|---|---|---|---|" }
local MODEL_HEAD = { "| key | backend | type | default | meaning |", "|---|---|---|---|---|" }

-- The Markdown text between README's config-schema markers.
function check.markdown()
  local out = { "<!-- generated from lua/evalhost/schema.lua by `make config-doc`; edit the schema, not this -->", "" }
  for _, name in ipairs(schema.order) do
    local s = schema.sections[name]
    if s.model and name ~= s.model then
      out[#out + 1] = ("**`%s`** — %s: the same keys as `%s`."):format(name, s.doc, s.model)
      out[#out + 1] = ""
    elseif s.model then
      out[#out + 1] = ("**`%s`** — %s. Keys may also sit under `params:`."):format(name, s.doc)
      out[#out + 1] = ""
      for _, l in ipairs(MODEL_HEAD) do out[#out + 1] = l end
      rows(out, name .. ".", schema.model_common, "all")
      for _, b in ipairs(util.sorted_keys(schema.model_backends)) do
        local keys = {}
        for k, e in pairs(schema.model_backends[b]) do
          if e.role == nil or e.role == s.model then keys[k] = e end
        end
        rows(out, name .. ".", keys, b)
      end
      out[#out + 1] = ""
    elseif s.free then
      out[#out + 1] = ("**`%s`** — %s."):format(name, s.doc)
      out[#out + 1] = ""
    else
      out[#out + 1] = ("**`%s`** — %s."):format(name, s.doc)
      out[#out + 1] = ""
      for _, l in ipairs(HEAD) do out[#out + 1] = l end
      rows(out, name .. ".", s.keys)
      out[#out + 1] = ""
    end
  end
  return table.concat(out, "\n")
end

return check
