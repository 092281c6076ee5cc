"""Model configs as files carry them: GPTModelConfig fields at the top, the TransformerConfig under
`transformer:`, and the optional `ddp:` and `build:` sections (the layout `gptb` reads).

This is a client-side conversion into the schema messages, following the rules of the C++ loader
(core/config/message_tree.h): unknown keys, wrong kinds and out-of-range integers are reported
all at once as an InvalidConfigError with a field path per violation; `null` leaves a field
unset; `transformer_layer_spec` takes a spec name or a custom ModuleSpec tree; keys starting
with `_` (Bridge's `_target_`) are ignored. Semantic validation (heads divisible by TP, ...) is
the coordinator's: see Client.validate. Hugging Face config.json import is `gptb`'s only.
"""

import collections
import json
import os

import grpc
from google.protobuf import descriptor as _descriptor

from gptbuilder.errors import InvalidConfigError
from gptbuilder.v1 import model_config_pb2
from gptbuilder.googleapis.rpc import error_details_pb2

ModelConfig = collections.namedtuple("ModelConfig", ["model", "ddp", "build"])
ModelConfig.__doc__ = """A model config with its sections: GPTModelConfig,
DistributedDataParallelConfig and BuildOptions messages (what ValidateConfig, PlanModel and
BuildModel take)."""

_FD = _descriptor.FieldDescriptor
_INT_RANGES = {
    _FD.TYPE_INT32: (-(2**31), 2**31 - 1),
    _FD.TYPE_SINT32: (-(2**31), 2**31 - 1),
    _FD.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    _FD.TYPE_UINT32: (0, 2**32 - 1),
    _FD.TYPE_FIXED32: (0, 2**32 - 1),
    _FD.TYPE_INT64: (-(2**63), 2**63 - 1),
    _FD.TYPE_SINT64: (-(2**63), 2**63 - 1),
    _FD.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    _FD.TYPE_UINT64: (0, 2**64 - 1),
    _FD.TYPE_FIXED64: (0, 2**64 - 1),
}
_BOOL_WORDS = {"true": True, "false": False, "yes": True, "no": False, "on": True, "off": False}


class _Violations:
    def __init__(self):
        self.items = []

    def add(self, field, reason, description):
        self.items.append((field, reason, description))

    def raise_if_any(self):
        if not self.items:
            return
        bad = error_details_pb2.BadRequest()
        for field, reason, description in self.items:
            bad.field_violations.add(field=field, reason=reason, description=description)
        raise InvalidConfigError(grpc.StatusCode.INVALID_ARGUMENT,
                                 f"the config has {len(self.items)} problem(s)", [bad])


def _join(prefix, name):
    return f"{prefix}.{name}" if prefix else name


def _describe(value):
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"'{value}'"


def _scalar(value, field, path, violations):
    """The Python value for a scalar field, or None after recording a violation."""
    t = field.type
    if isinstance(value, (dict, list)):
        violations.add(path, "TYPE_MISMATCH", f"expected a single value, got {_describe(value)}.")
        return None
    if t == _FD.TYPE_BOOL:
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()
        if word in _BOOL_WORDS:
            return _BOOL_WORDS[word]
        violations.add(path, "TYPE_MISMATCH", f"expected true or false, got {_describe(value)}.")
        return None
    if t in _INT_RANGES:
        number = value
        if isinstance(value, bool):
            number = None
        elif isinstance(value, str):
            try:
                number = float(value) if any(c in value for c in ".eE") else int(value, 0)
            except ValueError:
                number = None
        if isinstance(number, float) and number.is_integer():
            number = int(number)
        if not isinstance(number, int):
            violations.add(path, "TYPE_MISMATCH", f"expected an integer, got {_describe(value)}.")
            return None
        low, high = _INT_RANGES[t]
        if not low <= number <= high:
            violations.add(path, "OUT_OF_RANGE", f"{number} is outside [{low}, {high}].")
            return None
        return number
    if t in (_FD.TYPE_DOUBLE, _FD.TYPE_FLOAT):
        if isinstance(value, bool):
            value = None
        try:
            return float(value)
        except (TypeError, ValueError):
            violations.add(path, "TYPE_MISMATCH", f"expected a number, got {_describe(value)}.")
            return None
    if t == _FD.TYPE_ENUM:
        values = field.enum_type.values_by_name
        if isinstance(value, str) and value in values:
            return values[value].number
        violations.add(path, "TYPE_MISMATCH",
                       f"expected one of {', '.join(values)}, got {_describe(value)}.")
        return None
    if t == _FD.TYPE_BYTES:
        return value.encode() if isinstance(value, str) else bytes(value)
    if isinstance(value, bool):  # YAML's true/false where a string is expected
        return "true" if value else "false"
    return str(value)


def _merge(tree, message, path, violations):
    if not isinstance(tree, dict):
        violations.add(path, "TYPE_MISMATCH",
                       f"expected a mapping of {message.DESCRIPTOR.name} fields, "
                       f"got {_describe(tree)}.")
        return
    fields = message.DESCRIPTOR.fields_by_name
    for key, value in tree.items():
        key = str(key)
        if key.startswith("_"):
            continue
        field = fields.get(key)
        item_path = _join(path, key)
        if field is None:
            violations.add(item_path, "UNKNOWN_FIELD",
                           f"'{key}' is not a field of {message.DESCRIPTOR.name}.")
            continue
        _set_field(value, field, message, item_path, violations)


def _set_field(value, field, message, path, violations):
    if value is None:
        message.ClearField(field.name)
        return
    is_map = (field.message_type is not None and field.message_type.GetOptions().map_entry)
    if is_map:
        if not isinstance(value, dict):
            violations.add(path, "TYPE_MISMATCH", f"expected a mapping, got {_describe(value)}.")
            return
        target = getattr(message, field.name)
        target.clear()
        value_field = field.message_type.fields_by_name["value"]
        for k, v in value.items():
            item_path = f"{path}.{k}"
            if value_field.type == _FD.TYPE_MESSAGE:
                _set_message(v, target[str(k)], item_path, violations)
            else:
                converted = _scalar(v, value_field, item_path, violations)
                if converted is not None:
                    target[str(k)] = converted
        return
    if field.label == _FD.LABEL_REPEATED:
        message.ClearField(field.name)
        if field.type == _FD.TYPE_MESSAGE:
            violations.add(path, "TYPE_MISMATCH", "repeated message fields are not supported here.")
            return
        items = value if isinstance(value, list) else [value]
        target = getattr(message, field.name)
        for i, item in enumerate(items):
            item_path = f"{path}[{i}]" if isinstance(value, list) else path
            converted = _scalar(item, field, item_path, violations)
            if converted is not None:
                target.append(converted)
        return
    if field.type == _FD.TYPE_MESSAGE:
        sub = getattr(message, field.name)
        sub.Clear()
        _set_message(value, sub, path, violations)
        sub.SetInParent()  # an empty mapping still marks the sub-message as present
        return
    converted = _scalar(value, field, path, violations)
    if converted is not None:
        setattr(message, field.name, converted)


def _set_message(value, message, path, violations):
    full_name = message.DESCRIPTOR.full_name
    if full_name == "gptbuilder.v1.LayerSpec":
        if isinstance(value, str):  # a named spec
            message.name = value
            return
        if isinstance(value, dict) and value and set(value) <= {"name", "custom"}:
            if len(value) > 1:
                violations.add(path, "CONFLICT",
                               "transformer_layer_spec takes either a name or a custom tree, "
                               "not both.")
                return
            _merge(value, message, path, violations)
            return
        if isinstance(value, dict):  # a custom ModuleSpec tree
            _merge(value, message.custom, path, violations)
            return
    if full_name == "gptbuilder.v1.ModuleSpec" and isinstance(value, str):
        message.module = value
        return
    _merge(value, message, path, violations)


def config_from_dict(document):
    """A ModelConfig from a dict laid out like a config file. Raises InvalidConfigError with every
    structural problem."""
    violations = _Violations()
    if not isinstance(document, dict):
        violations.add("", "TYPE_MISMATCH",
                       f"expected a mapping of GPTModelConfig fields, got {_describe(document)}.")
        violations.raise_if_any()
    document = dict(document)
    if "model_type" in document:
        violations.add("model_type", "UNSUPPORTED",
                       "this is a Hugging Face config.json; import it with `gptb validate FILE "
                       "--format yaml` first.")
        violations.raise_if_any()
    ddp = model_config_pb2.DistributedDataParallelConfig()
    build = model_config_pb2.BuildOptions()
    _merge(document.pop("ddp", None) or {}, ddp, "ddp", violations)
    _merge(document.pop("build", None) or {}, build, "build", violations)
    model = model_config_pb2.GPTModelConfig()
    _merge(document, model, "", violations)
    violations.raise_if_any()
    return ModelConfig(model, ddp, build)


def load_config(path):
    """A ModelConfig from a YAML (.yaml/.yml) or JSON file."""
    with open(os.fspath(path), encoding="utf-8") as f:
        text = f.read()
    if str(path).endswith(".json") or text.lstrip().startswith("{"):
        document = json.loads(text)
    else:
        import yaml  # python3-yaml; only needed for YAML files

        document = yaml.safe_load(text)
    return config_from_dict(document or {})


def as_model_config(config):
    """Accepts a ModelConfig, a GPTModelConfig message, a dict laid out like a config file, or a
    path to a YAML/JSON file."""
    if isinstance(config, ModelConfig):
        return config
    if isinstance(config, model_config_pb2.GPTModelConfig):
        return ModelConfig(config, model_config_pb2.DistributedDataParallelConfig(),
                           model_config_pb2.BuildOptions())
    if isinstance(config, dict):
        return config_from_dict(config)
    if isinstance(config, (str, os.PathLike)):
        return load_config(config)
    raise TypeError("config must be a ModelConfig, a GPTModelConfig, a dict or a file path, "
                    f"not {type(config).__name__}")
