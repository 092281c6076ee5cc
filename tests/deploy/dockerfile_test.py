"""Structural lint of the Dockerfile (no Docker engine here, and hadolint is not in Debian):
multi-stage with a CPU default and a CUDA variant chosen by a build argument, dependencies
installed through scripts/bootstrap (the runtime subset derived by it), a non-root USER, an exec
ENTRYPOINT on gptbd, and COPY sources that exist and are not excluded from the context. Also
runs `scripts/bootstrap --runtime-packages` on the built binaries, as the image's build stage
does."""

import fnmatch
import os
import re
import subprocess
import unittest

import deploy_paths as paths

DOCKERFILE = os.path.join(paths.SOURCE_DIR, "Dockerfile")
BOOTSTRAP = os.path.join(paths.SOURCE_DIR, "scripts", "bootstrap")


def parse(path):
    """[(instruction, arguments)] with comments dropped and continuation lines joined."""
    instructions = []
    pending = ""
    with open(path) as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if pending and line.lstrip().startswith("#"):
                continue
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            line = pending + line
            pending = ""
            keyword, _, rest = line.strip().partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    assert not pending, "the Dockerfile ends in a line continuation"
    return instructions


def stages(instructions):
    """[(name, base, [instructions])] and the global ARGs before the first FROM."""
    out, global_args = [], {}
    for keyword, rest in instructions:
        if keyword == "FROM":
            match = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.IGNORECASE)
            out.append((match.group(2), match.group(1), []))
        elif not out:
            assert keyword == "ARG", f"{keyword} before the first FROM"
            name, _, default = rest.partition("=")
            global_args[name] = default
        else:
            out[-1][2].append((keyword, rest))
    return out, global_args


class DockerfileTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.instructions = parse(DOCKERFILE)
        cls.stages, cls.args = stages(cls.instructions)
        cls.by_name = {name: (base, body) for name, base, body in cls.stages}

    def runs(self, stage):
        return [rest for keyword, rest in self.by_name[stage][1] if keyword == "RUN"]

    def test_multi_stage_with_variant_argument(self):
        self.assertGreaterEqual(len(self.stages), 4)
        self.assertEqual(self.args["VARIANT"], "cpu")
        self.assertTrue(self.args["DEBIAN_IMAGE"].startswith("debian:12"))
        # Both variants start from Debian 12, so scripts/bootstrap's package list serves both.
        for variant in ("cpu", "cuda"):
            self.assertEqual(self.by_name[f"os-{variant}"][0], "${DEBIAN_IMAGE}")
        self.assertEqual(self.by_name["build"][0], "os-${VARIANT}")
        self.assertEqual(self.by_name["runtime"][0], "os-${VARIANT}")
        self.assertEqual(self.stages[-1][0], "runtime", "the runtime stage is the default target")

    def test_cuda_variant_builds_with_cuda_libtorch(self):
        env = " ".join(rest for keyword, rest in self.by_name["os-cuda"][1] if keyword == "ENV")
        self.assertIn("-DGPTB_WITH_CUDA=ON", env)
        self.assertIn("GPTB_BOOTSTRAP_MODE=\"--cuda\"", env)
        self.assertIn("CMAKE_PREFIX_PATH=/opt/libtorch", env)
        self.assertIn("cu", self.args["LIBTORCH_URL"])
        self.assertIn("cxx11-abi", self.args["LIBTORCH_URL"])  # Debian's GCC 12 ABI
        self.assertIn("debian12", self.args["CUDA_REPO"])
        self.assertTrue(any("LIBTORCH_URL" in run for run in self.runs("build")))
        cpu_env = " ".join(rest for keyword, rest in self.by_name["os-cpu"][1] if keyword == "ENV")
        self.assertNotIn("GPTB_WITH_CUDA", cpu_env)
        with open(BOOTSTRAP) as f:
            self.assertIn("--cuda)", f.read())

    def test_dependencies_come_from_bootstrap(self):
        build_runs = self.runs("build")
        self.assertTrue(any(r.startswith("scripts/bootstrap ${GPTB_BOOTSTRAP_MODE}")
                            for r in build_runs))
        self.assertTrue(any("scripts/bootstrap --runtime-packages build/bin/gptbd build/bin/gptb"
                            in r for r in build_runs))
        runtime_runs = self.runs("runtime")
        self.assertTrue(any("bootstrap --runtime " in r for r in runtime_runs))
        # No package list of its own: apt-get only inside scripts/bootstrap.
        for stage, (_, body) in self.by_name.items():
            for keyword, rest in body:
                if keyword == "RUN":
                    self.assertNotIn("apt-get install", rest, stage)

    def test_builds_the_daemons_and_the_python_client(self):
        build = " ".join(self.runs("build"))
        for target in ("gptbd", "gptb", "gptb_python_client"):
            self.assertRegex(build, rf"--target [^&]*\b{target}\b")
        self.assertIn("-DGPTB_BUILD_TESTS=OFF", build)

    def test_runtime_runs_as_non_root_with_gptbd_entrypoint(self):
        body = self.by_name["runtime"][1]
        users = [rest for keyword, rest in body if keyword == "USER"]
        self.assertEqual(len(users), 1)
        uid = users[0].split(":")[0]
        self.assertTrue(uid.isdigit(), "a numeric USER lets Kubernetes verify runAsNonRoot")
        self.assertNotEqual(int(uid), 0)
        keywords = [keyword for keyword, _ in body]
        self.assertGreater(keywords.index("ENTRYPOINT"), keywords.index("USER"))
        entrypoint = next(rest for keyword, rest in body if keyword == "ENTRYPOINT")
        self.assertEqual(entrypoint, '["/usr/local/bin/gptbd"]')  # exec form: gets SIGTERM
        self.assertIn("CMD", keywords)
        exposed = {int(p) for keyword, rest in body if keyword == "EXPOSE" for p in rest.split()}
        self.assertTrue({50051, 50052, 9464, 9465, 29500} <= exposed)

    def test_copy_sources_exist_in_the_context(self):
        with open(os.path.join(paths.SOURCE_DIR, ".dockerignore")) as f:
            ignored = [l.strip() for l in f if l.strip() and not l.startswith("#")]
        self.assertIn("build", ignored)
        self.assertIn(".git", ignored)
        for keyword, rest in self.instructions:
            if keyword != "COPY" or rest.startswith("--from"):
                continue
            sources = rest.split()[:-1]
            for source in sources:
                with self.subTest(source=source):
                    if source != ".":
                        self.assertTrue(os.path.exists(os.path.join(paths.SOURCE_DIR, source)))
                        self.assertFalse(any(fnmatch.fnmatch(source, p) for p in ignored))

    def test_runtime_packages_are_derived_from_the_binaries(self):
        binaries = [os.path.join(paths.BINARY_DIR, "bin", b) for b in ("gptbd", "gptb")]
        result = subprocess.run([BOOTSTRAP, "--runtime-packages", *binaries],
                                capture_output=True, text=True)
        self.assertEqual(result.returncode, 0, result.stderr)
        packages = result.stdout.split()
        # What the daemons link (LibTorch, gRPC, protobuf) and the Python client's modules.
        for expected in ("libtorch1.13", "libgrpc++1.51", "libprotobuf32", "python3-grpcio",
                         "python3-protobuf"):
            self.assertIn(expected, packages)
        for package in packages:
            self.assertFalse(package.endswith("-dev"), package)
            self.assertNotIn(package, ("g++", "cmake", "clang"))
        installed = subprocess.run(["dpkg-query", "-W", "-f", "${Package}\n", *packages],
                                   capture_output=True, text=True)
        self.assertEqual(installed.returncode, 0, installed.stderr)

    def test_runtime_mode_installs_nothing_when_present(self):
        result = subprocess.run([BOOTSTRAP, "--runtime", "/dev/stdin"], input="python3\nprocps\n",
                                capture_output=True, text=True)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertNotIn("installing", result.stderr)
        bad = subprocess.run([BOOTSTRAP, "--no-such-mode"], capture_output=True, text=True)
        self.assertEqual(bad.returncode, 2)


if __name__ == "__main__":
    unittest.main()
