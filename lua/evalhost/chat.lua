-- evalhost.chat — the judge's chat, built once for every judge backend
-- (SPEC §3), and the Qwen-VL chat templates written out in Lua.
--
-- score_messages(req) turns a score request into OpenAI-style messages
-- with typed content parts; Model:score calls it for a request without
-- `messages` (host/lua/l_model.c), so the native judge renders this very
-- list with its model's chat template and the http judge sends it as
-- content parts.  Replace it (or set req.messages) to change the layout:
--
--   local chat = require "evalhost.chat"
--   chat.score_messages(req)  --> {{role = "system", content = "..."},
--     {role = "user", content = {{type = "text", text = "原始图像 / original image:"},
--       {type = "image", image = req.original}, {type = "text", text = "编辑后的图像 / edited image:"},
--       {type = "image", image = req.image}, {type = "text", text = req.user_prompt}}}}
--
-- render() is the Lua form of the templates transformers' apply_chat_template
-- renders (tests/e2e/test_chat_template.py compares with Jinja):
--
--   local text = chat.render(messages, {style = "qwen3", add_generation_prompt = true})
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

-- The name of score_messages' layout, part of the run key: change it with
-- the layout, so that --resume never mixes scores asked two ways.
M.LAYOUT = "2"  -- 1: edited first, unlabelled (native) or original first (http); 2: one layout

-- The text before each picture of the default layout: the words the
-- prompts use (config/prompts.yaml: 原始图像, 编辑后的图像; original, edited).
M.LABELS = {original = "原始图像 / original image:", edited = "编辑后的图像 / edited image:"}

--- The user text of a request without user_prompt (the one fallback).
function M.fallback_text(req)
  return ("Edit instruction: %s\nOriginal description: %s\nRate how well the edited image follows the "
    .. "instruction while keeping everything else unchanged. End with a line \"Score: N\"."):format(
    tostring(req.instruction or ""), tostring(req.description or ""))
end

--- The judge's messages for a score request: req.messages as given; else
--- a system turn (system_prompt, when not empty) and one user turn: the
--- pictures, then the text (user_prompt, else fallback_text).  The pictures
--- are req.images in their order, unlabelled (a benchmark's own request;
--- text_first puts the text before them), else the original (when given)
--- and the edited image, each after its label.
function M.score_messages(req)
  if req.messages ~= nil then return req.messages end
  local msgs = {}
  if req.system_prompt and req.system_prompt ~= "" then
    msgs[1] = {role = "system", content = req.system_prompt}
  end
  local text = {type = "text", text = req.user_prompt or M.fallback_text(req)}
  local parts = {}
  if req.text_first then parts[1] = text end
  if req.images then
    for _, img in ipairs(req.images) do parts[#parts + 1] = {type = "image", image = img} end
  else
    if req.original then
      parts[#parts + 1] = {type = "text", text = M.LABELS.original}
      parts[#parts + 1] = {type = "image", image = req.original}
    end
    parts[#parts + 1] = {type = "text", text = M.LABELS.edited}
    parts[#parts + 1] = {type = "image", image = req.image}
  end
  if not req.text_first then parts[#parts + 1] = text end
  msgs[#msgs + 1] = {role = "user", content = parts}
  return msgs
end

--- The messages with each picture part replaced by {type = "image", name =
--- names[picture]}: a layout that can be printed or compared (logs, tests).
function M.named(messages, names)
  local out = {}
  for i, m in ipairs(messages) do
    local content = m.content
    if type(content) == "table" then
      content = {}
      for j, part in ipairs(m.content) do
        content[j] = part.image and {type = "image", name = names[part.image]} or {type = "text", text = part.text}
      end
    end
    out[i] = {role = m.role, content = content}
  end
  return out
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
