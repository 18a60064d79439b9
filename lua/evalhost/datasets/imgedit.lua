-- ImgEdit (PKU-YuanGroup/ImgEdit) Basic-Edit suite as evalhost pairs.
--
-- Layout: basic_edit.json = {"<key>": {"id": "animal/000342021.jpg",
-- "prompt": "...", "edit_type": "adjust"}, ...}; the images under
-- Benchmark/singleturn/<id>. dataset.path names the JSON; dataset.images the
-- image folder (default: "singleturn" beside the JSON when present, else the
-- JSON's folder). A pair's id is its key, its category the edit_type.
--
-- Scoring profile: the judge rates three criteria from 1 to 5 (prompt
-- compliance, visual naturalness, physical and detail integrity); a pair's
-- score is their mean, an edit type's score the mean over its pairs, and the
-- overall figure the mean of the edit types (aggregate "categories").
local base = require "evalhost.datasets.base"
local util = require "evalhost.util"

local M = { name = "imgedit" }

function M.open(path, opts)
  opts = opts or {}
  local h = util.host()
  local doc, digest = base.read_json("imgedit", path)
  if not doc then return nil, digest end
  if type(doc) ~= "table" or #doc > 0 then
    return nil, ("imgedit: %s: expected an object of {id, prompt, edit_type} keyed by number"):format(path)
  end
  local root = opts.images
  if root == nil then
    local guess = util.join(util.dirname(path), "singleturn")
    root = h.fs.exists(guess) and guess or util.dirname(path)
  end
  local specs = {}
  for _, key in ipairs(base.sorted_keys(doc)) do
    local e = doc[key]
    local s = { id = tostring(key), fields = {} }
    if type(e) ~= "table" then
      s.category, s.error = "unknown", ("imgedit: %s: entry %s is not an object"):format(path, tostring(key))
    else
      s.category = type(e.edit_type) == "string" and e.edit_type or "unknown"
      s.instruction = type(e.prompt) == "string" and e.prompt or nil
      s.image_path = base.under(root, e.id)
      if e.id ~= nil and s.image_path == nil then
        s.error = ("imgedit: %s: entry %s: image path %q leaves %s"):format(path, tostring(key), tostring(e.id), root)
      end
      for k, v in pairs(e) do s.fields[k] = v end
      if type(e.edit_type) ~= "string" then
        s.error = ("imgedit: %s: entry %s has no \"edit_type\""):format(path, tostring(key))
      end
    end
    specs[#specs + 1] = s
  end
  if #specs == 0 then return nil, ("imgedit: %s holds no items"):format(path) end
  return base.new(specs, path, digest, M.name)
end

M.profile = {
  dimensions = { "prompt_compliance", "visual_naturalness", "physical_detail_integrity" },
  scale = { 1, 5 },
  aggregate = "categories",
  template = {
    system = "You are a strict evaluator of image edits. Rate the edited image against the original and the instruction.",
    user = "Edit type: {{category}} (id={{id}})\nInstruction: {{instruction}}\n\n"
      .. "Rate from 1 to 5: 1) prompt compliance, 2) visual naturalness and seamlessness, 3) physical and detail "
      .. "integrity. Explain briefly, then end with a line\nFinal Scores: A, B, C",
  },
}

-- dims: array of the three ratings -> the pair's score (nil if any is missing).
function M.profile.score(dims)
  if type(dims) ~= "table" or #dims < 3 then return nil end
  return base.mean(dims[1], dims[2], dims[3])
end

-- The judge's reply -> score, dims; or nil and why.
function M.profile.from_text(text)
  local d, why = base.ratings(text, M.profile.dimensions, 1, 5, "imgedit")
  if not d then return nil, why end
  return M.profile.score({ d.prompt_compliance, d.visual_naturalness, d.physical_detail_integrity }), d
end

function M.profile.summary(rows)
  return { dimensions = base.dimension_means(rows, M.profile.dimensions), scale = "1-5 per criterion; score = their mean" }
end

------------------------------------------------------------------------
-- The official protocol (dataset.protocol: official, the default), as
-- PKU-YuanGroup/ImgEdit @547185d Benchmark/Basic/ runs it (basic_bench.py,
-- step1_get_avgscore.py, step2_typescore.py):
--   one request per pair: the edit type's rubric from the benchmark's
--     prompts.json with <edit_prompt> replaced by the instruction, then
--     [original, edit], one user message, text first, no system message;
--   every reply line "<name>: <digits>" is a rating; the item's score is
--     their mean rounded to 2 decimals (Python's round);
--   an edit type's score is the mean of its items' scores, rounded to 2.
-- The repository has no license, so its prompts are not copied here: they
-- load from the user's checkout, dataset.official = the ImgEdit folder (or
-- the prompts.json itself). The official scripts stop at the type scores;
-- `overall` here is their mean (as the paper's Overall column). A reply with
-- no rating drops the item there and fails the pair here: the type scores
-- are the same either way, the failure is listed.
------------------------------------------------------------------------
local protocol = require "evalhost.datasets.protocol"
local pystr = require "evalhost.datasets.pystr"

local official = { aggregate = "categories", requests_per_pair = "1 request per pair with the edit type's rubric" }
M.profile.official = official

official.TYPES = { "add", "remove", "replace", "adjust", "style", "action", "extract", "background", "compose" }

function official.prepare(dcfg)
  local path, why = protocol.official_file(dcfg, "ImgEdit", "Benchmark/Basic/prompts.json", "rubrics")
  if not path then return nil, why end
  local doc, digest = base.read_json("imgedit", path)
  if not doc then return nil, "config: dataset.official: " .. digest end
  if type(doc) ~= "table" or #doc > 0 then
    return nil, ("config: dataset.official: %s is not an object of edit type -> rubric"):format(path)
  end
  for k, v in pairs(doc) do
    if type(v) ~= "string" then return nil, ("config: dataset.official: %s: rubric %s is not text"):format(path, k) end
  end
  return { prompts = doc, prompts_path = path, prompts_hash = digest }
end

function official.requests(ctx)
  local rubric = ctx.state.prompts[ctx.category]
  if not rubric then
    return nil, ("imgedit: %s has no rubric for edit type %q"):format(ctx.state.prompts_path, ctx.category)
  end
  return { { name = "rating", text = protocol.replace(rubric, "<edit_prompt>", ctx.instruction),
    images = { ctx.original, ctx.edited }, text_first = true } }
end

-- step1_get_avgscore.py's extract_scores_and_average: every line
-- (str.splitlines) that, stripped, splits on ": " into exactly two parts,
-- the second str.isdigit(), gives int() of it. nil and why where that
-- int() raises (a superscript passes isdigit): the script stops there.
function official.ratings(text)
  local out = {}
  for _, line in ipairs(pystr.splitlines(text)) do
    line = pystr.strip(line)
    local parts, at = {}, 1
    while true do
      local a, b = line:find(": ", at, true)
      if not a then break end
      parts[#parts + 1] = line:sub(at, a - 1)
      at = b + 1
    end
    parts[#parts + 1] = line:sub(at)
    if #parts == 2 and pystr.isdigit(parts[2]) then
      local v = pystr.int(parts[2])
      if not v then return nil, ("int(%q) raises in the official script (it stops there)"):format(parts[2]) end
      out[#out + 1] = v
    end
  end
  return out
end

function official.combine(replies)
  local r, why = official.ratings(replies.rating or "")
  if not r then return nil, "imgedit: " .. why, {} end
  if #r == 0 then
    return nil, "imgedit: the reply has no \"<criterion>: N\" line (the official scripts drop the item)",
      { dropped = true }
  end
  local s = 0
  for _, v in ipairs(r) do s = s + v end
  local item = protocol.round2(s / #r)
  return item, { ratings = r, item = item }
end

function official.summary(rows)
  local per, order, dropped = {}, {}, 0
  for _, r in ipairs(rows) do
    if type(r.dims) == "table" and r.dims.item then
      if not per[r.category] then per[r.category], order[#order + 1] = {}, r.category end
      table.insert(per[r.category], r.dims.item)
    elseif type(r.official) == "table" and r.official.dropped then
      dropped = dropped + 1
    end
  end
  local sorted, seen = {}, {}
  for _, t in ipairs(official.TYPES) do if per[t] then sorted[#sorted + 1], seen[t] = t, true end end
  for _, t in ipairs(order) do if not seen[t] then sorted[#sorted + 1] = t end end
  local types, means = {}, {}
  local tab = { title = "ImgEdit Basic: score per edit type (1-5)", header = { "edit type", "score", "n" }, rows = {},
    digits = 2 }
  for _, t in ipairs(sorted) do
    types[t] = protocol.round2(protocol.mean(per[t]))
    means[#means + 1] = types[t]
    tab.rows[#tab.rows + 1] = { t, types[t], tostring(#per[t]) }
  end
  -- an official type without a scored item is said: the overall is then over fewer types
  local missing = {}
  for _, t in ipairs(official.TYPES) do
    if not per[t] then
      missing[#missing + 1] = t
      tab.rows[#tab.rows + 1] = { t .. " (no scored item)", nil, "0" }
    end
  end
  if dropped > 0 then
    tab.rows[#tab.rows + 1] = { ("items without a rating (dropped, as step1 drops them)"), nil, tostring(dropped) }
  end
  local overall = protocol.mean(means)
  tab.rows[#tab.rows + 1] = { #missing > 0 and ("Overall (mean of the %d types scored, not of all %d)"):format(#sorted,
    #official.TYPES) or "Overall (mean of the types)", overall, "" }
  return {
    method = "ImgEdit Basic (PKU-YuanGroup/ImgEdit @547185d): item = mean of its reply's \"name: N\" ratings, "
      .. "rounded to 2; edit type = mean of its items, rounded to 2; overall = mean of the types",
    protocol = "official", types = types, order = sorted, overall = overall, dropped = dropped, missing = missing,
    tables = { tab },
  }
end

return M
