-- RISEBench (reasoning-informed visual editing) as evalhost pairs.
--
-- Layout: data_total.json = [{"index": "temporal_reasoning_1", "category":
-- "temporal_reasoning", "instruction": "...", "image": "<path>", "reference":
-- ..., ...}]; an image path is relative to dataset.images (default: the
-- JSON's folder, then its parent -- the repository runs from beside data/).
--
-- Scoring profile (RISEBench's gpt_eval.py): the judge rates appearance
-- consistency, instruction reasoning and visual plausibility from 1 to 5.
-- Score = 0.3 C + 0.5 R + 0.2 P for temporal, causal and spatial tasks
-- (0.2 P + 0.8 R when the pair is consistency_free), 0.3 C + 0.7 R for
-- logical ones (no plausibility); a reasoning rating of 1 halves the score
-- (not below 1). A pair is accurate when every rated dimension is 5; the
-- benchmark's headline is the share of accurate pairs (profile.accuracy).
local base = require "evalhost.datasets.base"
local util = require "evalhost.util"

local M = { name = "rise" }

function M.open(path, opts)
  opts = opts or {}
  local h = util.host()
  local doc, digest = base.read_json("rise", path)
  if not doc then return nil, digest end
  if type(doc) ~= "table" or (next(doc) ~= nil and #doc == 0) then
    return nil, ("rise: %s: expected a list of {index, category, instruction, image}"):format(path)
  end
  local dir = util.dirname(path)
  local roots = opts.images and { opts.images } or { dir, util.dirname(dir) }
  local specs, columns, positions = {}, {}, {}
  for i, e in ipairs(doc) do
    local s = { fields = {} }
    if type(e) ~= "table" then
      s.id, s.category, s.error = "#" .. i, "unknown", ("rise: %s: item %d is not an object"):format(path, i)
    else
      s.id, s.category = e.index, e.category
      s.instruction = type(e.instruction) == "string" and e.instruction or nil
      s.description = type(e.reference) == "string" and e.reference or nil
      for _, root in ipairs(roots) do
        local p = base.under(root, e.image)
        if p and (s.image_path == nil or h.fs.exists(p)) then s.image_path = p end
        if p and h.fs.exists(p) then break end
      end
      if e.image ~= nil and s.image_path == nil then
        s.error = ("rise: %s: item %s: image path %q leaves the data folder"):format(path, tostring(e.index), tostring(e.image))
      end
      for k, v in pairs(e) do s.fields[k] = v; columns[k] = true end
      positions[tostring(s.category) .. "\0" .. tostring(s.id)] = i
    end
    specs[#specs + 1] = s
  end
  if #specs == 0 then return nil, ("rise: %s holds no items"):format(path) end
  local ds = base.new(specs, path, digest, M.name)
  -- gpt_eval.py reads the JSON as a pandas DataFrame: a key any item has is
  -- a column every row has (NaN where the item lacks it), which some of its
  -- rules test; and reference pictures resolve like the input's
  ds.columns, ds.roots, ds.positions = columns, roots, positions
  return ds
end

M.profile = {
  dimensions = { "consistency", "reasoning", "plausibility" },
  scale = { 1, 5 },
  aggregate = "pairs",
  template = {
    system = "You are an expert judge of reasoning-informed image edits.",
    user = "Task: {{category}} (id={{id}})\nInstruction: {{instruction}}\nReference answer: {{description}}\n\n"
      .. "Rate from 1 to 5 the appearance consistency, the instruction reasoning and the visual plausibility. "
      .. "End with a line\nFinal Score: C, R, P",
  },
}

local LOGICAL = "logical_reasoning"

-- gpt_eval.py's calculate_score on the ratings C, R, P (nil where a
-- rating the category needs is missing: NaN there); free: the pair is
-- consistency_free. Halved when R = 1, then raised to 1 if below it, as
-- "1 if score<1 else score" does (a NaN score stays NaN).
local function weighted(category, free, C, R, P)
  local s
  if category == LOGICAL then
    if not (C and R) then return nil end
    s = 0.3 * C + 0.7 * R
  elseif free then
    if not (P and R) then return nil end
    s = 0.2 * P + 0.8 * R
  else
    if not (C and R and P) then return nil end
    s = 0.3 * C + 0.5 * R + 0.2 * P
  end
  if R == 1 then
    s = s * 0.5
    if s < 1 then s = 1 end
  end
  return s
end

-- calculate_completion: 1 when every rating the category uses is 5, else 0.
local function all_five(category, free, C, R, P)
  if category == LOGICAL then return (C == 5 and R == 5) and 1 or 0 end
  if free then return (R == 5 and P == 5) and 1 or 0 end
  return (C == 5 and R == 5 and P == 5) and 1 or 0
end

-- dims: {consistency=, reasoning=, plausibility=}; category; consistency_free.
-- Returns the weighted score (1..5) or nil when a needed rating is missing.
function M.profile.score(dims, category, consistency_free)
  return weighted(category, consistency_free, dims.consistency, dims.reasoning, dims.plausibility)
end

-- 1 when every dimension the category rates is 5, else 0.
function M.profile.accurate(dims, category, consistency_free)
  return all_five(category, consistency_free, dims.consistency, dims.reasoning, dims.plausibility)
end

-- The judge's reply ("Final Score: C, R, P") -> weighted score, dims; or nil and why.
function M.profile.from_text(text, category, pair)
  local nums = base.parse_scores(text)
  local need = category == LOGICAL and 2 or 3
  local ok, why = base.check_range(nums, need, 1, 5)
  if not ok then return nil, "rise: " .. why end
  local free = pair and type(pair.field) == "function" and pair:field("consistency_free")
  free = free ~= nil and free ~= false and free ~= util.host().json.null
  local dims = { consistency = nums[1], reasoning = nums[2], plausibility = category ~= LOGICAL and nums[3] or nil,
    consistency_free = free or nil }
  local s = M.profile.score(dims, category, free)
  if not s then return nil, "rise: a rating the category needs is missing" end
  return s, dims
end

function M.profile.summary(rows)
  local acc_rows = {}
  for _, r in ipairs(rows) do
    if type(r.dims) == "table" then
      acc_rows[#acc_rows + 1] = { category = r.category, dims = r.dims, consistency_free = r.dims.consistency_free }
    end
  end
  -- gpt_eval.py counts an item whose reply it cannot read as inaccurate (its
  -- accuracy's denominator is every item); ours leaves it out: both shown
  local unread = 0
  for _, r in ipairs(rows) do
    if type(r.dims) ~= "table" and r.failed_stage == "score" then unread = unread + 1 end
  end
  local acc = M.profile.accuracy(acc_rows)
  local n_all = acc.n + unread
  return { accuracy = acc, dimensions = base.dimension_means(rows, M.profile.dimensions),
    unparsed = unread,
    accuracy_with_unparsed = n_all > 0 and (acc.overall or 0) * acc.n / n_all or nil,
    scale = "1-5 per dimension; score weighted as RISEBench's gpt_eval.py; accurate = every rated dimension 5; "
      .. "accuracy_with_unparsed counts unreadable replies as inaccurate, as gpt_eval.py does" }
end

-- rows: {category=, dims=, consistency_free=} -> {categories={[cat]=share}, overall=share, n=}
function M.profile.accuracy(rows)
  local per, order, hit, n = {}, {}, 0, 0
  for _, r in ipairs(rows) do
    if not per[r.category] then per[r.category], order[#order + 1] = { hit = 0, n = 0 }, r.category end
    local a = M.profile.accurate(r.dims, r.category, r.consistency_free)
    per[r.category].hit, per[r.category].n = per[r.category].hit + a, per[r.category].n + 1
    hit, n = hit + a, n + 1
  end
  local cats = {}
  for _, c in ipairs(order) do cats[c] = per[c].hit / per[c].n end
  return { categories = cats, order = order, overall = n > 0 and hit / n or nil, n = n }
end

------------------------------------------------------------------------
-- The official protocol (dataset.protocol: official, the default), as
-- PhoenixZ810/RISEBench @5f22651 gpt_eval.py (eval_vanilla, extract,
-- calculate_score, calculate_completion, main) and utils.py (prepare_itlist,
-- encode_image_to_base64) run it:
--   per item, in order: consistency [prompt, img1, edit] (none when the
--     item is consistency_free), reasoning [prompt, (img1,) edit], quality
--     [prompt, edit] (not for logical items); one user message, text first,
--     no system message; every picture shrunk as PIL's thumbnail((768,
--     768)) does and sent as JPEG quality 75. img1 is the input, or the
--     item's reference_img for spatial and logical items that have one;
--     the prompt per category and per reasoning_img / reference_img /
--     reference_txt as eval_vanilla picks it;
--   a reply -> the integers after its first "Final Score" (else "Final
--     Scores"); consistency, reasoning, plausibility in 1-5, a logical
--     item's 0/1 judgements mapped to 1/5 (4 * min(x, 1) + 1);
--   score = 0.3 C + 0.5 R + 0.2 P (0.2 P + 0.8 R when consistency_free;
--     0.3 C + 0.7 R for logical), halved (not below 1) when R = 1; accurate
--     when every rated dimension is 5; Overall / per category / per
--     dimension / per subtask: the mean score, 25 (score - 1) and the
--     accuracy, as the CSV gpt_eval.py writes.
-- The repository has no license, so its prompts are not copied here: they
-- load from the user's checkout (dataset.official = the RISEBench folder or
-- its utils.py). Where gpt_eval.py turns a reply it cannot read into a
-- NaN score counted inaccurate, evalhost fails the pair; the summary gives
-- both figures (`official`: the failures counted as gpt_eval.py counts
-- them). evalhost also fails a reply whose Final Score has several numbers
-- (gpt_eval.py then shifts the ratings or stops) or a rating off its
-- prompt's scale (gpt_eval.py takes it as it is).
------------------------------------------------------------------------
local protocol = require "evalhost.datasets.protocol"
local pystr = require "evalhost.datasets.pystr"

local official = { aggregate = "pairs", requests_per_pair = "2-3 requests per pair: consistency, reasoning, quality" }
M.profile.official = official

official.PROMPTS = { "prompt_consist", "prompt_reasoning", "prompt_reasoning_w_input", "prompt_generation",
  "prompt_spatial_ref", "prompt_spatial_ref_img", "prompt_spatial_ref_w_input", "prompt_spatial_qual",
  "prompt_spatial_cons", "prompt_logical_cons_ans", "prompt_logical_cons", "prompt_logical_txt",
  "prompt_logical_img", "prompt_logical_img_wo_q" }
official.CATEGORIES = { "temporal_reasoning", "causal_reasoning", "spatial_reasoning", "logical_reasoning" }
official.TITLES = { temporal_reasoning = "Temporal", causal_reasoning = "Causal", spatial_reasoning = "Spatial",
  logical_reasoning = "Logical" }
-- gpt_eval.py's subtask_dic: the subtask rows, in its order, with its prefixes
official.SUBTASKS = {
  { "Temp", { "Life Progression", "Material Progression", "Environmental Cycles", "Societal Transformation" } },
  { "Causal", { "Structural Deformation", "State Transition", "Chemical and Biological Transformation",
    "Physics Manifestation" } },
  { "Spa", { "Component Assembly", "Object Arrangement", "Viewpoint Generation", "Structural Inference",
    "Layout Reasoning" } },
  { "Logic", { "Pattern Prediction", "Mathematical Derivation", "Puzzle Solving" } },
}
local IMAGE_SIZE, JPEG_QUALITY = 768, 75   -- gpt_generate's image_size; PIL's JPEG default

-- utils.py's module-level  name = """..."""  strings: {name = text}.
official.read_prompts = protocol.python_strings

function official.prepare(dcfg, dataset)
  local state, why = protocol.python_prompts(dcfg, "RISEBench", "utils.py", official.PROMPTS)
  if not state then return nil, why end
  dataset = dataset or {}
  state.columns, state.roots, state.positions = dataset.columns or {}, dataset.roots or {}, dataset.positions or {}
  return state
end

local function null() return util.host().json.null end

-- pandas' isna on a cell: the item lacks the key, or it is null.
local function isna(v) return v == nil or v == null() end

-- Python's truth of a cell; a missing key in a column the frame has is NaN, which is true.
local function truthy(v)
  if v == nil then return true end
  if v == null() or v == false or v == 0 or v == "" then return false end
  if type(v) == "table" then return next(v) ~= nil end
  return true
end

-- The text Python's str.format gives a cell (a missing one is NaN: "nan").
local function cell_text(v)
  if isna(v) then return "nan" end
  if v == true then return "True" end
  if v == false then return "False" end
  return tostring(v)
end

local function picture(ctx, path, what)
  for _, root in ipairs(ctx.state.roots) do
    local p = base.under(root, path)
    if p and util.host().fs.exists(p) then return protocol.load(ctx, p, what) end
  end
  return nil, ("%s: %s %s not found under %s"):format(ctx.id, what, tostring(path), table.concat(ctx.state.roots, ", "))
end

-- eval_vanilla's choice of img1 and prompts for an item: {cons=, rea=,
-- qua=, rea_img=, ref=(path)} or nil and why.
function official.plan(category, f, columns, prompts)
  local P, instruct = prompts, cell_text(f.instruction)
  local function fmt(name, fields)
    local s, why = protocol.format(P[name], fields)
    if not s then return nil, name .. ": " .. why end
    return s
  end
  local x, why = {}, nil
  if category == "temporal_reasoning" or category == "causal_reasoning" then
    local fields = { instruct = instruct, reference = cell_text(f.reference) }
    x.rea_img = not isna(f.reasoning_img)
    x.rea, why = fmt(x.rea_img and "prompt_reasoning_w_input" or "prompt_reasoning", fields)
    x.cons = fmt("prompt_consist", fields)
    x.qua = P.prompt_generation
  elseif category == "spatial_reasoning" then
    local fields = { instruct = instruct, reference = cell_text(f.reference) }
    if not isna(f.reference_img) then
      x.rea_img, x.ref = true, f.reference_img
      x.rea, why = fmt("prompt_spatial_ref_img", fields)
    elseif not isna(f.reasoning_img) then
      x.rea_img = true
      x.rea, why = fmt("prompt_spatial_ref_w_input", fields)
    else
      x.rea_img = false
      x.rea, why = fmt("prompt_spatial_ref", fields)
    end
    x.cons = fmt("prompt_spatial_cons", fields)
    x.qua = P.prompt_spatial_qual
  elseif category == LOGICAL then
    if not isna(f.reference_txt) then
      local fields = { instruct = instruct, reference = cell_text(f.reference_txt) }
      x.rea_img = false
      x.cons = fmt("prompt_logical_cons_ans", fields)
      x.rea, why = fmt("prompt_logical_txt", fields)
    elseif not isna(f.reference_img) then
      x.rea_img, x.ref = true, f.reference_img
      x.cons = fmt("prompt_logical_cons", { instruct = instruct })
      -- a column test: one item with reasoning_wo_ins gives every such item this prompt
      if columns.reasoning_wo_ins then x.rea = P.prompt_logical_img_wo_q
      else x.rea, why = fmt("prompt_logical_img", { instruct = instruct }) end
    else
      return nil, "a logical item needs reference_txt or reference_img (gpt_eval.py stops on it)"
    end
  else
    return nil, ("category %q is not one of RISEBench's four"):format(tostring(category))
  end
  if not x.rea then return nil, why end
  if not x.cons then return nil, "the consistency prompt does not format" end
  x.free = not isna(f.consistency_free)   -- eval_vanilla then skips the consistency call
  if x.free and category == LOGICAL then
    return nil, "a consistency_free logical item (gpt_eval.py stops on it: no judge3)"
  end
  return x
end

function official.requests(ctx)
  local f = ctx.pair.fields or {}
  local x, why = official.plan(ctx.category, f, ctx.state.columns, ctx.state.prompts)
  if not x then return nil, ("rise: %s: %s"):format(ctx.id, why) end
  local img1 = ctx.original
  if x.ref then
    img1, why = picture(ctx, x.ref, "reference_img")
    if not img1 then return nil, "rise: " .. why end
  end
  local err
  img1, err = protocol.thumbnail(ctx, img1, IMAGE_SIZE)
  if not img1 then return nil, "rise: " .. tostring(err) end
  local edit
  edit, err = protocol.thumbnail(ctx, ctx.edited, IMAGE_SIZE)
  if not edit then return nil, "rise: " .. tostring(err) end
  ctx.rise = x
  local out = {}
  local function ask(name, text, images)
    out[#out + 1] = { name = name, text = text, images = images, text_first = true, jpeg_quality = JPEG_QUALITY }
  end
  if not x.free then ask("consistency", x.cons, { img1, edit }) end
  ask("reasoning", x.rea, x.rea_img and { img1, edit } or { edit })
  if ctx.category ~= LOGICAL then ask("quality", x.qua, { edit }) end
  return out
end

-- gpt_eval.py's extract: the integers after the first "Final Score"
-- whose run of digits, stars, commas and spaces has one, else the same
-- after "Final Scores"; nil when none. As its re on str: IGNORECASE with
-- Python's folds, \d and \s of every script, int() of each digit run.
local function is_run(cp) return cp == 42 or cp == 44 or pystr.digit(cp) ~= nil or pystr.is_space(cp) end

function official.extract(text)
  if type(text) ~= "string" then return nil end
  local function after(label)
    local at = 1
    while true do
      local _, i = pystr.find_ci(text, label, at)
      if not i then return nil end
      for _ = 1, 2 do if text:sub(i, i) == "*" then i = i + 1 end end
      if text:sub(i, i) == ":" then i = i + 1 end
      local nums, v = {}, nil
      while true do   -- [\d*\s,\n]*, and re.findall(r"\d+") in it
        local cp, nx = pystr.cp_at(text, i)
        if not is_run(cp) then break end
        local d = pystr.digit(cp)
        if d then v = (v or 0) * 10 + d elseif v then nums[#nums + 1], v = v, nil end
        i = nx
      end
      if v then nums[#nums + 1] = v end
      if #nums > 0 then return nums end
      at = i
    end
  end
  return after("final score") or after("final scores")
end

-- main()'s reading of an item's replies: {C=, R=, P=} as gpt_eval.py
-- assigns them (nil where it has NaN), unread = true when one reply has
-- no number; nil when the script would stop on them.
function official.read(category, free, lists)
  local score
  local NONE = {}
  local function cat(...)
    local out = {}
    for _, l in ipairs({ ... }) do for _, v in ipairs(l) do out[#out + 1] = v end end
    return out
  end
  if free then
    if lists.reasoning and lists.quality then score = cat({ NONE }, lists.reasoning, lists.quality) end
  elseif category == LOGICAL then
    if lists.consistency and lists.reasoning then score = cat(lists.consistency, lists.reasoning) end
  else
    if lists.consistency and lists.reasoning and lists.quality then
      score = cat(lists.consistency, lists.reasoning, lists.quality)
    end
  end
  if not score then return { unread = true } end
  if #score == 3 then
    return { C = score[1] ~= NONE and score[1] or nil, R = score[2], P = score[3] }
  elseif #score == 2 then
    return { C = 4 * math.min(score[1], 1) + 1, R = 4 * math.min(score[2], 1) + 1 }
  end
  return nil
end

-- calculate_score (nil for NaN); free: the row's consistency_free as Python takes it.
function official.score(category, d, free)
  return weighted(category, free, d.C, d.R, d.P)
end

-- calculate_completion; free: the item has a consistency_free value.
function official.complete(category, d, free)
  return all_five(category, free, d.C, d.R, d.P)
end

function official.combine(replies, ctx)
  local x = ctx.rise or {}
  local f = ctx.pair.fields or {}
  local cat = ctx.category
  local lists = {}
  for name, text in pairs(replies) do lists[name] = official.extract(text) end
  -- calculate_score tests the cell's truth: a missing one in a frame with the column is NaN, true
  local score_free = ctx.state.columns.consistency_free and truthy(f.consistency_free) or false
  local od = official.read(cat, x.free, lists)
  local info = { subtask = not isna(f.subtask) and f.subtask or nil,
    position = ctx.state.positions[cat .. "\0" .. ctx.id] }
  if od == nil then
    info.stops = true
    return nil, "rise: a reply's Final Score has several numbers (gpt_eval.py stops on the item)", info
  end
  info.consistency, info.reasoning, info.plausibility = od.C, od.R, od.P
  info.score = official.score(cat, od, score_free)
  info.complete = official.complete(cat, od, x.free)
  if od.unread then
    local missing = {}
    for _, name in ipairs({ "consistency", "reasoning", "quality" }) do
      if replies[name] ~= nil and not lists[name] then missing[#missing + 1] = name end
    end
    return nil, ("rise: the %s reply has no Final Score number (gpt_eval.py: NaN score, counted inaccurate)")
      :format(table.concat(missing, " and ")), info
  end
  for name, l in pairs(lists) do
    if #l ~= 1 then
      return nil, ("rise: the %s reply's Final Score has %d numbers (gpt_eval.py reads them shifted)")
        :format(name, #l), info
    end
    local v, lo, hi = l[1], 1, 5
    if cat == LOGICAL then lo, hi = 0, 1 end
    if v < lo or v > hi then
      return nil, ("rise: the %s rating %d is outside %d..%d (gpt_eval.py takes it as it is)"):format(name, v, lo, hi),
        info
    end
  end
  local dims = { consistency = od.C, reasoning = od.R, plausibility = od.P, score = info.score,
    complete = info.complete, subtask = info.subtask, position = info.position, consistency_free = x.free or nil }
  return info.score, dims
end

-- pandas' Series.mean with NaN (nil) cells: numpy's pairwise sum (protocol.np_sum) with NaN as 0,
-- over the count of numbers; nil when there is none.
local function pd_mean(cells, n)
  local xs, count = {}, 0
  for i = 1, n do
    local v = cells[i]
    if type(v) == "number" then xs[i], count = v, count + 1 else xs[i] = 0.0 end
  end
  if count == 0 then return nil end
  return protocol.np_sum(xs, n) / count
end

local function percent(s) return s and 25 * (s - 1) or nil end

-- items: {category, subtask, C, R, P, score, complete} in data order ->
-- gpt_eval.py's CSV rows {name, score, percent, accuracy}; subtasks: the
-- ones to list (default: those the items have).
function official.table_rows(items, subtasks)
  local function col(list, k)
    local c = {}
    for i, it in ipairs(list) do c[i] = it[k] end
    return c
  end
  local function mean(list, k) return pd_mean(col(list, k), #list) end
  local function where(fn)
    local out = {}
    for _, it in ipairs(items) do if fn(it) then out[#out + 1] = it end end
    return out
  end
  local rows = {}
  local function row(name, list, with_acc, k)
    local s = mean(list, k or "score")
    rows[#rows + 1] = { name = name, score = s, percent = percent(s), accuracy = with_acc and mean(list, "complete") or nil }
  end
  row("Overall", items, true)
  local per = {}
  for _, c in ipairs(official.CATEGORIES) do
    per[c] = where(function(it) return it.category == c end)
    row(official.TITLES[c], per[c], true)
  end
  row("Overall_Reasoning", items, false, "R")
  row("Overall_ApprConsistency", items, false, "C")
  row("Overall_VisualPlausibility_total", items, false, "P")
  for _, c in ipairs(official.CATEGORIES) do
    local t = official.TITLES[c]
    row(t .. "_Reasoning", per[c], false, "R")
    row(t .. "_Consistency", per[c], false, "C")
    if c ~= LOGICAL then row(t .. "_Quality", per[c], false, "P") end
  end
  if not subtasks then
    subtasks = {}
    for _, it in ipairs(items) do if it.subtask ~= nil then subtasks[it.subtask] = true end end
  end
  for _, group in ipairs(official.SUBTASKS) do
    for _, sub in ipairs(group[2]) do
      if subtasks[sub] then row(group[1] .. "-" .. sub, where(function(it) return it.subtask == sub end), true) end
    end
  end
  return rows
end

function official.summary(rows)
  local ours, all, unparsed, stops = {}, {}, 0, 0
  for _, r in ipairs(rows) do
    local d = type(r.dims) == "table" and r.dims or nil
    local o = type(r.official) == "table" and r.official or nil
    if d and d.score ~= nil then
      local it = { category = r.category, subtask = d.subtask, C = d.consistency, R = d.reasoning,
        P = d.plausibility, score = d.score, complete = d.complete, position = d.position or math.huge }
      ours[#ours + 1], all[#all + 1] = it, it
    elseif o then
      unparsed = unparsed + 1
      if o.stops then stops = stops + 1 end
      all[#all + 1] = { category = r.category, subtask = o.subtask, C = o.consistency, R = o.reasoning,
        P = o.plausibility, score = o.score, complete = o.complete or 0, position = o.position or math.huge }
    end
  end
  local function by_position(a, b) return a.position < b.position end
  table.sort(ours, by_position)
  table.sort(all, by_position)
  local subtasks = {}   -- the official table's rows, listed for ours too (empty where every pair failed)
  for _, it in ipairs(all) do if it.subtask ~= nil then subtasks[it.subtask] = true end end
  local out = {
    method = "RISEBench (PhoenixZ810/RISEBench @5f22651 gpt_eval.py): score = 0.3 C + 0.5 R + 0.2 P "
      .. "(0.2 P + 0.8 R consistency-free, 0.3 C + 0.7 R logical), halved when R = 1; accuracy = share of items "
      .. "with every rated dimension 5; Score-Percentage = 25 (score - 1)",
    protocol = "official", rows = official.table_rows(ours, subtasks), unparsed = unparsed, n = #ours, tables = {},
  }
  if unparsed > 0 then
    -- gpt_eval.py's own figures: an unreadable item is a NaN score and inaccurate
    out.official = stops == 0 and official.table_rows(all) or nil
    out.official_stops = stops > 0 and stops or nil
  end
  local function tab(title, list)
    local t = { title = title, header = { "-", "Score-Origin", "Score-Percentage", "Accuracy" }, rows = {}, digits = 3 }
    for _, r in ipairs(list) do t.rows[#t.rows + 1] = { r.name, r.score, r.percent, r.accuracy } end
    out.tables[#out.tables + 1] = t
  end
  tab(("RISEBench (score 1-5, accuracy over %d scored items)"):format(#ours), out.rows)
  if out.official then
    tab(("RISEBench as gpt_eval.py counts it (%d unread items: NaN score, inaccurate)"):format(unparsed), out.official)
  end
  return out
end

return M
