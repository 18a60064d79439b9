-- A pair's inputs: the input hash an edit record carries, the further
-- pictures of multi-image edits, and edits reused from an earlier run.
local util = require "evalhost.util"
local records = require "evalhost.records"
local runkey = require "evalhost.runkey"
local base = require "evalhost.schedule.run"
local Run, log, stop = base.Run, base.log, base.stop

-- What an edit depends on in the data, as a hash: the pair's image field as
-- written in the file (a file named by path: its bytes), its instruction, id
-- and category. Cheap (no decode), so every edit record carries it and any run
-- can later serve as run.reuse_edits_from.
local IMAGE_EXT = { png = true, jpg = true, jpeg = true, webp = true, bmp = true, gif = true }

-- A dataset's image string that names a file (not base64, not a data: URL):
-- its real path inside the dataset's folder, by the same C rule as the pair's
-- own image (no absolute path, no "..", no symlink leading out); nil and why
-- otherwise ("refused" in why when it names a file outside).
function Run:image_file(v)
  if type(v) ~= "string" or #v >= 4096 or v:find("^data:") then return nil end
  if type(self.dataset.resolve) == "function" then return self.dataset:resolve(v) end
  -- an adapter's dataset: the rule without realpath
  if util.is_absolute(v) then return nil, ("image path %q is absolute (refused)"):format(v) end
  for comp in v:gmatch("[^/]+") do
    if comp == ".." then return nil, ("image path %q escapes the dataset folder (refused)"):format(v) end
  end
  return util.join(util.dirname(self.dataset_path), v)
end

-- What an input image adds to the input hash: a named file's bytes, else
-- the string as written.
function Run:image_digest(v)
  local h = util.host()
  local path = self:image_file(v)
  local fh = path and h.hash_file(path)
  if fh then v = "file:" .. fh end
  return type(v) == "string" and h.hash(v) or "none"
end

-- The C dataset answers which field holds the image (dataset.image or its
-- aliases) and whether it names a file (pair:image_source, dataset.c's one
-- rule); an adapter's pair names its file in image_path.
function Run:pair_image_digest(pair)
  local h = util.host()
  if type(self.dataset.resolve) ~= "function" or type(pair.image_source) ~= "function" then
    return self:image_digest(pair.image_path)
  end
  local kind, data = pair:image_source()
  if kind == nil then return "none" end   -- no usable image: the pair fails on its own
  if kind == "path" then
    local fh = h.hash_file(data)
    return h.hash(fh and ("file:" .. fh) or data)
  end
  return type(data) == "string" and h.hash(data) or "none"
end

function Run:input_hash(cat, pair)
  local h = util.host()
  local more = self:more_images_field(pair)
  if type(more) == "table" then
    local digests = {}
    for i, m in ipairs(more) do digests[i] = self:image_digest(m) end
    more = digests
  end
  -- 64 bits are plenty to tell inputs apart and keep each journal line short
  return h.hash(util.canonical({ category = cat, id = pair.id, instruction = pair.instruction,
    image = self:pair_image_digest(pair),
    more_images = more ~= nil and h.hash(util.canonical(more)) or nil })):sub(1, 16)
end

-- dataset.more_images names a pair field holding the edit's further input
-- pictures (Qwen-Image-Edit-2509/2511's "Picture 2", ...): a list of base64
-- images, data: URLs, or paths beside the dataset file. Its raw value, or
-- nil when the config names none or the pair has none.
function Run:more_images_field(pair)
  local field = (self.config.dataset or {}).more_images
  if type(field) ~= "string" or type(pair.field) ~= "function" then return nil end
  local v = pair:field(field)
  if v == nil or v == (util.host().json or {}).null then return nil end
  return v
end

-- The further input pictures decoded: a list (maybe empty), or nil, err
-- naming the field and the entry.
function Run:more_images(pair)
  local v = self:more_images_field(pair)
  if v == nil then return {} end
  local field = self.config.dataset.more_images
  if type(v) ~= "table" then return nil, ("%s must be a list of images"):format(field) end
  local h, out = util.host(), {}
  local function fail(msg)
    for _, img in ipairs(out) do img:close() end
    return nil, msg
  end
  for i, s in ipairs(v) do
    if type(s) ~= "string" then return fail(("%s[%d] is not a string"):format(field, i)) end
    local img, err
    local path, why = self:image_file(s)
    if path then
      img, err = h.image.load(path)
    elseif why and (tostring(why):find("refused", 1, true) or s:lower():match("%.[a-z]+$") and
        IMAGE_EXT[s:lower():match("%.([a-z]+)$")]) then
      -- a path refused, or a file name that is missing: its own message, not base64's
      return fail(("%s[%d]: %s"):format(field, i, tostring(why)))
    else
      img, err = h.image.decode_b64(s)
    end
    if not img then return fail(("%s[%d]: %s"):format(field, i, tostring(err))) end
    out[i] = img
  end
  return out
end

-- Takes the edit of (cat, id) from run.reuse_edits_from when its input hash
-- and that run's editor config (from its journal header) match this run's: the image is copied (hash-checked) and the
-- step recorded as this run's, with where it came from. True when reused.
-- The source run's editor section (from its journal header: the run key's
-- filtered config), its hash, and the keys in which it differs from this
-- run's (runkey.config_diff's "editor.steps (4 -> 8)"; empty when equal).
function Run:reuse_editor()
  local h, src = util.host(), self.reuse
  if src.editor_hash == nil then
    local hc = type(src.header) == "table" and type(src.header.config) == "table" and src.header.config or {}
    local sec = hc.editor
    if sec == nil then sec = hc.diffusion_model end
    src.editor_hash = h.hash(util.canonical(sec or {}))
    src.editor_diff = src.editor_hash == self.editor_hash and {}
      or runkey.config_diff({ editor = sec or {} }, { editor = self.editor_config or {} })
  end
  return src.editor_hash, src.editor_diff
end

-- Why an edit was not reused, counted for the closing line.
function Run:reuse_missed(why)
  self.reuse_misses = self.reuse_misses or {}
  self.reuse_misses[why] = (self.reuse_misses[why] or 0) + 1
  return false
end

function Run:reuse_edit(cat, id, input)
  local h = util.host()
  local src = self.reuse
  local rec = src:step("edit", cat, id)
  if self:reuse_editor() ~= self.editor_hash then return self:reuse_missed("editor") end
  if not rec then return self:reuse_missed("absent") end
  if not rec.image or rec.error then return self:reuse_missed("failed") end
  if rec.input ~= input then return self:reuse_missed("input") end
  local bytes = h.fs.read(util.join(src.dir, rec.image), nil, records.read_opts(rec.image))
  if not bytes or (rec.hash and h.hash(bytes) ~= rec.hash) then
    log("warn", "[%s] %s: %s changed since that run; editing again", cat, id, util.join(src.dir, rec.image))
    return self:reuse_missed("changed")
  end
  local rel = self:image_rel(cat, id)
  local ok, err = h.fs.mkdir_beneath(self.out, util.dirname(rel))
  if ok then ok, err = h.fs.write(util.join(self.out, rel), bytes) end
  if not ok then stop(("cannot save the edit of %s/%s: %s"):format(cat, id, tostring(err))) end
  self.timings.reused = (self.timings.reused or 0) + 1
  self:record("edit", cat, id, { image = rel, seconds = rec.seconds, hash = rec.hash, input = input,
    from = { run = src.dir, run_key = src.run_key } })
  return true
end
