"""Builds the Python client's wheel from the generated package tree, offline.

    build_wheel.py PROJECT_DIR PACKAGE_DIR STAGING_DIR OUT_DIR

PROJECT_DIR holds pyproject.toml and README.md (clients/python), PACKAGE_DIR the complete
gptbuilder package (the hand-written modules plus the generated stubs, build/python/gptbuilder).
They are copied into a fresh STAGING_DIR and built there with setuptools' PEP 517 backend called
directly (what `pip wheel --no-build-isolation` would do, without needing pip or the network);
the wheel replaces any earlier gptbuilder wheel in OUT_DIR."""

import contextlib
import glob
import io
import os
import shutil
import sys


def main(project, package, staging, out):
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    for name in ("pyproject.toml", "README.md"):
        shutil.copyfile(os.path.join(project, name), os.path.join(staging, name))
    shutil.copytree(package, os.path.join(staging, "gptbuilder"),
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    os.makedirs(out, exist_ok=True)
    for old in glob.glob(os.path.join(out, "gptbuilder-*.whl")):
        os.remove(old)
    os.chdir(staging)
    sys.path.insert(0, staging)
    from setuptools import build_meta

    # setuptools narrates every file; show it only when the build fails.
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            name = build_meta.build_wheel(os.path.abspath(out))
    except BaseException:
        sys.stderr.write(log.getvalue())
        raise
    print(os.path.join(os.path.abspath(out), name))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__.splitlines()[2].strip())
    sys.exit(main(*[os.path.abspath(a) for a in sys.argv[1:]]))
