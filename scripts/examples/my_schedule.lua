-- A custom schedule: edit in chunks of K pairs, then swap and score the
-- chunk. K trades exchanges (about 2N/K) for how soon the first scores
-- arrive. K comes from the config's free-form `script:` section.
--
--   evalhost scripts/examples/my_schedule.lua config/example.yaml \
--       --set script.chunk=8 --set run.out=outputs/chunked
local schedule = require "evalhost.schedule"
local stats = require "evalhost.stats"

local K = (evalhost.config.script or {}).chunk or 10

return schedule.main("chunked", function(run)
  -- Every pair of every selected category, in file order.
  local todo = {}
  for _, cat in ipairs(run.categories) do
    for _, pair in run:pairs(cat) do todo[#todo + 1] = { cat = cat, pair = pair } end
  end

  local bar = evalhost.progress(("[all] chunks of %d"):format(K), #todo)
  for first = 1, #todo, K do
    local chunk = table.move(todo, first, math.min(first + K - 1, #todo), 1, {})
    for _, t in ipairs(chunk) do run:edit(t.cat, t.pair) end   -- editor on the GPU
    for _, t in ipairs(chunk) do                               -- judge on the GPU
      run:score(t.cat, t.pair)
      bar:tick()
    end
  end
  bar:close()

  -- A summary of our own: the three lowest-scoring pairs of each category.
  for _, cat in ipairs(run.categories) do
    local scored = {}
    for _, pair in run:pairs(cat) do
      local s = run:done("score", cat, pair.id)
      if s and s.score then scored[#scored + 1] = { id = pair.id, score = s.score } end
    end
    table.sort(scored, function(a, b) return a.score < b.score end)
    local worst = {}
    for i = 1, math.min(3, #scored) do worst[i] = ("%s=%.2f"):format(scored[i].id, scored[i].score) end
    local xs = {}
    for i, s in ipairs(scored) do xs[i] = s.score end
    evalhost.log("info", "[%s] mean %.3f, lowest: %s", cat, stats.mean(xs) or 0 / 0, table.concat(worst, ", "))
  end
end)
