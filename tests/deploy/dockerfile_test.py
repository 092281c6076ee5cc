"""Structural lint of the Dockerfile (the image test, `ctest -L image`, builds and runs it):
multi-stage with a CPU default and a CUDA variant chosen by a build argument, both built the
same way from the pinned torch wheel, dependencies installed through scripts/bootstrap (the
runtime subset derived by it), a non-root USER, an exec ENTRYPOINT on gptbd, and COPY sources
that exist and are not excluded from the context. Also runs `scripts/bootstrap
--runtime-packages` and `--runtime-libraries` on the built binaries, as the image's build stage
does, and checks that together they account for every library the binaries load."""

import fnmatch
import os
import re
import subprocess
import tempfile
import unittest

import deploy_paths as paths

DOCKERFILE = os.path.join(paths.SOURCE_DIR, "Dockerfile")
BOOTSTRAP = os.path.join(paths.SOURCE_DIR, "scripts", "bootstrap")
REQUIREMENTS = os.path.join(paths.SOURCE_DIR, "scripts", "python-requirements.txt")
BINARIES = [os.path.join(paths.BINARY_DIR, "bin", b) for b in ("gptbd", "gptb")]
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

    def env(self, stage):
        return " ".join(rest for keyword, rest in self.by_name[stage][1] if keyword == "ENV")

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

    def test_variants_build_the_same_way_from_the_pinned_wheel(self):
        cpu, cuda = self.env("os-cpu"), self.env("os-cuda")
        # The variants differ in the bootstrap mode and one CMake flag, nothing else that builds.
        self.assertIn('GPTB_BOOTSTRAP_MODE="--image"', cpu)
        self.assertIn('GPTB_CMAKE_ARGS=""', cpu)
        self.assertIn('GPTB_BOOTSTRAP_MODE="--image --cuda"', cuda)
        self.assertIn('GPTB_CMAKE_ARGS="-DGPTB_WITH_CUDA=ON"', cuda)
        # One build stage for both, one configure line; no LibTorch from anywhere but the wheel
        # pinned in python-requirements.txt (which bootstrap installs).
        build = self.runs("build")
        configures = [r for r in build if "cmake -S . -B build" in r]
        self.assertEqual(len(configures), 1)
        self.assertIn("${GPTB_CMAKE_ARGS}", configures[0])
        self.assertIn("-DGPTB_PYTHON=${GPTB_VENV}/bin/python", configures[0])
        copies = [rest for keyword, rest in self.by_name["build"][1] if keyword == "COPY"]
        self.assertIn("scripts/bootstrap scripts/python-requirements.txt scripts/", copies)
        for keyword, rest in self.instructions:
            self.assertNotIn("download.pytorch.org", rest)
            if keyword in ("ADD", "RUN"):
                self.assertNotRegex(rest, r"https?://", "everything comes through bootstrap")
        with open(REQUIREMENTS) as f:
            self.assertRegex(f.read(), r"(?m)^torch==\d+\.\d+\.\d+$")
        with open(BOOTSTRAP) as f:
            text = f.read()
        for mode in ("--image)", "--cuda-root)", "--runtime-libraries)", "--runtime-packages)"):
            self.assertIn(mode, text)

    def test_dependencies_come_from_bootstrap(self):
        build_runs = self.runs("build")
        self.assertTrue(any("scripts/bootstrap ${GPTB_BOOTSTRAP_MODE}" in r for r in build_runs))
        self.assertTrue(any("scripts/bootstrap --runtime-packages build/bin/gptbd build/bin/gptb"
                            in r for r in build_runs))
        self.assertTrue(any("scripts/bootstrap --runtime-libraries build/bin/gptbd build/bin/gptb"
                            in r for r in build_runs))
        runtime_runs = self.runs("runtime")
        self.assertTrue(any("bootstrap --runtime " in r for r in runtime_runs))
        # No package list of its own: apt-get only inside scripts/bootstrap.
        for stage, (_, body) in self.by_name.items():
            for keyword, rest in body:
                if keyword == "RUN":
                    self.assertNotIn("apt-get install", rest, stage)
                    self.assertNotIn("pip install", rest, stage)

    def test_builds_the_daemons_and_the_python_wheel(self):
        build = " ".join(self.runs("build"))
        for target in ("gptbd", "gptb", "gptb_python_wheel"):
            self.assertRegex(build, rf"--target [^&]*\b{target}\b")
        self.assertIn("-DGPTB_BUILD_TESTS=OFF", build)
        self.assertIn("build/dist/gptbuilder-*.whl", build)

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
        # The runtime stage takes from the build stage only the staged tree and the package list.
        sources = [rest.split()[1] for keyword, rest in body
                   if keyword == "COPY" and rest.startswith("--from=build")]
        self.assertEqual(sorted(sources), ["/runtime-packages", "/stage/"])

    def test_copy_sources_exist_in_the_context(self):
        with open(os.path.join(paths.SOURCE_DIR, ".dockerignore")) as f:
            ignored = [l.strip() for l in f if l.strip() and not l.startswith("#")]
        self.assertIn("build", ignored)
        self.assertIn(".git", ignored)
        self.assertIn(".venv", ignored)
        for keyword, rest in self.instructions:
            if keyword != "COPY" or rest.startswith("--from"):
                continue
            sources = rest.split()[:-1]
            for source in sources:
                with self.subTest(source=source):
                    if source != ".":
                        self.assertTrue(os.path.exists(os.path.join(paths.SOURCE_DIR, source)))
                        self.assertFalse(any(fnmatch.fnmatch(source, p) for p in ignored))


def loaded_libraries(binaries):
    """{resolved path} of every library ldd says the binaries load."""
    out = set()
    for binary in binaries:
        text = subprocess.run(["ldd", binary], check=True, capture_output=True, text=True).stdout
        for line in text.splitlines():
            match = re.search(r"=> (/\S+)", line)
            if match:
                out.add(os.path.realpath(match.group(1)))
    return out


def package_files(packages):
    """{resolved path} of every file the Debian packages install."""
    text = subprocess.run(["dpkg-query", "-L", *packages], capture_output=True,
                          text=True).stdout
    return {os.path.realpath(line) for line in text.splitlines() if line.startswith("/")}


class RuntimeDerivationTest(unittest.TestCase):
    """What the image's runtime stage gets, derived from the binaries built here."""

    @classmethod
    def setUpClass(cls):
        packages = subprocess.run([BOOTSTRAP, "--runtime-packages", *BINARIES],
                                  capture_output=True, text=True)
        assert packages.returncode == 0, packages.stderr
        cls.packages = packages.stdout.split()
        libraries = subprocess.run([BOOTSTRAP, "--runtime-libraries", *BINARIES],
                                   capture_output=True, text=True)
        assert libraries.returncode == 0, libraries.stderr
        cls.libraries = libraries.stdout.split()

    def test_runtime_packages(self):
        # What the daemons link (gRPC, protobuf, Abseil) and the Python client's modules.
        for expected in ("libgrpc++1.51", "libprotobuf32", "python3-grpcio", "python3-protobuf"):
            self.assertIn(expected, self.packages)
        for package in self.packages:
            self.assertFalse(package.endswith("-dev"), package)
            self.assertNotIn(package, ("g++", "cmake", "clang"))
            self.assertNotIn("torch", package, "LibTorch comes from the wheel, not Debian")
        installed = subprocess.run(["dpkg-query", "-W", "-f", "${Package}\n", *self.packages],
                                   capture_output=True, text=True)
        self.assertEqual(installed.returncode, 0, installed.stderr)

    def test_runtime_libraries_are_the_wheels(self):
        names = {os.path.basename(path) for path in self.libraries}
        self.assertIn("libtorch_cpu.so", names)
        self.assertIn("libc10.so", names)
        cuda_build = any(n.startswith("libtorch_cuda") for n in names)
        for path in self.libraries:
            self.assertTrue(os.path.isfile(path), path)
            self.assertIn("site-packages", path, "only the wheel's libraries are copied")
            if not cuda_build:
                self.assertFalse(os.path.basename(path).startswith(("libcudnn", "libnccl",
                                                                    "libcublas")), path)

    def test_packages_and_libraries_cover_everything_loaded(self):
        # Every library the binaries load is either copied or installed by a listed package,
        # so the runtime stage can start them (the image test runs them).
        provided = package_files(self.packages) | {os.path.realpath(p) for p in self.libraries}
        missing = sorted(loaded_libraries(BINARIES) - provided)
        self.assertEqual(missing, [])

    def test_dlopened_companions_and_their_closure(self):
        # cuDNN's front library opens its engines at run time: ldd cannot see them, the rule in
        # bootstrap adds them and what they load (a fake tree with the same names, built here).
        with tempfile.TemporaryDirectory() as d:
            def shared(name, *needed):
                flags = [f"-l:{n}" for n in needed]
                subprocess.run(["cc", "-shared", "-o", os.path.join(d, name), "-x", "c",
                                "/dev/null", f"-Wl,-soname,{name}", f"-L{d}",
                                "-Wl,-rpath,$ORIGIN", "-Wl,--no-as-needed", *flags],
                               check=True)
            shared("libhelper.so.1")
            shared("libcudnn_ops.so.9", "libhelper.so.1")
            shared("libcudnn.so.9")
            shared("libunrelated.so.1")
            shared("libfront.so", "libcudnn.so.9")
            result = subprocess.run([BOOTSTRAP, "--runtime-libraries",
                                     os.path.join(d, "libfront.so")],
                                    capture_output=True, text=True)
            self.assertEqual(result.returncode, 0, result.stderr)
            listed = sorted(os.path.basename(p) for p in result.stdout.split())
            self.assertEqual(listed, ["libcudnn.so.9", "libcudnn_ops.so.9", "libhelper.so.1"])

    def test_modes(self):
        result = subprocess.run([BOOTSTRAP, "--runtime", "/dev/stdin"], input="python3\nprocps\n",
                                capture_output=True, text=True)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertNotIn("installing", result.stderr)
        bad = subprocess.run([BOOTSTRAP, "--no-such-mode"], capture_output=True, text=True)
        self.assertEqual(bad.returncode, 2)
        missing = subprocess.run([BOOTSTRAP, "--runtime-libraries"], capture_output=True,
                                 text=True)
        self.assertEqual(missing.returncode, 2)


if __name__ == "__main__":
    unittest.main()
