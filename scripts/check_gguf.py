#!/usr/bin/env python3
"""Read a GGUF file with llama.cpp's own PyPI `gguf` reader and print a JSON summary.

Usage: check_gguf.py FILE.gguf OUT.json
The summary lists the architecture, the metadata keys, each tensor's name, type, shape and the
sum of its dequantized values (gguf.quants.dequantize), so a test can compare with our reader.
"""
import json
import sys

import gguf
import numpy as np
from gguf.quants import dequantize


def main():
    path, out = sys.argv[1:3]
    r = gguf.GGUFReader(path)
    fields = {}
    for name, f in r.fields.items():
        if name.startswith("GGUF."):
            continue
        try:
            v = f.contents()
        except Exception:  # older gguf versions
            v = None
        if isinstance(v, list) and len(v) > 8:
            v = {"len": len(v), "head": v[:4]}
        fields[name] = v
    tensors = []
    for t in r.tensors:
        deq = dequantize(t.data, t.tensor_type)
        tensors.append(
            {
                "name": t.name,
                "type": int(t.tensor_type),
                "type_name": t.tensor_type.name,
                "shape": [int(x) for x in t.shape],
                "n_elements": int(t.n_elements),
                "sum": float(np.asarray(deq, dtype=np.float64).sum()),
                "abs_sum": float(np.abs(np.asarray(deq, dtype=np.float64)).sum()),
            }
        )
    with open(out, "w") as f:
        json.dump({"fields": fields, "tensors": tensors}, f, default=str)


if __name__ == "__main__":
    main()
