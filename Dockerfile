# The agent's image for those who build with Docker (or buildah/podman build) from a registry:
#
#   make && docker build -t xmesh:latest .
#
# `make image` builds the same image without any container registry (scripts/build-image.sh: a root
# filesystem of Debian's Essential packages made by mmdebstrap, smaller than debian:*-slim: no apt): same
# runtime packages (the Debian packages of the libraries build/xmesh is linked with;
# tests/e2e/test_image.sh checks that this list matches), same binary path, entrypoint and command. build/xmesh is linked against the build host's
# libraries: build it on the same Debian release as this base image (bookworm).
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libbpf1 libc6 libcurl4 libnghttp2-14 libnl-3-200 libpcre2-8-0 libssl3 libyaml-0-2 \
 && rm -rf /var/lib/apt/lists/*
COPY build/xmesh /usr/bin/xmesh
LABEL org.opencontainers.image.title=xmesh
ENTRYPOINT ["/usr/bin/xmesh"]
CMD ["--help"]
