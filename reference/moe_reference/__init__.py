"""moe_reference: the numerical reference of moe-mlir.

Modules (torch is only imported by ``models``):

* ``safetensors_np`` -- safetensors read/write with NumPy, strict validation;
* ``config``         -- HF-style config.json parsing for MixtralForCausalLM,
                        Qwen2MoeForCausalLM, SwitchMoeForCausalLM and
                        ScMoeForCausalLM;
* ``weights``        -- tensor names/shapes, validation, random weights;
* ``models``         -- the PyTorch float32 prefill forward and ``moe_block``.

See reference/README.md.
"""

__version__ = "1.0"
