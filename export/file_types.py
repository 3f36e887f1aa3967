"""The GGUF types `aurora-export` writes and the weights it merges onto: tables without torch (the command
line, the export config and the size check read them).

Float types are written directly by `gguf_model`; the others are made by llama.cpp's quantizer (`quantize`)
from one F16 intermediate.
"""

from __future__ import annotations

from gguf import GGMLQuantizationType, LlamaFileType

# Output type -> (tensor type of the weights, llama.cpp file type).
FLOAT_TYPES = {
    "f32": (GGMLQuantizationType.F32, LlamaFileType.ALL_F32),
    "f16": (GGMLQuantizationType.F16, LlamaFileType.MOSTLY_F16),
    "bf16": (GGMLQuantizationType.BF16, LlamaFileType.MOSTLY_BF16),
}
INTERMEDIATE = "f16"  # llama.cpp quantizes from this one file

# Output type -> llama.cpp file type, and approximate bits per weight (for the size check and progress).
QUANT_TYPES = {
    "q8_0": ("LLAMA_FTYPE_MOSTLY_Q8_0", 8.5),
    "q6_k": ("LLAMA_FTYPE_MOSTLY_Q6_K", 6.6),
    "q5_k_m": ("LLAMA_FTYPE_MOSTLY_Q5_K_M", 5.7),
    "q5_0": ("LLAMA_FTYPE_MOSTLY_Q5_0", 5.5),
    "q4_k_m": ("LLAMA_FTYPE_MOSTLY_Q4_K_M", 4.9),
    "q4_0": ("LLAMA_FTYPE_MOSTLY_Q4_0", 4.5),
    "q3_k_m": ("LLAMA_FTYPE_MOSTLY_Q3_K_M", 3.9),
    "q2_k": ("LLAMA_FTYPE_MOSTLY_Q2_K", 3.0),
    # i-quants: llama.cpp refuses them without an importance matrix (--imatrix)
    "iq4_xs": ("LLAMA_FTYPE_MOSTLY_IQ4_XS", 4.3),
    "iq3_s": ("LLAMA_FTYPE_MOSTLY_IQ3_S", 3.5),
    "iq3_xxs": ("LLAMA_FTYPE_MOSTLY_IQ3_XXS", 3.1),
    "iq2_xs": ("LLAMA_FTYPE_MOSTLY_IQ2_XS", 2.4),
    "iq2_xxs": ("LLAMA_FTYPE_MOSTLY_IQ2_XXS", 2.1),
}
NEEDS_IMATRIX = tuple(t for t in QUANT_TYPES if t.startswith("iq"))
TYPES = tuple(FLOAT_TYPES) + tuple(QUANT_TYPES)

# What the LoRA delta is added to: the 16-bit base weights, or their NF4 round trip (what QLoRA trained against).
MERGE_ONTO = ("base", "nf4")
