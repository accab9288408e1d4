# One image for the whole suite: every service and tool binary, on Debian bookworm-slim with only
# the runtime libraries. The command chooses the program:
#
#   docker build -t iotpipe:$(cat VERSION) .
#   docker run --rm iotpipe:0.1.0 cleaner --help
#
# tools/image-check.sh verifies, without a container engine, that RUNTIME_PACKAGES installs on
# bookworm-slim and provides every shared library the binaries link against.

ARG DEBIAN_SUITE=bookworm

FROM debian:${DEBIAN_SUITE} AS build
# The -dev packages of the runtime libraries below, and the compiler.
ARG BUILD_PACKAGES="build-essential pkg-config librdkafka-dev libpaho-mqtt-dev libjansson-dev libpq-dev libmicrohttpd-dev zlib1g-dev"
RUN apt-get update \
	&& DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${BUILD_PACKAGES} \
	&& rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make -j"$(nproc)" all \
	&& strip --strip-unneeded bin/*

FROM debian:${DEBIAN_SUITE}-slim AS runtime
# The only packages the runtime stage adds. tools/image-check.sh reads this line: keep the list on
# it. ca-certificates is the trust store for mqtts://, Kafka TLS and PostgreSQL sslmode=verify-*.
ARG RUNTIME_PACKAGES="ca-certificates libjansson4 libmicrohttpd12 libpaho-mqtt1.3 libpq5 librdkafka1 zlib1g"
RUN apt-get update \
	&& DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${RUNTIME_PACKAGES} \
	&& rm -rf /var/lib/apt/lists/*
# A fixed numeric user, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
RUN groupadd --system --gid 10001 iotpipe \
	&& useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
		--shell /usr/sbin/nologin iotpipe
COPY --from=build /src/bin/ /usr/local/bin/
# The PostgreSQL DDL for raw-saver --migrate, found relative to the working directory.
COPY --from=build /src/schemas/ /usr/share/iotpipe/schemas/
WORKDIR /usr/share/iotpipe

ARG VERSION=0.0.0
LABEL org.opencontainers.image.title="iotpipe" \
	org.opencontainers.image.description="IoT sensor data from MQTT through Kafka into PostgreSQL" \
	org.opencontainers.image.version="${VERSION}"

USER 10001:10001
# Metrics, /healthz and /readyz, when a program is started with --metrics-port 9464.
EXPOSE 9464
CMD ["sh", "-c", "echo 'usage: docker run IMAGE PROGRAM [OPTIONS]   (PROGRAM --help for its options)'; echo 'programs:'; ls /usr/local/bin"]
