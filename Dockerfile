# syntax=docker/dockerfile:1
# gptbuilder: one image for both daemons; the role is the argument.
#
#   docker build -t gptbuilder:0.1.0 .                                   CPU (Debian 12)
#   docker build -t gptbuilder:0.1.0-cuda --build-arg VARIANT=cuda .     CUDA + NCCL
#   docker run --rm gptbuilder:0.1.0 coordinator --help
#   docker run --rm gptbuilder:0.1.0 worker --coordinator HOST:50051
#
# Stages: os-cpu / os-cuda (the base for VARIANT), build (scripts/bootstrap installs the one
# package list, CMake builds gptbd, gptb and the Python client, and scripts/bootstrap
# --runtime-packages derives the runtime packages from the binaries), runtime (installs only
# those, through scripts/bootstrap --runtime, and runs as a non-root user).

# cpu: Debian 12 and Debian's CPU LibTorch. cuda: Debian 12 plus NVIDIA's CUDA repository for
# Debian 12, and a CUDA-enabled LibTorch (cxx11 ABI) unpacked into /opt/libtorch.
ARG VARIANT=cpu
ARG DEBIAN_IMAGE=debian:12-slim
ARG CUDA_REPO=https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64
ARG CUDA_VERSION=12-1
ARG LIBTORCH_URL=https://download.pytorch.org/libtorch/cu121/libtorch-cxx11-abi-shared-with-deps-2.1.2%2Bcu121.zip

FROM ${DEBIAN_IMAGE} AS os-cpu
ENV GPTB_BOOTSTRAP_MODE="" \
    GPTB_CMAKE_ARGS=""

FROM ${DEBIAN_IMAGE} AS os-cuda
ARG CUDA_REPO
ARG CUDA_VERSION
ADD ${CUDA_REPO}/cuda-keyring_1.1-1_all.deb /tmp/cuda-keyring.deb
RUN dpkg -i /tmp/cuda-keyring.deb && rm /tmp/cuda-keyring.deb
ENV GPTB_BOOTSTRAP_MODE="--cuda" \
    GPTB_CUDA_VERSION=${CUDA_VERSION} \
    GPTB_CMAKE_ARGS="-DGPTB_WITH_CUDA=ON -DCMAKE_PREFIX_PATH=/opt/libtorch" \
    PATH=/usr/local/cuda/bin:${PATH} \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

# ---- build ----------------------------------------------------------------------------------
FROM os-${VARIANT} AS build
ARG VARIANT
ARG LIBTORCH_URL
WORKDIR /src
COPY scripts/bootstrap scripts/bootstrap
RUN scripts/bootstrap ${GPTB_BOOTSTRAP_MODE} && rm -rf /var/lib/apt/lists/*
RUN if [ "${VARIANT}" = "cuda" ]; then \
      curl -fsSL -o /tmp/libtorch.zip "${LIBTORCH_URL}" && \
      unzip -q /tmp/libtorch.zip -d /opt && rm /tmp/libtorch.zip; \
    else mkdir -p /opt/libtorch/lib; fi
COPY . .
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DGPTB_BUILD_TESTS=OFF -DGPTB_BUILD_BENCH=OFF ${GPTB_CMAKE_ARGS} && \
    cmake --build build --target gptbd gptb gptb_python_client && \
    scripts/bootstrap --runtime-packages build/bin/gptbd build/bin/gptb > /runtime-packages && \
    mkdir -p /stage/bin /stage/share/gptbuilder/python /stage/lib/gptbuilder && \
    cp build/bin/gptbd build/bin/gptb /stage/bin/ && \
    cp -r examples /stage/share/gptbuilder/examples && \
    cp clients/python/examples/*.py /stage/share/gptbuilder/python/ && \
    cp -r build/python /stage/lib/gptbuilder/python && \
    find /stage/lib/gptbuilder/python -name __pycache__ -prune -exec rm -rf {} +

# ---- runtime --------------------------------------------------------------------------------
FROM os-${VARIANT} AS runtime
COPY scripts/bootstrap /usr/local/lib/gptbuilder/bootstrap
COPY --from=build /runtime-packages /usr/local/lib/gptbuilder/runtime-packages
RUN /usr/local/lib/gptbuilder/bootstrap --runtime /usr/local/lib/gptbuilder/runtime-packages && \
    rm -rf /var/lib/apt/lists/*
# A CUDA LibTorch's libraries come from no package (an empty directory for the CPU variant).
COPY --from=build /opt/libtorch/lib /opt/libtorch/lib
COPY --from=build /stage/ /usr/local/
RUN groupadd --system --gid 10001 gptb && \
    useradd --system --uid 10001 --gid gptb --home-dir /nonexistent --shell /usr/sbin/nologin gptb
ENV LD_LIBRARY_PATH=/opt/libtorch/lib \
    PYTHONPATH=/usr/local/lib/gptbuilder/python \
    GPTB_EXAMPLES=/usr/local/share/gptbuilder/examples
# gRPC (coordinator, worker), Prometheus /metrics (coordinator, worker), the rendezvous store.
EXPOSE 50051 50052 9464 9465 29500
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/gptbd"]
CMD ["--help"]
