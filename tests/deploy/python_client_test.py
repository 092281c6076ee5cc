"""The Python client (generated stubs + the gptbuilder wrapper) driving a real local cluster:
validate -> plan -> build with progress -> describe -> release, the errors each step can raise
(with their google.rpc details), bearer tokens, and the example script."""

import glob
import os
import subprocess
import sys
import tempfile
import unittest

import yaml

import deploy_paths as paths
import gptbuilder
from local_cluster import LocalCluster

TINY = os.path.join(paths.SOURCE_DIR, "examples", "tiny-llama.yaml")
EXAMPLE = os.path.join(paths.SOURCE_DIR, "clients", "python", "examples", "build_model.py")


def tiny_dict(**transformer):
    with open(TINY) as f:
        document = yaml.safe_load(f)
    document["transformer"].update(transformer)
    return document


class ConfigTextTest(unittest.TestCase):
    """Config files, dicts and text are parsed by the coordinator with gptb's loader."""

    @classmethod
    def setUpClass(cls):
        cls.cluster = LocalCluster(paths.GPTBD, workers=0)
        cls.client = gptbuilder.Client(cls.cluster.address, timeout=30)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.cluster.stop()

    def test_every_example_and_hf_config_validates(self):
        examples = glob.glob(os.path.join(paths.SOURCE_DIR, "examples", "*.yaml"))
        self.assertGreaterEqual(len(examples), 5)
        for path in examples:
            with self.subTest(example=os.path.basename(path)):
                resolved = self.client.validate(path)
                self.assertGreater(resolved.config.transformer.num_layers, 0)
                self.assertTrue(resolved.config.HasField("vocab_size"))
        # A Hugging Face config.json, which the client could not read before the server did.
        llama = os.path.join(paths.SOURCE_DIR, "tests", "unit", "config", "testdata",
                             "llama3-8b.json")
        resolved = self.client.validate(llama)
        self.assertEqual((resolved.config.transformer.num_layers,
                          resolved.config.transformer.hidden_size), (32, 4096))

    def test_file_layout_overrides_and_text(self):
        document = tiny_dict()
        document["_target_"] = "megatron.bridge.GPTModelConfig"  # Bridge metadata: ignored
        document["transformer"]["layernorm_epsilon"] = 1e-5
        document["ddp"] = {"overlap_grad_reduce": True}
        document["build"] = {"seed": 7}
        resolved = self.client.validate(document, overrides=["transformer.num_layers=2",
                                                             "hidden_size=128"])
        t = resolved.config.transformer
        self.assertEqual((t.num_layers, t.hidden_size), (2, 128))
        self.assertAlmostEqual(t.layernorm_epsilon, 1e-5)
        self.assertTrue(resolved.ddp.overlap_grad_reduce)
        self.assertEqual(resolved.build.seed, 7)
        plan = self.client.plan(TINY, overrides=["transformer.pipeline_model_parallel_size=2"])
        self.assertEqual(plan.world_size, 2)
        text = gptbuilder.config_text(
            "transformer { num_layers: 2 hidden_size: 64 num_attention_heads: 4 }\n"
            "vocab_size: 100\n", format="textproto")
        self.assertEqual(self.client.validate(text).config.vocab_size, 100)

    def test_every_problem_at_once(self):
        with self.assertRaises(gptbuilder.InvalidConfigError) as raised:
            self.client.validate({
                "transformer": {"num_layerz": 2, "hidden_size": "wide", "moe_layer_freq": [1, "x"],
                                "num_attention_heads": 2**40},
                "vocab_sise": 10,
                "build": {"seed": [1]},
            })
        fields = {field for field, _ in raised.exception.field_violations}
        self.assertTrue({"transformer.num_layerz", "transformer.hidden_size", "vocab_sise",
                         "transformer.num_attention_heads"} <= fields, fields)
        self.assertTrue(any(f.startswith("transformer.moe_layer_freq") for f in fields), fields)
        self.assertTrue(any(f.startswith("build.seed") for f in fields), fields)
        with self.assertRaises(gptbuilder.InvalidConfigError) as bad_override:
            self.client.validate(TINY, overrides=["num_layerss=3"])
        self.assertIn("num_layerss", str(bad_override.exception))
        with self.assertRaises(gptbuilder.InvalidConfigError) as syntax:
            self.client.validate(gptbuilder.config_text("transformer: [1\n", source_name="x.yaml"))
        self.assertIn("x.yaml", str(syntax.exception) + syntax.exception.message)
        with self.assertRaises(gptbuilder.InvalidConfigError):
            self.client.validate(gptbuilder.config_text('["not", "a", "mapping"]', format="json"))
        with self.assertRaises(TypeError):
            self.client.validate(["not", "a", "mapping"])


class ClientAgainstClusterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = LocalCluster(paths.GPTBD, workers=2, slots=1)
        cls.client = gptbuilder.Client(cls.cluster.address, timeout=30)
        try:
            cls.client.wait_for_workers(2, timeout=60)
        except BaseException:
            print(cls.cluster.logs())
            cls.cluster.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.cluster.stop()

    def tearDown(self):
        for model in self.client.list_models():
            self.client.release(model.name)

    def test_validate_build_describe_release(self):
        config = tiny_dict(pipeline_model_parallel_size=2)
        resolved = self.client.validate(config, world_size=2)
        self.assertEqual(resolved.config.transformer.pipeline_model_parallel_size, 2)
        self.assertEqual(resolved.padded_vocab_size % 128, 0)

        plan = self.client.plan(config, world_size=2)
        self.assertEqual(plan.world_size, 2)
        self.assertEqual([s.pp_rank for s in plan.stages], [0, 1])

        events = []
        model = self.client.build_and_wait("tiny", config, world_size=2, timeout=120,
                                           on_progress=events.append)
        self.assertEqual(model.state, gptbuilder.State.READY)
        self.assertEqual(sorted(p.worker for p in model.placement), ["worker0", "worker1"])
        self.assertGreater(model.held_bytes, 0)
        self.assertTrue(events)
        self.assertEqual(events[-1].state, gptbuilder.State.READY)
        self.assertEqual(events[-1].progress.ranks_done, 2)
        self.assertIn("READY: groups 2/2", gptbuilder.format_progress(events[-1]))

        self.assertEqual([m.name for m in self.client.list_models()], ["tiny"])
        workers = self.client.list_workers()
        self.assertEqual(sorted(w.name for w in workers), ["worker0", "worker1"])
        self.assertTrue(all(s.model == "tiny" for w in workers for s in w.slots))

        # What the workers hold is exactly what the plan promised, with checksums.
        description = self.client.describe("tiny")
        self.assertEqual(len(description.stages), len(plan.stages))
        for held, planned in zip(description.stages, plan.stages):
            self.assertEqual([(p.name, list(p.shape)) for p in held.params],
                             [(p.name, list(p.shape)) for p in planned.params])
            self.assertTrue(all(p.checksum != 0 for p in held.params))
        self.assertEqual(len(description.ranks), 2)
        self.assertFalse(description.inconsistent_stages)

        released = self.client.release("tiny")
        self.assertEqual(released.name, "tiny")
        with self.assertRaises(gptbuilder.NotFoundError):
            self.client.get("tiny")
        with self.assertRaises(gptbuilder.NotFoundError):
            self.client.describe("tiny")
        self.assertTrue(all(not s.model for w in self.client.list_workers() for s in w.slots))

    def test_train_save_and_load(self):
        config = tiny_dict(pipeline_model_parallel_size=2)
        self.client.build_and_wait("trained", config, world_size=2, timeout=120)
        results = list(self.client.train("trained", steps=3, seq_length=16, micro_batches=2,
                                         optimizer={"lr": 1e-3}, timeout=120))
        self.assertEqual([r.iteration for r in results], [0, 1, 2])
        self.assertTrue(all(r.loss > 0 and r.tokens_per_second > 0 for r in results))
        self.assertAlmostEqual(results[0].learning_rate, 1e-3)
        # Later calls keep the optimizer; a bad request is refused and the model stays READY.
        more = list(self.client.train("trained", steps=1, seq_length=16, micro_batches=2))
        self.assertEqual(more[0].iteration, 3)
        with self.assertRaises(gptbuilder.InvalidConfigError):
            list(self.client.train("trained", seq_length=100000))
        self.assertEqual(self.client.get("trained").state, gptbuilder.State.READY)

        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "ckpt")
            saved = self.client.save("trained", path)
            self.assertGreater(saved.bytes_written, 0)
            self.assertTrue(os.path.isdir(path))
            trained = self.client.describe("trained")
            self.client.release("trained")
            # Loaded into one rank, saved again: the same bytes as the trained model's.
            self.client.build_and_wait("loaded", tiny_dict(), world_size=1, timeout=120,
                                       load_from=path)
            again = os.path.join(directory, "again")
            self.client.save("loaded", again)
            self.client.release("loaded")
            self.client.build_and_wait("back", config, world_size=2, timeout=120,
                                       load_from=again)
            back = self.client.describe("back")
            self.assertEqual([[p.checksum for p in s.params] for s in back.stages],
                             [[p.checksum for p in s.params] for s in trained.stages])

    def test_invalid_config_carries_every_field_violation(self):
        config = tiny_dict(num_attention_heads=3, num_layers=0)
        with self.assertRaises(gptbuilder.InvalidConfigError) as raised:
            self.client.validate(config)
        fields = [field for field, _ in raised.exception.field_violations]
        self.assertIn("transformer.num_layers", fields)
        self.assertTrue(any(f.startswith("transformer.num_attention_heads") or
                            f.startswith("transformer.hidden_size") for f in fields), fields)
        self.assertGreaterEqual(len(fields), 2)
        # str() is `gptb validate`'s `field: message` lines.
        self.assertIn("transformer.num_layers: ", str(raised.exception))
        # BuildModel rejects it the same way, before anything is allocated.
        with self.assertRaises(gptbuilder.InvalidConfigError) as build_raised:
            self.client.build("bad", config)
        self.assertEqual(build_raised.exception.field_violations,
                         raised.exception.field_violations)
        self.assertEqual(self.client.list_models(), [])

    def test_cluster_state_errors(self):
        with self.assertRaises(gptbuilder.PreconditionError) as raised:
            self.client.build("wide", TINY, world_size=8)  # 2 slots registered
        self.assertTrue(raised.exception.precondition_violations)
        self.assertTrue(raised.exception.reason)

        big = tiny_dict(num_layers=32, hidden_size=4096, ffn_hidden_size=11008,
                        num_attention_heads=32, num_query_groups=8)
        with self.assertRaises(gptbuilder.ResourceExhaustedError) as exhausted:
            self.client.build("big", big, world_size=1)  # billions of bytes > 1 GiB slots
        self.assertTrue(exhausted.exception.quota_violations)

        operation = self.client.build("once", TINY, world_size=1, request_id="retry-1")
        again = self.client.build("once", TINY, world_size=1, request_id="retry-1")
        self.assertEqual(again.name, operation.name)  # an idempotent retry
        with self.assertRaises(gptbuilder.AlreadyExistsError):
            self.client.build("once", TINY, world_size=1, request_id="another")
        self.assertEqual(self.client.wait("once", timeout=120).state, gptbuilder.State.READY)

    def test_validate_only_places_without_building(self):
        operation = self.client.build("dry", TINY, world_size=2, validate_only=True)
        self.assertTrue(operation.done)
        model = gptbuilder.Model()
        self.assertTrue(operation.response.Unpack(model))
        self.assertEqual(len(model.placement), 2)
        self.assertEqual(self.client.list_models(), [])

    def test_example_script(self):
        env = dict(os.environ)
        run = subprocess.run([sys.executable, EXAMPLE, "--server", self.cluster.address,
                              "--wait-workers", "2", "--world-size", "2", "--name", "example",
                              "--release", TINY], capture_output=True, text=True, env=env,
                             timeout=150)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertIn("example: READY", run.stdout)
        self.assertIn("rank 1 on worker", run.stdout)
        self.assertIn("released example", run.stdout)
        self.assertEqual(self.client.list_models(), [])

        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as bad:
            yaml.safe_dump(tiny_dict(num_layers=-1), bad)
            bad.flush()
            run = subprocess.run([sys.executable, EXAMPLE, "--server", self.cluster.address,
                                  bad.name], capture_output=True, text=True, env=env, timeout=60)
        self.assertEqual(run.returncode, 2, run.stdout + run.stderr)
        self.assertIn("transformer.num_layers: ", run.stderr)


class TokenTest(unittest.TestCase):
    def test_mutating_calls_need_the_token(self):
        with tempfile.NamedTemporaryFile("w") as token_file:
            token_file.write("s3cret\n")
            token_file.flush()
            flags = ["--auth-token-file", token_file.name]
            with LocalCluster(paths.GPTBD, workers=1, slots=1, worker_flags=flags,
                              coordinator_flags=flags) as cluster:
                with gptbuilder.Client(cluster.address, token="s3cret") as client:
                    client.wait_for_workers(1, timeout=60)
                    with gptbuilder.Client(cluster.address, token="wrong") as wrong:
                        self.assertEqual(len(wrong.list_workers()), 1)  # reads need none
                        with self.assertRaises(gptbuilder.UnauthenticatedError) as raised:
                            wrong.build("t", TINY)
                        self.assertEqual(raised.exception.reason, "INVALID_TOKEN")
                    model = client.build_and_wait("t", TINY, timeout=120)
                    self.assertEqual(model.state, gptbuilder.State.READY)
                    client.release("t")


class UnreachableTest(unittest.TestCase):
    def test_unreachable_coordinator_is_unavailable(self):
        with gptbuilder.Client("127.0.0.1:1", timeout=2) as client:
            with self.assertRaises(gptbuilder.UnavailableError):
                client.list_models()


if __name__ == "__main__":
    unittest.main()
