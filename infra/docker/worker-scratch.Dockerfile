# The worker image for machines without a registry: nothing is pulled.
# Built by `cargo xtask image --worker` (infra/src/deployment/image/worker.rs embeds this file)
# from a sea-mq-worker built on the host, the shared libraries `ldd` lists for it (in rootfs/
# at their paths, the dynamic loader included) and Debian's busybox-static (its `wget` serves
# the compose health check). Same contract as apps/sea-mq-worker/Dockerfile: user 65532, a
# /data it can write (the SQLite inbox), HTTP on 0.0.0.0:8080.
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox --install -s /bin && mkdir -p /data /tmp && chown 65532:65532 /data && chmod 1777 /tmp"]
COPY rootfs/ /
COPY sea-mq-worker /usr/local/bin/sea-mq-worker
ENV PATH=/usr/local/bin:/bin HTTP_ADDR=0.0.0.0:8080
WORKDIR /
LABEL sea.local="true" org.opencontainers.image.title="sea-mq-worker (SEA local build)"
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/sea-mq-worker"]
