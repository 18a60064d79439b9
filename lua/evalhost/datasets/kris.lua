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

return M
