"""A plain-PyTorch Gemma 2 / Gemma 3 text forward written from transformers' modelling semantics
(modeling_gemma2.py, modeling_gemma3.py, transformers 5.23), independent of both transformers'
classes and
gptbuilder: logits of a checkpoint's state dict (HF names) for token ids. hf_transformers.py and
tests/numerics/make_transformers_numerics.py check transformers' logits against it before
gptbuilder is compared with transformers.

What it computes: the embedding times sqrt(hidden_size) rounded to the weights' dtype; per
layer x + post_attention_norm(attention(input_norm(x))), then
x + post_feedforward_norm(mlp(pre_feedforward_norm(x))), every norm RMSNorm applied as
(1 + w); attention with rotary halves (default rope, rope_theta), scores q.k times
query_pre_attn_scalar^-0.5, capped cap * tanh(s / cap) by attn_logit_softcapping, causal, on
"sliding_attention" layers only the sliding_window most recent keys (i - j < W); GeGLU
down(gelu_tanh(gate(x)) * up(x)); the final norm, the (tied) output projection and
final_logit_softcapping. Gemma 3 (gemma3_text) adds RMSNorms (1 + w) over each query and key
head before the rotation, and rotary frequencies per layer type: rope_parameters
{"sliding_attention": {...}, "full_attention": {...}}, each default (base rope_theta) or linear
(frequencies / factor).
"""
import math

import torch


def _rms(x, w, eps):
    return (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)) * (1.0 + w)


def _gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def _cap(x, cap):
    return x if cap is None else cap * torch.tanh(x / cap)


def logits(cfg, w, ids):
    n, g = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    d = cfg.get("head_dim") or cfg["hidden_size"] // n
    eps = cfg["rms_norm_eps"]
    rope = cfg.get("rope_parameters") or {}
    layers = cfg["num_hidden_layers"]
    types = cfg.get("layer_types") or [
        "sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(layers)]
    b, s = ids.shape

    def tables(params):
        base = params.get("rope_theta", cfg.get("rope_theta", 10000.0))
        inv_freq = 1.0 / base ** (torch.arange(0, d, 2, dtype=torch.float32) / d)
        if params.get("rope_type", "default") == "linear":
            inv_freq = inv_freq / params["factor"]
        elif params.get("rope_type", "default") != "default":
            raise ValueError(f"rope type {params['rope_type']} is not in this reference")
        angles = torch.arange(s, dtype=torch.float32)[:, None] * inv_freq[None, :]
        return angles.cos()[None, :, None, :], angles.sin()[None, :, None, :]

    per_type = {t: tables(rope[t] if t in rope else rope) for t in set(types)}

    def rotate(x, layer_type):  # [b, s, heads, d]: halves (x1, x2) -> (x1 c - x2 s, x2 c + x1 s)
        cos, sin = per_type[layer_type]
        x1, x2 = x[..., : d // 2], x[..., d // 2:]
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)

    i = torch.arange(s)[:, None]
    j = torch.arange(s)[None, :]
    embed = w["model.embed_tokens.weight"]
    scale = torch.tensor(cfg["hidden_size"] ** 0.5, dtype=embed.dtype)
    h = embed[ids] * scale
    for layer in range(layers):
        p = f"model.layers.{layer}."
        x = _rms(h, w[p + "input_layernorm.weight"], eps)
        q = (x @ w[p + "self_attn.q_proj.weight"].T).view(b, s, n, d)
        k = (x @ w[p + "self_attn.k_proj.weight"].T).view(b, s, g, d)
        v = (x @ w[p + "self_attn.v_proj.weight"].T).view(b, s, g, d)
        if p + "self_attn.q_norm.weight" in w:  # Gemma 3
            q = _rms(q, w[p + "self_attn.q_norm.weight"], eps)
            k = _rms(k, w[p + "self_attn.k_norm.weight"], eps)
        q, k = rotate(q, types[layer]), rotate(k, types[layer])
        k = k.repeat_interleave(n // g, dim=2)  # query head t reads key group t // (n / g)
        v = v.repeat_interleave(n // g, dim=2)
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) * cfg["query_pre_attn_scalar"] ** -0.5
        scores = _cap(scores, cfg.get("attn_logit_softcapping"))
        masked = j > i
        if types[layer] == "sliding_attention":
            masked = masked | (i - j >= cfg["sliding_window"])
        probs = torch.softmax(scores.masked_fill(masked, float("-inf")), -1)
        o = torch.einsum("bhqk,bkhd->bqhd", probs, v).reshape(b, s, n * d)
        o = o @ w[p + "self_attn.o_proj.weight"].T
        h = h + _rms(o, w[p + "post_attention_layernorm.weight"], eps)
        x = _rms(h, w[p + "pre_feedforward_layernorm.weight"], eps)
        y = _gelu_tanh(x @ w[p + "mlp.gate_proj.weight"].T) * (x @ w[p + "mlp.up_proj.weight"].T)
        y = y @ w[p + "mlp.down_proj.weight"].T
        h = h + _rms(y, w[p + "post_feedforward_layernorm.weight"], eps)
    h = _rms(h, w["model.norm.weight"], eps)
    head = w.get("lm_head.weight", embed)
    return _cap(h @ head.T, cfg.get("final_logit_softcapping")).contiguous()
