-- Judge prompts per category: templates are data (YAML), filled by plain
-- substitution of {{instruction}}, {{description}}, {{category}}, {{id}}.
--
-- Where templates come from, most specific first, per field (system/user):
--   1. config `prompts.templates.<category>`  (inline, any language)
--   2. the prompt file, section `<language>.<category>`
--   3. config `prompts.templates.default`
--   4. the prompt file, section `<language>.default`
-- The prompt file is `prompts.file` when set (a path relative to the working
-- directory, else to the config file's folder), otherwise config/prompts.yaml
-- next to the library. The language is `prompts.language`, else the file's
-- `language`, else zh.
local util = require "evalhost.util"

local prompts = {}

prompts.PLACEHOLDERS = { category = true, description = true, id = true, instruction = true }
local KNOWN_LIST = "category, description, id, instruction"
local CONFIG_KEYS = { language = true, file = true, templates = true }
local FIELDS = { "system", "user" }

-- config/prompts.yaml beside the library folder: <root>/<lib>/evalhost/prompts.lua
-- gives <root>/config/prompts.yaml (the source tree and the installed share/evalhost).
function prompts.default_file()
  local here = package.searchpath("evalhost.prompts", package.path) or ""
  local libdir = here:match("^(.*)/evalhost/prompts%.lua$") or "."
  return util.join(util.dirname(libdir), "config/prompts.yaml")
end

-- nil when the template is fine, else the message naming it.
local function check_template(text, name)
  if type(text) ~= "string" then
    return ("prompts: template %s must be a string, got %s"):format(name, type(text))
  end
  for key in text:gmatch("{{%s*(.-)%s*}}") do
    if not prompts.PLACEHOLDERS[key] then
      return ("prompts: template %s names unknown placeholder {{%s}} (known: %s)"):format(name, key, KNOWN_LIST)
    end
  end
  return nil
end

local function check_section(section, where)
  if type(section) ~= "table" then
    return ("prompts: %s must be a mapping of category to {system, user}"):format(where)
  end
  for _, cat in ipairs(util.sorted_keys(section)) do
    local entry = section[cat]
    if type(entry) ~= "table" then
      return ("prompts: %s.%s must be a mapping with system and user"):format(where, cat)
    end
    for _, k in ipairs(util.sorted_keys(entry)) do
      if k ~= "system" and k ~= "user" then
        return ("prompts: %s.%s has unknown key %q (system or user)"):format(where, cat, tostring(k))
      end
      local err = check_template(entry[k], ("%s.%s (%s)"):format(cat, k, where))
      if err then return err end
    end
  end
  return nil
end

local Prompts = {}
Prompts.__index = Prompts

-- Returns a Prompts object, or nil and a message (a config problem).
function prompts.load(cfg)
  cfg = cfg or {}
  if type(cfg) ~= "table" then return nil, "prompts: must be a mapping" end
  for _, k in ipairs(util.sorted_keys(cfg)) do
    if not CONFIG_KEYS[k] then
      return nil, ("prompts: unknown key %q (known: file, language, templates)"):format(tostring(k))
    end
  end
  local h = util.host()
  local file, missing
  if cfg.file then file, missing = util.find_config_path(cfg.file, "prompts.file") else file = prompts.default_file() end
  if not (h.yaml and h.yaml.load) then return nil, "prompts: this host has no evalhost.yaml.load" end
  local doc, err = h.yaml.load(file)
  if doc == nil then return nil, missing or ("prompts: cannot read %s: %s"):format(file, tostring(err)) end
  if type(doc) ~= "table" then return nil, ("prompts: %s must be a mapping"):format(file) end

  local language = cfg.language or doc.language or "zh"
  if type(language) ~= "string" then return nil, "prompts: language must be a string" end
  local section = doc[language]
  if section == nil then
    local langs = {}
    for _, k in ipairs(util.sorted_keys(doc)) do
      if type(doc[k]) == "table" then langs[#langs + 1] = k end
    end
    return nil, ("prompts: %s has no language %q (has: %s)"):format(file, language, table.concat(langs, ", "))
  end
  err = check_section(section, ("%s, %s"):format(language, file))
  if err then return nil, err end
  local inline = cfg.templates or {}
  err = check_section(inline, "config prompts.templates")
  if err then return nil, err end

  return setmetatable({ language = language, file = file, section = section, inline = inline }, Prompts)
end

-- The raw template for a category and field, and where it came from.
function Prompts:template(category, field)
  local layers = {
    { self.inline[category], "config prompts.templates." .. category },
    { self.section[category], ("%s.%s in %s"):format(self.language, category, self.file) },
    { self.inline.default, "config prompts.templates.default" },
    { self.section.default, ("%s.default in %s"):format(self.language, self.file) },
  }
  for _, layer in ipairs(layers) do
    if layer[1] and layer[1][field] then return layer[1][field], layer[2] end
  end
  return nil
end

local function fill(text, values)
  return (text:gsub("{{%s*(.-)%s*}}", function(key) return values[key] end))
end

-- system, user prompts for one pair; nil and a message when a template is
-- missing for this category.
function Prompts:render(category, pair)
  local values = {
    category = tostring(category),
    id = tostring(pair.id or ""),
    instruction = tostring(pair.instruction or ""),
    description = tostring(pair.description or ""),
  }
  local out = {}
  for i, field in ipairs(FIELDS) do
    local text = self:template(category, field)
    if text == nil then
      return nil, ("prompts: no %s template for category %s (language %s, %s) and no default")
        :format(field, category, self.language, self.file)
    end
    out[i] = fill(text, values)
  end
  return out[1], out[2]
end

-- Hashes of the templates a category uses, for the report (judge identity).
function Prompts:describe(categories, hash)
  local t = { language = self.language, file = self.file, templates = {} }
  for _, c in ipairs(categories) do
    local s, u = self:template(c, "system"), self:template(c, "user")
    t.templates[c] = { system = s and hash(s) or nil, user = u and hash(u) or nil }
  end
  return t
end

return prompts
