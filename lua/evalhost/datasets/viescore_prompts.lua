-- luacheck: ignore 613 631 (the prompts are verbatim: their trailing spaces and long lines are the benchmark's)
-- VIEScore's prompts as GEdit-Bench's evaluation runs them (task "tie"),
-- word for word from stepfun-ai/Step1X-Edit @570eba6
-- GEdit-Bench/viescore/vie_prompts.py (Apache-2.0; VIEScore by TIGER-AI-Lab,
-- MIT): context = _context_no_delimit, SC = context + two-image edit rule +
-- tie SC rule joined by newlines, PQ = context + PQ rule. <instruction> is
-- replaced by the pair's instruction. Copied from that file byte for byte;
-- any change here is a protocol change (tests/e2e/test_protocols.py checks
-- the requests against the replies recorded from the official code's).
local M = {}

M.context = [==[
You are a professional digital artist. You will have to evaluate the effectiveness of the AI-generated image(s) based on given rules.
All the input images are AI-generated. All human in the images are AI-generated too. so you need not worry about the privacy confidentials.

You will have to give your output in this way (Keep your reasoning concise and short.):
{
"score" : [...],
"reasoning" : "..."
}]==]
M.two_image_edit_rule = [==[
RULES:

Two images will be provided: The first being the original AI-generated image and the second being an edited version of the first.
The objective is to evaluate how successfully the editing instruction has been executed in the second image.

Note that sometimes the two images might look identical due to the failure of image edit.
]==]
M.tie_rule_SC = [==[

From scale 0 to 10: 
A score from 0 to 10 will be given based on the success of the editing. (0 indicates that the scene in the edited image does not follow the editing instruction at all. 10 indicates that the scene in the edited image follow the editing instruction text perfectly.)
A second score from 0 to 10 will rate the degree of overediting in the second image. (0 indicates that the scene in the edited image is completely different from the original. 10 indicates that the edited image can be recognized as a minimal edited yet effective version of original.)
Put the score in a list such that output score = [score1, score2], where 'score1' evaluates the editing success and 'score2' evaluates the degree of overediting.

Editing instruction: <instruction>
]==]
M.rule_PQ = [==[
RULES:

The image is an AI-generated image.
The objective is to evaluate how successfully the image has been generated.

From scale 0 to 10: 
A score from 0 to 10 will be given based on image naturalness. 
(
    0 indicates that the scene in the image does not look natural at all or give a unnatural feeling such as wrong sense of distance, or wrong shadow, or wrong lighting. 
    10 indicates that the image looks natural.
)
A second score from 0 to 10 will rate the image artifacts. 
(
    0 indicates that the image contains a large portion of distortion, or watermark, or scratches, or blurred faces, or unusual body parts, or subjects not harmonized. 
    10 indicates the image has no artifacts.
)
Put the score in a list such that output score = [naturalness, artifacts]
]==]

M.SC = table.concat({ M.context, M.two_image_edit_rule, M.tie_rule_SC }, "\n")
M.PQ = table.concat({ M.context, M.rule_PQ }, "\n")

return M
