-- Models and the GPU: which model is on the device, whether two fit.
local util = require "evalhost.util"
local base = require "evalhost.schedule.run"
local Run, log, stop = base.Run, base.log, base.stop

-- Free memory must exceed the second model's footprint by this factor before
-- "auto" keeps both models resident (activations, fragmentation).
local FIT_HEADROOM = 1.10

-- The device a model's memory is counted on: a CUDA device, or "cpu" when
-- run.device_memory simulates a device of that capacity there.
local function counted_device(info)
  local d = info and info.device
  if type(d) ~= "string" then return nil end
  if d == "cuda" then return "cuda:0" end
  if d:match("^cuda:%d+$") then return d end
  if d == "cpu" then
    local mem = util.host().gpu.memory("cpu")
    if mem and mem.simulated then return "cpu" end
  end
  return nil
end

-- May `role` join the model already on the device without a swap?
function Run:fits_beside(role, other)
  if self.keep_both == true then return true end
  if self.keep_both == false then return false end
  local a, b = self.models[role], self.models[other]
  local da, db = counted_device(a:info()), counted_device(b:info())
  if not da or da ~= db then return false end
  local mem = util.host().gpu.memory(da == "cpu" and "cpu" or tonumber(da:match("%d+$")))
  local need = (a:footprint() or 0) * FIT_HEADROOM
  local fits = mem and mem.free and mem.free >= need
  log("info", "keep_both=auto: %s needs %.2f GB, %.2f GB free on %s: %s", role, need / 2 ^ 30,
    (mem and mem.free or 0) / 2 ^ 30, da, fits and "keeping both resident" or "swapping")
  return fits
end

-- A CUDA out-of-memory inside a forward fails that call's pairs (each
-- recorded with code ENOMEM, retried on --resume); a second call in a row
-- that runs out stops the run resumably: the same batches will not fit.
local OOM_CALLS_BEFORE_STOP = 2

-- After a model call: `results` (score_batch's list) or an edit's failure
-- (info, err). Counts consecutive calls whose every item ran out of memory.
function Run:note_call(role, results, info, err)
  local oom
  if results then
    oom = #results > 0
    for _, r in ipairs(results) do
      if r.code ~= "ENOMEM" then oom = false break end
    end
    if oom then err = results[1].error end
  else
    oom = type(info) == "table" and info.code == "ENOMEM"
  end
  if not oom then
    self.oom_calls = 0
    return
  end
  self.oom_calls = (self.oom_calls or 0) + 1
  if self.oom_calls >= OOM_CALLS_BEFORE_STOP then
    stop(("%s: out of memory in %d calls in a row (%s); lower its batch_size (or the images' size) and run the "
      .. "same command with --resume"):format(self.sections[role], self.oom_calls, tostring(err)))
  end
end

-- The model for `role`, on the device; nil and a message when it cannot load.
function Run:model(role)
  local m = self.models[role]
  if m == nil then error(("schedule: no %s model opened for this run"):format(role), 2) end
  if self.load_errors[role] then return nil, self.load_errors[role] end
  if m:state() == "device" then return m end
  for other, om in pairs(self.models) do
    if other ~= role and om:state() == "device" then
      if self.resident_both == nil then self.resident_both = self:fits_beside(role, other) end
      if not self.resident_both then om:unload() end
    end
  end
  local ok, err, info = m:load()
  if ok == nil and type(info) == "table" and (info.code == "ENET" or info.code == "ENOMEM") then
    -- a server that does not wake up, or a model the device cannot hold, is
    -- not every pair's failure: stop, resumable (after a config change)
    stop(("%s: load failed: %s"):format(self.sections[role], tostring(err)))
  end
  if ok == nil and err then
    self.load_errors[role] = ("%s: load failed: %s"):format(self.sections[role], tostring(err))
    log("error", "%s", self.load_errors[role])
    return nil, self.load_errors[role]
  end
  return m
end
