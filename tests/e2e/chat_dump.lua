-- chat_dump.lua — for the chat template test: renders the messages in
-- $CHAT_JSON ({style=, add_vision_id=, messages=[...]}) with evalhost.chat.
local chat = require "evalhost.chat"
local f = assert(io.open(assert(os.getenv("CHAT_JSON"), "CHAT_JSON unset"), "rb"))
local spec = assert(evalhost.json.decode(f:read("a")))
f:close()
io.write(chat.render(spec.messages, {style = spec.style, add_vision_id = spec.add_vision_id,
                                     add_generation_prompt = spec.add_generation_prompt}))
return 0
