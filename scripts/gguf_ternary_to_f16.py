"""Rewrite a MAGNET GGUF with its TQ2_0 (ternary) tensors as F16, everything else as is.

Used by scripts/bench-ik-iq2bn.sh: ik_llama.cpp's llama-quantize does not read TQ2_0, so the
IQ2_BN file it benchmarks is quantized from this F16 twin. Ternary values times a per-block
f16 scale are exact in f16, so no information is lost.
    python3 scripts/gguf_ternary_to_f16.py IN.gguf OUT.gguf
"""

import sys

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFReader, GGUFWriter, GGUFValueType
from gguf import quants


def main(src, dst):
    r = GGUFReader(src)
    arch = r.fields["general.architecture"]
    arch = bytes(arch.parts[arch.data[0]]).decode()
    w = GGUFWriter(dst, arch)
    for name, f in r.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        t = f.types[0]
        if t == GGUFValueType.ARRAY:
            sub = f.types[1]
            if sub == GGUFValueType.STRING:
                vals = [bytes(f.parts[i]).decode("utf-8", "surrogateescape") for i in f.data]
            else:
                vals = [f.parts[i].tolist()[0] for i in f.data]
            w.add_key_value(name, vals, t, sub_type=sub)
        elif t == GGUFValueType.STRING:
            w.add_key_value(name, bytes(f.parts[f.data[0]]).decode("utf-8", "surrogateescape"), t)
        else:
            w.add_key_value(name, f.parts[f.data[0]].tolist()[0], t)
    for t in r.tensors:
        shape = [int(x) for x in reversed(t.shape.tolist())]
        if t.tensor_type == Q.TQ2_0:
            a = quants.dequantize(t.data, Q.TQ2_0).astype(np.float16).reshape(shape)
            w.add_tensor(t.name, a, raw_dtype=Q.F16)
        else:
            a = np.asarray(t.data)
            w.add_tensor(t.name, a, raw_shape=shape if t.tensor_type not in (Q.F32, Q.F16) else None,
                         raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
