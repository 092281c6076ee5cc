#!/usr/bin/python3
"""Small Hugging Face checkpoints and their logits from plain-PyTorch reference models.

Debian has neither `transformers` nor `safetensors` for Python, so this writes the Hugging Face
tensor layout, config.json and the safetensors files by hand, and computes the logits with a
straightforward implementation of each architecture as transformers defines it:

  llama / mistral / qwen2 / qwen3   RMSNorm, rotate-half RoPE, grouped-query attention (q/k/v
                                    biases for Qwen2, per-head q/k RMSNorm for Qwen3), SwiGLU
  mixtral                           the same attention, a top-2 mixture of SwiGLU experts
  gpt2                              LayerNorm, learned positions, Conv1D ([in, out]) weights with
                                    biases, fused c_attn, GELU, tied embeddings

GPT-2's checkpoints say activation_function "gelu_new" (the tanh approximation). gptbuilder
imports that as Megatron's "gelu", the exact GELU, which is what Megatron's GPT-2 recipe trains
with; the reference below therefore uses the exact GELU, the activation the imported model runs.

  write FAMILY OUT_DIR [--sharded]
      OUT_DIR/config.json, the weights (model.safetensors, or two shards plus
      model.safetensors.index.json with --sharded) and OUT_DIR/reference.safetensors holding
      input_ids (I64 [2, 12]) and logits (F32 [2, 12, vocab]).
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch

VOCAB = 100
HIDDEN = 64
HEADS = 4
KV_HEADS = 2
HEAD_DIM = 16
FFN = 96
LAYERS = 2
EXPERTS = 4
TOP_K = 2
EPS = 1e-5
THETA = 10000.0
BATCH, SEQ = 2, 12

ST_DTYPES = {torch.float32: ("F32", "<f4"), torch.int64: ("I64", "<i8")}


def write_safetensors(path, tensors, metadata=None):
    header = {"__metadata__": metadata or {"format": "pt"}}
    data = bytearray()
    for name, t in tensors.items():
        dtype, np_dtype = ST_DTYPES[t.dtype]
        raw = t.detach().contiguous().numpy().astype(np_dtype).tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape),
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        f.write(data)


def save_weights(out_dir, tensors, sharded):
    if not sharded:
        write_safetensors(os.path.join(out_dir, "model.safetensors"), tensors)
        return
    names = list(tensors)
    half = len(names) // 2
    weight_map = {}
    for i, part in enumerate((names[:half], names[half:])):
        file = "model-%05d-of-00002.safetensors" % (i + 1)
        write_safetensors(os.path.join(out_dir, file), {n: tensors[n] for n in part})
        weight_map.update({n: file for n in part})
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


class Weights:
    """Random weights, drawn in a fixed order from one generator."""

    def __init__(self, seed):
        self.g = torch.Generator().manual_seed(seed)
        self.tensors = {}

    def normal(self, name, *shape, std=0.15):
        self.tensors[name] = torch.randn(*shape, generator=self.g) * std
        return self.tensors[name]

    def norm(self, name, size):
        self.tensors[name] = 1.0 + 0.1 * torch.randn(size, generator=self.g)
        return self.tensors[name]


# ---- Llama-style families ------------------------------------------------------------------------

def rms_norm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def rope(x, positions):
    """x [b, s, heads, d]; the rotate-half RoPE of transformers' Llama."""
    inv_freq = 1.0 / (THETA ** (torch.arange(0, HEAD_DIM, 2, dtype=torch.float32) / HEAD_DIM))
    freqs = torch.outer(positions.float(), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[None, :, None, :], emb.sin()[None, :, None, :]
    return x * cos + rotate_half(x) * sin


def attention(q, k, v):
    """q [b, s, n, d], k/v [b, s, g, d]: causal grouped-query attention -> [b, s, n d]."""
    b, s, n, d = q.shape
    k = k.repeat_interleave(n // k.shape[2], dim=2)
    v = v.repeat_interleave(n // v.shape[2], dim=2)
    scores = torch.einsum("bsnd,btnd->bnst", q, k) / math.sqrt(d)
    mask = torch.ones(s, s, dtype=torch.bool).triu(1)
    probs = scores.masked_fill(mask, float("-inf")).softmax(-1)
    return torch.einsum("bnst,btnd->bsnd", probs, v).reshape(b, s, n * d)


def swiglu(x, gate, up, down):
    return (torch.nn.functional.silu(x @ gate.T) * (x @ up.T)) @ down.T


def llama_like(family, seed):
    tied = family == "qwen2"
    config = {
        "architectures": [{"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM",
                           "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM",
                           "mixtral": "MixtralForCausalLM"}[family]],
        "model_type": family, "vocab_size": VOCAB, "hidden_size": HIDDEN,
        "intermediate_size": FFN, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS, "head_dim": HEAD_DIM, "max_position_embeddings": 64,
        "rms_norm_eps": EPS, "rope_theta": THETA, "hidden_act": "silu",
        "tie_word_embeddings": tied, "torch_dtype": "float32", "attention_dropout": 0.0,
        "_name_or_path": "test/tiny-" + family,
    }
    if family in ("mistral", "mixtral"):
        config["sliding_window"] = 4096  # longer than any test sequence
    if family == "mixtral":
        config.update({"num_local_experts": EXPERTS, "num_experts_per_tok": TOP_K})
    if family in ("qwen2", "qwen3"):
        config["use_sliding_window"] = False

    w = Weights(seed)
    embed = w.normal("model.embed_tokens.weight", VOCAB, HIDDEN, std=0.5)
    layers = []
    for i in range(LAYERS):
        p = "model.layers.%d." % i
        layer = {"in_norm": w.norm(p + "input_layernorm.weight", HIDDEN),
                 "q": w.normal(p + "self_attn.q_proj.weight", HEADS * HEAD_DIM, HIDDEN),
                 "k": w.normal(p + "self_attn.k_proj.weight", KV_HEADS * HEAD_DIM, HIDDEN),
                 "v": w.normal(p + "self_attn.v_proj.weight", KV_HEADS * HEAD_DIM, HIDDEN),
                 "o": w.normal(p + "self_attn.o_proj.weight", HIDDEN, HEADS * HEAD_DIM)}
        if family == "qwen2":
            layer["qb"] = w.normal(p + "self_attn.q_proj.bias", HEADS * HEAD_DIM, std=0.1)
            layer["kb"] = w.normal(p + "self_attn.k_proj.bias", KV_HEADS * HEAD_DIM, std=0.1)
            layer["vb"] = w.normal(p + "self_attn.v_proj.bias", KV_HEADS * HEAD_DIM, std=0.1)
        if family == "qwen3":
            layer["q_norm"] = w.norm(p + "self_attn.q_norm.weight", HEAD_DIM)
            layer["k_norm"] = w.norm(p + "self_attn.k_norm.weight", HEAD_DIM)
        layer["post_norm"] = w.norm(p + "post_attention_layernorm.weight", HIDDEN)
        if family == "mixtral":
            moe = p + "block_sparse_moe."
            layer["router"] = w.normal(moe + "gate.weight", EXPERTS, HIDDEN, std=0.5)
            layer["experts"] = [
                (w.normal(moe + "experts.%d.w1.weight" % e, FFN, HIDDEN),
                 w.normal(moe + "experts.%d.w3.weight" % e, FFN, HIDDEN),
                 w.normal(moe + "experts.%d.w2.weight" % e, HIDDEN, FFN))
                for e in range(EXPERTS)]
        else:
            layer["gate"] = w.normal(p + "mlp.gate_proj.weight", FFN, HIDDEN)
            layer["up"] = w.normal(p + "mlp.up_proj.weight", FFN, HIDDEN)
            layer["down"] = w.normal(p + "mlp.down_proj.weight", HIDDEN, FFN)
        layers.append(layer)
    final_norm = w.norm("model.norm.weight", HIDDEN)
    head = embed if tied else w.normal("lm_head.weight", VOCAB, HIDDEN)

    def forward(ids):
        b, s = ids.shape
        positions = torch.arange(s)
        x = embed[ids]
        for L in layers:
            a = rms_norm(x, L["in_norm"])
            q = a @ L["q"].T + L.get("qb", 0)
            k = a @ L["k"].T + L.get("kb", 0)
            v = a @ L["v"].T + L.get("vb", 0)
            q = q.view(b, s, HEADS, HEAD_DIM)
            k = k.view(b, s, KV_HEADS, HEAD_DIM)
            v = v.view(b, s, KV_HEADS, HEAD_DIM)
            if "q_norm" in L:
                q, k = rms_norm(q, L["q_norm"]), rms_norm(k, L["k_norm"])
            q, k = rope(q, positions), rope(k, positions)
            x = x + attention(q, k, v) @ L["o"].T
            m = rms_norm(x, L["post_norm"])
            if "router" in L:
                # transformers' MixtralSparseMoeBlock: softmax, top-k, renormalise.
                probs = (m @ L["router"].T).softmax(-1)
                top_p, top_i = probs.topk(TOP_K, dim=-1)
                top_p = top_p / top_p.sum(-1, keepdim=True)
                out = torch.zeros_like(m)
                for e, (w1, w3, w2) in enumerate(L["experts"]):
                    weight = (top_p * (top_i == e)).sum(-1, keepdim=True)
                    out = out + weight * swiglu(m, w1, w3, w2)
                x = x + out
            else:
                x = x + swiglu(m, L["gate"], L["up"], L["down"])
        return rms_norm(x, final_norm) @ head.T

    return config, w.tensors, forward


# ---- GPT-2 ---------------------------------------------------------------------------------------

def gpt2(seed):
    n_pos = 32
    config = {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": VOCAB,
        "n_embd": HIDDEN, "n_layer": LAYERS, "n_head": HEADS, "n_positions": n_pos,
        "n_ctx": n_pos, "layer_norm_epsilon": EPS, "activation_function": "gelu_new",
        "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0, "torch_dtype": "float32",
        "_name_or_path": "test/tiny-gpt2",
    }
    w = Weights(seed)
    # The hub's GPT-2 checkpoint stores the bare GPT2Model (no "transformer." prefix) and the
    # causal-mask buffers attn.bias; both are reproduced here.
    wte = w.normal("wte.weight", VOCAB, HIDDEN, std=0.5)
    wpe = w.normal("wpe.weight", n_pos, HIDDEN, std=0.2)
    layers = []
    for i in range(LAYERS):
        p = "h.%d." % i
        layers.append({
            "ln1": (w.norm(p + "ln_1.weight", HIDDEN), w.normal(p + "ln_1.bias", HIDDEN, std=0.1)),
            "c_attn": (w.normal(p + "attn.c_attn.weight", HIDDEN, 3 * HIDDEN),
                       w.normal(p + "attn.c_attn.bias", 3 * HIDDEN, std=0.1)),
            "c_proj": (w.normal(p + "attn.c_proj.weight", HIDDEN, HIDDEN),
                       w.normal(p + "attn.c_proj.bias", HIDDEN, std=0.1)),
            "ln2": (w.norm(p + "ln_2.weight", HIDDEN), w.normal(p + "ln_2.bias", HIDDEN, std=0.1)),
            "c_fc": (w.normal(p + "mlp.c_fc.weight", HIDDEN, 4 * HIDDEN),
                     w.normal(p + "mlp.c_fc.bias", 4 * HIDDEN, std=0.1)),
            "mlp_proj": (w.normal(p + "mlp.c_proj.weight", 4 * HIDDEN, HIDDEN),
                         w.normal(p + "mlp.c_proj.bias", HIDDEN, std=0.1)),
        })
        w.tensors[p + "attn.bias"] = torch.ones(n_pos, n_pos).tril().view(1, 1, n_pos, n_pos)
    ln_f = (w.norm("ln_f.weight", HIDDEN), w.normal("ln_f.bias", HIDDEN, std=0.1))

    def layer_norm(x, wb):
        return torch.nn.functional.layer_norm(x, (HIDDEN,), wb[0], wb[1], EPS)

    def conv1d(x, wb):  # transformers' Conv1D: x @ W + b with W [in, out]
        return x @ wb[0] + wb[1]

    def forward(ids):
        b, s = ids.shape
        d = HIDDEN // HEADS
        x = wte[ids] + wpe[torch.arange(s)]
        for L in layers:
            q, k, v = conv1d(layer_norm(x, L["ln1"]), L["c_attn"]).split(HIDDEN, dim=-1)
            ctx = attention(q.view(b, s, HEADS, d), k.view(b, s, HEADS, d), v.view(b, s, HEADS, d))
            x = x + conv1d(ctx, L["c_proj"])
            h = torch.nn.functional.gelu(conv1d(layer_norm(x, L["ln2"]), L["c_fc"]))  # exact GELU
            x = x + conv1d(h, L["mlp_proj"])
        return layer_norm(x, ln_f) @ wte.T

    return config, w.tensors, forward


def write(family, out_dir, sharded):
    os.makedirs(out_dir, exist_ok=True)
    seed = sum(ord(c) for c in family)
    config, tensors, forward = gpt2(seed) if family == "gpt2" else llama_like(family, seed)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    save_weights(out_dir, tensors, sharded)
    ids = torch.randint(0, VOCAB, (BATCH, SEQ), generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        logits = forward(ids)
    write_safetensors(os.path.join(out_dir, "reference.safetensors"),
                      {"input_ids": ids, "logits": logits.float()})


def main(argv):
    if len(argv) >= 3 and argv[0] == "write":
        write(argv[1], argv[2], "--sharded" in argv[3:])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
