#!/usr/bin/python3
"""Builds a model on a gptbuilder cluster the way an orchestration step would: wait for the
workers, validate, build with progress, describe, and optionally release.

    PYTHONPATH=build/python /usr/bin/python3 clients/python/examples/build_model.py \
        --server 127.0.0.1:50051 --world-size 2 --name tiny --release examples/tiny-llama.yaml

Exit codes follow gptb's: 0 success, 2 invalid config (one `field: message` line per violation
on stderr), 1 anything else.
"""

import argparse
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
    parser.add_argument("--wait-workers", type=int, default=1,
                        help="wait until this many workers are registered")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds to wait for the build (default: no limit)")
    parser.add_argument("--release", action="store_true", help="release the model at the end")
    args = parser.parse_args(argv)

    try:
        with gptbuilder.Client(args.server) as client:
            workers = client.wait_for_workers(args.wait_workers, timeout=600)
            print(f"{len(workers)} workers, {sum(len(w.slots) for w in workers)} slots")
            resolved = client.validate(args.config, world_size=args.world_size)
            print(f"valid: padded vocab {resolved.padded_vocab_size}")
            # Built already (a retried Job)? Then describe what is held.
            held = {m.name: m for m in client.list_models()}
            if held.get(args.name) is None or held[args.name].state != gptbuilder.State.READY:
                if args.name in held:  # a FAILED leftover of an earlier try
                    client.release(args.name)
                model = client.build_and_wait(
                    args.name, args.config, world_size=args.world_size, timeout=args.timeout,
                    on_progress=lambda event: print(gptbuilder.format_progress(event), flush=True))
            else:
                model = held[args.name]
            print(f"{model.name}: {gptbuilder.Model.State.Name(model.state)}, "
                  f"{model.total_params} parameters, {model.held_bytes} bytes held")
            description = client.describe(args.name)
            for stage in description.stages:
                print(f"  stage pp {stage.pp_rank} tp {stage.tp_rank}: layers "
                      f"{list(stage.layers)}, {stage.num_params} parameters")
            for rank in description.ranks:
                print(f"  rank {rank.rank} on {rank.worker} slot {rank.slot} ({rank.device})")
            if args.release:
                client.release(args.name)
                print(f"released {args.name}")
    except gptbuilder.InvalidConfigError as error:
        for field, message in error.field_violations or [("", error.message)]:
            print(f"{field}: {message}" if field else message, file=sys.stderr)
        return 2
    except gptbuilder.GptbError as error:
        print(f"build_model: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
