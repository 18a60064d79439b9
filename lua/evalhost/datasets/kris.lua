-- KRIS-Bench (knowledge-based reasoning edits) as evalhost pairs.
--
-- Layout: KRIS_Bench/<category>/annotation.json = {"<n>": {"ori_img":
-- "1.jpg" | ["1.jpg", ...], "ins_en": "...", "explain_en": "..."}} with the
-- images beside it. dataset.path names the KRIS_Bench folder; every
-- subfolder with an annotation.json is a category (sorted by name). A pair's
-- id is its key; its first ori_img is the image (the rest stay in fields).
--
-- Scoring profile: four metrics rated 1-5 by the judge (visual
-- consistency, visual quality, instruction following, knowledge
-- plausibility); a pair's score is the mean of the metrics it was rated on
-- (KRIS leaves consistency out for some tasks), reported per metric too.
local base = require "evalhost.datasets.base"
local util = require "evalhost.util"

local M = { name = "kris" }

function M.open(path)
  local h = util.host()
  local names = h.fs.list(path)
  if not names then return nil, ("kris: %s: not a folder of <category>/annotation.json"):format(path) end
  local specs, digests = {}, {}
  for _, cat in ipairs(names) do
    local ann = util.join(path, cat, "annotation.json")
    if h.fs.exists(ann) then
      local doc, digest = base.read_json("kris", ann)
      if not doc then return nil, digest end
      digests[#digests + 1] = cat .. ":" .. digest
      -- a category with no items would leave the tables without a word
      if type(doc) == "table" and next(doc) == nil then
        h.log("warn", "kris: %s holds no items: category %s is not run", ann, cat)
      end
      for _, key in ipairs(base.sorted_keys(doc)) do
        local e = doc[key]
        local s = { id = tostring(key), category = cat, fields = {} }
        if type(e) ~= "table" then
          s.error = ("kris: %s: entry %s is not an object"):format(ann, tostring(key))
        else
          local img = type(e.ori_img) == "table" and e.ori_img[1] or e.ori_img
          s.instruction = type(e.ins_en) == "string" and e.ins_en or nil
          s.description = type(e.explain_en) == "string" and e.explain_en or nil
          s.image_path = base.under(util.join(path, cat), img)
          if img ~= nil and s.image_path == nil then
            s.error = ("kris: %s: entry %s: image path %q leaves %s"):format(ann, tostring(key), tostring(img), cat)
          end
          for k, v in pairs(e) do s.fields[k] = v end
        end
        specs[#specs + 1] = s
      end
    end
  end
  if #digests == 0 then return nil, ("kris: %s has no <category>/annotation.json"):format(path) end
  if #specs == 0 then return nil, ("kris: %s: its annotation.json files hold no items"):format(path) end
  return base.new(specs, path, h.hash(table.concat(digests, "\n")), M.name)
end

M.profile = {
  dimensions = { "consistency", "quality", "instruction", "knowledge" },
  scale = { 1, 5 },
  aggregate = "categories",
  template = {
    system = "You are an expert judge of knowledge-based image edits.",
    user = "Task: {{category}} (id={{id}})\nInstruction: {{instruction}}\nExpected result: {{description}}\n\n"
      .. "Rate from 1 to 5: visual consistency, visual quality, instruction following, knowledge plausibility. "
      .. "End with a line\nFinal Scores: A, B, C, D",
  },
}

-- dims: {consistency=, quality=, instruction=, knowledge=} (a metric may be
-- absent) -> mean of those present.
function M.profile.score(dims)
  if type(dims) ~= "table" then return nil end
  return base.mean(dims.consistency, dims.quality, dims.instruction, dims.knowledge)
end

function M.profile.from_text(text)
  local d, why = base.ratings(text, M.profile.dimensions, 1, 5, "kris")
  if not d then return nil, why end
  return M.profile.score(d), d
end

function M.profile.summary(rows)
  return { dimensions = base.dimension_means(rows, M.profile.dimensions), scale = "1-5 per metric; score = their mean" }
end

------------------------------------------------------------------------
-- The official protocol (dataset.protocol: official, the default), as
-- mercurystraw/Kris_Bench's scripts run it: metrics_common.py,
-- metrics_knowledge.py and metrics_view_change.py @7f7a944,
-- metrics_multi_element.py @9502ee3, metrics_temporal_prediction.py
-- @bcdbaf1, each for its own categories (official.SCRIPTS):
--   per item three requests in METRICS order -- consistency, instruction
--     (knowledge categories: one "dual" request rating instruction and
--     knowledge), quality -- each one user message: the prompt, then
--     "This is the original image:" + original, "This is the edited
--     image:" + edit (quality: the edit only; multi-element: "Reference
--     Image i:" + each source, "Predicted Image:" + edit; temporal: the
--     frames in order, "Frame k (Reference):" / "Frame k (Generated):");
--   a reply -> its rating: the first {...} holding "<metric>_score" as
--     JSON, else the script's regexes ("consistency score: 4", "4/5",
--     "4 out of 5", the first standalone 1-5; the dual request: its two
--     labelled lines only), as each script's extractor has them.
-- The repository has no license, so its prompts are not copied here: they
-- load from the user's checkout (dataset.official = the Kris_Bench folder
-- or its utils/prompts.py). It has no aggregation code either; evalhost's
-- (official.summary): per category the mean of each metric over the items
-- rated on it, 1-5 as the scripts store them, and overall the same means
-- over every item (each item weighs the same: no rule in the code says
-- to re-weight categories of different sizes, and the per-metric means
-- are what the stored metrics.json files give without one). Where a
-- script stores a null rating (a reply it cannot read) evalhost fails the
-- pair; the summary gives both figures.
-- Deliberate: the scripts at these revisions read an item's "instruction"
-- and "explain", which the published annotation.json files spell
-- "ins_en" and "explain_en" (the scripts would send empty ones): evalhost
-- reads ins_en / explain_en, else instruction / explain.
------------------------------------------------------------------------
local protocol = require "evalhost.datasets.protocol"
local pystr = require "evalhost.datasets.pystr"

local official = { aggregate = "categories", requests_per_pair = "3 requests per pair: consistency, instruction, quality" }
M.profile.official = official

local COMMON = { "count_change", "color_change", "anomaly_correction", "position_movement", "size_adjustment",
  "part_completion", "multi-instruction_execution" }
local KNOWLEDGE = { "abstract_reasoning", "mathematics", "practical_knowledge", "medicine", "rule-based_reasoning",
  "biology", "geography", "chemistry", "humanities", "physics" }
official.SCRIPTS, official.ORDER = {}, {}
for _, group in ipairs({ { "common", COMMON }, { "knowledge", KNOWLEDGE }, { "view", { "viewpoint_change" } },
  { "temporal", { "temporal_prediction" } }, { "multi", { "multi-element_composition" } } }) do
  for _, c in ipairs(group[2]) do
    official.SCRIPTS[c] = group[1]
    official.ORDER[#official.ORDER + 1] = c
  end
end
official.PROMPTS = { "prompt_consist", "prompt_quality", "prompt_instruction_following",
  "prompt_abnormal_instruction_following", "prompt_dual_evaluation", "prompt_view_instruction_following",
  "prompt_consist_temporal", "prompt_instruction_temporal", "prompt_consist_multi", "prompt_instruction_multi" }
official.METRICS = { "consistency", "instruction", "knowledge", "quality" }

function official.prepare(dcfg, dataset)
  local state, why = protocol.python_prompts(dcfg, "Kris_Bench", "utils/prompts.py", official.PROMPTS)
  if not state then return nil, why end
  -- the KRIS_Bench folder: an item's pictures are named relative to its category's folder there
  state.root = type(dataset) == "table" and type(dataset.file) == "string" and dataset.file or nil
  return state
end

------------------------------------------------------------------------
-- Python's re on the replies, for the patterns the scripts use: \s, \b
-- and IGNORECASE as Python reads them on str (evalhost.datasets.pystr),
-- [1-5] ASCII.
------------------------------------------------------------------------

local cp_at, is_space, skip_spaces = pystr.cp_at, pystr.is_space, pystr.skip_spaces

local function digit15(s, i)
  local b = s:byte(i)
  return b and b >= 49 and b <= 53 and b - 48 or nil
end

-- re.search(r"NAME[_\s]*score\s*[:：]?\s*([1-5])", IGNORECASE); colon
-- required unless colon_optional. The rating or nil.
function official.prefixed(text, name, colon_optional)
  local at = 1
  while true do
    local a, i = pystr.find_ci(text, name, at)
    if not a then return nil end
    while true do   -- [_\s]*
      local cp, nx = cp_at(text, i)
      if cp == 95 or is_space(cp) then i = nx else break end
    end
    local j = pystr.match_ci(text, i, "score")
    if j then
      i = skip_spaces(text, j)
      local colon = text:sub(i, i) == ":" and 1 or text:sub(i, i + 2) == "：" and 3 or 0
      if colon > 0 then i = skip_spaces(text, i + colon) end
      if colon > 0 or colon_optional then
        local d = digit15(text, i)
        if d then return d end
      end
    end
    local _, nx = cp_at(text, a)
    at = nx
  end
end

-- The default patterns in order: "([1-5])\s*/\s*5", "([1-5])\s+out\s+of\s+5",
-- then "\b([1-5])\b" (first match of each; nil when none matches).
local function slash5(text)
  for i = 1, #text do
    local d = digit15(text, i)
    if d then
      local j = skip_spaces(text, i + 1)
      if text:sub(j, j) == "/" and text:sub(skip_spaces(text, j + 1), skip_spaces(text, j + 1)) == "5" then return d end
    end
  end
end
local function out_of5(text)
  for i = 1, #text do
    local d = digit15(text, i)
    if d then
      local j = skip_spaces(text, i + 1)
      local k = j > i + 1 and pystr.match_ci(text, j, "out")
      local m = k and skip_spaces(text, k)
      local n = m and m > k and pystr.match_ci(text, m, "of")
      local o = n and skip_spaces(text, n)
      if o and o > n and text:sub(o, o) == "5" then return d end
    end
  end
end
local function standalone(text)
  for i = 1, #text do
    local d = digit15(text, i)
    if d and not pystr.is_word(pystr.cp_before(text, i)) and not pystr.is_word((cp_at(text, i + 1))) then return d end
  end
end
official.slash5, official.out_of5, official.standalone = slash5, out_of5, standalone

-- re.search(r"\{[^{}]*KEY[^{}]*\}", DOTALL): the first brace-free {...}
-- that holds KEY.
function official.json_block(text, key)
  local i = 1
  while true do
    local a = text:find("{", i, true)
    if not a then return nil end
    local j = text:find("[{}]", a + 1)
    if not j then return nil end
    if text:sub(j, j) == "}" and text:sub(a + 1, j - 1):find(key, 1, true) then return text:sub(a, j) end
    i = a + 1
  end
end

-- json.loads of a block: the object, or nil where it raises.
local function loads(block)
  local v = pystr.json_loads(block)
  return type(v) == "table" and not pystr.is_array(v) and v or nil
end

-- Python's int(v): nil where it raises (not None: "raises"). A float
-- past 64-bit integers stays an integral float (Python's big int).
local function py_int(v)
  if v == true then return 1 elseif v == false then return 0 end
  if type(v) == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return nil end
    local t = v < 0 and math.ceil(v) or math.floor(v)
    return math.tointeger(t) or t
  end
  if type(v) == "string" then return pystr.int(v) end
  return nil
end

local function is_none(v) return v == nil or v == util.host().json.null end

-- metrics_common.py's extract_score_and_reason: the JSON block's
-- int(score) (any value), else the prefix pattern (colon optional; none for
-- the temporal and multi-element scripts), then the default patterns.
function official.extract_common(text, name, with_prefix)
  text = text or ""
  local block = official.json_block(text, name .. "_score")
  if block then
    local d = loads(block)
    local v = d and d[name .. "_score"]
    if d and not is_none(v) then
      local n = py_int(v)
      if n then return n end
    end
  end
  local v = with_prefix and official.prefixed(text, name, true) or nil
  return v or slash5(text) or out_of5(text) or standalone(text)
end

-- metrics_knowledge.py's extract_consistency_score / extract_quality_score:
-- the JSON block (a null score stays null), else the prefix pattern (colon
-- required), the "/5" and "out of 5" patterns, the first standalone 1-5.
function official.extract_knowledge(text, name)
  text = text or ""
  local block = official.json_block(text, name .. "_score")
  if block then
    local d = loads(block)
    if d then
      local v = d[name .. "_score"]
      if is_none(v) then return nil end
      local n = py_int(v)
      if n then return n end
    end
  end
  return official.prefixed(text, name, false) or slash5(text) or out_of5(text) or standalone(text)
end

-- metrics_knowledge.py's extract_dual_scores -> instruction, knowledge.
function official.extract_dual(text)
  text = text or ""
  local block = official.json_block(text, "instruction_score")
  if block then
    local d = loads(block)
    if d then
      local i, k = d.instruction_score, d.knowledge_score
      local ni, nk = not is_none(i) and py_int(i) or nil, not is_none(k) and py_int(k) or nil
      if (is_none(i) or ni) and (is_none(k) or nk) then return ni, nk end
    end
  end
  return official.prefixed(text, "instruction", false), official.prefixed(text, "knowledge", false)
end

------------------------------------------------------------------------

local function text_field(f, a, b)
  if type(f[a]) == "string" then return f[a] end
  if type(f[b]) == "string" then return f[b] end
  return ""
end

local function part(name, prompt, pictures, quality)
  local content, images = { { type = "text", text = prompt } }, {}
  for _, p in ipairs(pictures) do
    content[#content + 1] = { type = "text", text = p[1] }
    content[#content + 1] = { type = "image", image = p[2] }
    images[#images + 1] = p[2]
  end
  return { name = name, messages = { { role = "user", content = content } }, images = images, text_first = true,
    jpeg_quality = quality }
end

-- The frame numbers metrics_temporal_prediction.py reads from the frames'
-- names ("3-2.jpg" -> 2) and the predicted frame's (the one of 1..4 missing).
function official.frames(names)
  local nums, have = {}, {}
  for _, n in ipairs(names) do
    local _, f = tostring(n):match("(%d+)%-(%d+)")
    if f then nums[#nums + 1] = tonumber(f); have[tonumber(f)] = true end
  end
  local missing = {}
  for k = 1, 4 do if not have[k] then missing[#missing + 1] = k end end
  if #missing == 1 then return nums, missing[1] end
  local m = 0
  for _, v in ipairs(nums) do if v > m then m = v end end
  return nums, #nums > 0 and m + 1 or 1
end

function official.requests(ctx)
  local cat, f, P = ctx.category, ctx.pair.fields or {}, ctx.state.prompts
  local script = official.SCRIPTS[cat]
  if not script then
    return nil, ("kris: %s: category %q has no Kris_Bench script"):format(ctx.id, tostring(cat))
  end
  local instruct, explanation = text_field(f, "ins_en", "instruction"), text_field(f, "explain_en", "explain")
  local function fmt(name, fields)
    local s, why = protocol.format(P[name], fields)
    if not s then error({ kris = ("%s: %s"):format(name, why) }) end
    return s
  end
  local ok, out = pcall(function()
    local edit, orig = ctx.edited, ctx.original
    local ORIG, EDIT = "This is the original image:", "This is the edited image:"
    if script == "common" or script == "view" then
      if type(f.ori_img) ~= "string" then error({ kris = "ori_img must be one file name for this category" }) end
      local ins
      if script == "common" and cat:find("abnormality_correction", 1, true) then   -- never the data's anomaly_correction
        ins = fmt("prompt_abnormal_instruction_following", { instruct = instruct, explanation = explanation })
      else
        ins = fmt("prompt_instruction_following", { instruct = instruct })
      end
      return { part("consistency", fmt("prompt_consist", { instruct = instruct }), { { ORIG, orig }, { EDIT, edit } }),
        part("instruction", ins, { { ORIG, orig }, { EDIT, edit } }),
        part("quality", P.prompt_quality, { { EDIT, edit } }) }
    elseif script == "knowledge" then
      if type(f.ori_img) ~= "string" then error({ kris = "ori_img must be one file name for this category" }) end
      return { part("consistency", fmt("prompt_consist", { instruct = instruct }), { { ORIG, orig }, { EDIT, edit } }),
        part("dual", fmt("prompt_dual_evaluation", { instruct = instruct, explanation = explanation }),
          { { ORIG, orig }, { EDIT, edit } }),
        part("quality", P.prompt_quality, { { EDIT, edit } }) }
    end
    local names = type(f.ori_img) == "table" and f.ori_img or { f.ori_img }
    local dir = ctx.state.root and util.join(ctx.state.root, cat) or util.dirname(ctx.pair.image_path or "")
    local refs = {}
    for k, n in ipairs(names) do
      local path = base.under(dir, n)
      local img, why = protocol.load(ctx, path, "ori_img")
      if not img then error({ kris = why }) end
      refs[k] = img
    end
    local EVAL = "This is the image to evaluate:"
    if script == "multi" then
      local pics = {}
      for k, img in ipairs(refs) do pics[k] = { ("Reference Image %d:"):format(k), img } end
      pics[#pics + 1] = { "Predicted Image:", edit }
      return { part("consistency", fmt("prompt_consist_multi", { instruct = instruct }), pics),
        part("instruction", fmt("prompt_instruction_multi", { instruct = instruct }), pics),
        part("quality", P.prompt_quality, { { EVAL, edit } }) }
    end
    -- temporal: every frame re-encoded as JPEG quality 85, in frame order
    local nums, pred = official.frames(names)
    local frames = {}
    for k, img in ipairs(refs) do frames[#frames + 1] = { nums[k] or 0, "Reference", img, k } end
    frames[#frames + 1] = { pred, "Generated", edit, #refs + 1 }
    table.sort(frames, function(a, b) if a[1] ~= b[1] then return a[1] < b[1] end return a[4] < b[4] end)
    local pics = {}
    for k, fr in ipairs(frames) do pics[k] = { ("Frame %d (%s):"):format(fr[1], fr[2]), fr[3] } end
    local fields = { N = pred, instruct = instruct }
    return { part("consistency", fmt("prompt_consist_temporal", fields), pics, 85),
      part("instruction", fmt("prompt_instruction_temporal", fields), pics, 85),
      part("quality", P.prompt_quality, { { EVAL, edit } }, 85) }
  end)
  if not ok then
    if type(out) == "table" and out.kris then return nil, ("kris: %s: %s"):format(ctx.id, out.kris) end
    error(out, 0)
  end
  return out
end

-- The ratings the item's script stores in metrics.json (nil for null).
function official.read(category, replies)
  local script = official.SCRIPTS[category]
  local r = {}
  if script == "knowledge" then
    r.consistency = official.extract_knowledge(replies.consistency, "consistency")
    r.instruction, r.knowledge = official.extract_dual(replies.dual)
    r.quality = official.extract_knowledge(replies.quality, "quality")
  else
    local prefix = script == "common" or script == "view"
    r.consistency = official.extract_common(replies.consistency, "consistency", prefix)
    r.instruction = official.extract_common(replies.instruction, "instruction", prefix)
    r.quality = official.extract_common(replies.quality, "quality", prefix)
  end
  return r
end

function official.combine(replies, ctx)
  local cat = ctx.category
  local r = official.read(cat, replies)
  local need = official.SCRIPTS[cat] == "knowledge" and { "consistency", "instruction", "knowledge", "quality" }
    or { "consistency", "instruction", "quality" }
  local info = { ratings = r }
  for _, k in ipairs(need) do
    if r[k] == nil then
      return nil, ("kris: no %s rating in the reply (the script stores null)"):format(k), info
    end
    if r[k] < 1 or r[k] > 5 then
      return nil, ("kris: the %s rating %d is outside 1..5 (the script stores it as it is)"):format(k, r[k]), info
    end
  end
  local vals = {}
  for _, k in ipairs(need) do vals[#vals + 1] = r[k] end
  local score = protocol.mean(vals)
  local dims = { score = score }
  for _, k in ipairs(need) do dims[k] = r[k] end
  return score, dims
end

-- rows -> per category (official.ORDER, then any other) and overall, the
-- mean of each metric over the items rated on it.
local function table_of(items)
  local per, seen = {}, {}
  for _, it in ipairs(items) do
    per[it.category] = per[it.category] or {}
    table.insert(per[it.category], it.r)
  end
  local order = {}
  for _, c in ipairs(official.ORDER) do if per[c] then order[#order + 1], seen[c] = c, true end end
  local rest = {}
  for c in pairs(per) do if not seen[c] then rest[#rest + 1] = c end end
  table.sort(rest)
  for _, c in ipairs(rest) do order[#order + 1] = c end
  local function means(list)
    local out = { n = #list }
    for _, k in ipairs(official.METRICS) do
      local xs = {}
      for _, r in ipairs(list) do if type(r[k]) == "number" then xs[#xs + 1] = r[k] end end
      out[k] = protocol.mean(xs)
    end
    return out
  end
  local out = { order = order, categories = {} }
  local all = {}
  for _, c in ipairs(order) do
    out.categories[c] = means(per[c])
    for _, r in ipairs(per[c]) do all[#all + 1] = r end
  end
  out.overall = means(all)
  return out
end

function official.summary(rows)
  local ours, all, failed = {}, {}, 0
  for _, r in ipairs(rows) do
    if type(r.dims) == "table" and r.dims.score ~= nil then
      ours[#ours + 1] = { category = r.category, r = r.dims }
      all[#all + 1] = ours[#ours]
    elseif type(r.official) == "table" and type(r.official.ratings) == "table" then
      failed = failed + 1
      all[#all + 1] = { category = r.category, r = r.official.ratings }
    end
  end
  local out = {
    method = "KRIS-Bench (mercurystraw/Kris_Bench metrics_*.py): consistency, instruction following, knowledge "
      .. "plausibility (knowledge categories) and quality rated 1-5 in three requests per item; the repository has "
      .. "no aggregation code: per category and overall, the mean of each metric over the items rated on it",
    protocol = "official", unparsed = failed, tables = {},
  }
  out.ours = table_of(ours)
  out.categories, out.order, out.overall = out.ours.categories, out.ours.order, out.ours.overall
  if failed > 0 then out.official = table_of(all) end
  local function tab(title, t)
    local x = { title = title, header = { "category", "n", "consistency", "instruction", "knowledge", "quality" },
      rows = {}, digits = 3 }
    for _, c in ipairs(t.order) do
      local m = t.categories[c]
      x.rows[#x.rows + 1] = { c, tostring(m.n), m.consistency, m.instruction, m.knowledge, m.quality }
    end
    local m = t.overall
    x.rows[#x.rows + 1] = { "Overall (every item)", tostring(m.n), m.consistency, m.instruction, m.knowledge, m.quality }
    out.tables[#out.tables + 1] = x
  end
  tab("KRIS-Bench: mean rating per metric (1-5)", out.ours)
  if out.official then
    tab(("KRIS-Bench as the scripts store it (%d items with a null or off-scale rating kept)"):format(failed),
      out.official)
  end
  return out
end

return M
