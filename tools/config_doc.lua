-- README's configuration reference, rendered from lua/evalhost/schema.lua:
--
--   build/evalhost tools/config_doc.lua                            # prints it
--   build/evalhost tools/config_doc.lua --set script.write=README.md   # replaces it in README
--
-- The text goes between the `<!-- config-schema:begin -->` and `end` markers;
-- tests/e2e/test_config_schema.py fails when README and the schema differ.
local h = evalhost
local text = require("evalhost.config_check").markdown()
local BEGIN, END = "<!-- config-schema:begin -->", "<!-- config-schema:end -->"

local target = (h.config.script or {}).write
if target == nil then
  io.stdout:write(text, "\n")
  return 0
end
local doc = assert(h.fs.read(target))
local a, b = doc:find(BEGIN, 1, true)
local c = doc:find(END, 1, true)
if not a or not c or c < b then
  h.log("error", "%s has no %s ... %s markers", target, BEGIN, END)
  return 1
end
assert(h.fs.write(target, doc:sub(1, b) .. "\n" .. text .. "\n" .. doc:sub(c)))
return 0
