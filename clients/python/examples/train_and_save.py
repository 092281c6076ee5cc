#!/usr/bin/python3
"""Validates, plans, builds, trains and saves a model on a gptbuilder cluster: the whole life of
a model as an orchestration step drives it with the Python client.

    python3 train_and_save.py --server 127.0.0.1:50051 --world-size 2 --steps 5 \
        --save /shared/ckpt/tiny examples/tiny-llama.yaml

The checkpoint directory must be visible to every worker (each writes its own slices). Over
mutual TLS add --tls-ca CA.pem --tls-cert CLIENT.pem --tls-key CLIENT.key. Exit codes follow
gptb's: 0 success, 2 invalid config (one `field: message` line per violation on stderr), 1
anything else.
"""

import argparse
import math
import sys

import gptbuilder


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="model config file (YAML or JSON)")
    parser.add_argument(
        "--server", default=None,
        help=f"coordinator HOST:PORT (GPTB_SERVER, else {gptbuilder.DEFAULT_SERVER})")
    parser.add_argument("--name", default="model", help="the model's name")
    parser.add_argument("--world-size", type=int, default=0,
                        help="ranks to build (0: the smallest the parallel sizes allow)")
    parser.add_argument("--steps", type=int, default=5, help="train steps to run")
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate (Adam)")
    parser.add_argument("--save", required=True,
                        help="checkpoint directory (absolute, visible to every worker)")
    parser.add_argument("--format", default="canonical", choices=["canonical", "huggingface"],
                        help="checkpoint format")
    parser.add_argument("--timeout", type=float, default=600,
                        help="seconds to wait for workers and for the build")
    parser.add_argument("--tls-ca", help="CA (PEM) that signed the coordinator's certificate")
    parser.add_argument("--tls-cert", help="client certificate (PEM) for mutual TLS")
    parser.add_argument("--tls-key", help="the key of --tls-cert")
    parser.add_argument("--keep", action="store_true", help="keep the model (default: release)")
    args = parser.parse_args(argv)

    try:
        with gptbuilder.Client(args.server, tls_ca=args.tls_ca, tls_cert=args.tls_cert,
                               tls_key=args.tls_key) as client:
            workers = client.wait_for_workers(1, timeout=args.timeout)
            print(f"{len(workers)} workers, {sum(len(w.slots) for w in workers)} slots")

            resolved = client.validate(args.config, world_size=args.world_size)
            print(f"valid: padded vocab {resolved.padded_vocab_size}")
            plan = client.plan(args.config, world_size=args.world_size)
            print(f"plan: world size {plan.world_size}, {len(plan.stages)} stages, "
                  f"{plan.total_params} parameters")

            model = client.build_and_wait(
                args.name, args.config, world_size=args.world_size, timeout=args.timeout,
                on_progress=lambda event: print(gptbuilder.format_progress(event), flush=True))
            print(f"{model.name}: READY, {model.held_bytes} bytes held")

            losses = []
            for result in client.train(args.name, steps=args.steps,
                                       optimizer={"optimizer": "adam", "lr": args.lr}):
                losses.append(result.loss)
                print(f"step {result.iteration}: loss {result.loss:.4f} "
                      f"grad norm {result.grad_norm:.4f} ({result.tokens_per_second:.0f} tok/s)",
                      flush=True)
            if len(losses) != args.steps or not all(math.isfinite(l) for l in losses):
                print(f"train_and_save: expected {args.steps} finite losses, got {losses}",
                      file=sys.stderr)
                return 1

            saved = client.save(args.name, args.save, format=args.format, overwrite=True)
            print(f"saved {saved.bytes_written} bytes in {saved.files} files to {saved.path}")
            if not args.keep:
                client.release(args.name)
                print(f"released {args.name}")
    except gptbuilder.InvalidConfigError as error:
        for field, message in error.field_violations or [("", error.message)]:
            print(f"{field}: {message}" if field else message, file=sys.stderr)
        return 2
    except gptbuilder.GptbError as error:
        print(f"train_and_save: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
