"""The baseline of build_bench: how long real Megatron Core (the project environment's
megatron-core) takes to build the same GPT on one CPU rank.

Megatron's CPU path (use_cpu_initialization) draws every weight as a full master tensor with
the init method and copies this rank's slice into the parameter, as GPTModel does for tp = 1.
Timed: GPTModel(...) construction only (imports and process-group setup excluded), the same
part gptbuilder's figure covers. Prints one JSON object: seconds, parameter bytes, peak-RSS
growth.
"""
import argparse
import json
import os
import resource
import socket
import sys
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", choices=["gpt2-small", "1.3b"], default="1.3b")
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    a = p.parse_args()

    import torch
    import torch.distributed as dist
    torch.set_num_threads(a.threads)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0,
                            world_size=1)
    from megatron.core import parallel_state as ps
    from megatron.core.models.gpt import GPTModel
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
    from megatron.core.transformer.transformer_config import TransformerConfig
    ps.initialize_model_parallel(1, 1)

    if a.model == "gpt2-small":
        layers, hidden, heads, vocab, seq, tied = 12, 768, 12, 50304, 1024, True
    else:
        layers, hidden, heads, vocab, seq, tied = 24, 2048, 16, 50304, 2048, False
    bf16 = a.dtype == "bf16"
    config = TransformerConfig(
        num_layers=layers, hidden_size=hidden, num_attention_heads=heads,
        use_cpu_initialization=True, perform_initialization=True, init_method_std=0.02,
        bf16=bf16, params_dtype=torch.bfloat16 if bf16 else torch.float32)
    spec = get_gpt_layer_local_spec()
    # Warm the allocator and thread pools on a small tensor, as build_bench's children do.
    torch.empty(16).normal_()
    before = rss_bytes()
    start = time.perf_counter()
    model = GPTModel(config=config, transformer_layer_spec=spec, vocab_size=vocab,
                     max_sequence_length=seq, share_embeddings_and_output_weights=tied,
                     position_embedding_type="learned_absolute")
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    print(json.dumps({"seconds": seconds, "param_bytes": params, "rss_growth": peak - before,
                      "megatron_core": __import__("megatron.core").core.__version__,
                      "torch": torch.__version__, "threads": torch.get_num_threads()}))
    dist.destroy_process_group()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
