"""The Python client's offline parts: config files into the schema messages (the C++ loader's
rules, every problem at once with a field path) and gRPC errors into exceptions carrying the
decoded google.rpc details. No server needed."""

import glob
import os
import unittest

import grpc

import deploy_paths as paths
import gptbuilder
from gptbuilder import errors
from gptbuilder.googleapis.rpc import error_details_pb2
from gptbuilder.googleapis.rpc import status_pb2


class FakeRpcError(grpc.RpcError):
    def __init__(self, code, details, trailers=()):
        self._code, self._details, self._trailers = code, details, trailers

    def code(self):
        return self._code

    def details(self):
        return self._details

    def trailing_metadata(self):
        return self._trailers


class ConfigTest(unittest.TestCase):
    def test_every_example_loads(self):
        examples = glob.glob(os.path.join(paths.SOURCE_DIR, "examples", "*.yaml"))
        self.assertGreaterEqual(len(examples), 5)
        for path in examples:
            with self.subTest(example=os.path.basename(path)):
                config = gptbuilder.load_config(path)
                self.assertGreater(config.model.transformer.num_layers, 0)
                self.assertTrue(config.model.HasField("vocab_size"))

    def test_file_layout_and_schema_forms(self):
        config = gptbuilder.config_from_dict({
            "_target_": "megatron.bridge.GPTModelConfig",  # Bridge metadata: ignored
            "transformer": {"num_layers": 2, "hidden_size": 64.0, "layernorm_epsilon": "1e-5",
                            "gated_linear_unit": "yes", "moe_layer_freq": 1},
            "vocab_size": 1000,
            "transformer_layer_spec": "local",
            "ddp": {"overlap_grad_reduce": True},
            "build": {"seed": 7},
        })
        t = config.model.transformer
        self.assertEqual((t.num_layers, t.hidden_size), (2, 64))
        self.assertAlmostEqual(t.layernorm_epsilon, 1e-5)
        self.assertTrue(t.gated_linear_unit)
        self.assertEqual(list(t.moe_layer_freq), [1])  # one value for a list
        self.assertEqual(config.model.transformer_layer_spec.name, "local")
        self.assertTrue(config.ddp.overlap_grad_reduce)
        self.assertEqual(config.build.seed, 7)
        # A custom spec tree, with a submodule given by its module name.
        custom = gptbuilder.config_from_dict({"transformer_layer_spec": {
            "module": "TransformerLayer", "submodules": {"input_layernorm": "RMSNorm"}}})
        tree = custom.model.transformer_layer_spec.custom
        self.assertEqual(tree.module, "TransformerLayer")
        self.assertEqual(tree.submodules["input_layernorm"].module, "RMSNorm")
        # null leaves a field unset.
        unset = gptbuilder.config_from_dict({"transformer": {"ffn_hidden_size": None}})
        self.assertFalse(unset.model.transformer.HasField("ffn_hidden_size"))

    def test_every_problem_at_once(self):
        with self.assertRaises(gptbuilder.InvalidConfigError) as raised:
            gptbuilder.config_from_dict({
                "transformer": {"num_layerz": 2, "hidden_size": "wide", "moe_layer_freq": [1, "x"],
                                "num_attention_heads": 2**40},
                "vocab_sise": 10,
                "build": {"seed": [1]},
            })
        self.assertEqual(raised.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        fields = dict(raised.exception.field_violations)
        self.assertEqual(set(fields), {"transformer.num_layerz", "transformer.hidden_size",
                                       "transformer.moe_layer_freq[1]",
                                       "transformer.num_attention_heads", "vocab_sise",
                                       "build.seed"})
        self.assertIn("not a field of TransformerConfig", fields["transformer.num_layerz"])
        self.assertIn("expected an integer", fields["transformer.hidden_size"])
        self.assertIn("outside", fields["transformer.num_attention_heads"])

    def test_rejects_what_is_not_a_config(self):
        with self.assertRaises(gptbuilder.InvalidConfigError):
            gptbuilder.config_from_dict(["not", "a", "mapping"])
        with self.assertRaises(gptbuilder.InvalidConfigError) as hf:
            gptbuilder.config_from_dict({"model_type": "llama"})
        self.assertEqual(hf.exception.field_violations[0][0], "model_type")
        with self.assertRaises(TypeError):
            with gptbuilder.Client("127.0.0.1:1") as client:
                client.validate(42)


class ErrorDecodingTest(unittest.TestCase):
    def status_trailer(self, code, *details):
        status = status_pb2.Status(code=code.value[0], message="m")
        for detail in details:
            status.details.add().Pack(detail)
        return (("grpc-status-details-bin", status.SerializeToString()),)

    def test_bad_request_becomes_invalid_config_error(self):
        bad = error_details_pb2.BadRequest()
        bad.field_violations.add(field="transformer.num_layers", description="must be > 0")
        info = error_details_pb2.ErrorInfo(reason="INVALID_CONFIG", domain="gptbuilder")
        error = errors.from_rpc_error(FakeRpcError(
            grpc.StatusCode.INVALID_ARGUMENT, "1 violation",
            self.status_trailer(grpc.StatusCode.INVALID_ARGUMENT, bad, info)))
        self.assertIsInstance(error, gptbuilder.InvalidConfigError)
        self.assertEqual(error.field_violations, [("transformer.num_layers", "must be > 0")])
        self.assertEqual(error.reason, "INVALID_CONFIG")
        self.assertEqual(str(error), "transformer.num_layers: must be > 0")

    def test_codes_map_to_exception_types(self):
        cases = {grpc.StatusCode.FAILED_PRECONDITION: gptbuilder.PreconditionError,
                 grpc.StatusCode.RESOURCE_EXHAUSTED: gptbuilder.ResourceExhaustedError,
                 grpc.StatusCode.NOT_FOUND: gptbuilder.NotFoundError,
                 grpc.StatusCode.ALREADY_EXISTS: gptbuilder.AlreadyExistsError,
                 grpc.StatusCode.UNAUTHENTICATED: gptbuilder.UnauthenticatedError,
                 grpc.StatusCode.DEADLINE_EXCEEDED: gptbuilder.UnavailableError,
                 grpc.StatusCode.INTERNAL: gptbuilder.GptbError}
        for code, cls in cases.items():
            error = errors.from_rpc_error(FakeRpcError(code, "why"))
            self.assertIs(type(error), cls)
            self.assertEqual((error.code, error.message, error.details), (code, "why", []))

    def test_operation_error_status(self):
        quota = error_details_pb2.QuotaFailure()
        quota.violations.add(subject="rank 0", description="needs 2 GiB, slot has 1 GiB")
        status = status_pb2.Status(code=grpc.StatusCode.RESOURCE_EXHAUSTED.value[0],
                                    message="does not fit")
        status.details.add().Pack(quota)
        error = errors.from_status(status)
        self.assertIsInstance(error, gptbuilder.ResourceExhaustedError)
        self.assertEqual(error.quota_violations, [("rank 0", "needs 2 GiB, slot has 1 GiB")])


if __name__ == "__main__":
    unittest.main()
