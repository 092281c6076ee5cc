"""Model configs for requests. A config travels the way its file carries it: as text (YAML or
JSON laid out like a `gptb` config file, the GPTModelConfig text format, or a Hugging Face
config.json), parsed on the coordinator by the same loader `gptb` uses, so every problem comes
back at once as an InvalidConfigError with a field path or line. Or as the schema messages
(GPTModelConfig, DistributedDataParallelConfig, BuildOptions) when the caller already has them.

The client has no loader of its own: `load_config` reads a file's text, `config_from_dict` writes
a dict as JSON text; both are resolved by Client.validate / plan / build.
"""

import collections
import json
import os

from gptbuilder.v1 import coordinator_pb2
from gptbuilder.v1 import model_config_pb2

ModelConfig = collections.namedtuple("ModelConfig", ["model", "ddp", "build"])
ModelConfig.__doc__ = """A model config as messages: GPTModelConfig, DistributedDataParallelConfig
and BuildOptions (the message form of ValidateConfig, PlanModel and BuildModel)."""

_FORMATS = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".textproto": "textproto",
            ".txtpb": "textproto", ".pbtxt": "textproto"}


def config_text(text, *, format="", overrides=(), source_name=""):
    """A ConfigText message: `text` in `format` ("yaml", "json", "textproto", or "" to let the
    coordinator detect it), with `gptb --set`-style `overrides` ("transformer.num_layers=4",
    "build.seed=7"), applied in order; `source_name` is what error messages call it."""
    return coordinator_pb2.ConfigText(text=text, format=format, overrides=list(overrides),
                                      source_name=source_name)


def load_config(path, *, overrides=()):
    """The text of a config file (YAML, JSON, text proto or a Hugging Face config.json), as a
    ConfigText naming the file; its format comes from the extension, else from the content."""
    path = os.fspath(path)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return config_text(text, format=_FORMATS.get(os.path.splitext(path)[1].lower(), ""),
                       overrides=overrides, source_name=os.path.basename(path))


def config_from_dict(document, *, overrides=()):
    """A dict laid out like a config file (GPTModelConfig fields at the top, `transformer:`,
    optional `ddp:` and `build:`; or a Hugging Face config.json's keys), as JSON text."""
    return config_text(json.dumps(document), format="json", overrides=overrides,
                       source_name="dict")


def request_fields(config, overrides=()):
    """The config fields of a ValidateConfig / PlanModel / BuildModel request for `config`: a
    path, a dict, a ConfigText, a ModelConfig or a GPTModelConfig. `overrides` need a text form
    (a path, a dict or a ConfigText)."""
    if isinstance(config, coordinator_pb2.ConfigText):
        text = coordinator_pb2.ConfigText()
        text.CopyFrom(config)
        text.overrides.extend(overrides)
        return {"config_text": text}
    if isinstance(config, dict):
        return {"config_text": config_from_dict(config, overrides=overrides)}
    if isinstance(config, (str, os.PathLike)):
        return {"config_text": load_config(config, overrides=overrides)}
    if isinstance(config, model_config_pb2.GPTModelConfig):
        config = ModelConfig(config, model_config_pb2.DistributedDataParallelConfig(),
                             model_config_pb2.BuildOptions())
    if isinstance(config, ModelConfig):
        if overrides:
            raise TypeError("overrides apply to a config in text form (a path, a dict or a "
                            "ConfigText); set the fields of a message directly")
        return {"config": config.model, "ddp": config.ddp, "build": config.build}
    raise TypeError("config must be a file path, a dict, a ConfigText, a ModelConfig or a "
                    f"GPTModelConfig, not {type(config).__name__}")
