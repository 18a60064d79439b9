-- evalhost.chat.score_messages: the one judge layout every backend gets.
local chat = require "evalhost.chat"

describe("chat.score_messages", function()
  local edited, original = { name = "edited" }, { name = "original" }

  it("puts the original, then the edited image after their labels, then the text", function()
    local m = chat.score_messages({ image = edited, original = original, system_prompt = "S", user_prompt = "U" })
    assert.are.same({
      { role = "system", content = "S" },
      { role = "user", content = {
        { type = "text", text = chat.LABELS.original }, { type = "image", image = original },
        { type = "text", text = chat.LABELS.edited }, { type = "image", image = edited },
        { type = "text", text = "U" } } },
    }, m)
  end)

  it("has no system turn for an empty system prompt and no original when none is given", function()
    local m = chat.score_messages({ image = edited, system_prompt = "", user_prompt = "U" })
    assert.are.equal(1, #m)
    assert.are.same({ { type = "text", text = chat.LABELS.edited }, { type = "image", image = edited },
      { type = "text", text = "U" } }, m[1].content)
  end)

  it("writes one fallback text from the instruction and description", function()
    local m = chat.score_messages({ image = edited, instruction = "make it red", description = "a cat" })
    local text = m[1].content[#m[1].content].text
    assert.are.equal(chat.fallback_text({ instruction = "make it red", description = "a cat" }), text)
    assert.truthy(text:find("Edit instruction: make it red", 1, true))
    assert.truthy(text:find("Original description: a cat", 1, true))
  end)

  it("keeps a benchmark's own pictures in order, unlabelled, text first when asked", function()
    local a, b = { name = "a" }, { name = "b" }
    local m = chat.score_messages({ image = b, images = { a, b }, user_prompt = "T", text_first = true })
    assert.are.same({ { type = "text", text = "T" }, { type = "image", image = a }, { type = "image", image = b } },
      m[1].content)
    m = chat.score_messages({ image = b, images = { a, b }, user_prompt = "T" })
    assert.are.same({ type = "text", text = "T" }, m[1].content[3])
  end)

  it("names the pictures of a layout for printing", function()
    local a, b = { name = "a" }, { name = "b" }
    local m = chat.score_messages({ image = b, original = a, system_prompt = "S", user_prompt = "T" })
    assert.are.same({ { role = "system", content = "S" }, { role = "user", content = {
      { type = "text", text = chat.LABELS.original }, { type = "image", name = "orig" },
      { type = "text", text = chat.LABELS.edited }, { type = "image", name = "ed" }, { type = "text", text = "T" } } } },
      chat.named(m, { [a] = "orig", [b] = "ed" }))
  end)

  it("returns the request's own messages as they are", function()
    local own = { { role = "user", content = "hi" } }
    assert.are.equal(own, chat.score_messages({ image = edited, messages = own }))
  end)
end)
