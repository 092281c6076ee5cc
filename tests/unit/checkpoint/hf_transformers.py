#!/usr/bin/env python3
"""Small random Hugging Face models from real `transformers` (the pinned version of the project
environment), the independent reference of gptbuilder's Hugging Face import and export.

  write FAMILY OUT_DIR [--sharded]
      Builds a transformers model of FAMILY (gpt2, llama, mistral, qwen2, qwen3, mixtral,
      qwen3_moe, gpt_oss, deepseek_v3, deepseek_v2, gemma2, gemma3_text) from a small config with seeded random weights (matrices N(0, 0.15), norm
      weights 1 + N(0, 0.1), biases N(0, 0.1)) and saves it with save_pretrained (safetensors;
      two shards and an index with --sharded). OUT_DIR/reference.safetensors holds input_ids (I64 [2, 12]) and the
      model's logits (F32 [2, 12, vocab]), computed by transformers with eager attention; for
      DeepSeek also plain_logits, those of deepseek_reference.py (checked against transformers'
      within 1e-4 here).

  check-export ORIGINAL_DIR EXPORTED_DIR
      Loads both directories with AutoModelForCausalLM.from_pretrained and checks that the export
      is the same model: the same class, identical state dicts (names, shapes, bytes) and
      identical logits on the reference input_ids (so the exported config.json makes
      transformers compute what the original's does). Exits non-zero naming the differences.

The configs exercise what each family's import must get right: GPT-2's "gelu_new" (the tanh
approximation of GELU), Conv1D weights and tied embeddings; grouped-query attention; Qwen2's
q/k/v biases, Qwen3's q/k norms; Mistral's and Mixtral's sliding window (5 and 6 tokens, shorter
than the 12-token input); Mixtral's top-2 experts; Qwen3-MoE's q/k norms with a MoE layer
(renormalised top-2 of 4 experts) and a dense one (mlp_only_layers); GPT-OSS's sinks, biases,
YaRN positions, alternating sliding/full attention, clamped SwiGLU and fused, interleaved
experts; DeepSeek's multi-latent attention, shared experts, group-limited routing, V3's
correction bias and YaRN; Gemma 2's scaled tied embeddings, zero-centred pre- and post-norms,
GeGLU, query_pre_attn_scalar, capped scores and logits and alternating sliding window; Gemma 3's
q/k norms and local / global rotary embeddings (linear scaling on the global layer).
"""
import os
import sys

import torch
import transformers
from safetensors.torch import load_file, save_file

VOCAB, HIDDEN, HEADS, KV_HEADS, HEAD_DIM, FFN, LAYERS = 100, 64, 4, 2, 16, 96, 2
BATCH, SEQ = 2, 12


def config_of(family):
    common = dict(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=FFN,
                  num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                  num_key_value_heads=KV_HEADS, max_position_embeddings=64, rms_norm_eps=1e-5,
                  rope_theta=10000.0, hidden_act="silu", tie_word_embeddings=False,
                  dtype="float32")
    if family == "gpt2":
        return transformers.GPT2Config(vocab_size=VOCAB, n_embd=HIDDEN, n_layer=LAYERS,
                                       n_head=HEADS, n_inner=4 * HIDDEN, n_positions=64,
                                       activation_function="gelu_new", resid_pdrop=0.0,
                                       embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=1,
                                       eos_token_id=2, dtype="float32")
    if family == "llama":
        return transformers.LlamaConfig(**common, head_dim=HEAD_DIM)
    if family == "mistral":
        return transformers.MistralConfig(**common, head_dim=HEAD_DIM, sliding_window=5)
    if family == "qwen2":
        return transformers.Qwen2Config(**common, use_sliding_window=False)
    if family == "qwen3":
        return transformers.Qwen3Config(**common, head_dim=HEAD_DIM, use_sliding_window=False)
    if family == "mixtral":
        return transformers.MixtralConfig(**common, head_dim=HEAD_DIM, sliding_window=6,
                                          num_local_experts=4, num_experts_per_tok=2)
    if family == "qwen3_moe":
        # Layer 0 has 4 experts (top 2, renormalised), layer 1 a dense MLP (mlp_only_layers).
        return transformers.Qwen3MoeConfig(**common, head_dim=HEAD_DIM, use_sliding_window=False,
                                           num_experts=4, num_experts_per_tok=2,
                                           moe_intermediate_size=32, norm_topk_prob=True,
                                           mlp_only_layers=[1])
    if family == "gpt_oss":
        # Layer 0 attends through a 5-token sliding window, layer 1 fully (GptOssConfig's
        # alternating default); YaRN x4 over 16 original positions without truncating the
        # correction range, so the ramp is fractional; top 2 of 4 experts; a SwiGLU clamp of 1,
        # which these weights reach.
        return transformers.GptOssConfig(
            vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=32, num_hidden_layers=LAYERS,
            num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, head_dim=HEAD_DIM,
            max_position_embeddings=64, rms_norm_eps=1e-5, tie_word_embeddings=False,
            num_local_experts=4, num_experts_per_tok=2, sliding_window=5, swiglu_limit=1.0,
            rope_parameters={"rope_type": "yarn", "rope_theta": 500.0, "factor": 4.0,
                             "beta_fast": 8.0, "beta_slow": 1.0, "truncate": False,
                             "original_max_position_embeddings": 16},
            dtype="float32")
    if family == "gemma2":
        # Layer 0 attends through a 5-token sliding window, layer 1 fully (Gemma2Config's
        # alternating default); scores scaled by 24^-0.5 and capped at 2, logits capped at 3;
        # tied embeddings scaled by sqrt(64); four zero-centred norms per layer.
        return transformers.Gemma2Config(
            vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=FFN, num_hidden_layers=LAYERS,
            num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, head_dim=HEAD_DIM,
            max_position_embeddings=64, rms_norm_eps=1e-6, sliding_window=5,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True,
            query_pre_attn_scalar=24, attn_logit_softcapping=2.0, final_logit_softcapping=3.0,
            dtype="float32")
    if family == "gemma3_text":
        # Gemma 2's layout with q/k norms, no capping, a sliding layer rotating with base 100
        # and a global one with base 10000 scaled linearly by 4.
        return transformers.Gemma3TextConfig(
            vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=FFN, num_hidden_layers=LAYERS,
            num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, head_dim=HEAD_DIM,
            max_position_embeddings=64, rms_norm_eps=1e-6, sliding_window=5,
            layer_types=["sliding_attention", "full_attention"],
            rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 100.0},
                             "full_attention": {"rope_type": "linear", "factor": 4.0,
                                                "rope_theta": 10000.0}},
            hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True,
            query_pre_attn_scalar=24, dtype="float32")
    if family in ("deepseek_v3", "deepseek_v2"):
        # Multi-latent attention (query compression, q/kv norms), a dense layer 0 and a MoE
        # layer 1: 8 routed experts in 4 groups (2 kept) and a shared MLP. V3: sigmoid scores
        # with a correction bias (drawn in randomize), top 4 of the kept groups scored by their
        # top two, renormalised, x 2.5; YaRN past original_max_position_embeddings with
        # mscale != mscale_all_dim. V2: softmax top 2 in the kept groups scored by their best
        # expert (group_limited_greedy), x 2.0, plain rope. No MTP layer (transformers has none).
        mla = dict(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=FFN,
                   num_hidden_layers=LAYERS, num_attention_heads=HEADS, num_key_value_heads=HEADS,
                   max_position_embeddings=64, rms_norm_eps=1e-5, hidden_act="silu",
                   tie_word_embeddings=False, dtype="float32", q_lora_rank=24, kv_lora_rank=16,
                   qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=12,
                   moe_intermediate_size=32, n_routed_experts=8, first_k_dense_replace=1,
                   n_group=4, topk_group=2)
        if family == "deepseek_v3":
            return transformers.DeepseekV3Config(
                **mla, n_shared_experts=1, num_experts_per_tok=4, routed_scaling_factor=2.5,
                norm_topk_prob=True, num_nextn_predict_layers=0,
                rope_parameters=dict(rope_type="yarn", rope_theta=10000.0, factor=4.0,
                                     original_max_position_embeddings=4, beta_fast=8.0,
                                     beta_slow=1.0, mscale=1.0, mscale_all_dim=0.8))
        return transformers.DeepseekV2Config(
            **mla, n_shared_experts=2, num_experts_per_tok=2, routed_scaling_factor=2.0,
            topk_method="group_limited_greedy", norm_topk_prob=False,
            rope_parameters=dict(rope_type="default", rope_theta=10000.0))
    sys.exit(f"unknown family {family!r}")


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if "norm" in name or name.split(".")[-2].startswith("ln_"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.15 * torch.randn(p.shape, generator=g))
        # DeepSeek-V3's routing-only correction bias (a buffer, zero when built).
        for name, b in sorted(model.named_buffers()):
            if name.endswith("e_score_correction_bias"):
                b.copy_(0.05 * torch.randn(b.shape, generator=g))


def load(path):
    model = transformers.AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager")
    return model.eval()


def logits_of(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits.float().contiguous()


def gpt_oss_plain_logits(config, w, ids):
    """GPT-OSS's forward in plain PyTorch from the saved config.json and tensors, written from
    transformers' GptOss modelling semantics (not calling it): a second reference for the
    import, and a check that transformers computes what this file says it does."""
    import math
    n, g, d = config["num_attention_heads"], config["num_key_value_heads"], config["head_dim"]
    eps, limit, alpha = config["rms_norm_eps"], config["swiglu_limit"], config["swiglu_alpha"]
    rope = config["rope_parameters"]
    base, factor = rope["rope_theta"], rope["factor"]
    original = rope["original_max_position_embeddings"]

    def correction_dim(rotations):
        return d * math.log(original / (rotations * 2 * math.pi)) / (2 * math.log(base))

    low, high = correction_dim(rope["beta_fast"]), correction_dim(rope["beta_slow"])
    if rope.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, d - 1)
    ramp = ((torch.arange(d // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
    extrapolated = 1.0 / base ** (torch.arange(0, d, 2, dtype=torch.float32) / d)
    inv_freq = extrapolated / factor * ramp + extrapolated * (1 - ramp)
    attention_factor = 0.1 * math.log(factor) + 1.0
    b, s = ids.shape
    angles = torch.arange(s, dtype=torch.float32)[:, None] * inv_freq[None, :]
    cos, sin = angles.cos() * attention_factor, angles.sin() * attention_factor

    def rms(x, weight):
        return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))

    def rotate(x):  # [b, s, heads, d]
        x1, x2 = x[..., : d // 2], x[..., d // 2:]
        c, si = cos[None, :, None, :], sin[None, :, None, :]
        return torch.cat([x1 * c - x2 * si, x2 * c + x1 * si], -1)

    i = torch.arange(s)[:, None]
    j = torch.arange(s)[None, :]
    h = w["model.embed_tokens.weight"][ids]
    for layer in range(config["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        x = rms(h, w[p + "input_layernorm.weight"])
        q = (x @ w[p + "self_attn.q_proj.weight"].T + w[p + "self_attn.q_proj.bias"])
        k = (x @ w[p + "self_attn.k_proj.weight"].T + w[p + "self_attn.k_proj.bias"])
        v = (x @ w[p + "self_attn.v_proj.weight"].T + w[p + "self_attn.v_proj.bias"])
        q, k, v = q.view(b, s, n, d), k.view(b, s, g, d), v.view(b, s, g, d)
        q, k = rotate(q), rotate(k)
        k = k.repeat_interleave(n // g, dim=2)  # query head t reads key group t // (n / g)
        v = v.repeat_interleave(n // g, dim=2)
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(d)
        masked = j > i
        if config["layer_types"][layer] == "sliding_attention":
            masked = masked | (i - j >= config["sliding_window"])
        scores = scores.masked_fill(masked, float("-inf"))
        sinks = w[p + "self_attn.sinks"][None, :, None, None].expand(b, n, s, 1)
        probs = torch.softmax(torch.cat([scores, sinks], -1), -1)[..., :-1]
        o = torch.einsum("bhqk,bkhd->bqhd", probs, v).reshape(b, s, n * d)
        h = h + o @ w[p + "self_attn.o_proj.weight"].T + w[p + "self_attn.o_proj.bias"]
        x = rms(h, w[p + "post_attention_layernorm.weight"])
        logits = x @ w[p + "mlp.router.weight"].T + w[p + "mlp.router.bias"]
        top, chosen = logits.topk(config["num_experts_per_tok"], dim=-1)
        weights = torch.softmax(top, -1)
        out = torch.zeros_like(h)
        for e in range(config["num_local_experts"]):
            gate_up = x @ w[p + "mlp.experts.gate_up_proj"][e] + w[p + "mlp.experts.gate_up_proj_bias"][e]
            gate, up = gate_up[..., 0::2].clamp(max=limit), gate_up[..., 1::2].clamp(-limit, limit)
            y = ((up + 1) * gate * torch.sigmoid(alpha * gate)) @ w[p + "mlp.experts.down_proj"][e]
            y = y + w[p + "mlp.experts.down_proj_bias"][e]
            share = (weights * (chosen == e)).sum(-1, keepdim=True)  # 0 where not routed
            out = out + share * y
        h = h + out
    h = rms(h, w["model.norm.weight"])
    return (h @ w["lm_head.weight"].T).contiguous()


def write(family, out_dir, sharded):
    torch.manual_seed(0)
    config = config_of(family)
    config._attn_implementation = "eager"
    model = transformers.AutoModelForCausalLM.from_config(config).eval()
    randomize(model, seed=sum(map(ord, family)))
    if getattr(model.config, "tie_word_embeddings", False):
        model.tie_weights()
    model.save_pretrained(out_dir, max_shard_size="100KB" if sharded else "5GB")
    ids = torch.randint(0, VOCAB, (BATCH, SEQ), generator=torch.Generator().manual_seed(1))
    # The logits of the model as saved and loaded back: what any reader of the directory sees.
    reference = {"input_ids": ids, "logits": logits_of(load(out_dir), ids)}
    if family == "gpt_oss":
        import glob
        import json
        weights = {}
        for f in glob.glob(f"{out_dir}/*.safetensors"):
            weights.update(load_file(f))
        with torch.no_grad():
            plain = gpt_oss_plain_logits(json.load(open(f"{out_dir}/config.json")), weights, ids)
        # The two references agree before either is used.
        gap = (plain - reference["logits"]).abs().max().item()
        if gap > 1e-5:
            sys.exit(f"gpt_oss: the plain-PyTorch reference differs from transformers by {gap}")
        reference["plain_logits"] = plain
    if family in ("gemma2", "gemma3_text"):
        import json
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import gemma_reference
        weights = {}
        for f in sorted(os.listdir(out_dir)):
            if f.endswith(".safetensors") and f != "reference.safetensors":
                weights.update(load_file(f"{out_dir}/{f}"))
        with torch.no_grad():
            plain = gemma_reference.logits(json.load(open(f"{out_dir}/config.json")), weights, ids)
        gap = (plain - reference["logits"]).abs().max().item()
        print(f"{family}: transformers vs the plain-PyTorch reference: max abs error {gap:.2e}")
        if not gap < 1e-5:
            sys.exit(f"{family}: the plain-PyTorch reference differs from transformers by {gap}")
        reference["plain_logits"] = plain
    if family.startswith("deepseek"):
        # transformers against the plain-PyTorch forward written from its modelling semantics
        # (transformers' own fp32 rounding is ~5e-5 here against the reference in fp64).
        import json
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import deepseek_reference
        cfg = json.load(open(f"{out_dir}/config.json"))
        weights = {}
        for f in sorted(os.listdir(out_dir)):
            if f.endswith(".safetensors") and f != "reference.safetensors":
                weights.update(load_file(f"{out_dir}/{f}"))
        with torch.no_grad():
            plain = deepseek_reference.logits(cfg, weights, ids)
        error = (plain - reference["logits"]).abs().max().item()
        print(f"{family}: transformers vs the plain-PyTorch reference: max abs error {error:.2e}")
        if not error < 1e-4:
            sys.exit(f"{family}: transformers' logits differ from the plain-PyTorch reference by "
                     f"{error:.3g}")
        reference["plain_logits"] = plain.float().contiguous()
    save_file(reference, f"{out_dir}/reference.safetensors")


def check_export(original_dir, exported_dir):
    a, b = load(original_dir), load(exported_dir)
    problems = []
    if type(a) is not type(b):
        problems.append(f"class {type(b).__name__}, original {type(a).__name__}")
    sa, sb = a.state_dict(), b.state_dict()
    for name in sorted(set(sa) | set(sb)):
        if name not in sb:
            problems.append(f"{name} missing from the export")
        elif name not in sa:
            problems.append(f"{name} is not in the original")
        elif sa[name].shape != sb[name].shape or sa[name].dtype != sb[name].dtype:
            problems.append(f"{name}: {tuple(sb[name].shape)} {sb[name].dtype}, original "
                            f"{tuple(sa[name].shape)} {sa[name].dtype}")
        elif not torch.equal(sa[name], sb[name]):
            problems.append(f"{name}: values differ")
    ids = load_file(f"{original_dir}/reference.safetensors")["input_ids"]
    la, lb = logits_of(a, ids), logits_of(b, ids)
    if not torch.equal(la, lb):
        problems.append(f"logits differ by up to {(la - lb).abs().max().item():.3g}")
    for p in problems:
        print(f"check-export: {p}", file=sys.stderr)
    return 1 if problems else 0


def main(argv):
    if len(argv) >= 3 and argv[0] == "write":
        write(argv[1], argv[2], "--sharded" in argv[3:])
        return 0
    if len(argv) == 3 and argv[0] == "check-export":
        return check_export(argv[1], argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
