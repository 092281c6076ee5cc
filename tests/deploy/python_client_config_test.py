"""The Python client's offline parts: config forms into request fields (files and dicts as text
for the coordinator's loader, messages as they are) and gRPC errors into exceptions carrying the
decoded google.rpc details. No server needed."""

import json
import os
import unittest

import grpc

import deploy_paths as paths
import gptbuilder
from gptbuilder import errors
from gptbuilder.config import request_fields
from gptbuilder.v1 import model_config_pb2
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


class ConfigFormsTest(unittest.TestCase):
    """How each config form becomes request fields (the coordinator parses text: see
    python_client_test.py ConfigTextTest for the parsing itself)."""

    def test_files_and_dicts_travel_as_text(self):
        path = os.path.join(paths.SOURCE_DIR, "examples", "tiny-llama.yaml")
        fields = request_fields(path, ["transformer.num_layers=2"])
        text = fields["config_text"]
        with open(path, encoding="utf-8") as f:
            self.assertEqual(text.text, f.read())
        self.assertEqual((text.format, text.source_name), ("yaml", "tiny-llama.yaml"))
        self.assertEqual(list(text.overrides), ["transformer.num_layers=2"])
        self.assertEqual(set(fields), {"config_text"})
        hf = gptbuilder.load_config(os.path.join(paths.SOURCE_DIR, "tests", "unit", "config",
                                                 "testdata", "gpt2.json"))
        self.assertEqual(hf.format, "json")
        document = {"transformer": {"num_layers": 2}, "build": {"seed": 7}}
        text = request_fields(document)["config_text"]
        self.assertEqual((json.loads(text.text), text.format), (document, "json"))
        # A ConfigText is copied, its overrides extended (the caller's message is not changed).
        given = gptbuilder.config_text("vocab_size: 10\n", overrides=["a=1"])
        sent = request_fields(given, ["b=2"])["config_text"]
        self.assertEqual(list(sent.overrides), ["a=1", "b=2"])
        self.assertEqual(list(given.overrides), ["a=1"])

    def test_messages_travel_as_messages(self):
        model = model_config_pb2.GPTModelConfig(vocab_size=10)
        fields = request_fields(model)
        self.assertEqual(fields["config"], model)
        self.assertEqual(set(fields), {"config", "ddp", "build"})
        both = gptbuilder.ModelConfig(model, model_config_pb2.DistributedDataParallelConfig(),
                                      model_config_pb2.BuildOptions(seed=3))
        self.assertEqual(request_fields(both)["build"].seed, 3)
        with self.assertRaises(TypeError):
            request_fields(model, ["vocab_size=3"])  # overrides need a text form
        with self.assertRaises(TypeError):
            request_fields(42)


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
