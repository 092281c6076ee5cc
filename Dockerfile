# syntax=docker/dockerfile:1
# gptbuilder: one image for both daemons; the role is the argument.
#
#   scripts/image                                      CPU image gptbuilder:dev (docker or podman)
#   docker build -t gptbuilder:0.1.0 .                                   CPU (Debian 12)
#   docker build -t gptbuilder:0.1.0-cuda --build-arg VARIANT=cuda .     CUDA + NCCL
#   docker run --rm gptbuilder:0.1.0 coordinator --help
#   docker run --rm gptbuilder:0.1.0 worker --coordinator HOST:50051
#
# Both variants build from the same pinned torch wheel (scripts/python-requirements.txt), the
# same way: scripts/bootstrap --image installs the build packages and an environment holding only
# that wheel, CMake builds gptbd, gptb and the Python client's wheel, and two derivations from the
# binaries decide what the runtime stage gets: scripts/bootstrap --runtime-packages (the Debian
# packages owning the libraries they load, installed by scripts/bootstrap --runtime) and
# --runtime-libraries (the wheel's libraries they load, copied into /usr/local/lib/gptbuilder).
# The variants differ in one CMake flag and in what the CUDA build needs to compile: the CUDA
# compiler from PyPI at the CUDA version the wheel pins.
ARG VARIANT=cpu
ARG DEBIAN_IMAGE=debian:12-slim

FROM ${DEBIAN_IMAGE} AS os-cpu
ENV GPTB_BOOTSTRAP_MODE="--image" \
    GPTB_CMAKE_ARGS=""

# The driver comes from the node (NVIDIA container runtime); everything else from the wheel.
FROM ${DEBIAN_IMAGE} AS os-cuda
ENV GPTB_BOOTSTRAP_MODE="--image --cuda" \
    GPTB_CMAKE_ARGS="-DGPTB_WITH_CUDA=ON" \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

# ---- build ----------------------------------------------------------------------------------
FROM os-${VARIANT} AS build
WORKDIR /src
ENV GPTB_VENV=/opt/gptb-venv
# Dependencies first: this layer is reused until the package list or the pins change. pip
# trusts the CA bundle given as the build secret host_ca when there is one (scripts/image passes
# the host's, for networks whose TLS goes through an inspecting proxy); it is not kept.
COPY scripts/bootstrap scripts/python-requirements.txt scripts/
RUN --mount=type=cache,target=/root/.cache/pip --mount=type=secret,id=host_ca \
    if [ -s /run/secrets/host_ca ]; then export PIP_CERT=/run/secrets/host_ca; fi && \
    scripts/bootstrap ${GPTB_BOOTSTRAP_MODE} && rm -rf /var/lib/apt/lists/*
COPY . .
RUN if [ -n "${GPTB_CMAKE_ARGS}" ]; then \
      export CUDAToolkit_ROOT="$(scripts/bootstrap --cuda-root)" && \
      export PATH="${CUDAToolkit_ROOT}/bin:${PATH}"; \
    fi && \
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DGPTB_PYTHON=${GPTB_VENV}/bin/python \
      -DGPTB_BUILD_TESTS=OFF -DGPTB_BUILD_BENCH=OFF ${GPTB_CMAKE_ARGS} && \
    cmake --build build --target gptbd gptb gptb_python_wheel && \
    scripts/bootstrap --runtime-packages build/bin/gptbd build/bin/gptb > /runtime-packages && \
    site="/stage/lib/$(python3 -c 'import sys; print("python3.%d" % sys.version_info[1])')" && \
    site="$site/dist-packages" && \
    mkdir -p /stage/bin /stage/lib/gptbuilder /stage/share/gptbuilder/python "$site" && \
    scripts/bootstrap --runtime-libraries build/bin/gptbd build/bin/gptb | \
      xargs cp -L -t /stage/lib/gptbuilder/ && \
    cp build/bin/gptbd build/bin/gptb /stage/bin/ && \
    cp -r examples /stage/share/gptbuilder/examples && \
    cp clients/python/examples/*.py /stage/share/gptbuilder/python/ && \
    python3 -m zipfile -e build/dist/gptbuilder-*.whl "$site"

# ---- runtime --------------------------------------------------------------------------------
FROM os-${VARIANT} AS runtime
COPY scripts/bootstrap /usr/local/lib/gptbuilder-bootstrap
COPY --from=build /runtime-packages /usr/local/share/gptbuilder/runtime-packages
RUN /usr/local/lib/gptbuilder-bootstrap --runtime /usr/local/share/gptbuilder/runtime-packages && \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log
# gptbd and gptb in bin/, the wheel's libraries they load in lib/gptbuilder/ (found through the
# loader's cache: no LD_LIBRARY_PATH), the Python client's wheel unpacked where Debian's python3
# looks (lib/python3.11/dist-packages), the example configs and client scripts in share/.
COPY --from=build /stage/ /usr/local/
RUN echo /usr/local/lib/gptbuilder > /etc/ld.so.conf.d/gptbuilder.conf && ldconfig && \
    groupadd --system --gid 10001 gptb && \
    useradd --system --uid 10001 --gid gptb --home-dir /nonexistent --shell /usr/sbin/nologin gptb
ENV GPTB_EXAMPLES=/usr/local/share/gptbuilder/examples
# gRPC (coordinator, worker), Prometheus /metrics (coordinator, worker), the rendezvous store.
EXPOSE 50051 50052 9464 9465 29500
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/gptbd"]
CMD ["--help"]
