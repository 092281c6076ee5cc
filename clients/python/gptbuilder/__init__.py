"""Python client for gptbuilder: `Client` drives a coordinator (validate, plan, build and wait,
describe, train, save, release, list models and workers), over TLS or mutual TLS when given
certificates. The gRPC stubs (gptbuilder.v1.*_pb2, and the google.rpc / google.longrunning
messages under gptbuilder.googleapis) are generated from proto/ at build time into this package:
install the wheel `scripts/build` leaves in build/dist/, or put build/python on PYTHONPATH. Needs
grpcio and protobuf (Debian's python3-grpcio and python3-protobuf will do)."""

__version__ = "0.1.0"

from gptbuilder.client import (DEFAULT_SERVER, Client, Model, State, format_progress,
                               tls_credentials)
from gptbuilder.config import ModelConfig, config_from_dict, config_text, load_config
from gptbuilder.errors import (AlreadyExistsError, BuildFailedError, GptbError,
                               InvalidConfigError, NotFoundError, PreconditionError,
                               ResourceExhaustedError, UnauthenticatedError, UnavailableError)

__all__ = [
    "DEFAULT_SERVER", "Client", "Model", "State", "format_progress", "tls_credentials",
    "ModelConfig", "config_from_dict", "config_text", "load_config", "GptbError",
    "InvalidConfigError", "NotFoundError", "AlreadyExistsError", "PreconditionError",
    "ResourceExhaustedError", "UnauthenticatedError", "UnavailableError", "BuildFailedError",
]
