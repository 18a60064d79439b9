-- GEdit-Bench (stepfun-ai/GEdit-Bench) as evalhost pairs, from the JSONL +
-- images that tools/convert_gedit.py writes from the published dataset:
--   {"id": key, "category": task_type, "edit_instruction": ..., "image_path":
--    "images/<task_type>/<key>.png", "language": "en"|"cn", "intersection_exist": bool}
-- dataset.language (default en) keeps one instruction language, as the
-- benchmark scores each language apart; dataset.intersection=true keeps the
-- intersection subset only.
--
-- Scoring profile (VIEScore, as GEdit-Bench reports it): semantic
-- consistency SC and perceptual quality PQ rated 0-10 (each the minimum of
-- its prompt's sub-scores), overall O = sqrt(SC * PQ) per pair; a task
-- type's figure is the mean over its pairs and the benchmark's the mean of
-- the task types' means (group mean: report.aggregate = categories).
local base = require "evalhost.datasets.base"
local util = require "evalhost.util"

local M = { name = "gedit" }

function M.open(path, opts)
  opts = opts or {}
  local h = util.host()
  local lang = opts.language or "en"
  local ds, err = h.dataset.open(path, { format = "jsonl" })
  if not ds then return nil, "gedit: " .. tostring(err) end
  local digest = h.hash_file(path)
  local root = util.dirname(path)
  local specs = {}
  for _, cat in ipairs(ds:categories()) do
    for _, p in ds:pairs(cat) do
      local fields = {}
      for _, k in ipairs({ "language", "intersection_exist", "image_path", "key" }) do fields[k] = p:field(k) end
      if fields.language == lang and (opts.intersection ~= true or fields.intersection_exist == true) then
        local s = { id = p.id, category = cat, instruction = p.instruction, description = p.description,
          fields = fields, error = p.error }
        s.image_path = base.under(root, fields.image_path)
        if fields.image_path ~= nil and s.image_path == nil then
          s.error = ("gedit: %s: %s/%s: image path %q leaves %s"):format(path, cat, tostring(p.id), tostring(fields.image_path), root)
        end
        specs[#specs + 1] = s
      end
    end
  end
  ds:close()
  if #specs == 0 then return nil, ("gedit: %s has no pairs in language %q"):format(path, lang) end
  return base.new(specs, path, h.hash(digest .. "\n" .. lang .. "\n" .. tostring(opts.intersection == true)), M.name)
end

M.profile = {
  dimensions = { "SC", "PQ" },
  scale = { 0, 10 },
  aggregate = "categories",
  -- one request per pair asking for both sub-score pairs (VIEScore asks in two
  -- requests; one keeps a pair one judge call); the last line is a plain
  -- overall score so any text parser finds one.
  template = {
    system = "You are a professional digital artist. You judge an image edit: the first image is the original, "
      .. "the second the edit.",
    user = "(id={{id}}) Editing instruction: {{instruction}}\n\n"
      .. "Rate from 0 to 10: (a) how well the edit follows the instruction, (b) how little it over-edits, "
      .. "(c) how natural the edited image looks, (d) how free it is of artifacts. Answer with the lines\n"
      .. "SC: a, b\nPQ: c, d\nScore: N (your overall 0-10)",
  },
}

-- VIEScore: SC and PQ are the minima of their sub-scores; O = sqrt(SC * PQ).
function M.profile.score(sc_scores, pq_scores)
  if type(sc_scores) ~= "table" or #sc_scores == 0 or type(pq_scores) ~= "table" or #pq_scores == 0 then return nil end
  local sc, pq = math.min(table.unpack(sc_scores)), math.min(table.unpack(pq_scores))
  return { SC = sc, PQ = pq, O = math.sqrt(sc * pq) }
end

-- The judge's reply -> O, {SC=, PQ=, O=}; or nil and why.
function M.profile.from_text(text)
  local sc, pq = base.labelled(text, "SC"), base.labelled(text, "PQ")
  local ok, why = base.check_range(sc, 1, 0, 10)
  if ok then ok, why = base.check_range(pq, 1, 0, 10) end
  if not ok then return nil, "gedit: SC/PQ lines: " .. why end
  for _, x in ipairs(sc) do if x > 10 then return nil, "gedit: SC rating outside 0..10" end end
  for _, x in ipairs(pq) do if x > 10 then return nil, "gedit: PQ rating outside 0..10" end end
  local r = M.profile.score(sc, pq)
  return r.O, r
end

function M.profile.summary(rows)
  local rs = {}
  for _, r in ipairs(rows) do
    if type(r.dims) == "table" then rs[#rs + 1] = { category = r.category, SC = r.dims.SC, PQ = r.dims.PQ, O = r.dims.O } end
  end
  local agg = M.profile.aggregate_rows(rs)
  agg.method = "VIEScore: SC, PQ = minima of their sub-scores, O = sqrt(SC*PQ); task-type means, then their mean"
  return agg
end

-- rows: {category=, SC=, PQ=, O=} -> group means per task type and their mean.
function M.profile.aggregate_rows(rows)
  local per, order = {}, {}
  for _, r in ipairs(rows) do
    local c = per[r.category]
    if not c then c = { SC = {}, PQ = {}, O = {} }; per[r.category], order[#order + 1] = c, r.category end
    for _, k in ipairs({ "SC", "PQ", "O" }) do table.insert(c[k], r[k]) end
  end
  local out = { categories = {}, order = order, overall = {} }
  for _, k in ipairs({ "SC", "PQ", "O" }) do
    local means = {}
    for _, cat in ipairs(order) do
      out.categories[cat] = out.categories[cat] or {}
      local m = base.mean(table.unpack(per[cat][k]))
      out.categories[cat][k] = m
      means[#means + 1] = m
    end
    out.overall[k] = base.mean(table.unpack(means))
  end
  return out
end

return M
