#!/usr/bin/env python3
"""Rows of names.toml for prometheus-nats-exporter's generic collector (`/varz`, `/routez`).

The generic collector (collector/collector.go, objectToMetrics and fqName) names a metric after
the JSON path of each value, so its names come from the server's answers. This script applies
those rules, written again here independently of the Rust code, to the recorded answers in
tests/fixtures/ (nats-server 2.15.1: ha, mesh, leaf) and rewrites the block between the
`# BEGIN generic` and `# END generic` lines of names.toml.

Run from apps/sea-nats-exporter after re-recording the fixtures:
    python3 names/derive_generic.py
"""
import glob
import json
import re

# collector.go: skipFQN and labelKeys.
SKIP = {"leaf", "trusted_operators_claim", "cluster_tls_timeout", "cluster_cluster_port",
        "cluster_auth_timeout", "gateway_port", "gateway_auth_timeout", "gateway_tls_timeout",
        "gateway_connect_retries"}
LABEL_KEYS = {"server_id", "server_name", "version", "domain", "leader", "name", "start",
              "config_load_time"}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
# nats-server counters that the Go exporter types as gauges: rate()/increase() are right on them.
CUMULATIVE = re.compile(r"^(in|out)_(client_)?(msgs|bytes)$|^slow_consumers$|^slow_consumer_stats_"
                        r"|^stale_connections$|^stale_connection_stats_|^total_connections$"
                        r"|^stalled_clients$|^jetstream_stats_api_(total|errors)$|^http_req_stats")
# Monitoring paths nats-server counts in /varz http_req_stats (one key each once requested).
PATHS = ["/", "/varz", "/connz", "/routez", "/gatewayz", "/leafz", "/subsz", "/accountz",
         "/accstatz", "/jsz", "/healthz", "/raftz", "/ipqueuesz", "/stacksz"]


def fq_name(path):
    s = "_".join(path).replace("/", "_")
    while "__" in s:
        s = s.replace("__", "_")
    return s.strip("_")


def pointer(path):
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in path)


def walk(obj, path, out):
    for key, value in obj.items():
        here = path + [key]
        fqn = fq_name(here)
        if fqn in SKIP or fqn in out:
            continue
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            out[fqn] = (["server_id"], here)
        elif isinstance(value, str) and key in LABEL_KEYS:
            labels = ["server_id"] if RFC3339.match(value) else ["server_id", "value"]
            out[fqn] = (labels, here)
        elif isinstance(value, dict):
            walk(value, here, out)


def rows(endpoint):
    found = {}
    for path in sorted(glob.glob("tests/fixtures/*/*.json")):
        answer = json.load(open(path)).get(endpoint)
        if answer:
            walk(answer, [], found)
    if endpoint == "varz":
        for p in PATHS:
            walk({"http_req_stats": {p: 0}}, [], found)
    out = []
    for fqn, (labels, path) in sorted(found.items()):
        extra = ", cumulative = true" if endpoint == "varz" and CUMULATIVE.search(fqn) else ""
        out.append(f'  {{ endpoint = "{endpoint}", name = "gnatsd_{endpoint}_{fqn}", type = "gauge", '
                   f'labels = {json.dumps(labels)}, requires = "{pointer(path)}"{extra} }},')
    return out


def main():
    text = open("names.toml").read()
    begin, end = "# BEGIN generic\n", "# END generic\n"
    head, rest = text.split(begin)
    _, tail = rest.split(end)
    block = "\n".join(rows("varz") + rows("routez")) + "\n"
    open("names.toml", "w").write(head + begin + block + end + tail)


if __name__ == "__main__":
    main()
