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
    end
    specs[#specs + 1] = s
  end
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

return M
