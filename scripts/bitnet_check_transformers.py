#!/usr/bin/env python3
"""Check that `transformers` loads our HF export as a BitNet LlamaForCausalLM and that its logits
match the numpy reference forward (which CI checks against our Rust logits).

Not run in CI: torch is a multi-GB install. Needs `pip install torch transformers accelerate numpy`.

Usage: bitnet_check_transformers.py HF_DIR [TEXT]

Note: transformers' AutoBitLinear uses the f32 absmean as the weight scale; our training forward
(and the GGUF TQ2_0 file) rounds it to f16. Expect agreement to ~1e-3 relative, not bit-exactness.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import bitnet_reference_forward as ref  # noqa: E402


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    folder = sys.argv[1]
    text = sys.argv[2] if len(sys.argv) > 2 else "In the beginning God created the heaven and the earth."
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM, PreTrainedTokenizerFast

    try:
        tok = AutoTokenizer.from_pretrained(folder)
    except Exception:  # no tokenizer_config.json: wrap tokenizer.json directly
        tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(folder, "tokenizer.json"))
    ids = tok(text)["input_ids"]
    model = LlamaForCausalLM.from_pretrained(folder, torch_dtype=torch.float32)
    model.eval()
    kinds = {type(m).__name__ for m in model.modules()}
    print("module classes with 'Bit' in the name:", sorted(k for k in kinds if "Bit" in k))
    with torch.no_grad():
        got = model(torch.tensor([ids])).logits[0].numpy()
    import json

    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    want = ref.forward(cfg, ref.load_safetensors(os.path.join(folder, "model.safetensors")), np.array(ids))
    diff = np.abs(got - want).max()
    print(f"tokens {len(ids)}  max|Δlogit| {diff:.3e}  std(logits) {want.std():.3f}  ratio {diff / want.std():.2e}")
    print("argmax agreement:", float((got.argmax(-1) == want.argmax(-1)).mean()))
    sys.exit(0 if diff <= 2e-2 * want.std() else 1)


if __name__ == "__main__":
    main()
