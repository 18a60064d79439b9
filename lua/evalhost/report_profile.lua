-- evalhost.report_profile — a benchmark profile's own tables in the
-- report (issue 25): the official layouts (GEdit's SC / PQ / O per task
-- type per language, RISEBench's per-dimension accuracy, ...) that a
-- profile's summary lists as
--   tables = {{title=, header={...}, rows={{cell, ...}, ...}, digits=3}, ...}
-- Numbers print with the table's digits (the precision the official code
-- prints); nil cells as "—". report.lua calls markdown/html once each.
local util = require "evalhost.util"

local M = {}

local function cell(v, digits)
  if type(v) == "number" then return ("%." .. tostring(digits or 3) .. "f"):format(v) end
  if v == nil or v == util.host().json.null then return "—" end
  return tostring(v)
end

local function tables_of(profile)
  if type(profile) ~= "table" or type(profile.tables) ~= "table" then return {} end
  return profile.tables
end

-- Markdown lines (empty when the profile has no tables).
function M.markdown(profile)
  local L = {}
  local tabs = tables_of(profile)
  if #tabs == 0 then return L end
  L[#L + 1] = "## 基准协议 / Benchmark protocol"
  L[#L + 1] = ""
  if profile.method then L[#L + 1] = util.md_cell(tostring(profile.method)); L[#L + 1] = "" end
  for _, t in ipairs(tabs) do
    L[#L + 1] = "### " .. util.md_cell(tostring(t.title))
    L[#L + 1] = ""
    local head, rule = {}, {}
    for i, h in ipairs(t.header) do
      head[i] = util.md_cell(tostring(h))
      rule[i] = i == 1 and "---" or "---:"
    end
    L[#L + 1] = "| " .. table.concat(head, " | ") .. " |"
    L[#L + 1] = "|" .. table.concat(rule, "|") .. "|"
    for _, r in ipairs(t.rows) do
      local cells = {}
      for i = 1, #t.header do cells[i] = util.md_cell(cell(r[i], t.digits)) end
      L[#L + 1] = "| " .. table.concat(cells, " | ") .. " |"
    end
    L[#L + 1] = ""
  end
  return L
end

-- One HTML string ("" when the profile has no tables).
function M.html(profile)
  local tabs = tables_of(profile)
  if #tabs == 0 then return "" end
  local H = util.html
  local L = { '<h2>基准协议 / Benchmark protocol</h2>' }
  if profile.method then L[#L + 1] = "<p>" .. H(tostring(profile.method)) .. "</p>" end
  for k, t in ipairs(tabs) do
    L[#L + 1] = ('<h3>%s</h3><table class="protocol" id="protocol-%d"><thead><tr>'):format(H(tostring(t.title)), k)
    for i, h in ipairs(t.header) do
      L[#L + 1] = ('<th%s>%s</th>'):format(i == 1 and ' class="l"' or "", H(tostring(h)))
    end
    L[#L + 1] = "</tr></thead><tbody>"
    for _, r in ipairs(t.rows) do
      local cells = {}
      for i = 1, #t.header do
        cells[i] = ('<td%s>%s</td>'):format(i == 1 and ' class="l"' or "", H(cell(r[i], t.digits)))
      end
      L[#L + 1] = "<tr>" .. table.concat(cells) .. "</tr>"
    end
    L[#L + 1] = "</tbody></table>"
  end
  return table.concat(L, "\n")
end

return M
