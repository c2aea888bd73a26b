"""Parsing and validation of Hugging Face-style config.json files.

Three architectures (the ``architectures`` list must hold exactly one):

* ``MixtralForCausalLM``   -- softmax top-k routing, renormalized, SwiGLU
  experts, dropless.
* ``Qwen2MoeForCausalLM``  -- q/k/v biases, softmax top-k routing renormalized
  iff ``norm_topk_prob``, SwiGLU experts plus a sigmoid-gated shared expert,
  dropless.
* ``SwitchMoeForCausalLM`` -- ours: Mixtral's decoder, top-1 softmax routing
  (weight = the probability), ReLU FFN experts, expert capacity
  ``C = ceil(capacity_factor * T * 1 / E)``.
* ``ScMoeForCausalLM``     -- ours: ScMoE's shortcut-connected MoE (Cai et
  al., 2024) in Mixtral's decoder. Layers come in pairs: the even layer has
  a dense SwiGLU MLP, the odd one a SwiGLU shared expert on its own input
  plus routed SwiGLU experts on the even layer's MLP input (the shortcut);
  softmax top-k, renormalized iff ``norm_topk_prob``, dropless.

Every problem raises ``ConfigError`` whose message names the offending field.
See reference/README.md for the key tables.
"""

import json
import math
import os
from dataclasses import dataclass, field
from typing import Optional

__all__ = ["ConfigError", "ModelConfig", "MoESpec", "load_config",
           "parse_config", "ARCHITECTURES", "expert_capacity"]

MIXTRAL = "MixtralForCausalLM"
QWEN2_MOE = "Qwen2MoeForCausalLM"
SWITCH = "SwitchMoeForCausalLM"
SCMOE = "ScMoeForCausalLM"
ARCHITECTURES = (MIXTRAL, QWEN2_MOE, SWITCH, SCMOE)

# Optional HF model_type values; checked only when the key is present.
_MODEL_TYPES = {MIXTRAL: "mixtral", QWEN2_MOE: "qwen2_moe",
                SWITCH: "switch_moe", SCMOE: "scmoe"}
# hidden_act each architecture implements; checked only when present.
_HIDDEN_ACT = {MIXTRAL: "silu", QWEN2_MOE: "silu", SWITCH: "relu",
               SCMOE: "silu"}


class ConfigError(ValueError):
    """An invalid or unsupported config; the message names the field."""


@dataclass(frozen=True)
class MoESpec:
    """What one MoE block computes (identical in every layer)."""
    num_experts: int
    top_k: int
    score: str                  # "softmax" (the only one the 3 archs use) or "sigmoid"
    renormalize: bool           # divide the top-k weights by their sum
    activation: str             # "silu_glu" (w1/w3/w2) or "relu" (wi/wo)
    intermediate_size: int      # per routed expert
    capacity_factor: Optional[float] = None   # None: dropless
    shared_intermediate_size: Optional[int] = None  # Qwen2-MoE shared expert;
    # ScMoE: the dense MLP of even layers and the shared expert of odd ones


@dataclass(frozen=True)
class ModelConfig:
    architecture: str
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    attention_bias: bool        # q/k/v biases (Qwen2-MoE); o_proj never has one
    moe: MoESpec
    tie_word_embeddings: bool = False
    # A query attends to the sliding_window keys ending at its own position
    # (None: every earlier key), in the layers windowed_layers marks.
    sliding_window: Optional[int] = None
    windowed_layers: tuple = ()
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    def window(self, layer):
        """The sliding window of decoder layer ``layer`` (None: none)."""
        if layer < len(self.windowed_layers) and self.windowed_layers[layer]:
            return self.sliding_window
        return None

    @property
    def q_size(self):
        return self.num_attention_heads * self.head_dim

    @property
    def kv_size(self):
        return self.num_key_value_heads * self.head_dim


def expert_capacity(capacity_factor, num_tokens, top_k, num_experts):
    """C = ceil(capacity_factor * T * k / E), evaluated in IEEE double left to
    right, i.e. ceil(((cf * T) * k) / E)."""
    return int(math.ceil(float(capacity_factor) * num_tokens * top_k
                         / num_experts))


def _get(cfg, key, kind, default=None, required=True):
    """Fetch ``cfg[key]`` as a positive "int", a finite positive "float" or
    a "bool".  Optional keys that are absent or null give ``default``."""
    if key not in cfg or cfg[key] is None:
        if required:
            if key in cfg:
                raise ConfigError("'%s' must not be null" % key)
            raise ConfigError("missing key '%s'" % key)
        return default
    v = cfg[key]
    if kind == "int":
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError("'%s' must be an integer, got %r" % (key, v))
        if v <= 0:
            raise ConfigError("'%s' must be positive, got %d" % (key, v))
        return v
    if kind == "float":
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ConfigError("'%s' must be a number, got %r" % (key, v))
        v = float(v)
        if not math.isfinite(v) or v <= 0:
            raise ConfigError("'%s' must be a finite number > 0, got %r"
                              % (key, v))
        return v
    if kind == "bool":
        if not isinstance(v, bool):
            raise ConfigError("'%s' must be true or false, got %r" % (key, v))
        return v
    raise AssertionError(kind)


def _experts_and_k(cfg, experts_key):
    """E (under ``experts_key``) and k = num_experts_per_tok, k <= E."""
    E = _get(cfg, experts_key, "int")
    k = _get(cfg, "num_experts_per_tok", "int")
    if k > E:
        raise ConfigError("'num_experts_per_tok' (%d) exceeds '%s' (%d)"
                          % (k, experts_key, E))
    return E, k


def parse_config(cfg):
    """Validate a config dict; return a ModelConfig."""
    if not isinstance(cfg, dict):
        raise ConfigError("config must be a JSON object")
    if "architectures" not in cfg:
        raise ConfigError("missing key 'architectures'")
    archs = cfg["architectures"]
    if (not isinstance(archs, list) or len(archs) != 1
            or not isinstance(archs[0], str)):
        raise ConfigError("'architectures' must be a list of exactly one "
                          "name, got %r" % (archs,))
    arch = archs[0]
    if arch not in ARCHITECTURES:
        raise ConfigError("unknown architecture '%s' in 'architectures' "
                          "(supported: %s)" % (arch, ", ".join(ARCHITECTURES)))
    if "model_type" in cfg and cfg["model_type"] != _MODEL_TYPES[arch]:
        raise ConfigError("'model_type' is %r but %s needs %r"
                          % (cfg["model_type"], arch, _MODEL_TYPES[arch]))
    if "hidden_act" in cfg and cfg["hidden_act"] != _HIDDEN_ACT[arch]:
        raise ConfigError("unsupported 'hidden_act' %r: %s uses %r"
                          % (cfg["hidden_act"], arch, _HIDDEN_ACT[arch]))
    if cfg.get("rope_scaling") is not None:
        raise ConfigError("unsupported 'rope_scaling' %r: only plain RoPE "
                          "(null) is implemented" % (cfg["rope_scaling"],))

    vocab = _get(cfg, "vocab_size", "int")
    hidden = _get(cfg, "hidden_size", "int")
    layers = _get(cfg, "num_hidden_layers", "int")
    heads = _get(cfg, "num_attention_heads", "int")
    kv_heads = _get(cfg, "num_key_value_heads", "int")
    head_dim = _get(cfg, "head_dim", "int", required=False)
    if head_dim is None:
        if hidden % heads != 0:
            raise ConfigError(
                "'num_attention_heads' (%d) must divide 'hidden_size' (%d) "
                "when 'head_dim' is absent" % (heads, hidden))
        head_dim = hidden // heads
    if head_dim % 2 != 0:
        raise ConfigError("'head_dim' must be even for RoPE, got %d"
                          % head_dim)
    if heads % kv_heads != 0:
        raise ConfigError("'num_key_value_heads' (%d) must divide "
                          "'num_attention_heads' (%d)" % (kv_heads, heads))
    eps = _get(cfg, "rms_norm_eps", "float")
    rope = cfg.get("rope_parameters")  # transformers 5's RoPE settings
    if rope is not None:
        if not isinstance(rope, dict):
            raise ConfigError("'rope_parameters' must be an object, got %r"
                              % (rope,))
        if rope.get("rope_type", "default") != "default":
            raise ConfigError("unsupported 'rope_parameters' rope_type %r: "
                              "only 'default' (plain RoPE) is implemented"
                              % (rope["rope_type"],))
        theta = _get(rope, "rope_theta", "float")
    else:
        theta = _get(cfg, "rope_theta", "float")
    tie = _get(cfg, "tie_word_embeddings", "bool", default=False,
               required=False)
    # Sliding-window attention as current Hugging Face defines it: Mixtral's
    # attention windows every layer when `sliding_window` is set; Qwen2-MoE
    # only with `use_sliding_window`, and only the layers from
    # `max_window_layers` on (its defaults: 4096 and 28). A `layer_types`
    # list (what current transformers saves) names each layer's kind.
    sliding, window_from = None, 0
    if arch == QWEN2_MOE:
        if _get(cfg, "use_sliding_window", "bool", default=False,
                required=False):
            sliding = _get(cfg, "sliding_window", "int", default=4096,
                           required=False)
            window_from = cfg.get("max_window_layers", 28)
            if window_from is None:
                window_from = 28
            if (isinstance(window_from, bool)
                    or not isinstance(window_from, int) or window_from < 0):
                raise ConfigError("'max_window_layers' must be an integer "
                                  ">= 0, got %r" % (window_from,))
    else:
        sliding = _get(cfg, "sliding_window", "int", required=False)
    windowed = [sliding is not None and i >= window_from
                for i in range(layers)]
    types = cfg.get("layer_types")
    if types is not None:
        if not isinstance(types, list) or len(types) != layers:
            raise ConfigError("'layer_types' must be a list of %d layer kinds "
                              "(one per layer), got %r" % (layers, types))
        for i, kind in enumerate(types):
            if kind not in ("sliding_attention", "full_attention"):
                raise ConfigError("'layer_types'[%d] must be "
                                  "'sliding_attention' or 'full_attention', "
                                  "got %r" % (i, kind))
            if kind == "sliding_attention" and sliding is None:
                raise ConfigError("'layer_types'[%d] is 'sliding_attention' "
                                  "but the config has no sliding window" % i)
        windowed = [kind == "sliding_attention" for kind in types]

    if arch == MIXTRAL:
        E, k = _experts_and_k(cfg, "num_local_experts")
        moe = MoESpec(num_experts=E, top_k=k, score="softmax",
                      renormalize=True, activation="silu_glu",
                      intermediate_size=_get(cfg, "intermediate_size", "int"))
        bias = False
    elif arch == QWEN2_MOE:
        E, k = _experts_and_k(cfg, "num_experts")
        F = _get(cfg, "moe_intermediate_size", "int")
        Fs = _get(cfg, "shared_expert_intermediate_size", "int")
        renorm = _get(cfg, "norm_topk_prob", "bool")
        step = cfg.get("decoder_sparse_step", 1)
        if isinstance(step, bool) or step != 1:
            raise ConfigError("unsupported 'decoder_sparse_step' %r: only 1 "
                              "(every layer sparse) is supported" % (step,))
        mlp_only = cfg.get("mlp_only_layers", [])
        if mlp_only != []:
            raise ConfigError("unsupported 'mlp_only_layers' %r: only [] is "
                              "supported" % (mlp_only,))
        moe = MoESpec(num_experts=E, top_k=k, score="softmax",
                      renormalize=renorm, activation="silu_glu",
                      intermediate_size=F, shared_intermediate_size=Fs)
        bias = True
    elif arch == SCMOE:
        if layers % 2 != 0:
            raise ConfigError("'num_hidden_layers' must be even for %s (its "
                              "layers come in dense/MoE pairs), got %d"
                              % (SCMOE, layers))
        E, k = _experts_and_k(cfg, "num_experts")
        moe = MoESpec(num_experts=E, top_k=k, score="softmax",
                      renormalize=_get(cfg, "norm_topk_prob", "bool",
                                       default=False, required=False),
                      activation="silu_glu",
                      intermediate_size=_get(cfg, "moe_intermediate_size",
                                             "int"),
                      shared_intermediate_size=_get(cfg, "intermediate_size",
                                                    "int"))
        bias = False
    else:  # SWITCH
        E = _get(cfg, "num_experts", "int")
        if "num_experts_per_tok" in cfg and (
                isinstance(cfg["num_experts_per_tok"], bool)
                or cfg["num_experts_per_tok"] != 1):
            raise ConfigError("'num_experts_per_tok' must be 1 for %s, got %r"
                              % (SWITCH, cfg["num_experts_per_tok"]))
        cf = _get(cfg, "capacity_factor", "float")
        moe = MoESpec(num_experts=E, top_k=1, score="softmax",
                      renormalize=False, activation="relu",
                      intermediate_size=_get(cfg, "intermediate_size", "int"),
                      capacity_factor=float(cf))
        bias = False

    return ModelConfig(architecture=arch, vocab_size=vocab, hidden_size=hidden,
                       num_hidden_layers=layers, num_attention_heads=heads,
                       num_key_value_heads=kv_heads, head_dim=head_dim,
                       rms_norm_eps=eps, rope_theta=theta, attention_bias=bias,
                       moe=moe, tie_word_embeddings=tie,
                       sliding_window=sliding,
                       windowed_layers=tuple(windowed), raw=dict(cfg))


def load_config(path):
    """Read and validate a config.json; errors name the file and the field."""
    path = os.fspath(path)
    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError("%s: cannot read config: %s"
                          % (path, e.strerror or e))
    except UnicodeDecodeError:
        raise ConfigError("%s: config is not valid UTF-8" % path)
    try:
        cfg = json.loads(text)
    except ValueError as e:
        raise ConfigError("%s: bad JSON: %s" % (path, e))
    try:
        return parse_config(cfg)
    except ConfigError as e:
        raise ConfigError("%s: %s" % (path, e))
