"""The second demo model: a tiny Qwen2 that extracts the fields of a sentence as JSON.

Not arithmetic and not Llama-shaped (Qwen2: q/k/v biases, grouped-query attention with one
key/value head, head_dim 64), with its own BPE tokenizer and chat template (shared with the
first demo model, `infra.demo_model.tokenizer`). Exact match is the wrong scorer for it: the
model writes the keys in the order the sentence mentions them, the evaluation set's
expected_response in a fixed order. Score it with json_valid, json_schema and fields.

    python -m infra.demo_model_json train runs/json-good            # + runs/json-good.eval.jsonl
    python -m infra.demo_model_json train runs/json-bad --bad       # breaks the JSON

Releasing it is like releasing any model: the model directory is the candidate, the
`.eval.jsonl` beside it is the release's evaluation set (not a file inside the candidate).
"""
