"""Moves protoc's Python output into the gptbuilder package (the layout the wheel ships).

    place_stubs.py GENERATED_DIR PACKAGE_DIR

gptbuilder/v1/*.py stay where protoc put them (their imports already name gptbuilder.v1). The
google.rpc and google.longrunning stubs the API uses go to gptbuilder/googleapis/{rpc,longrunning}
and every reference to them is rewritten: installed as top-level google.rpc they would overwrite
the files of googleapis-common-protos (which grpcio-status and others install), and Debian has no
package for them. The .proto file names registered in protobuf's descriptor pool stay
google/rpc/*.proto: a process that also imports googleapis-common-protos' copies gets the same
descriptors (protobuf accepts an identical file twice)."""

import os
import re
import shutil
import sys

RELOCATED = ("rpc", "longrunning")
# `from google.rpc import x`, and the module names given to protobuf's builder
# ('google.rpc.x_pb2'); not the gRPC service and method names ('/google.longrunning.Operations/').
IMPORT = re.compile(r"\bfrom google\.(%s)\b" % "|".join(RELOCATED))
MODULE_NAME = re.compile(r"'google\.(%s)\.(\w+_pb2)'" % "|".join(RELOCATED))


def rewrite(path):
    with open(path) as f:
        text = f.read()
    new = IMPORT.sub(r"from gptbuilder.googleapis.\1", text)
    new = MODULE_NAME.sub(r"'gptbuilder.googleapis.\1.\2'", new)
    if new != text:
        with open(path, "w") as f:
            f.write(new)


def ensure_init(directory):
    init = os.path.join(directory, "__init__.py")
    if not os.path.exists(init):
        open(init, "w").close()


def main(generated, package):
    v1_out = os.path.join(package, "v1")
    os.makedirs(v1_out, exist_ok=True)
    ensure_init(v1_out)
    for name in sorted(os.listdir(os.path.join(generated, "gptbuilder", "v1"))):
        if name.endswith(".py"):
            target = os.path.join(v1_out, name)
            shutil.copyfile(os.path.join(generated, "gptbuilder", "v1", name), target)
            rewrite(target)
    googleapis = os.path.join(package, "googleapis")
    os.makedirs(googleapis, exist_ok=True)
    ensure_init(googleapis)
    for sub in RELOCATED:
        out = os.path.join(googleapis, sub)
        os.makedirs(out, exist_ok=True)
        ensure_init(out)
        for name in sorted(os.listdir(os.path.join(generated, "google", sub))):
            if name.endswith(".py"):
                target = os.path.join(out, name)
                shutil.copyfile(os.path.join(generated, "google", sub, name), target)
                rewrite(target)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.splitlines()[2].strip())
    sys.exit(main(sys.argv[1], sys.argv[2]))
