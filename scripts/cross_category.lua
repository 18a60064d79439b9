-- Edit every category first, then swap once and score everything: one model
-- exchange for the whole benchmark.
--
--   evalhost scripts/cross_category.lua config/example.yaml --set run.out=outputs/x
local schedule = require "evalhost.schedule"

return schedule.main("cross_category", function(run)
  schedule.banner("阶段 1 / stage 1: 编辑全部类别 / edit every category")
  for _, cat in ipairs(run.categories) do run:edit_all(cat) end
  schedule.banner("阶段 2 / stage 2: 评分全部类别 / score every category")
  for _, cat in ipairs(run.categories) do run:score_all(cat) end
end)
