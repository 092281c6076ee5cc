#!/usr/bin/env python3
"""Writes the numerics goldens under tests/golden/numerics/: for each case a gptbuilder config,
a token batch, seeded weights and what real Megatron Core computed from them (the loss, per-token
losses, logits and every parameter's gradient; megatron_oracle.py).

The first ten cases were written by the shared oracle (../shared/oracle/make_numerics.py) with
Megatron Core at d98e8a64 on torch 1.13, and are kept as they are; the definitions below
reproduce them. The others cover fields implemented since, at sizes small enough to keep the
stored data small: a vocabulary of 200 (padded to 256 at tp 1 and tp 2, so every layout's
softmax spans the same padded vocabulary) and hidden size 32.

Usage (the goldens' Megatron: a megatron/core tree on MEGATRON_PATH, e.g. /work/mcore_d98, and
MEGATRON_COMMIT naming it; or the project environment's megatron-core):
  MEGATRON_PATH=... MEGATRON_COMMIT=d98e8a64 .venv/bin/python tests/numerics/make_numerics.py \
      [--out DIR] [NAME ...]
"""
import argparse
import copy
import json
import os
import random
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "golden", "numerics")

GPT = {
    "vocab_size": 1000, "should_pad_vocab": True, "make_vocab_size_divisible_by": 128,
    "seq_length": 64, "position_embedding_type": "learned_absolute",
    "share_embeddings_and_output_weights": True, "transformer_layer_spec": "local",
    "transformer": {"num_layers": 2, "hidden_size": 64, "num_attention_heads": 4,
                    "ffn_hidden_size": 256, "normalization": "LayerNorm",
                    "activation_func": "gelu", "gated_linear_unit": False,
                    "add_bias_linear": True},
}
LLAMA = {
    "vocab_size": 1000, "should_pad_vocab": True, "make_vocab_size_divisible_by": 128,
    "seq_length": 64, "position_embedding_type": "rope", "rotary_percent": 1.0,
    "rotary_base": 10000, "share_embeddings_and_output_weights": False,
    "transformer_layer_spec": "local",
    "transformer": {"num_layers": 2, "hidden_size": 64, "num_attention_heads": 8,
                    "num_query_groups": 2, "ffn_hidden_size": 176, "normalization": "RMSNorm",
                    "activation_func": "silu", "gated_linear_unit": True,
                    "add_bias_linear": False},
}
MOE = {"num_moe_experts": 4, "moe_router_topk": 2, "moe_grouped_gemm": False}
# Multi-latent attention sizes (hidden 32, 4 heads): every width distinct, so a mixed-up split
# or shape fails.
MLA = {"multi_latent_attention": True, "kv_lora_rank": 12, "qk_head_dim": 8,
       "qk_pos_emb_head_dim": 4, "v_head_dim": 6}

# The smaller models of the newer cases: 4 layers (so pp 2 x vp 2 has a layer per chunk).
SMALL = {"vocab_size": 200, "transformer": {"num_layers": 4, "hidden_size": 32,
                                            "num_attention_heads": 4, "num_query_groups": 2,
                                            "ffn_hidden_size": 64}}
GPT_SMALL = {"vocab_size": 200, "transformer": {"num_layers": 4, "hidden_size": 32,
                                                "num_attention_heads": 4,
                                                "ffn_hidden_size": 128}}


def derive(base, top=None, **t):
    c = copy.deepcopy(base)
    for k, v in (top or {}).items():
        if k == "transformer":
            c["transformer"].update(v)
        else:
            c[k] = v
    c["transformer"].update(t)
    return c


CASES = {
    # The shared oracle's cases (Megatron Core d98e8a64, torch 1.13).
    "gpt": GPT,
    "llama": LLAMA,
    "qwen2_qkv_bias": derive(LLAMA, add_qkv_bias=True),
    "qwen3_qk_norm": derive(LLAMA, qk_layernorm=True),
    "sliding_window": derive(LLAMA, window_size=[4, 0]),
    "softmax_off_by_one": derive(LLAMA, softmax_type="off-by-one"),
    "softmax_learnable_sinks": derive(LLAMA, softmax_type="learnable"),
    "moe": derive(LLAMA, **MOE),
    "moe_shared_experts": derive(LLAMA, **MOE, moe_layer_freq=[0, 1], moe_ffn_hidden_size=96,
                                 moe_shared_expert_intermediate_size=128),
    "squared_relu": derive(LLAMA, activation_func="squared_relu", gated_linear_unit=False,
                           num_query_groups=8),
    # Interleaved local / global attention (Gemma 2/3, GPT-OSS): Megatron's int form (layers 2
    # and 4 attend fully) and list form (layers 2 and 3 attend fully), the list with the
    # off-by-one softmax as GPT-OSS combines them (with learnable sinks).
    "window_skip_freq_int": derive(LLAMA, SMALL, window_size=[3, 0], window_attn_skip_freq=2),
    "window_skip_freq_list_off_by_one": derive(LLAMA, SMALL, window_size=[2, 0],
                                               window_attn_skip_freq=[1, 0, 0, 1],
                                               softmax_type="off-by-one"),
    # GPT-2's activation: the tanh approximation of GELU, as fast_gelu and as gelu through
    # Megatron's fused bias-GELU kernel (bias_activation_fusion); GeGLU through the fused kernel.
    "gpt2_fast_gelu": derive(GPT, GPT_SMALL, activation_func="fast_gelu"),
    "gpt_bias_gelu_fusion": derive(GPT, GPT_SMALL, bias_activation_fusion=True),
    "geglu_bias_fusion": derive(LLAMA, SMALL, activation_func="gelu", bias_activation_fusion=True),
    # The other activations Megatron-Bridge names, the GLU offset and clamp.
    # quick-GeGLU with offset and clamp as GPT-OSS uses it; clamped SwiGLU (Megatron allows it
    # only with MoE) in expert and dense layers.
    "quick_geglu_offset_clamp": derive(LLAMA, SMALL, activation_func="quick_gelu",
                                       glu_linear_offset=1.0, activation_func_clamp_value=0.5),
    "swiglu_clamp_moe": derive(LLAMA, SMALL, **MOE, moe_layer_freq=[0, 1, 0, 1],
                               activation_func_clamp_value=0.5),
    "sigmoid_mlp": derive(LLAMA, SMALL, activation_func="sigmoid", gated_linear_unit=False),
    "tanh_mlp": derive(LLAMA, SMALL, activation_func="tanh", gated_linear_unit=False),
    # Qwen3-MoE as its Hugging Face import builds it: q/k norms, experts (top 2 of 4, the
    # softmax of the top-k logits, i.e. transformers' renormalised norm_topk_prob routing) in
    # the layers mlp_only_layers does not keep dense. (No load-balancing loss: it is a function
    # of each micro-batch's tokens, so the dp and pp layouts could not match one rank's batch.)
    "qwen3_moe": derive(LLAMA, SMALL, **MOE, qk_layernorm=True, moe_ffn_hidden_size=48,
                        moe_layer_freq=[1, 1, 0, 1]),
    # Other fields that change the computation.
    "rope_interleaved_partial": derive(LLAMA, dict(SMALL, rotary_percent=0.5),
                                       rotary_interleaved=True),
    "rope_llama3_scaling": derive(LLAMA, dict(SMALL, rope_scaling=True, rope_scaling_factor=8.0,
                                              rotary_base=500000)),
    "post_ln_residual": derive(GPT, GPT_SMALL, apply_residual_connection_post_layernorm=True),
    "softmax_scale_qk_l2_norm": derive(LLAMA, SMALL, softmax_scale=0.2, qk_l2_norm=True),
    "attention_output_gate": derive(LLAMA, SMALL, attention_output_gate=True),
    "moe_sigmoid_router_scaling": derive(LLAMA, SMALL, **MOE, moe_router_score_function="sigmoid",
                                         moe_router_topk_scaling_factor=2.5),
    "moe_pre_softmax": derive(LLAMA, SMALL, **MOE, moe_router_pre_softmax=True),
    # Group-limited routing (DeepSeek's device / node-limited routing): 8 experts in groups;
    # softmax of the top-k logits among 1 of 2 groups (each scored by its top 2), and sigmoid
    # scores among 2 of 4 groups (each scored by its top 2 of 2), renormalised and scaled.
    "moe_group_limited": derive(LLAMA, SMALL, **dict(MOE, num_moe_experts=8),
                                moe_router_num_groups=2, moe_router_group_topk=1),
    "moe_group_limited_sigmoid": derive(LLAMA, SMALL,
                                        **dict(MOE, num_moe_experts=8, moe_router_topk=4),
                                        moe_router_num_groups=4,
                                        moe_router_group_topk=2,
                                        moe_router_score_function="sigmoid",
                                        moe_router_topk_scaling_factor=2.5),
    # Multi-latent attention (DeepSeek V2/V3) with the local spec (the oracle lets the local
    # core attention take MLA's head widths; megatron_cpu.py). Query compression with q/kv
    # norms and plain RoPE at a base other than the default; no query compression with YaRN
    # positions past original_max_position_embeddings and a concentration factor other than 1;
    # MoE layers with a shared expert after a dense first layer, as DeepSeek arranges them.
    "mla_q_lora_rope": derive(LLAMA, dict(SMALL, rotary_base=5000), **MLA, num_query_groups=4,
                              q_lora_rank=16, qk_layernorm=True, rope_type="rope"),
    "mla_yarn": derive(LLAMA, SMALL, **MLA, num_query_groups=4, q_lora_rank=0, rope_type="yarn",
                       rotary_scaling_factor=4.0, original_max_position_embeddings=8,
                       beta_fast=4.0, beta_slow=1.0, mscale=1.0, mscale_all_dim=0.8),
    "mla_moe_shared": derive(LLAMA, SMALL, **MLA, **MOE, num_query_groups=4, q_lora_rank=16,
                             qk_layernorm=True, rope_type="rope", moe_layer_freq=[0, 1, 1, 1],
                             moe_ffn_hidden_size=24, moe_shared_expert_intermediate_size=32),
    # YaRN positions for standard attention (GPTModel's YarnRotaryEmbedding, the yarn_*
    # attributes): a correction range that covers whole channels and a fractional ramp, a
    # concentration factor other than 1 from mscale / mscale_all_dim.
    "yarn": derive(LLAMA, dict(SMALL, position_embedding_type="yarn", rotary_base=100),
                   yarn_rotary_scaling_factor=4.0, yarn_original_max_position_embeddings=64,
                   yarn_beta_fast=4.0, yarn_beta_slow=1.0, yarn_mscale=1.0,
                   yarn_mscale_all_dim=0.5),
    # GPT-OSS as its Hugging Face import builds it (small): YaRN without rounding the correction
    # range, learnable softmax offsets (sinks), alternating sliding / full attention, biases on
    # every linear layer and the router, quick-GeGLU with offset 1 and a clamp, experts in every
    # layer with the softmax of the top-k logits.
    "gpt_oss": derive(LLAMA, dict(SMALL, position_embedding_type="yarn", rotary_base=100),
                      **MOE, add_bias_linear=True, add_qkv_bias=True, softmax_type="learnable",
                      window_size=[2, 0], window_attn_skip_freq=2, activation_func="quick_gelu",
                      glu_linear_offset=1.0, activation_func_clamp_value=0.5,
                      moe_ffn_hidden_size=48, yarn_rotary_scaling_factor=4.0,
                      yarn_original_max_position_embeddings=64, yarn_beta_fast=4.0,
                      yarn_beta_slow=1.0, yarn_correction_range_round_to_int=False,
                      # Megatron supports expert biases with expert TP 1 only (the oracle runs
                      # one rank; the layouts with tp 2 keep the experts whole).
                      expert_tensor_parallel_size=1),
    # The load-balancing loss (Megatron's switch-transformer aux loss, coefficient large enough
    # that its gradient is a sizeable part of the router's): a function of the micro-batch's
    # tokens, so compared only in layouts that see the whole batch at once (one rank, tp 2 with
    # sequence parallelism, where Megatron counts the tokens over TP, and a pipeline fed one
    # micro-batch).
    "moe_aux_loss": derive(LLAMA, SMALL, **MOE, moe_aux_loss_coeff=0.1),
    # DeepSeek-V3's router: aux-loss-free expert bias (non-zero, so it changes the choice of
    # experts but not their weights) over sigmoid scores, top 2 within the best of 2 groups of 4
    # (scored by their top two, as DeepSeek-V3), scaled; buffers_step{1,2,3}.safetensors hold
    # the bias after each of three steps of finalize_model_grads' update.
    "moe_expert_bias": derive(LLAMA, SMALL, **dict(MOE, num_moe_experts=8, moe_router_topk=2),
                              moe_router_num_groups=2, moe_router_group_topk=1,
                              moe_router_score_function="sigmoid",
                              moe_router_topk_scaling_factor=2.5,
                              moe_router_enable_expert_bias=True,
                              moe_router_bias_update_rate=0.01),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("names", nargs="*")
    args = ap.parse_args()
    unknown = set(args.names) - set(CASES)
    if unknown:
        sys.exit(f"unknown cases {sorted(unknown)}; known: {sorted(CASES)}")
    dirs = []
    for name, cfg in CASES.items():
        if args.names and name not in args.names:
            continue
        d = os.path.join(args.out, name)
        os.makedirs(d, exist_ok=True)
        json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=1)
        r = random.Random(name)
        json.dump([[r.randrange(cfg["vocab_size"]) for _ in range(17)] for _ in range(2)],
                  open(os.path.join(d, "tokens.json"), "w"))
        dirs.append(d)
    cmd = [sys.executable, os.path.join(HERE, "megatron_oracle.py"), "--init-seed", "1",
           "--logits"] + dirs
    sys.exit(subprocess.run(cmd).returncode)


if __name__ == "__main__":
    main()
