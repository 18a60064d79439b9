-- The seed's two-stage order: per category, edit every pair (editor on the
-- GPU), then score every pair (judge on the GPU). 2C-1 model exchanges for C
-- categories: the judge comes in once per category, the editor comes back
-- between categories.
--
--   evalhost two_stage config/example.yaml --set run.out=outputs/x
local schedule = require "evalhost.schedule"

return schedule.main("two_stage", function(run)
  for _, cat in ipairs(run.categories) do
    schedule.banner(schedule.say(("类别: %s (%d 对)"):format(cat, run:count(cat)),
      ("category: %s (%d pairs)"):format(cat, run:count(cat))))
    run:edit_all(cat)   -- stage 1: edited images go to <out>/images/<cat>/ as they are made
    run:score_all(cat)  -- stage 2: read back from disk and scored; logs the category mean
  end
end)
