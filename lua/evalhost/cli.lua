-- `evalhost list`: the scripts and configs (first comment line of each), the
-- backends with their builtin model names, and the dataset adapters, from the data
-- root the binary found (the checkout or <prefix>/share/evalhost).
local util = require "evalhost.util"
local schema = require "evalhost.schema"

local cli = {}

local BACKENDS = {
  { "builtin", "CPU, always: editor identity, imageops; judge metrics" },
  { "torch", "TorchScript modules (path: model.pt)", torch = true },
  { "http", "OpenAI-compatible servers (base_url:, model:)", http = true },
  { "native", "Qwen-Image-Edit editor, Qwen3-VL judge from safetensors", torch = true },
}

local WIDTH = 110   -- a summary's characters at most, unless its first line is longer

-- The first sentence of a file's first comment paragraph ("--" for Lua, "#"
-- for YAML), without the markers: its first line, continued to the
-- sentence's end (a first line alone stops mid-sentence), cut at a word.
local function summary(path, marker)
  local f = io.open(path, "r")
  if not f then return "" end
  local m = (marker or "--"):gsub("%p", "%%%0")
  local parts = {}
  for line in f:lines() do
    local c = line:match("^" .. m .. "+%s*(.-)%s*$")
    if c == nil or (c == "" and #parts > 0) then
      if #parts > 0 or line:match("%S") then break end
    elseif c ~= "" then
      parts[#parts + 1] = c
    end
  end
  f:close()
  if #parts == 0 then return "" end
  local text = table.concat(parts, " ")
  local stop = text:find("%.%s") or text:find("%.$")
  if stop then text = text:sub(1, stop) end
  local width = math.max(WIDTH, #parts[1])
  if #text > width then
    local cut = text:sub(1, width):match("^(.*%S)%s") or text:sub(1, width)
    text = cut .. " ..."
  end
  return text
end

local function lua_files(dir)   -- sorted stems of dir's *.lua
  local names = util.host().fs.list(dir) or {}
  local out = {}
  for _, n in ipairs(names) do
    local stem = n:match("^(.+)%.lua$")
    if stem then out[#out + 1] = stem end
  end
  table.sort(out)
  return out
end

function cli.list(root)
  local h = util.host()
  local out = {}
  local scripts = util.join(root, "scripts")
  out[#out + 1] = ("scripts (%s; run one by name: evalhost two_stage config.yaml):"):format(scripts)
  for _, s in ipairs(lua_files(scripts)) do
    out[#out + 1] = ("  %-16s %s"):format(s, summary(util.join(scripts, s .. ".lua")))
  end
  out[#out + 1] = ""
  local configs = util.join(root, "config")
  out[#out + 1] = ("configs (%s):"):format(configs)
  for _, n in ipairs(h.fs.list(configs) or {}) do
    if n:match("%.ya?ml$") then out[#out + 1] = ("  %-16s %s"):format(n, summary(util.join(configs, n), "#")) end
  end
  out[#out + 1] = ""
  out[#out + 1] = "backends (editor:/judge: backend):"
  for _, b in ipairs(BACKENDS) do
    local f = h.features or {}
    local missing = b.torch and not f.torch and "  [not built: needs libtorch]"
      or b.http and not f.http and "  [not built: needs libcurl]" or ""
    out[#out + 1] = ("  %-16s %s%s"):format(b[1], b[2], missing)
  end
  local names = {}
  for _, role in ipairs({ "editor", "judge" }) do
    names[#names + 1] = role .. ": " .. table.concat(schema.builtin_models[role], ", ")
  end
  out[#out + 1] = "  builtin models   " .. table.concat(names, "; ")
  out[#out + 1] = ""
  local adapters = util.join(root, "lua", "evalhost", "datasets")
  out[#out + 1] = "dataset adapters (dataset.adapter:):"
  -- the adapters dataset.adapter accepts (the schema's list), not their helpers
  for _, a in ipairs(schema.sections.dataset.keys.adapter.one_of) do
    out[#out + 1] = ("  %-16s %s"):format(a, summary(util.join(adapters, a .. ".lua")))
  end
  io.stdout:write(table.concat(out, "\n"), "\n")
end

return cli
