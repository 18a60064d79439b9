# Stand-in prompts under RISEBench utils.py's names (not its text: no license).

prompt_consist = """RISE stand-in evaluator: prompt_consist. {instruct}
Scale: 1 to 5.
End with **Final Score:** **X**
"""

prompt_reasoning = """RISE stand-in evaluator: prompt_reasoning. {instruct} {reference}
Scale: 1 to 5.
End with **Final Score:** **X**
"""

prompt_reasoning_w_input = """RISE stand-in evaluator: prompt_reasoning_w_input. {instruct} {reference}
Scale: 1 to 5.
End with **Final Score:** **X**
"""

prompt_generation = """RISE stand-in evaluator: prompt_generation.
Scale: 1 to 5.
End with **Final Score:** **X**
"""

prompt_spatial_ref = """RISE stand-in evaluator: prompt_spatial_ref. {instruct} {reference}
Scale: 1 to 5.
End with **Final Score:** **X**
"""

prompt_spatial_ref_img = """RISE stand-in evaluator: prompt_spatial_ref_img. {instruct}
Scale: 1 to 5.
End with **Final Score:** **X**
"""

prompt_spatial_ref_w_input = """RISE stand-in evaluator: prompt_spatial_ref_w_input. {instruct} {reference}
Scale: 1 to 5.
End with **Final Score:** **X**
"""

prompt_spatial_qual = """RISE stand-in evaluator: prompt_spatial_qual.
Scale: 1 to 5.
End with **Final Score:** **X**
"""

prompt_spatial_cons = """RISE stand-in evaluator: prompt_spatial_cons. {instruct}
Scale: 1 to 5.
End with **Final Score:** **X**
"""

prompt_logical_cons_ans = """RISE stand-in evaluator: prompt_logical_cons_ans. {instruct} {reference}
Scale: binary score (0 or 1).
End with **Final Score:** **X**
"""

prompt_logical_cons = """RISE stand-in evaluator: prompt_logical_cons. {instruct}
Scale: binary score (0 or 1).
End with **Final Score:** **X**
"""

prompt_logical_txt = """RISE stand-in evaluator: prompt_logical_txt. {reference}
Scale: binary score (0 or 1).
End with **Final Score:** **X**
"""

prompt_logical_img = """RISE stand-in evaluator: prompt_logical_img. {instruct}
Scale: binary score (0 or 1).
End with **Final Score:** **X**
"""

prompt_logical_img_wo_q = """RISE stand-in evaluator: prompt_logical_img_wo_q.
Scale: binary score (0 or 1).
End with **Final Score:** **X**
"""
