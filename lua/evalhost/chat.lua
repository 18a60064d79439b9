-- evalhost.chat — the Qwen-VL chat templates, written out in Lua so the
-- native judge builds the same prompt text transformers'
-- apply_chat_template does (tests/e2e/test_chat_template.py renders the
-- Jinja templates and compares).
--
--   local chat = require "evalhost.chat"
--   local text = chat.render({
--     {role = "system", content = "You are a judge."},
--     {role = "user", content = {{type = "image"}, {type = "text", text = "Score it."}}},
--   }, {style = "qwen2", add_generation_prompt = true})
--   text = chat.expand_image_pads(text, {r.tokens})   -- r from evalhost.vlm.preprocess
--
-- Styles: "qwen2" (Qwen2-VL / Qwen2.5-VL: a default system message when the
-- first message is not one) and "qwen3" (Qwen3-VL: none).  A message's
-- content is a string or a list of parts {type="image"|"video"|"text", text=}.
local M = {}

M.IMAGE = "<|vision_start|><|image_pad|><|vision_end|>"
M.VIDEO = "<|vision_start|><|video_pad|><|vision_end|>"
M.DEFAULT_SYSTEM = "You are a helpful assistant."

local function is_image(part)
  return part.type == "image" or part.image ~= nil or part.image_url ~= nil
end

local function is_video(part)
  return part.type == "video" or part.video ~= nil
end

-- The text of one message's content; counts images/videos for vision ids.
local function content_text(content, counts, add_vision_id)
  if type(content) == "string" then
    return content
  end
  local out = {}
  for _, part in ipairs(content) do
    if is_image(part) then
      counts.image = counts.image + 1
      if add_vision_id then out[#out + 1] = "Picture " .. counts.image .. ": " end
      out[#out + 1] = M.IMAGE
    elseif is_video(part) then
      counts.video = counts.video + 1
      if add_vision_id then out[#out + 1] = "Video " .. counts.video .. ": " end
      out[#out + 1] = M.VIDEO
    elseif part.text ~= nil then
      out[#out + 1] = part.text
    end
  end
  return table.concat(out)
end

--- Renders messages to prompt text.  opts: style ("qwen2" default),
--- add_generation_prompt (default true), add_vision_id (default false).
--- qwen3 follows Qwen3-VL's template: a system message only counts first,
--- and an assistant turn keeps only its text parts.
function M.render(messages, opts)
  opts = opts or {}
  local style = opts.style or "qwen2"
  if style ~= "qwen2" and style ~= "qwen3" then
    error("chat.render: unknown style " .. tostring(style) .. " (qwen2, qwen3)", 2)
  end
  local gen = opts.add_generation_prompt
  if gen == nil then gen = true end
  local counts = {image = 0, video = 0}
  local out = {}
  for i, m in ipairs(messages) do
    local role = m.role
    if role ~= "system" and role ~= "user" and role ~= "assistant" then
      error("chat.render: message " .. i .. " has role " .. tostring(role) .. " (system, user, assistant)", 2)
    end
    local content = m.content
    if style == "qwen3" and type(content) == "table" and role ~= "user" then
      local texts = {}       -- system and assistant turns: text parts only
      for _, part in ipairs(content) do
        if part.text ~= nil then texts[#texts + 1] = {text = part.text} end
      end
      content = texts
    end
    if i == 1 and style == "qwen2" and role ~= "system" then
      out[#out + 1] = "<|im_start|>system\n" .. M.DEFAULT_SYSTEM .. "<|im_end|>\n"
    end
    if not (style == "qwen3" and role == "system" and i > 1) then
      out[#out + 1] = "<|im_start|>" .. role .. "\n" .. content_text(content, counts, opts.add_vision_id)
        .. "<|im_end|>\n"
    end
  end
  if gen then out[#out + 1] = "<|im_start|>assistant\n" end
  return table.concat(out)
end

--- The judge's messages: an optional system prompt, then one user turn
--- with the images (in order) before the text.
function M.judge_messages(system_prompt, n_images, user_text)
  local msgs = {}
  if system_prompt and system_prompt ~= "" then
    msgs[#msgs + 1] = {role = "system", content = system_prompt}
  end
  local parts = {}
  for _ = 1, n_images do parts[#parts + 1] = {type = "image"} end
  parts[#parts + 1] = {type = "text", text = user_text}
  msgs[#msgs + 1] = {role = "user", content = parts}
  return msgs
end

--- Replaces the i-th <|image_pad|> with counts[i] copies, as the Qwen-VL
--- processor does with each image's token count.
function M.expand_image_pads(text, counts)
  local i = 0
  local out = text:gsub("<|image_pad|>", function()
    i = i + 1
    local n = counts[i]
    if not n then error("chat.expand_image_pads: more image placeholders than counts", 2) end
    return string.rep("<|image_pad|>", n)
  end)
  if i ~= #counts then
    error(("chat.expand_image_pads: %d placeholders for %d images"):format(i, #counts), 2)
  end
  return out
end

return M
