-- What every schedule shares, so that a script reads as its order of work:
--
--   return schedule.main("two_stage", function(run)
--     for _, cat in ipairs(run.categories) do
--       run:edit_all(cat)      -- the editor is brought onto the GPU here
--       run:score_all(cat)     -- ... and swapped for the judge here
--     end
--   end)
--
-- Residency is lazy: a step asks for its model and the run swaps only when
-- the model on the GPU is the other one, so the order of the script's calls
-- *is* the swap schedule (and a step skipped on resume costs no swap).
--
-- Every "is this step done?" goes through Run:done and every result through
-- Run:record. Without a journal (evalhost.journal absent) results live in
-- memory only; with one, both also go to the journal, so resume stays local
-- to these two functions.
--
-- The library is split by concern: run (the class), setup, steps, inputs,
-- residency, prefetch (background image I/O) and finish.
local base = require "evalhost.schedule.run"
local setup = require "evalhost.schedule.setup"
require "evalhost.schedule.steps"
require "evalhost.schedule.inputs"
require "evalhost.schedule.residency"
require "evalhost.schedule.prefetch"
require "evalhost.schedule.finish"
require "evalhost.schedule.totals"

local log, banner, Stop = base.log, base.banner, base.Stop

local schedule = {}
schedule.banner = banner
schedule.say = base.say
schedule.stop = base.stop
schedule.start = setup.start

-- Set up, run body(run), write the reports; the exit code (0 all scored, 1
-- some pair or the setup failed). A script bug raises (exit 2).
function schedule.main(name, body, opts)
  -- a run holds one small record per step for its whole length: the
  -- generational collector keeps that heap near its live size (flat memory
  -- at 100k pairs; the incremental one let garbage double it)
  collectgarbage("generational")
  local run, err = schedule.start(name, opts)
  if not run then
    log("error", "%s", err)
    return 1
  end
  -- the pairs this process runs: the chosen categories' (this shard's part)
  local n = 0
  for _, cat in ipairs(run.categories) do n = n + run:count(cat) end
  banner(("evalhost %s: %s"):format(name, base.say(("%d 个类别, %d 对"):format(#run.categories, n),
    ("%d categories, %d pairs"):format(#run.categories, n))))
  local ok, e = xpcall(function() body(run); return run:finish() end, function(m)
    if getmetatable(m) == Stop then return m end
    return debug.traceback(tostring(m), 2)
  end)
  if ok then return e end
  if getmetatable(e) ~= Stop then error(e, 0) end
  if e.signal then log("warn", "%s: stopping after the item under way", e.msg) else log("error", "%s", e.msg) end
  if run.image_writer then
    -- the saves already under way finish; unless the journal failed, the edits they
    -- saved are journaled, so that resume does not redo them
    if not run.journal_failed then
      local okw, ew = pcall(run.settle_writes, run, true, true)
      if not okw then log("error", "%s", tostring(ew)) end
    end
    run.image_writer:close()
  end
  if run.reader then run.reader:close() end
  if run.journal then
    if not run.journal_failed then run:journal_totals() end   -- this process's swaps and timings
    if e.signal then
      log("info", "every finished step is in %s", run.journal:path())
    else
      log("error", "stopped: every finished step is in %s; fix the cause and run the same command with --resume",
        run.journal:path())
    end
    run.journal:close()   -- releases .lock
  end
  -- no report: a stopped run leaves none behind (the next one writes it whole)
  if e.signal then
    log("warn", "interrupted: resume with --resume")
    return e.exit_code
  end
  return 1
end

return schedule
