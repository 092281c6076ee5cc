"""Exceptions raised by the gptbuilder client.

Every failed call raises a GptbError (or a subclass chosen by the gRPC status code) that carries
the decoded google.rpc error details the coordinator attaches: the field violations of an invalid
config (google.rpc.BadRequest), the unmet preconditions (PreconditionFailure), the quota
violations (QuotaFailure) and the machine-readable reason (ErrorInfo).
"""

import grpc

from gptbuilder.googleapis.rpc import error_details_pb2
from gptbuilder.googleapis.rpc import status_pb2

# The trailer in which gRPC servers send a serialized google.rpc.Status with details.
_STATUS_DETAILS_KEY = "grpc-status-details-bin"

_DETAIL_TYPES = {
    cls.DESCRIPTOR.full_name: cls
    for cls in (
        error_details_pb2.ErrorInfo,
        error_details_pb2.RetryInfo,
        error_details_pb2.QuotaFailure,
        error_details_pb2.PreconditionFailure,
        error_details_pb2.BadRequest,
        error_details_pb2.ResourceInfo,
    )
}


class GptbError(Exception):
    """A call failed. `code` is the grpc.StatusCode, `message` the server's sentence, `details`
    the decoded google.rpc detail messages, `reason` the ErrorInfo reason ("" when none)."""

    def __init__(self, code, message, details=()):
        self.code = code
        self.message = message
        self.details = list(details)
        super().__init__(f"{code.name}: {message}" if code is not None else message)

    def _detail(self, cls):
        return next((d for d in self.details if isinstance(d, cls)), None)

    @property
    def reason(self):
        info = self._detail(error_details_pb2.ErrorInfo)
        return info.reason if info is not None else ""

    @property
    def field_violations(self):
        """[(field, description)] from google.rpc.BadRequest."""
        bad = self._detail(error_details_pb2.BadRequest)
        if bad is None:
            return []
        return [(v.field, v.description) for v in bad.field_violations]

    @property
    def precondition_violations(self):
        """[(type, subject, description)] from google.rpc.PreconditionFailure."""
        failure = self._detail(error_details_pb2.PreconditionFailure)
        if failure is None:
            return []
        return [(v.type, v.subject, v.description) for v in failure.violations]

    @property
    def quota_violations(self):
        """[(subject, description)] from google.rpc.QuotaFailure."""
        failure = self._detail(error_details_pb2.QuotaFailure)
        if failure is None:
            return []
        return [(v.subject, v.description) for v in failure.violations]


class InvalidConfigError(GptbError):
    """INVALID_ARGUMENT: the config (or a request field) can never work; `field_violations`
    lists every problem, as `gptb validate` prints them."""

    def __str__(self):
        lines = [f"{field}: {description}" for field, description in self.field_violations]
        return "\n".join(lines) if lines else self.message


class NotFoundError(GptbError):
    """NOT_FOUND: no model (or operation) of that name."""


class AlreadyExistsError(GptbError):
    """ALREADY_EXISTS: the model name is taken (by another build)."""


class PreconditionError(GptbError):
    """FAILED_PRECONDITION: valid, but the cluster cannot take it now (too few slots...)."""


class ResourceExhaustedError(GptbError):
    """RESOURCE_EXHAUSTED: the model does not fit the slots' memory or the free slots."""


class UnauthenticatedError(GptbError):
    """UNAUTHENTICATED: a mutating call without the right bearer token."""


class UnavailableError(GptbError):
    """UNAVAILABLE or DEADLINE_EXCEEDED: the coordinator could not be reached in time."""


class BuildFailedError(GptbError):
    """The build ended FAILED (or the model was cancelled); `model` is the last Model seen and
    `message` its reason."""

    def __init__(self, model):
        self.model = model
        super().__init__(grpc.StatusCode.ABORTED, model.reason or "the build failed")


_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidConfigError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.FAILED_PRECONDITION: PreconditionError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: UnavailableError,
}


def decode_details(status):
    """The detail messages of a google.rpc.Status whose type this client knows."""
    out = []
    for any_detail in status.details:
        cls = _DETAIL_TYPES.get(any_detail.TypeName())
        if cls is None:
            continue
        message = cls()
        if any_detail.Unpack(message):
            out.append(message)
    return out


def from_rpc_error(error):
    """Turns a grpc.RpcError into the GptbError subclass for its code, with decoded details."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    message = error.details() if hasattr(error, "details") else str(error)
    details = []
    trailers = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
    for key, value in trailers or ():
        if key == _STATUS_DETAILS_KEY:
            status = status_pb2.Status()
            status.ParseFromString(value)
            details = decode_details(status)
    cls = _BY_CODE.get(code, GptbError)
    return cls(code, message or "", details)


def from_status(status):
    """Turns a google.rpc.Status (e.g. a failed Operation's error) into a GptbError."""
    code = next((c for c in grpc.StatusCode if c.value[0] == status.code), grpc.StatusCode.UNKNOWN)
    return _BY_CODE.get(code, GptbError)(code, status.message, decode_details(status))
