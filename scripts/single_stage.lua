-- The seed's old order, kept for comparison: edit one pair, score it, next.
-- Every pair moves both models: 2N-1 exchanges for N pairs.
--
--   evalhost scripts/single_stage.lua config/example.yaml --set run.out=outputs/x
local schedule = require "evalhost.schedule"

return schedule.main("single_stage", function(run)
  for _, cat in ipairs(run.categories) do
    schedule.banner(("类别 / category: %s (%d 对 / pairs)"):format(cat, run:count(cat)))
    run:each(cat, "编辑并评分", function(pair)
      if run:edit(cat, pair) then run:score(cat, pair) end
    end)
    run:log_category(cat)
  end
end)
