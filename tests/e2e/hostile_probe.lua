-- hostile_probe.lua — feeds one hostile input to the host the way a schedule
-- would, for tests/e2e/test_hostile.py.
--   evalhost hostile_probe.lua CONFIG KIND PATH
-- Prints one line per problem to stderr ("probe: <message>") and returns 1
-- when there was any, 0 when the input was accepted.  Never raises on bad
-- data: a raise here would be the host turning data into a script error.
local h = evalhost
local kind, path = ...
local bad = 0

local function report(what, err)
  bad = 1
  io.stderr:write("probe: ", what, ": ", tostring(err), "\n")
end

local function image_ok(img, what)
  local w, hgt = img:size()
  print(("%s: %dx%d"):format(what, w, hgt))
  img:close()
end

if kind == "config" then
  print("config accepted")
elseif kind == "image" then
  local img, err = h.image.load(path)
  if img then image_ok(img, path) else report(path, err) end
elseif kind == "b64" then
  local text = assert(h.fs.read(path))
  local img, err = h.image.decode_b64(text)
  if img then image_ok(img, path) else report(path, err) end
elseif kind == "dataset" then
  local ds, err = h.dataset.open(path)
  if not ds then
    report(path, err)
  else
    for _, cat in ipairs(ds:categories()) do
      for i, pair in ds:pairs(cat) do
        local where = ("%s/%s (#%d)"):format(cat, tostring(pair.id), i)
        if pair.error then
          report(where, pair.error)
        else
          local img, ierr = pair:image()
          if img then image_ok(img, where) else report(where, ierr) end
        end
      end
    end
    ds:close()
  end
elseif kind == "tokenizer" then
  local tok, err = h.tokenizer.load(path)
  if not tok then
    report(path, err)
  else
    local ids, eerr = tok:encode("Replace the sky <|im_start|> 图像 café")
    if ids then print(("%d ids"):format(#ids)) else report(path, eerr) end
    tok:close()
  end
elseif kind == "reply" then
  -- the judge (backend http) points at the test's one-reply server
  local m = assert(h.model.open(h.config.judge, "judge"))
  assert(m:load())
  local img = assert(h.image.decode_b64(h.config.script.image_b64))
  local r, err = m:score({ image = img, original = img, instruction = "make it red", id = "pair_001",
                           system_prompt = "You judge edits.", user_prompt = "id=pair_001 Score 0-10." })
  if r then print(("score %s"):format(r.score)) else report("judge", err) end
  img:close()
  m:close()
else
  error("hostile_probe.lua: unknown kind " .. tostring(kind))
end
return bad
