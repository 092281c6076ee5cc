#!/usr/bin/python3
"""The baseline of train_bench: the same GPT and train step as gptbuilder's, written the plain
PyTorch way (one process, no parallelism), on the project environment's torch wheel.

Model: learned absolute positions, pre-LayerNorm decoder layers (fused QKV, causal softmax
attention, GELU MLP, biases), final LayerNorm, output layer tied to the word embeddings.
Step: micro-batches with gradient accumulation of the mean token cross entropy / M, global
gradient-norm clipping, AdamW with Megatron's no-decay rule (biases and 1-D tensors).
With --dp N: N processes, each a replica wrapped in torch's DistributedDataParallel over Gloo
with --threads intra-op threads, each taking its share of a global batch N times as large.
Prints one JSON object: per-step seconds and tokens/s (rank 0's).
"""
import argparse
import contextlib
import json
import math
import socket
import time

import torch
import torch.nn.functional as F
from torch import nn


class Layer(nn.Module):
    def __init__(self, hidden, heads, ffn, num_layers):
        super().__init__()
        self.heads = heads
        self.input_layernorm = nn.LayerNorm(hidden)
        self.linear_qkv = nn.Linear(hidden, 3 * hidden)
        self.linear_proj = nn.Linear(hidden, hidden)
        self.pre_mlp_layernorm = nn.LayerNorm(hidden)
        self.linear_fc1 = nn.Linear(hidden, ffn)
        self.linear_fc2 = nn.Linear(ffn, hidden)
        for linear in (self.linear_qkv, self.linear_fc1):
            nn.init.normal_(linear.weight, std=0.02)
            nn.init.zeros_(linear.bias)
        for linear in (self.linear_proj, self.linear_fc2):
            nn.init.normal_(linear.weight, std=0.02 / math.sqrt(2 * num_layers))
            nn.init.zeros_(linear.bias)

    def forward(self, x, causal):  # x: [s, b, h]
        s, b, h = x.shape
        d = h // self.heads
        qkv = self.linear_qkv(self.input_layernorm(x)).view(s, b, self.heads, 3, d)
        q, k, v = (t.permute(1, 2, 0, 3) for t in qkv.unbind(3))  # [b, heads, s, d]
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(d))
        probs = torch.softmax(scores.masked_fill(causal, float("-inf")), dim=-1)
        context = torch.matmul(probs, v).permute(2, 0, 1, 3).reshape(s, b, h)
        x = x + self.linear_proj(context)
        return x + self.linear_fc2(F.gelu(self.linear_fc1(self.pre_mlp_layernorm(x))))


class Gpt(nn.Module):
    def __init__(self, vocab, seq, hidden, heads, ffn, num_layers):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, hidden)
        self.position_embeddings = nn.Embedding(seq, hidden)
        nn.init.normal_(self.word_embeddings.weight, std=0.02)
        nn.init.normal_(self.position_embeddings.weight, std=0.02)
        self.layers = nn.ModuleList(Layer(hidden, heads, ffn, num_layers) for _ in range(num_layers))
        self.final_layernorm = nn.LayerNorm(hidden)

    def forward(self, ids):  # ids: [b, s] -> logits [b, s, V]
        s = ids.shape[1]
        x = self.word_embeddings(ids) + self.position_embeddings(torch.arange(s))
        x = x.transpose(0, 1)  # [s, b, h]
        causal = torch.ones(s, s, dtype=torch.bool).triu(1)
        for layer in self.layers:
            x = layer(x, causal)
        x = self.final_layernorm(x)
        return F.linear(x, self.word_embeddings.weight).transpose(0, 1)


def run(a, rank, world, queue):
    """Trains on one rank (world == 1: no process group) and, on rank 0, puts the result on
    `queue` (or returns it)."""
    torch.set_num_threads(a.threads)
    torch.manual_seed(1234)
    model = Gpt(a.vocab, a.seq, a.hidden, a.heads, a.ffn, a.layers)
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if name.endswith(".bias") or param.dim() == 1 else decay).append(param)
    if world > 1:
        # The usual PyTorch data parallelism: DDP over Gloo, gradients of all but the last
        # micro-batch accumulated locally (no_sync).
        model = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
        lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    generator = torch.Generator().manual_seed(7)
    seconds, cpu, losses = [], [], []
    per_replica = a.micro_batch_size * a.micro_batches
    for step in range(a.warmup + a.steps):
        batch = torch.randint(0, a.vocab, (per_replica * world, a.seq + 1), generator=generator)
        batch = batch[rank * per_replica:(rank + 1) * per_replica]
        if world > 1:
            torch.distributed.barrier()
        start, cpu_start = time.perf_counter(), time.process_time()
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for m in range(a.micro_batches):
            rows = batch[m * a.micro_batch_size:(m + 1) * a.micro_batch_size]
            sync = world == 1 or m == a.micro_batches - 1
            with contextlib.nullcontext() if sync else model.no_sync():
                logits = model(rows[:, :-1])
                loss = F.cross_entropy(logits.reshape(-1, a.vocab), rows[:, 1:].reshape(-1))
                (loss / a.micro_batches).backward()
            total += loss.item() / a.micro_batches
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if world > 1:
            reduced = torch.tensor([total])
            torch.distributed.all_reduce(reduced)
            total = reduced.item() / world
        elapsed = time.perf_counter() - start
        cpu_elapsed = time.process_time() - cpu_start
        if world > 1:  # every replica's CPU time, as the C++ side reports its whole process's
            summed = torch.tensor([cpu_elapsed], dtype=torch.float64)
            torch.distributed.all_reduce(summed)
            cpu_elapsed = summed.item()
        if step >= a.warmup:
            seconds.append(elapsed)
            cpu.append(cpu_elapsed)
            losses.append(total)
    tokens = per_replica * world * a.seq
    ordered = sorted(seconds)
    median = ordered[len(ordered) // 2]
    result = {"step_seconds": seconds, "median_step_seconds": median,
              "median_cpu_seconds": sorted(cpu)[len(cpu) // 2], "tokens_per_step": tokens, "tokens_per_second": tokens / median,
              "last_loss": losses[-1], "torch": torch.__version__,
              "threads": torch.get_num_threads(), "dp": world}
    if queue is not None and rank == 0:
        queue.put(result)
    return result


def replica(rank, a, port, queue):
    torch.distributed.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=a.dp)
    run(a, rank, a.dp, queue)
    torch.distributed.destroy_process_group()


def main():
    p = argparse.ArgumentParser()
    for name, default in (("layers", 4), ("hidden", 256), ("heads", 8), ("ffn", 1024),
                          ("vocab", 4096), ("seq", 256), ("micro_batch_size", 4),
                          ("micro_batches", 2), ("steps", 10), ("warmup", 2), ("threads", 1),
                          ("dp", 1)):
        p.add_argument("--" + name, type=int, default=default)
    p.add_argument("--lr", type=float, default=1e-4)
    a = p.parse_args()
    if a.dp == 1:
        result = run(a, 0, 1, None)
    else:
        # One process per replica, each with --threads intra-op threads.
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        context = torch.multiprocessing.get_context("spawn")
        queue = context.SimpleQueue()
        torch.multiprocessing.spawn(replica, args=(a, port, queue), nprocs=a.dp, join=True)
        result = queue.get()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
