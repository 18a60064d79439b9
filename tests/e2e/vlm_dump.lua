-- vlm_dump.lua — for the vision parity test: preprocesses $VLM_IMAGE with
-- $VLM_CONFIG (a preprocessor_config.json) and writes to $VLM_OUT a line
-- "t h w tokens rows dim" and the float32 patches, or "ERROR <message>".
local out = assert(io.open(assert(os.getenv("VLM_OUT"), "VLM_OUT unset"), "wb"))
local img, err = evalhost.image.load((assert(os.getenv("VLM_IMAGE"), "VLM_IMAGE unset")))
local r
if img then
  r, err = evalhost.vlm.preprocess(img, assert(os.getenv("VLM_CONFIG"), "VLM_CONFIG unset"))
  img:close()
end
if not r then
  out:write("ERROR ", err, "\n")
else
  local rows, dim = r.patches:shape()
  local g = r.grid_thw
  out:write(string.format("%d %d %d %d %d %d\n", g[1], g[2], g[3], r.tokens, rows, dim))
  out:write(r.patches:bytes())
  r.patches:close()
end
out:close()
return 0
