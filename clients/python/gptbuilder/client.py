"""A small client for the gptbuilder coordinator, for orchestration scripts.

    from gptbuilder import Client

    with Client("127.0.0.1:50051") as client:
        client.validate("examples/tiny-llama.yaml", world_size=2)
        model = client.build_and_wait("tiny", "examples/tiny-llama.yaml", world_size=2,
                                      on_progress=print)
        stages = client.describe("tiny").stages
        client.release("tiny")

Over TLS: `Client(server, tls_ca="ca.pem")`, and for mutual TLS also `tls_cert=` and `tls_key=`
(PEM files, like gptb's --tls-ca/--tls-cert/--tls-key). Every call has a deadline (`timeout`,
default 30 s; waits take their own) and raises a GptbError subclass on failure
(InvalidConfigError with the field violations, PreconditionError, ResourceExhaustedError,
NotFoundError, ...; BuildFailedError when a build ends FAILED).
"""

import os
import uuid

import grpc

from gptbuilder import errors
from gptbuilder.config import request_fields
from gptbuilder.v1 import coordinator_pb2
from gptbuilder.v1 import coordinator_pb2_grpc
from gptbuilder.v1 import model_pb2
from gptbuilder.v1 import train_pb2

Model = model_pb2.Model
# Model.State values by name, for comparisons in scripts (`model.state == State.READY`).
State = model_pb2.Model.State

DEFAULT_SERVER = "127.0.0.1:50051"
# Keepalive as the C++ clients send it (the daemons accept pings every 5 s or slower).
_CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 10000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", 256 << 20),
]


def _call(method, request, **kwargs):
    try:
        return method(request, **kwargs)
    except grpc.RpcError as error:
        raise errors.from_rpc_error(error) from None


def tls_credentials(ca, cert=None, key=None):
    """grpc.ChannelCredentials from PEM files: verify the server with the CA file `ca`; with
    `cert` and `key` (both or neither) also present a client certificate (mutual TLS)."""
    if (cert is None) != (key is None):
        raise ValueError("tls_cert and tls_key go together (a client certificate needs its key)")

    def read(path):
        with open(path, "rb") as f:
            return f.read()

    return grpc.ssl_channel_credentials(
        root_certificates=read(ca),
        private_key=read(key) if key is not None else None,
        certificate_chain=read(cert) if cert is not None else None)


class Client:
    """A connection to one coordinator.

    server: HOST:PORT (default GPTB_SERVER, else 127.0.0.1:50051).
    token: bearer token for mutating calls (default GPTB_AUTH_TOKEN; None: none).
    tls_ca, tls_cert, tls_key: PEM files for TLS (the CA that signed the coordinator's
        certificate) and mutual TLS (this client's certificate and key); see tls_credentials.
    credentials: grpc.ChannelCredentials built by the caller instead (not with tls_*).
    timeout: deadline in seconds of each unary call.
    """

    def __init__(self, server=None, *, token=None, tls_ca=None, tls_cert=None, tls_key=None,
                 credentials=None, timeout=30.0):
        self.server = server or os.environ.get("GPTB_SERVER") or DEFAULT_SERVER
        if token is None:
            token = os.environ.get("GPTB_AUTH_TOKEN", "").strip() or None
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.timeout = timeout
        if tls_ca is not None:
            if credentials is not None:
                raise ValueError("give either tls_ca (and tls_cert/tls_key) or credentials")
            credentials = tls_credentials(tls_ca, tls_cert, tls_key)
        elif tls_cert is not None or tls_key is not None:
            raise ValueError("tls_cert/tls_key need tls_ca (the CA that verifies the server)")
        if credentials is None:
            self._channel = grpc.insecure_channel(self.server, options=_CHANNEL_OPTIONS)
        else:
            self._channel = grpc.secure_channel(self.server, credentials, options=_CHANNEL_OPTIONS)
        self.stub = coordinator_pb2_grpc.CoordinatorStub(self._channel)

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _unary(self, name, request, timeout=None):
        return _call(getattr(self.stub, name), request, timeout=timeout or self.timeout,
                     metadata=self._metadata)

    # ---- config ---------------------------------------------------------------------------
    def validate(self, config, *, overrides=(), world_size=0):
        """Finalizes `config` (a file path, a dict laid out like a config file, a ConfigText, a
        ModelConfig or a GPTModelConfig; `overrides` as `gptb --set`) on the coordinator, which
        parses text with `gptb`'s own loader: the resolved ValidateConfigResponse (every default
        explicit), or InvalidConfigError listing every violation."""
        request = coordinator_pb2.ValidateConfigRequest(world_size=world_size,
                                                        **request_fields(config, overrides))
        return self._unary("ValidateConfig", request)

    def plan(self, config, *, overrides=(), world_size=0, page_size=0):
        """The plan (PlanDescription: parallel sizes, stages and their parameters, per-rank group
        indices and bytes); needs no worker. PlanModel pages the ranks (`page_size`, 0 for the
        service's default); this follows next_page_token, so the result lists every rank."""
        request = coordinator_pb2.PlanModelRequest(world_size=world_size, page_size=page_size,
                                                   **request_fields(config, overrides))
        plan = self._unary("PlanModel", request)
        token = plan.next_page_token
        while token:
            request.page_token = token
            page = self._unary("PlanModel", request)
            plan.ranks.extend(page.ranks)
            token = page.next_page_token
        plan.next_page_token = ""
        return plan

    # ---- builds ---------------------------------------------------------------------------
    def build(self, name, config, *, overrides=(), world_size=0, request_id=None,
              validate_only=False, load_from="", for_training=False):
        """Starts a build and returns its google.longrunning.Operation at once. Rejections
        (invalid config, too few slots, does not fit, a `load_from` checkpoint that does not
        match) raise before anything is allocated. A retry with the same `request_id` returns the
        first call's operation. `load_from`: a canonical checkpoint or Hugging Face directory,
        visible to the coordinator and every worker, to load instead of initialising.
        `for_training`: admit it with room for its optimizer state."""
        request = coordinator_pb2.BuildModelRequest(
            name=name, world_size=world_size, **request_fields(config, overrides),
            request_id=request_id or str(uuid.uuid4()), validate_only=validate_only,
            load_from=load_from, for_training=for_training)
        operation = self._unary("BuildModel", request)
        if operation.done and operation.HasField("error"):
            raise errors.from_status(operation.error)
        return operation

    def watch(self, name, *, rank_events=False, timeout=None):
        """Yields the model's BuildEvents (state, aggregate progress, optionally every rank's)
        until it is READY or FAILED."""
        request = coordinator_pb2.WatchBuildRequest(name=name, rank_events=rank_events)
        try:
            for event in self.stub.WatchBuild(request, timeout=timeout, metadata=self._metadata):
                yield event
        except grpc.RpcError as error:
            raise errors.from_rpc_error(error) from None

    def wait(self, name, *, timeout=None, on_progress=None, rank_events=False):
        """Waits until the build of `name` ends and returns the READY Model. `on_progress` is
        called with every BuildEvent (see format_progress). Raises BuildFailedError when the
        build fails, UnavailableError when `timeout` seconds pass first."""
        for event in self.watch(name, rank_events=rank_events, timeout=timeout):
            if on_progress is not None:
                on_progress(event)
        model = self.get(name)
        if model.state != State.READY:
            raise errors.BuildFailedError(model)
        return model

    def build_and_wait(self, name, config, *, overrides=(), world_size=0, request_id=None,
                       timeout=None, on_progress=None, load_from=""):
        """build() then wait(): the READY Model, or an exception saying why not."""
        self.build(name, config, overrides=overrides, world_size=world_size,
                   request_id=request_id, load_from=load_from)
        return self.wait(name, timeout=timeout, on_progress=on_progress)

    # ---- training and checkpoints ---------------------------------------------------------
    def train(self, name, *, steps=1, synthetic_seed=None, data_path=None, tokens=None,
              micro_batch_size=1, micro_batches=1, seq_length=None, optimizer=None,
              scheduler=None, timeout=None):
        """Runs `steps` train steps on a READY model and yields one TrainStepResult per step as
        it ends (loss, grad_norm, learning_rate, tokens_per_second, seconds). The batch comes
        from `data_path` (a Megatron .bin/.idx prefix the workers can read), `tokens` (a flat
        list of global_batch x (seq_length + 1) ids) or `synthetic_seed` (the default, 1234).
        `optimizer` / `scheduler` are dicts of OptimizerConfig / SchedulerConfig fields: the
        model's first call needs at least {"lr": ...}; later calls may omit them. A step that
        fails on a rank makes the model FAILED and raises."""
        batch = train_pb2.TrainBatch()
        if data_path is not None:
            batch.data_path = data_path
        elif tokens is not None:
            batch.tokens.ids.extend(tokens)
        else:
            batch.synthetic_seed = 1234 if synthetic_seed is None else synthetic_seed
        options = train_pb2.TrainOptions(micro_batch_size=micro_batch_size,
                                         num_micro_batches=micro_batches)
        if seq_length is not None:
            options.seq_length = seq_length
        if optimizer is not None:
            options.optimizer.CopyFrom(train_pb2.OptimizerConfig(**optimizer))
        if scheduler is not None:
            options.scheduler.CopyFrom(train_pb2.SchedulerConfig(**scheduler))
        request = coordinator_pb2.TrainStepRequest(model=name, batch=batch, options=options,
                                                   steps=steps)
        try:
            for result in self.stub.TrainStep(request, timeout=timeout, metadata=self._metadata):
                yield result
        except grpc.RpcError as error:
            raise errors.from_rpc_error(error) from None

    def save(self, name, path, *, format="canonical", hf_model_type="", overwrite=False,
             timeout=3600.0):
        """Saves a READY model at `path` (absolute, visible to every worker): "canonical"
        (layout-independent, loads into any layout with build(load_from=path)) or "huggingface".
        Returns the SaveCheckpointResponse (bytes_written, files, seconds)."""
        request = coordinator_pb2.SaveCheckpointRequest(
            model=name, path=os.path.abspath(path), format=format, hf_model_type=hf_model_type,
            overwrite=overwrite)
        return self._unary("SaveCheckpoint", request, timeout=timeout)

    # ---- models and workers ---------------------------------------------------------------
    def get(self, name):
        """The Model (state, reason, placement, progress)."""
        return self._unary("GetModel", coordinator_pb2.GetModelRequest(name=name))

    def describe(self, name):
        """What the workers actually hold (DescribeModelResponse: the plan's stages with a
        checksum per parameter, one RankSummary per rank)."""
        return self._unary("DescribeModel", coordinator_pb2.DescribeModelRequest(name=name))

    def release(self, name):
        """Releases every stage on every worker (cancels a running build first); returns the
        Model as it was."""
        return self._unary("DeleteModel", coordinator_pb2.DeleteModelRequest(name=name)).model

    def list_models(self):
        """Every model the coordinator knows (Model messages: name, state, placement...)."""
        return list(self._unary("ListModels", coordinator_pb2.ListModelsRequest()).models)

    def list_workers(self):
        """Every registered worker (WorkerInfo: name, address, state, slots and what they hold)."""
        return list(self._unary("ListWorkers", coordinator_pb2.ListWorkersRequest()).workers)

    def wait_for_workers(self, count, *, timeout=60.0, interval=0.2):
        """Waits until `count` workers are READY (e.g. after starting a cluster); returns them."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            try:
                ready = [w for w in self.list_workers()
                         if w.state == coordinator_pb2.WorkerInfo.READY]
                if len(ready) >= count:
                    return ready
            except errors.UnavailableError:
                ready = []
            if time.monotonic() >= deadline:
                raise errors.UnavailableError(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    f"{len(ready)} of {count} workers registered with {self.server} "
                    f"after {timeout:g}s")
            time.sleep(interval)


def format_progress(event):
    """One line for a BuildEvent, like `gptb build --wait` prints without a terminal."""
    p = event.progress
    ranks = p.ranks_total
    init = int(10 * p.bytes_initialized / p.bytes_total) * 10 if p.bytes_total else 0
    return (f"{Model.State.Name(event.state)}: groups {p.ranks_with_process_groups}/{ranks}, "
            f"layers {p.layers_built}/{p.layers_total}, init {init}%, "
            f"wrapped {p.ranks_done}/{ranks}")
