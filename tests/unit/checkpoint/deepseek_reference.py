"""A plain-PyTorch DeepSeek-V2 / V3 forward written from transformers' modelling semantics
(modeling_deepseek_v2.py / modeling_deepseek_v3.py, transformers 5.23), independent of both
transformers' classes and gptbuilder: logits of a checkpoint's state dict (HF names) for token
ids. hf_transformers.py checks transformers' logits against it before gptbuilder is compared
with transformers.

What it computes, per layer: RMSNorm; multi-latent attention (q_a_proj, q_a_layernorm,
q_b_proj into per-head [nope, rope] queries; kv_a_proj_with_mqa into the latent and one shared
rope key; kv_a_layernorm, kv_b_proj into per-head [nope key, value]); rotary embedding on
interleaved channel pairs (V3's rope_interleave: the rotated halves concatenated; V2: the complex
rotation, pairs kept interleaved; either way q and k alike), default or YaRN frequencies and
their attention factor, the softmax scale times mscale(factor, mscale_all_dim)^2; causal softmax
attention, o_proj; RMSNorm; a SwiGLU MLP for the first first_k_dense_replace layers, else the
routed experts plus the shared experts. V3 routing: sigmoid scores, the correction bias added
for the choice only, groups scored by their top two, topk_group groups kept (others -inf), top k,
weights renormalised, times routed_scaling_factor. V2: softmax scores, greedy top k or
group_limited_greedy (groups by their best score, others 0), times routed_scaling_factor.
"""
import math

import torch


def _f32(x):
    """At least float32 (float64 stays, for checking the reference's own rounding)."""
    return x if x.dtype == torch.float64 else x.float()


def _rms(x, w, eps):
    x32 = _f32(x)
    return w * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps))


def _rope_tables(cfg, seq):
    d = cfg["qk_rope_head_dim"]
    rp = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    base = rp.get("rope_theta", cfg.get("rope_theta", 10000.0))
    kind = rp.get("rope_type", rp.get("type", "default"))
    pos_freqs = base ** (torch.arange(0, d, 2, dtype=torch.float) / d)
    inv_freq = 1.0 / pos_freqs
    factor_attn = 1.0
    if kind == "yarn":
        factor = rp["factor"]
        original = rp["original_max_position_embeddings"]

        def mscale_of(scale, m=1.0):
            return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

        m, m_all = rp.get("mscale"), rp.get("mscale_all_dim")
        factor_attn = (mscale_of(factor, m) / mscale_of(factor, m_all) if m and m_all
                       else mscale_of(factor))
        beta_fast, beta_slow = rp.get("beta_fast") or 32, rp.get("beta_slow") or 1

        def dim_of(rotations):
            return d * math.log(original / (rotations * 2 * math.pi)) / (2 * math.log(base))

        low = max(math.floor(dim_of(beta_fast)), 0)
        high = min(math.ceil(dim_of(beta_slow)), d - 1)
        if low == high:
            high += 0.001
        ramp = torch.clamp((torch.arange(d // 2, dtype=torch.float) - low) / (high - low), 0, 1)
        extrapolation = 1 - ramp
        inv_freq = (1.0 / (factor * pos_freqs)) * (1 - extrapolation) + inv_freq * extrapolation
    angles = torch.arange(seq, dtype=torch.float)[:, None] * inv_freq[None, :]  # [s, d/2]
    return torch.cos(angles) * factor_attn, torch.sin(angles) * factor_attn


def _rotate(x, cos, sin, v3):
    # x [b, heads, s, d] with interleaved pairs (x0, x1), (x2, x3), ...
    x1, x2 = x[..., 0::2], x[..., 1::2]
    r1, r2 = x1 * cos - x2 * sin, x2 * cos + x1 * sin
    if v3:
        return torch.cat([r1, r2], dim=-1)
    return torch.stack([r1, r2], dim=-1).flatten(-2)


def _mlp(sd, p, x):
    return torch.nn.functional.linear(
        torch.nn.functional.silu(torch.nn.functional.linear(x, sd[p + "gate_proj.weight"])) *
        torch.nn.functional.linear(x, sd[p + "up_proj.weight"]), sd[p + "down_proj.weight"])


def _route(cfg, sd, p, x, v3):
    n_exp, k = cfg["n_routed_experts"], cfg["num_experts_per_tok"]
    groups, keep = cfg.get("n_group") or 1, cfg.get("topk_group") or 1
    logits = _f32(x) @ _f32(sd[p + "gate.weight"]).t()
    if v3:
        scores = logits.sigmoid()
        choice = scores + sd[p + "gate.e_score_correction_bias"]
        group_scores = choice.view(-1, groups, n_exp // groups).topk(2, dim=-1).values.sum(-1)
        kept = torch.zeros_like(group_scores).scatter_(
            1, group_scores.topk(keep, dim=-1).indices, 1.0)
        mask = kept.unsqueeze(-1).expand(-1, groups, n_exp // groups).reshape(-1, n_exp)
        idx = choice.masked_fill(mask == 0, float("-inf")).topk(k, dim=-1).indices
        w = scores.gather(1, idx)
        if cfg.get("norm_topk_prob", True):
            w = w / (w.sum(-1, keepdim=True) + 1e-20)
    else:
        scores = logits.softmax(-1)
        if cfg.get("topk_method", "greedy") == "group_limited_greedy":
            group_scores = scores.view(-1, groups, n_exp // groups).max(-1).values
            kept = torch.zeros_like(group_scores).scatter_(
                1, group_scores.topk(keep, dim=-1).indices, 1.0)
            mask = kept.unsqueeze(-1).expand(-1, groups, n_exp // groups).reshape(-1, n_exp)
            scores = scores.masked_fill(mask == 0, 0.0)
        w, idx = scores.topk(k, dim=-1)
    return w * cfg.get("routed_scaling_factor", 1.0), idx


def logits(cfg, sd, ids):
    """cfg: the config.json dict; sd: HF-named float32 tensors; ids: [b, s] int64."""
    v3 = cfg["model_type"] == "deepseek_v3"
    eps = cfg.get("rms_norm_eps", 1e-6)
    nh, nope, rope = cfg["num_attention_heads"], cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"]
    vd, lat = cfg["v_head_dim"], cfg["kv_lora_rank"]
    b, s = ids.shape
    cos, sin = _rope_tables(cfg, s)
    scale = (nope + rope) ** -0.5
    rp = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    if rp.get("rope_type", rp.get("type", "default")) != "default" and rp.get("mscale_all_dim"):
        m = 0.1 * rp["mscale_all_dim"] * math.log(rp["factor"]) + 1.0 if rp["factor"] > 1 else 1.0
        scale = scale * m * m
    lin = torch.nn.functional.linear
    h = sd["model.embed_tokens.weight"][ids]
    causal = torch.ones(s, s, dtype=torch.bool).triu(1)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        x = _rms(h, sd[p + "input_layernorm.weight"], eps)
        a = p + "self_attn."
        q = lin(_rms(lin(x, sd[a + "q_a_proj.weight"]), sd[a + "q_a_layernorm.weight"], eps),
                sd[a + "q_b_proj.weight"])
        q = q.view(b, s, nh, nope + rope).transpose(1, 2)
        ckv = lin(x, sd[a + "kv_a_proj_with_mqa.weight"])
        latent, k_pe = ckv[..., :lat], ckv[..., lat:]
        kv = lin(_rms(latent, sd[a + "kv_a_layernorm.weight"], eps), sd[a + "kv_b_proj.weight"])
        kv = kv.view(b, s, nh, nope + vd).transpose(1, 2)
        k_nope, v = kv[..., :nope], kv[..., nope:]
        q_pe = _rotate(q[..., nope:], cos, sin, v3)
        k_pe = _rotate(k_pe.view(b, 1, s, rope), cos, sin, v3).expand(b, nh, s, rope)
        qq = torch.cat([q[..., :nope], q_pe], -1)
        kk = torch.cat([k_nope, k_pe], -1)
        att = (qq @ kk.transpose(-1, -2)) * scale
        att = att.masked_fill(causal, float("-inf")).softmax(-1, dtype=_f32(att).dtype)
        out = (att @ v).transpose(1, 2).reshape(b, s, nh * vd)
        h = h + lin(out, sd[a + "o_proj.weight"])
        x = _rms(h, sd[p + "post_attention_layernorm.weight"], eps)
        m = p + "mlp."
        if i < cfg.get("first_k_dense_replace", 0):
            h = h + _mlp(sd, m, x)
            continue
        flat = x.reshape(b * s, -1)
        w, idx = _route(cfg, sd, m, flat, v3)
        routed = torch.zeros_like(flat)
        for t in range(flat.shape[0]):
            for j in range(idx.shape[1]):
                e = int(idx[t, j])
                routed[t] += w[t, j] * _mlp(sd, f"{m}experts.{e}.", flat[t])
        h = h + routed.view(b, s, -1) + _mlp(sd, m + "shared_experts.", x)
    h = _rms(h, sd["model.norm.weight"], eps)
    return lin(h, sd["lm_head.weight"])
