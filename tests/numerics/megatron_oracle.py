#!/usr/bin/env python3
"""Real Megatron Core as a numerical oracle for gptbuilder configs.

For each case folder (config.json: a gptbuilder config, GPTModelConfig fields at the top and
TransformerConfig fields under "transformer"; tokens.json: [[ids], ...], each sample seq + 1 ids,
inputs the first seq and labels the last seq; weights.safetensors unless --init-seed), builds
megatron.core.models.gpt.GPTModel with the local spec on the CPU (tp = pp = 1, a gloo world of
one process), runs forward with labels and backward on the mean loss, and writes to OUT/<case>:

  result.json          loss (mean over every token), per_token_loss [b][s], grad_norm,
                       param_grad_norm {name: norm}, padded_vocab_size, megatron_kwargs (what
                       Megatron was given), megatron_version, ignored_config_keys
  grads.safetensors    d(mean loss)/d(parameter) for every parameter
  logits.safetensors   "logits" [b, s, padded vocab] (with --logits)
  weights.safetensors  the weights (with --init-seed: N(0, 0.2) matrices, norms 1 + N(0, 0.1),
                       biases N(0, 0.1), drawn in name order; then routers' expert_bias
                       N(0, 0.1))
  buffers_stepN.safetensors  with moe_router_enable_expert_bias: every router's expert_bias
                       after N steps (N = 1 .. EXPERT_BIAS_STEPS) of forward, backward and
                       finalize_model_grads' update (_update_router_expert_bias, counts reset)
                       on the same batch, without an optimizer

Names are Megatron's local-spec state-dict names at tp = 1 (unsharded, global layer and expert
indices). Parallel sizes in the config are ignored (every layout must reproduce one rank);
dropout is forced to 0; fp32. Several cases run in one process (Megatron is imported once).

Usage (Megatron from the project environment, or a source tree on MEGATRON_PATH):
  .venv/bin/python tests/numerics/megatron_oracle.py [--out OUT] [--logits] [--init-seed N]
      CASE_DIR [CASE_DIR ...]
Without --out each case's outputs go into its own folder.
"""
import argparse
import dataclasses
import json
import math
import os
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import megatron_cpu  # noqa: E402

# Keys of the "transformer" block that describe the parallel layout or the run, not the model.
LAYOUT_KEYS = {
    "tensor_model_parallel_size", "pipeline_model_parallel_size", "context_parallel_size",
    "expert_model_parallel_size", "expert_tensor_parallel_size",
    "virtual_pipeline_model_parallel_size", "sequence_parallel",
    "num_layers_in_first_pipeline_stage", "num_layers_in_last_pipeline_stage",
    "account_for_embedding_in_pipeline_split", "account_for_loss_in_pipeline_split",
    "pipeline_model_parallel_layout", "pipeline_dtype", "params_dtype", "bf16", "fp16",
    "hidden_dropout", "attention_dropout", "perform_initialization",
    "use_cpu_initialization",
}


EXPERT_BIAS_STEPS = 3

# The yarn_* attributes of a non-MLA YaRN model and their defaults (Megatron-LM's
# _apply_yarn_config_from_args).
YARN_ATTRIBUTES = {
    "yarn_rotary_scaling_factor": 1.0, "yarn_original_max_position_embeddings": 4096,
    "yarn_beta_fast": 32.0, "yarn_beta_slow": 1.0, "yarn_mscale": 1.0,
    "yarn_mscale_all_dim": 0.0, "yarn_correction_range_round_to_int": True,
}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def padded_vocab(cfg):
    v = cfg["vocab_size"]
    if not cfg.get("should_pad_vocab", False):
        return v
    m = cfg.get("make_vocab_size_divisible_by", 128)
    return int(math.ceil(v / m) * m)


def activations():
    """Megatron-Bridge's activation names -> the callables Megatron compares against."""
    import torch
    import torch.nn.functional as F
    from megatron.core.activations import fast_gelu, squared_relu
    from megatron.core.fusions.fused_bias_geglu import quick_gelu
    return {"gelu": F.gelu, "silu": F.silu, "relu": F.relu, "squared_relu": squared_relu,
            "quick_gelu": quick_gelu, "fast_gelu": fast_gelu, "sigmoid": F.sigmoid,
            "tanh": torch.tanh}


def megatron_kwargs(cfg, config_cls):
    """TransformerConfig kwargs from the config's "transformer" block."""
    import torch
    known = {f.name for f in dataclasses.fields(config_cls)}
    tc, dropped = {}, []
    for k, v in cfg.get("transformer", {}).items():
        if k in LAYOUT_KEYS:
            continue
        if k not in known:
            dropped.append(k)
            continue
        tc[k] = tuple(v) if k == "window_size" and v is not None else v
    acts = activations()
    act = tc.pop("activation_func", "gelu")
    if act not in acts:
        sys.exit(f"activation_func {act!r}: the oracle knows {sorted(acts)}")
    tc["activation_func"] = acts[act]
    tc.update(use_cpu_initialization=True, perform_initialization=False,
              params_dtype=torch.float32, pipeline_dtype=torch.float32,
              hidden_dropout=0.0, attention_dropout=0.0)
    return tc, dropped


def init_weights(model, seed):
    """Deterministic weights far from an identity."""
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if "norm" in name.split(".")[-2] or name.endswith("layer_norm_weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias") or p.dim() == 1:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
        # The routers' expert_bias (moe_router_enable_expert_bias) starts at zero in Megatron;
        # drawn here (after every parameter, so other cases keep their weights) so that it
        # changes which experts the tokens choose.
        for name, b in sorted(model.named_buffers()):
            if name.endswith("expert_bias"):
                b.copy_(0.1 * torch.randn(b.shape, generator=g))


def build_model(cfg):
    from megatron.core.models.gpt import GPTModel
    from megatron.core.models.gpt import gpt_layer_specs as specs
    from megatron.core.transformer.transformer_config import (MLATransformerConfig,
                                                              TransformerConfig)
    t = cfg.get("transformer", {})
    if t.get("mtp_num_layers"):
        sys.exit("mtp_num_layers: the oracle does not build MTP blocks")
    mla = bool(t.get("multi_latent_attention"))
    config_cls = MLATransformerConfig if mla else TransformerConfig
    tc, dropped = megatron_kwargs(cfg, config_cls)
    if mla:
        # gptbuilder's q_lora_rank 0 is Megatron's None (no query compression). MLA reads
        # rotary_base and rotary_percent from its config: Megatron-Bridge's providers carry one
        # field for both it and GPTModel, as gptbuilder's top-level fields do.
        if tc.get("q_lora_rank") == 0:
            tc["q_lora_rank"] = None
        tc["rotary_base"] = cfg.get("rotary_base", 10000)
        tc["rotary_percent"] = cfg.get("rotary_percent", 1.0)
    config = config_cls(**tc)
    if cfg.get("position_embedding_type") == "yarn" and not mla:
        # GPTModel reads YaRN's settings as attributes of the config that TransformerConfig
        # does not declare; Megatron-LM sets them so (_apply_yarn_config_from_args), with
        # YarnRotaryEmbedding's defaults.
        for name, default in YARN_ATTRIBUTES.items():
            setattr(config, name, t.get(name, default))
        dropped = [k for k in dropped if k not in YARN_ATTRIBUTES]
        tc.update({name: getattr(config, name) for name in YARN_ATTRIBUTES})
    if config.num_moe_experts:
        spec = specs.get_gpt_decoder_block_spec(config, use_transformer_engine=False,
                                                normalization=config.normalization,
                                                qk_l2_norm=config.qk_l2_norm)
    else:
        spec = specs.get_gpt_layer_local_spec(qk_layernorm=config.qk_layernorm,
                                              multi_latent_attention=mla,
                                              normalization=config.normalization,
                                              qk_l2_norm=config.qk_l2_norm)
    gpt_kwargs = dict(
        vocab_size=padded_vocab(cfg), max_sequence_length=cfg.get("seq_length", 1024),
        share_embeddings_and_output_weights=cfg.get("share_embeddings_and_output_weights", True),
        position_embedding_type=cfg.get("position_embedding_type", "learned_absolute"),
        rotary_percent=cfg.get("rotary_percent", 1.0),
        rotary_base=cfg.get("rotary_base", 10000),
        rope_scaling=cfg.get("rope_scaling", False),
        rope_scaling_factor=cfg.get("rope_scaling_factor", 8.0),
        seq_len_interpolation_factor=cfg.get("seq_len_interpolation_factor"))
    model = GPTModel(config=config, transformer_layer_spec=spec, pre_process=True,
                     post_process=True, parallel_output=True, **gpt_kwargs)
    return model, tc, dropped, gpt_kwargs


def run_case(case_dir, out_dir, init_seed, want_logits):
    import torch
    from safetensors.torch import load_file, save_file
    cfg = json.load(open(os.path.join(case_dir, "config.json")))
    model, tc, dropped, gpt_kwargs = build_model(cfg)
    own = {k for k in model.state_dict() if not k.endswith("_extra_state")}
    if init_seed is None:
        weights = load_file(os.path.join(case_dir, "weights.safetensors"))
        missing, unexpected = sorted(own - set(weights)), sorted(set(weights) - own)
        if missing or unexpected:
            sys.exit(f"{case_dir}: weights do not fit: missing {missing[:6]}, "
                     f"unexpected {unexpected[:6]}")
        model.load_state_dict(weights, strict=False)
    else:
        init_weights(model, init_seed)
    # The weights as given (the step below updates the expert_bias buffers in place).
    initial = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()
               if not k.endswith("_extra_state")}
    model.train()

    ids = torch.tensor(json.load(open(os.path.join(case_dir, "tokens.json"))), dtype=torch.long)
    inp, labels = ids[:, :-1].contiguous(), ids[:, 1:].contiguous()
    b, s = inp.shape
    pos = torch.arange(s).unsqueeze(0).expand(b, s)
    logits = None
    if want_logits:
        with torch.no_grad():
            logits = model(inp, pos, None).detach().clone()  # [b, s, v]
    per_token = model(inp, pos, None, labels=labels)  # [b, s]
    loss = per_token.float().mean()
    loss.backward()

    grads, norms, sq = {}, {}, 0.0
    for name, p in model.named_parameters():
        if p.grad is None:
            continue
        grads[name] = p.grad.detach().clone().contiguous()
        n2 = float(p.grad.double().pow(2).sum())
        norms[name] = math.sqrt(n2)
        sq += n2
    # With expert bias: finalize_model_grads' update after the step's backward (its token counts
    # are from the forward with gradients; the --logits forward ran without), then the counts
    # reset; EXPERT_BIAS_STEPS such steps on the same batch without an optimizer (the weights
    # stay, the choice of experts moves with the bias), the bias recorded after each.
    buffer_steps = []
    if getattr(model.config, "moe_router_enable_expert_bias", False):
        from megatron.core import parallel_state as ps
        import importlib
        # (megatron.core.distributed re-exports the function under the module's name.)
        fmg = importlib.import_module("megatron.core.distributed.finalize_model_grads")
        group = ps.get_tensor_and_data_parallel_group(with_context_parallel=True)
        for step in range(EXPERT_BIAS_STEPS):
            if step > 0:
                model.zero_grad()
                model(inp, pos, None, labels=labels).float().mean().backward()
            fmg._update_router_expert_bias([model], model.config, tp_dp_cp_group=group)
            fmg.reset_model_temporary_tensors(model.config, [model])
            buffer_steps.append({k: v.detach().clone().contiguous()
                                 for k, v in model.state_dict().items()
                                 if k.endswith("expert_bias")})
    os.makedirs(out_dir, exist_ok=True)
    if init_seed is not None:
        save_file(initial, os.path.join(out_dir, "weights.safetensors"))
    save_file(grads, os.path.join(out_dir, "grads.safetensors"))
    for step, buffers in enumerate(buffer_steps, 1):
        save_file(buffers, os.path.join(out_dir, f"buffers_step{step}.safetensors"))
    if logits is not None:
        save_file({"logits": logits.contiguous()}, os.path.join(out_dir, "logits.safetensors"))
    try:
        from megatron.core.package_info import __version__ as version
    except ImportError:
        version = "unknown"
    result = dict(loss=float(loss), grad_norm=math.sqrt(sq),
                  per_token_loss=per_token.detach().tolist(), param_grad_norm=norms,
                  padded_vocab_size=gpt_kwargs["vocab_size"], tokens=b * s,
                  megatron_version=version,
                  megatron_commit=os.environ.get("MEGATRON_COMMIT", "unknown"),
                  megatron_kwargs={k: (v if isinstance(v, (int, float, str, bool, list, tuple))
                                       or v is None else str(v)) for k, v in tc.items()},
                  gpt_model_kwargs=gpt_kwargs, ignored_config_keys=dropped)
    json.dump(result, open(os.path.join(out_dir, "result.json"), "w"), indent=1)
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cases", nargs="+", help="case folders")
    ap.add_argument("--out", help="write OUT/<case name>/ instead of into each case folder")
    ap.add_argument("--init-seed", type=int, help="draw weights instead of reading them")
    ap.add_argument("--logits", action="store_true")
    args = ap.parse_args()

    mpath = os.environ.get("MEGATRON_PATH")
    if mpath:
        if not os.path.isdir(os.path.join(mpath, "megatron", "core")):
            sys.exit("MEGATRON_PATH must be a tree holding megatron/core")
        sys.path.insert(0, mpath)
    megatron_cpu.patch_torch()
    import torch.distributed as dist
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}",
                            rank=0, world_size=1)
    from megatron.core import parallel_state as ps
    megatron_cpu.patch_megatron()
    ps.initialize_model_parallel(1, 1, create_gloo_process_groups=False)
    for case in args.cases:
        name = os.path.basename(os.path.normpath(case))
        out = os.path.join(args.out, name) if args.out else case
        r = run_case(case, out, args.init_seed, args.logits)
        print(json.dumps(dict(case=name, loss=r["loss"], grad_norm=r["grad_norm"],
                              tokens=r["tokens"])), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
