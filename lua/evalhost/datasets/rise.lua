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
  local specs = {}
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
      for k, v in pairs(e) do s.fields[k] = v end
    end
    specs[#specs + 1] = s
  end
  return base.new(specs, path, digest, M.name)
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

-- dims: {consistency=, reasoning=, plausibility=}; category; consistency_free.
-- Returns the weighted score (1..5) or nil when a needed rating is missing.
function M.profile.score(dims, category, consistency_free)
  local C, R, P = dims.consistency, dims.reasoning, dims.plausibility
  local s
  if category == LOGICAL then
    if not (C and R) then return nil end
    s = 0.3 * C + 0.7 * R
  elseif consistency_free then
    if not (P and R) then return nil end
    s = 0.2 * P + 0.8 * R
  else
    if not (C and R and P) then return nil end
    s = 0.3 * C + 0.5 * R + 0.2 * P
  end
  if R == 1 then s = math.max(1, s * 0.5) end
  return s
end

-- 1 when every dimension the category rates is 5, else 0.
function M.profile.accurate(dims, category, consistency_free)
  local need = category == LOGICAL and { "consistency", "reasoning" }
    or consistency_free and { "reasoning", "plausibility" } or { "consistency", "reasoning", "plausibility" }
  for _, k in ipairs(need) do
    if dims[k] ~= 5 then return 0 end
  end
  return 1
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

return M
