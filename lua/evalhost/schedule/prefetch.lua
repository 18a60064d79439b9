-- Background image I/O: the writer thread that saves edited images while
-- the next pair is edited, and the reader thread that decodes the images the
-- next steps need (originals, edited images for the next judge batch).
local util = require "evalhost.util"
local base = require "evalhost.schedule.run"
local records = require "evalhost.records"
local Run, stop, pair_id = base.Run, base.stop, base.pair_id

-- Edited images are saved by evalhost.image_writer's thread (encode, fsync,
-- rename) while the next pair is edited. An edit is journaled only from its
-- write's result, so still after its file is durable (SPEC §6); a kill loses
-- at most the writes in flight, redone on resume. `run.writes_in_flight`
-- (default 1: a kill loses the pair being edited and at most one being
-- saved) trades that for more overlap on fast editors.
-- nil on a host without the writer: Run:edit then saves in line.
function Run:writer()
  if self.image_writer == nil then
    local IW = rawget(util.host(), "image_writer")
    local n = math.tointeger((util.host().config.run or {}).writes_in_flight) or 1
    self.image_writer = IW and IW.new({ in_flight = math.max(1, math.min(n, 64)) }) or false
    self.writing, self.writing_ids = {}, {}
  end
  return self.image_writer or nil
end

-- Journals the edits whose images are saved (wait: all submitted ones), in
-- submission order. A failed save stops the run as an in-line save would,
-- once the saves that succeeded are journaled; on_stop: the run is stopping
-- already, failures are left for resume to redo.
function Run:settle_writes(wait, on_stop)
  local w = self.image_writer
  if not w or next(self.writing) == nil then return end
  local failed
  for _, r in ipairs(wait and w:flush() or w:collect()) do
    local p = self.writing[r.path]
    self.writing[r.path] = nil
    self.writing_ids[p.cat .. "\0" .. tostring(p.id)] = nil
    if r.error then
      failed = failed or ("cannot save the edit of %s/%s: %s"):format(p.cat, p.id, r.error)
    else
      p.rec.hash = r.hash   -- of the bytes written: lets a resumed run check the file (issue 8)
      self:record("edit", p.cat, p.id, p.rec)
    end
  end
  if failed and not on_stop then stop(failed) end
end


-- The reader: a thread that loads the edited images the next batch scores
-- and decodes the next pairs' originals while a model works. Made on first
-- use, remade (empty) when a caller needs room for more in flight; false
-- where the host has no image_writer.
function Run:get_reader(in_flight)
  in_flight = math.min(in_flight, 64)
  if self.reader and self.reader_room < in_flight then
    self:drop_prefetched()
    self.reader:close()
    self.reader = nil
  end
  if self.reader == nil then
    local IW = rawget(util.host(), "image_writer")
    self.reader = IW and IW.new({ in_flight = in_flight }) or false
    self.reader_room = in_flight
    self.loading, self.prefetched = {}, {}
  end
  return self.reader
end

-- Takes key's prefetched Image (waiting only for the jobs queued before
-- it), or nil when it was never queued or failed.
function Run:take_prefetched(key)
  while self.loading and self.loading[key] do self:take_loads(false, true) end
  local img = self.prefetched and self.prefetched[key]
  if img then self.prefetched[key] = nil end
  return img
end

-- An edited image for scoring: the one prefetched on the reader's thread
-- (waited for when still loading), else loaded here.
function Run:load_edited(path, rel)
  local img = self:take_prefetched(path)
  if img then return img end
  return util.host().image.load(path, records.read_opts(rel or path))   -- both values: an error names the file
end

local function original_key(cat, pair) return "<original>/" .. cat .. "/" .. pair_id(pair) end

-- Queues the decode of pair's original when a step of this run will want it
-- (its edit, or its score after a good edit).
function Run:prefetch_original(cat, pair)
  if type(pair) ~= "table" or type(pair.image_source) ~= "function" or pair.error then return end
  local id = pair_id(pair)
  local e = self:done("edit", cat, id)
  if e and (e.error or self:done(self.score_stage, cat, id)) then return end
  local reader = self:get_reader(2)
  local key = original_key(cat, pair)
  if not reader or self.loading[key] or self.prefetched[key] then return end
  local kind, data = pair:image_source()
  if kind and reader:decode(key, data, kind) then self.loading[key] = true end
end

-- pair's original: prefetched, else decoded here (a failed prefetch too:
-- pair:image then names the pair's place in the file).
function Run:original(cat, pair)
  local img = self:take_prefetched(original_key(cat, pair))
  if img then return img end
  return pair:image()   -- both values: an error names the pair's place in the file
end

-- Closes pair's prefetched original if nothing took it.
function Run:forget_original(cat, pair)
  if not self.reader then return end
  local img = self:take_prefetched(original_key(cat, pair))
  if img then img:close() end
end

-- Moves the reader's finished results into self.prefetched (wait: all of
-- them; oldest: at least the oldest outstanding one). A failed load is
-- dropped: loading in line repeats its error for the pair.
function Run:take_loads(wait, oldest)
  local got = wait and self.reader:flush() or self.reader:collect(oldest)
  for _, r in ipairs(got) do
    self.loading[r.path] = nil
    if r.image then self.prefetched[r.path] = r.image end
  end
end

-- Closes the prefetched images no request took (the list moved past them).
function Run:drop_prefetched()
  if not self.reader then return end
  self:take_loads(true)
  for path, img in pairs(self.prefetched) do
    img:close()
    self.prefetched[path] = nil
  end
end

-- Queues loads of the edited images of list[from..] the next batch will score
-- (at most size), so that they decode while the judge works on this batch.
function Run:prefetch(cat, list, from, size)
  size = math.min(size, 32)
  if not self:get_reader(2 * size) then return end
  self:drop_prefetched()
  local queued = 0
  -- a bounded look ahead: list may be a window (Run:pair_window) that keeps 512
  for j = from, math.min(#list, from + 4 * size) do
    if queued >= size then break end
    local id = pair_id(list[j])
    local e = not self:done(self.score_stage, cat, id) and self:done("edit", cat, id)
    if e and not e.error and type(e.image) == "string" then
      local path = util.join(self.out, e.image)
      if not self.loading[path] and self.reader:load(path, records.read_opts(e.image)) then
        self.loading[path] = true
        queued = queued + 1
        self:prefetch_original(cat, list[j])   -- the judge's other image
      end
    end
  end
end
