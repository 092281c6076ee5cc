#!/usr/bin/env python3
"""Writes the multi-latent-attention golden layouts (F_*, G_*) by building real Megatron Core's
GPTModel with the LOCAL layer spec on CPU, one process per rank over Gloo.

A development tool, like ../shared/oracle: run it when the configurations change and commit the
JSON it writes. Megatron Core at d98e8a64 cannot construct MLA with the local spec as is: its
MLASelfAttention passes k_channels/v_channels to the core attention, which the local
DotProductAttention does not accept. The one patch below drops those two keyword arguments when
the core attention is constructed; the core attention has no parameters, so the recorded
parameters are Megatron's own.

  MEGATRON_PATH=/work/mcore_d98 .venv/bin/python tests/golden/make_mla_golden.py OUT_DIR
"""
import json
import os
import socket
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

COMMON = dict(num_layers=4, hidden_size=64, num_attention_heads=4, normalization="RMSNorm",
              activation="silu", gated_linear_unit=True, add_bias_linear=False,
              multi_latent_attention=True, kv_lora_rank=16, qk_head_dim=8,
              qk_pos_emb_head_dim=4, v_head_dim=12, rope_type="rope")
CONFIGS = {
    # DeepSeek-style: query compression with q/kv norms, a dense first layer, then MoE layers
    # with a shared expert.
    "F": dict(COMMON, q_lora_rank=32, qk_layernorm=True, ffn_hidden_size=96,
              num_moe_experts=4, moe_router_topk=2, moe_ffn_hidden_size=32,
              moe_shared_expert_intermediate_size=48, moe_layer_freq=[0, 1, 1, 1],
              moe_grouped_gemm=False),
    # No query compression (q_lora_rank None) and no q/kv norms, dense.
    "G": dict(COMMON, q_lora_rank=None, qk_layernorm=False, ffn_hidden_size=96),
}
LAYOUTS = {"F": [(1, 1, 1), (2, 1, 1), (2, 2, 2)], "G": [(1, 1, 1), (2, 2, 1)]}
VOCAB, DIVISIBLE, SEQ = 1000, 128, 128


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rank_main(rank, world, port, name, tp, pp, ep, out):
    sys.path.insert(0, os.environ["MEGATRON_PATH"])
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared",
                                    "oracle"))
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    import megatron_cpu_shims as shims
    from megatron.core import parallel_state as ps
    from megatron.core.models.gpt import GPTModel
    from megatron.core.models.gpt import gpt_layer_specs as specs
    from megatron.core.transformer import dot_product_attention as dpa
    from megatron.core.transformer.transformer_config import MLATransformerConfig
    shims.patch_megatron_for_cpu_forward()
    original = dpa.DotProductAttention.__init__

    def init(self, *a, k_channels=None, v_channels=None, **k):
        original(self, *a, **k)

    dpa.DotProductAttention.__init__ = init
    ps.initialize_model_parallel(tp, pp, expert_model_parallel_size=ep,
                                 create_gloo_process_groups=False)
    kwargs = dict(CONFIGS[name])
    kwargs.pop("activation")
    config = MLATransformerConfig(**kwargs, activation_func=torch.nn.functional.silu,
                                  tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp,
                                  expert_model_parallel_size=ep, use_cpu_initialization=True,
                                  pipeline_dtype=torch.float32)
    if config.num_moe_experts:
        spec = specs.get_gpt_decoder_block_spec(config, use_transformer_engine=False,
                                                normalization="RMSNorm")
    else:
        spec = specs.get_gpt_layer_local_spec(qk_layernorm=config.qk_layernorm,
                                              multi_latent_attention=True,
                                              normalization="RMSNorm")
    padded = -(-VOCAB // DIVISIBLE) * DIVISIBLE
    model = GPTModel(config=config, transformer_layer_spec=spec, vocab_size=padded,
                     max_sequence_length=SEQ, position_embedding_type="rope",
                     share_embeddings_and_output_weights=False,
                     pre_process=ps.is_pipeline_first_stage(),
                     post_process=ps.is_pipeline_last_stage())
    params = [[n, list(p.shape)] for n, p in model.named_parameters()]
    entry = dict(global_rank=rank, tp_rank=ps.get_tensor_model_parallel_rank(),
                 pp_rank=ps.get_pipeline_model_parallel_rank(),
                 dp_rank=ps.get_data_parallel_rank(),
                 ep_rank=ps.get_expert_model_parallel_rank(), vp_stage=None,
                 pre_process=ps.is_pipeline_first_stage(),
                 post_process=ps.is_pipeline_last_stage(), params=params,
                 num_params=sum(p.numel() for p in model.parameters()))
    entries = [None] * world
    dist.all_gather_object(entries, entry)
    if rank == 0:
        seen, ranks = set(), []
        for e in entries:
            key = (e["tp_rank"], e["pp_rank"], e["ep_rank"])
            if key not in seen:
                seen.add(key)
                ranks.append(e)
        resolved = {k: (v if isinstance(v, (int, float, str, bool, type(None), list)) else str(v))
                    for k, v in vars(config).items() if not k.startswith("_")}
        golden = {
            "megatron_commit": "d98e8a64ddf34856e74b24714e3bedb2f5a39553",
            "megatron_repo": "NVIDIA/Megatron-LM",
            "generator": "tests/golden/make_mla_golden.py",
            "config": {"name": name, "transformer_config_kwargs": CONFIGS[name],
                       "gpt_model_kwargs": {"position_embedding_type": "rope",
                                            "max_sequence_length": SEQ,
                                            "share_embeddings_and_output_weights": False,
                                            "parallel_output": True},
                       "orig_vocab_size": VOCAB, "make_vocab_size_divisible_by": DIVISIBLE,
                       "padded_vocab_size": padded, "layer_spec": "local",
                       "transformer_config_resolved": resolved},
            "layout": {"tp": tp, "pp": pp, "vp": None, "ep": ep, "dp": world // (tp * pp),
                       "world_size": world,
                       "expert_tensor_parallel_size": config.expert_tensor_parallel_size},
            "ranks": ranks,
        }
        with open(out, "w") as f:
            json.dump(golden, f, indent=1)
    dist.destroy_process_group()


def main():
    out_dir = sys.argv[1]
    for name, layouts in LAYOUTS.items():
        for tp, pp, ep in layouts:
            world = tp * pp * max(1, ep)
            suffix = f"_ep{ep}" if "num_moe_experts" in CONFIGS[name] else ""
            out = os.path.join(out_dir, f"{name}_tp{tp}_pp{pp}{suffix}.json")
            mp.spawn(rank_main, args=(world, free_port(), name, tp, pp, ep, out), nprocs=world)
            print("wrote", out)


if __name__ == "__main__":
    main()
