# The exporter image for machines without a registry: nothing is pulled.
# Built by `cargo xtask image --exporter` (infra/src/deployment/image/worker.rs embeds this file)
# from a sea-nats-exporter built on the host, the shared libraries `ldd` lists for it (in
# rootfs/ at their paths, the dynamic loader included) and Debian's busybox-static. User 65532,
# /metrics and /healthz on 0.0.0.0:7777; the Kubernetes manifests run it as a sidecar of each
# nats-server pod (deploy/k8s/statefulset.yaml), the compose files' `observe` profile as the
# `sea-nats-exporter` service.
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox --install -s /bin && mkdir -p /tmp && chmod 1777 /tmp"]
COPY rootfs/ /
COPY sea-nats-exporter /usr/local/bin/sea-nats-exporter
ENV PATH=/usr/local/bin:/bin EXPORTER_ADDR=0.0.0.0:7777
WORKDIR /
LABEL sea.local="true" org.opencontainers.image.title="sea-nats-exporter (SEA local build)"
USER 65532:65532
EXPOSE 7777
ENTRYPOINT ["/usr/local/bin/sea-nats-exporter"]
