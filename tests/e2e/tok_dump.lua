-- tok_dump.lua — for the tokenizer parity test: encodes each NUL-separated
-- text of $TOK_LINES with $TOK_JSON and prints its ids, then the hex of the
-- decoded text (or "ERROR <message>").
local tok = assert(evalhost.tokenizer.load(assert(os.getenv("TOK_JSON"), "TOK_JSON unset")))
local f = assert(io.open(assert(os.getenv("TOK_LINES"), "TOK_LINES unset"), "rb"))
local data = f:read("a")
f:close()
local add_special = os.getenv("TOK_ADD_SPECIAL") == "1"
local out = {}
local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end
for text in (data .. "\0"):gmatch("([^%z]*)%z") do
  local ids, err = tok:encode(text, add_special)
  if not ids then
    out[#out + 1] = "ERROR " .. err
    out[#out + 1] = ""
  else
    out[#out + 1] = table.concat(ids, " ")
    local s, derr = tok:decode(ids)
    out[#out + 1] = s and hex(s) or ("ERROR " .. derr)
  end
end
io.write(table.concat(out, "\n"), "\n")
tok:close()
return 0
