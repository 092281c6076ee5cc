#!/usr/bin/env python3
"""Numerics goldens from real transformers for families Megatron Core d98e8a64 cannot build
(Megatron-Bridge adds them with modules of its own): the same files as the Megatron goldens
(tests/golden/numerics/README.md), computed by transformers' modelling code on the CPU in fp32
with eager attention, with the weights renamed to Megatron's local-spec names by this file.

  write CASE OUT_DIR     (CASE: gemma2, gemma3)

gemma2: transformers' Gemma2ForCausalLM, 4 layers, hidden 32, 4 heads in 2 groups of head_dim 16
(wider than hidden / heads), GeGLU with the tanh GELU, vocabulary 256, tied embeddings scaled by
sqrt(32), zero-centred RMSNorms before and after attention and MLP (weights N(0, 0.1), applied
as 1 + w), query_pre_attn_scalar 24, attention scores capped at 2, logits at 3 (both reached by
these weights), layers 0 and 2 (HF indices) through a 5-token sliding window. The loss is the
mean cross entropy of the 16 next tokens of each of the 2 samples, as Megatron's.

gemma3: transformers' Gemma3ForCausalLM (gemma3_text) of the same sizes without capping, with
zero-centred RMSNorms over each query and key head (qk_layernorm), HF layers 0-2 through the
5-token window and layer 3 global (window_attn_skip_freq 4), rotary base 100 on the sliding
layers (rotary_base_local) and 10000 with linear scaling by 4 on the global one
(rope_scaling_factor with rotary_base_local, as Bridge's Gemma3RotaryEmbedding).
"""
import json
import math
import os
import sys

import torch
import transformers
from safetensors.torch import save_file

BATCH, SEQ = 2, 16


def gemma2_config():
    return transformers.Gemma2Config(
        vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=64,
        rms_norm_eps=1e-6, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True,
        query_pre_attn_scalar=24, attn_logit_softcapping=2.0, final_logit_softcapping=3.0,
        sliding_window=5, pad_token_id=None, attention_dropout=0.0, dtype="float32")


def gemma3_config():
    return transformers.Gemma3TextConfig(
        vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=64,
        rms_norm_eps=1e-6, hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True,
        query_pre_attn_scalar=24, sliding_window=5, pad_token_id=None, attention_dropout=0.0,
        layer_types=["sliding_attention"] * 3 + ["full_attention"],
        rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 100.0},
                         "full_attention": {"rope_type": "linear", "factor": 4.0,
                                            "rope_theta": 10000.0}},
        dtype="float32")


def gptbuilder_config(hf):
    return {
        "vocab_size": hf.vocab_size,
        "should_pad_vocab": True,
        "make_vocab_size_divisible_by": 128,
        "seq_length": hf.max_position_embeddings,
        "position_embedding_type": "rope",
        "rotary_base": int(hf.rope_parameters.get("rope_theta", 0)),
        "share_embeddings_and_output_weights": True,
        "transformer_layer_spec": "local",
        "query_pre_attn_scalar": hf.query_pre_attn_scalar,
        "attn_logit_softcapping": hf.attn_logit_softcapping,
        "final_logit_softcapping": hf.final_logit_softcapping,
        "apply_embedding_scaling": True,
        "post_linear_layernorm": True,
        "transformer": {
            "num_layers": hf.num_hidden_layers,
            "hidden_size": hf.hidden_size,
            "num_attention_heads": hf.num_attention_heads,
            "num_query_groups": hf.num_key_value_heads,
            "kv_channels": hf.head_dim,
            "ffn_hidden_size": hf.intermediate_size,
            "normalization": "RMSNorm",
            "layernorm_epsilon": hf.rms_norm_eps,
            "layernorm_zero_centered_gamma": True,
            "activation_func": "fast_gelu",
            "gated_linear_unit": True,
            "add_bias_linear": False,
            # HF keeps keys j with i - j < W; layer number l (1-based) slides iff l % 2 != 0.
            "window_size": [hf.sliding_window - 1, 0],
            "window_attn_skip_freq": 2,
        },
    }


def gemma3_gptbuilder_config(hf):
    c = gptbuilder_config(hf)
    del c["attn_logit_softcapping"], c["final_logit_softcapping"]
    c["rotary_base"] = int(hf.rope_parameters["full_attention"]["rope_theta"])
    c["rotary_base_local"] = int(hf.rope_parameters["sliding_attention"]["rope_theta"])
    c["rope_scaling_factor"] = hf.rope_parameters["full_attention"]["factor"]
    c["transformer"]["qk_layernorm"] = True
    c["transformer"]["window_attn_skip_freq"] = 4
    return c


def megatron_names(hf, tensors):
    """HF tensors (weights or their gradients) under Megatron's local-spec names, unsharded."""
    n, g, d = hf.num_attention_heads, hf.num_key_value_heads, hf.head_dim
    out = {"embedding.word_embeddings.weight": tensors["model.embed_tokens.weight"],
           "decoder.final_layernorm.weight": tensors["model.norm.weight"]}
    for layer in range(hf.num_hidden_layers):
        p, m = f"model.layers.{layer}.", f"decoder.layers.{layer}."
        q = tensors[p + "self_attn.q_proj.weight"].view(g, n // g * d, -1)
        k = tensors[p + "self_attn.k_proj.weight"].view(g, d, -1)
        v = tensors[p + "self_attn.v_proj.weight"].view(g, d, -1)
        out[m + "input_layernorm.weight"] = tensors[p + "input_layernorm.weight"]
        # Megatron's fused rows: per query group, its query heads, then its key and value.
        out[m + "self_attention.linear_qkv.weight"] = torch.cat([q, k, v], 1).reshape(
            (n + 2 * g) * d, -1)
        out[m + "self_attention.linear_proj.weight"] = tensors[p + "self_attn.o_proj.weight"]
        if p + "self_attn.q_norm.weight" in tensors:
            out[m + "self_attention.q_layernorm.weight"] = tensors[p + "self_attn.q_norm.weight"]
            out[m + "self_attention.k_layernorm.weight"] = tensors[p + "self_attn.k_norm.weight"]
        out[m + "self_attention.linear_proj.post_layernorm.weight"] = tensors[
            p + "post_attention_layernorm.weight"]
        out[m + "pre_mlp_layernorm.weight"] = tensors[p + "pre_feedforward_layernorm.weight"]
        out[m + "mlp.linear_fc1.weight"] = torch.cat(
            [tensors[p + "mlp.gate_proj.weight"], tensors[p + "mlp.up_proj.weight"]], 0)
        out[m + "mlp.linear_fc2.weight"] = tensors[p + "mlp.down_proj.weight"]
        out[m + "mlp.linear_fc2.post_layernorm.weight"] = tensors[
            p + "post_feedforward_layernorm.weight"]
    return {k: v.detach().float().contiguous() for k, v in out.items()}


def write(case, out_dir):
    if case not in ("gemma2", "gemma3"):
        sys.exit(f"unknown case {case!r}")
    hf = gemma2_config() if case == "gemma2" else gemma3_config()
    hf._attn_implementation = "eager"
    model = (transformers.Gemma2ForCausalLM(hf) if case == "gemma2" else
             transformers.Gemma3ForCausalLM(hf)).float()
    g = torch.Generator().manual_seed(2024)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            std = 0.1 if "norm" in name else 0.2
            p.copy_(std * torch.randn(p.shape, generator=g))
    model.tie_weights()
    model.train()  # no dropout is configured; gradients as in a training step
    tokens = torch.randint(1, hf.vocab_size, (BATCH, SEQ + 1),
                           generator=torch.Generator().manual_seed(7))
    logits = model(input_ids=tokens[:, :-1]).logits  # [b, s, V]
    per_token = torch.nn.functional.cross_entropy(
        logits.reshape(-1, hf.vocab_size), tokens[:, 1:].reshape(-1),
        reduction="none").view(BATCH, SEQ)
    loss = per_token.mean()
    loss.backward()
    # transformers against the plain-PyTorch forward written from its modelling semantics.
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "unit",
                                    "checkpoint"))
    import gemma_reference
    with torch.no_grad():
        plain = gemma_reference.logits(hf.to_dict(), dict(model.state_dict()), tokens[:, :-1])
    plain_error = (plain - logits).abs().max().item()
    if not plain_error < 1e-5:
        sys.exit(f"{case}: transformers differs from the plain-PyTorch reference by {plain_error}")
    params = dict(model.named_parameters())
    weights = megatron_names(hf, {k: v for k, v in params.items()})
    grads = megatron_names(hf, {k: v.grad for k, v in params.items()})
    os.makedirs(out_dir, exist_ok=True)
    with open(f"{out_dir}/config.json", "w") as f:
        json.dump(gptbuilder_config(hf) if case == "gemma2" else gemma3_gptbuilder_config(hf), f,
                  indent=1)
    with open(f"{out_dir}/tokens.json", "w") as f:
        json.dump(tokens.tolist(), f)
    save_file(weights, f"{out_dir}/weights.safetensors")
    save_file(grads, f"{out_dir}/grads.safetensors")
    save_file({"logits": logits.detach().float().contiguous()}, f"{out_dir}/logits.safetensors")
    result = {
        "loss": loss.item(),
        "grad_norm": math.sqrt(sum(float(v.double().pow(2).sum()) for v in grads.values())),
        "per_token_loss": per_token.tolist(),
        "param_grad_norm": {k: float(v.double().norm()) for k, v in grads.items()},
        "padded_vocab_size": hf.vocab_size,
        "tokens": tokens.tolist(),
        "plain_reference_max_abs_error": plain_error,
        "reference": f"transformers {transformers.__version__} {type(model).__name__} (eager, "
                     f"fp32), "
                     f"torch {torch.__version__}",
    }
    with open(f"{out_dir}/result.json", "w") as f:
        json.dump(result, f, indent=1)
    # Capping is reached: a test of it could fail.
    print(f"{case}: loss {loss.item():.6f}, max |logit| {logits.abs().max().item():.3f}, "
          f"transformers vs the plain reference {plain_error:.2e}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "write":
        write(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
