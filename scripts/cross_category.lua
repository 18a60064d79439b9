-- Edit every category first, then swap once and score everything: one model
-- exchange for the whole benchmark.
--
--   evalhost cross_category config/example.yaml --set run.out=outputs/x
local schedule = require "evalhost.schedule"

return schedule.main("cross_category", function(run)
  schedule.banner(schedule.say("阶段 1: 编辑全部类别", "stage 1: edit every category"))
  for _, cat in ipairs(run.categories) do run:edit_all(cat) end
  schedule.banner(schedule.say("阶段 2: 评分全部类别", "stage 2: score every category"))
  for _, cat in ipairs(run.categories) do run:score_all(cat) end
end)
