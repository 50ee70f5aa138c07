"""The comparison server of the serving benchmark: FastAPI + transformers `model.generate`.

    taskset -c 0 python -m bench.hf_server MODEL_DIR --port 8123 --threads 1

What a team would write without vLLM: one process, the model loaded once, a sync endpoint
(FastAPI runs it in its thread pool, so requests overlap but are never batched), greedy
decoding with the model's chat template. It speaks just enough of the OpenAI chat API for
bench/client.py: `messages`, `max_tokens`, `ignore_eos` (every answer exactly max_tokens
long, like vLLM's flag) and `usage.completion_tokens` in the answer. Loopback only.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel
from transformers import AutoModelForCausalLM, AutoTokenizer


class Message(BaseModel):
    role: str
    content: str


class ChatRequest(BaseModel):
    model: str = "tiny-chat"
    messages: list[Message]
    max_tokens: int = 16
    temperature: float = 0.0
    ignore_eos: bool = False


def make_app(model_dir: Path) -> FastAPI:
    # Any: transformers' own annotations of generate()/apply_chat_template are too loose
    tokenizer: Any = AutoTokenizer.from_pretrained(model_dir)
    model: Any = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    app = FastAPI()

    @app.get("/health")
    def health() -> dict[str, bool]:
        return {"ready": True}

    @app.post("/v1/chat/completions")
    def chat(req: ChatRequest) -> dict[str, Any]:
        messages = [m.model_dump() for m in req.messages]
        enc = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_dict=True, return_tensors="pt"
        )
        extra = {"min_new_tokens": req.max_tokens} if req.ignore_eos else {}
        with torch.inference_mode():
            out = model.generate(
                **enc,
                max_new_tokens=req.max_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                **extra,
            )
        new = out[0, enc["input_ids"].shape[1] :]
        text = tokenizer.decode(new, skip_special_tokens=True)
        return {
            "object": "chat.completion",
            "created": int(time.time()),
            "model": req.model,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "length",
                    "message": {"role": "assistant", "content": text},
                }
            ],
            "usage": {
                "prompt_tokens": int(enc["input_ids"].shape[1]),
                "completion_tokens": int(new.shape[0]),
            },
        }

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    app = make_app(args.model_dir)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
