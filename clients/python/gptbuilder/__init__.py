"""Python client for gptbuilder: `Client` drives a coordinator (validate, plan, build and wait,
describe, release, list models and workers). The gRPC stubs (gptbuilder.v1.*_pb2) are generated
from proto/ at build time into build/python next to a copy of this package; put that directory
on PYTHONPATH and use Debian's python3-grpcio and python3-protobuf."""

from gptbuilder.client import DEFAULT_SERVER, Client, Model, State, format_progress
from gptbuilder.config import ModelConfig, config_from_dict, load_config
from gptbuilder.errors import (AlreadyExistsError, BuildFailedError, GptbError,
                               InvalidConfigError, NotFoundError, PreconditionError,
                               ResourceExhaustedError, UnauthenticatedError, UnavailableError)

__all__ = [
    "DEFAULT_SERVER", "Client", "Model", "State", "format_progress", "ModelConfig",
    "config_from_dict", "load_config", "GptbError", "InvalidConfigError", "NotFoundError",
    "AlreadyExistsError", "PreconditionError", "ResourceExhaustedError", "UnauthenticatedError",
    "UnavailableError", "BuildFailedError"
]
