# Stand-in prompts in Kris_Bench's utils/prompts.py layout (not its text: no license).

prompt_consist = """
[consistency] KRIS stand-in: rate visual consistency 1-5.
Editing Instruction: {instruct}
Answer in JSON:
{{
"reasoning": ...,
"consistency_score": X
}}
"""

prompt_quality = """
[quality] KRIS stand-in: rate perceptual quality 1-5.
{{
"reasoning": XXX,
"quality_score": X,
}}
"""

prompt_instruction_following = """
[instruction] KRIS stand-in: rate instruction following 1-5.
Editing Instruction: {instruct}
{{
"instruction_score": X
}}
"""

prompt_abnormal_instruction_following = """
[instruction] KRIS stand-in, abnormal: {instruct} / {explanation}
"""

prompt_dual_evaluation = """
[dual] KRIS stand-in: rate instruction and knowledge 1-5.
Editing Instruction: {instruct}
Real-World Knowledge Explanation: {explanation}
{{
  "instruction_score": X,
  "knowledge_score": X
}}
"""

prompt_view_instruction_following = """
[instruction] KRIS stand-in, viewpoint with ground truth: {instruct}
"""

prompt_consist_temporal = """
[consistency] KRIS stand-in, frame {N} in context: {instruct}
"""

prompt_instruction_temporal = """
[instruction] KRIS stand-in, frame {N} follows: {instruct}
"""

prompt_consist_multi = """
[consistency] KRIS stand-in, composite vs its sources: {instruct}
"""

prompt_instruction_multi = """
[instruction] KRIS stand-in, composite follows: {instruct}
"""
