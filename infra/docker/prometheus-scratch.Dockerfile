# The Prometheus image for machines without a registry: nothing is pulled.
# Built by `cargo xtask image --prometheus` (infra/src/deployment/image/worker.rs embeds this file)
# from the host's prometheus binary (Debian's package), the shared libraries `ldd` lists for it
# (in rootfs/ at their paths, the dynamic loader included) and Debian's busybox-static (its
# `wget` serves the compose health check). User 65534, its TSDB in /prometheus, HTTP on
# 0.0.0.0:9090; the compose files' `observe` profile mounts the configuration at
# /etc/prometheus/prometheus.yml and the alert rules beside it.
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox --install -s /bin && mkdir -p /prometheus /etc/prometheus /tmp && chown 65534:65534 /prometheus && chmod 1777 /tmp"]
COPY rootfs/ /
COPY prometheus /bin/prometheus
ENV PATH=/bin
WORKDIR /prometheus
LABEL sea.local="true" org.opencontainers.image.title="prometheus (SEA local build from the host's binary)"
USER 65534:65534
EXPOSE 9090
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus", "--web.listen-address=0.0.0.0:9090"]
