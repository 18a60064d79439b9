-- The seed's old order, kept for comparison: edit one pair, score it, next.
-- Every pair moves both models: 2N-1 exchanges for N pairs.
--
--   evalhost single_stage config/example.yaml --set run.out=outputs/x
local schedule = require "evalhost.schedule"

return schedule.main("single_stage", function(run)
  for _, cat in ipairs(run.categories) do
    schedule.banner(schedule.say(("类别: %s (%d 对)"):format(cat, run:count(cat)),
      ("category: %s (%d pairs)"):format(cat, run:count(cat))))
    run:each(cat, schedule.say("编辑并评分", "edit and score"), function(pair)
      if run:edit(cat, pair) then run:score(cat, pair) end
    end)
    run:log_category(cat)
  end
end)
