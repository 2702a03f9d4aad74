# The nats-server image for machines without a registry: nothing is pulled.
# Built by `cargo xtask image` from the resolved static nats-server and Debian's
# busybox-static (its `wget` serves the compose health check). Not edited by hand
# elsewhere: infra/src/deployment/image.rs embeds this file.
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY nats-server /bin/nats-server
ENV PATH=/bin
WORKDIR /
LABEL sea.local="true" org.opencontainers.image.title="nats-server (SEA local build)"
EXPOSE 4222 6222 7222 7422 8222
# Like the official image: arguments starting with `-` go to nats-server.
ENTRYPOINT ["/bin/nats-server"]
CMD ["--config", "/etc/nats/nats.conf"]
