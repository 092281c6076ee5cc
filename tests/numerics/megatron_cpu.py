"""Run-time patches that let real Megatron Core (megatron/core, unedited) build and run GPT
models with its local (non-Transformer-Engine) spec on a CPU with torch 2.x: the few tensors
Megatron places on "cuda" go to the CPU, and the CUDA RNG tracker becomes a no-op (the oracle
runs with dropout 0), and torch.compile runs functions eagerly. None of them changes what a
module computes.

Adapted from the shared oracle's megatron_cpu_shims.py, which targeted torch 1.13 and also
stubbed modules torch 2.x has (stubbing them breaks torch 2.x's own imports).
"""
import contextlib


def patch_torch():
    """Before Megatron is imported."""
    import os
    # Megatron wraps its activation kernels in torch.compile (megatron.core.jit); on a CPU that
    # would compile C++ through inductor. Run them eagerly: the same functions, op by op.
    os.environ["TORCHDYNAMO_DISABLE"] = "1"
    import torch
    # LanguageModule.setup_embeddings_and_output_layer moves the tied embedding / output weight
    # to CUDA before its all-reduce over the embedding group; gloo reduces CPU tensors.
    torch.Tensor.cuda = lambda self, *a, **k: self


def patch_megatron():
    """After Megatron is imported: CPU masks and buffers, no CUDA RNG tracker."""
    import torch
    torch.cuda.current_device = lambda: "cpu"
    import megatron.core.fusions.fused_softmax as fused_softmax
    import megatron.core.transformer.utils as transformer_utils

    # Same masks as megatron.core.transformer.utils builds, on the CPU.
    def causal_mask(sq):
        return torch.triu(torch.ones(sq, sq), diagonal=1).bool()

    def sliding_window_causal_mask(sq, skv, window_size):
        m = torch.ones(sq, skv, dtype=torch.bool)
        mu = torch.triu(m, diagonal=skv - sq - window_size[0])
        return ~torch.tril(mu, diagonal=skv - sq + window_size[1])

    for module in (transformer_utils, fused_softmax):
        module.get_default_causal_mask = causal_mask
        module.get_sliding_window_causal_mask = sliding_window_causal_mask

    import megatron.core.tensor_parallel as tensor_parallel
    import megatron.core.tensor_parallel.random as tp_random

    class NoRngTracker:
        def fork(self, *a, **k):
            return contextlib.nullcontext()

        def add(self, *a, **k):
            pass

        def is_initialized(self):
            return True

    tensor_parallel.get_cuda_rng_tracker = lambda *a, **k: NoRngTracker()
    tp_random.get_cuda_rng_tracker = tensor_parallel.get_cuda_rng_tracker

    # Multi-latent attention with the local spec: MLASelfAttention builds its core attention
    # with k_channels / v_channels (the query/key head width qk_head_dim + qk_pos_emb_head_dim
    # and the value head width v_head_dim), which the local DotProductAttention does not take
    # at this commit (Transformer Engine's does). Its computation needs no change: the scores
    # are over whatever head width query and key have, and MLA passes its own softmax_scale;
    # only the final reshape of the context uses kv_channels, so it is set to v_channels.
    import megatron.core.transformer.dot_product_attention as dpa
    original_init = dpa.DotProductAttention.__init__

    def init(self, *args, k_channels=None, v_channels=None, **kwargs):
        original_init(self, *args, **kwargs)
        if v_channels is not None:
            self.hidden_size_per_partition = v_channels * self.num_attention_heads_per_partition

    if "k_channels" not in original_init.__code__.co_varnames:
        dpa.DotProductAttention.__init__ = init

    # One tensor-parallel rank: _ReduceFromModelParallelRegion returns its input as is, and
    # autograd then forbids the in-place bias add that MLP.forward makes on an expert's output
    # when experts have biases (SequentialMLP with add_bias_linear, as GPT-OSS has them). A copy
    # of the same values lets Megatron's own code run unchanged.
    import megatron.core.tensor_parallel.mappings as mappings
    reduce_forward = mappings._ReduceFromModelParallelRegion.forward

    def reduce_copy(ctx, input_, group):
        out = reduce_forward(ctx, input_, group)
        return out.clone() if out is input_ else out

    mappings._ReduceFromModelParallelRegion.forward = staticmethod(reduce_copy)
