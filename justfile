# Thin wrappers over `cargo xtask`: every recipe is one command, the logic lives in xtask.
# `just` itself: `pip install rust-just` or `cargo install just`.

# List the recipes.
default:
    @just --list

# The whole verification sequence, PASS/FAIL per step (`just verify --keep`, `--json`).
verify *args:
    cargo xtask verify {{args}}

# One failure drill under load: node-kill, rolling-restart, partition, quorum-loss, worker-crash.
drill name *args:
    cargo xtask drill {{name}} {{args}}

# A seeded random schedule of faults under load, audited per fault (`just chaos --duration 3m --seed 7`).
chaos *args:
    cargo xtask chaos {{args}}

# What CI runs: nats-server, fmt, clippy and the whole test suite.
ci-quick:
    cargo xtask test

# Start a profile (single, ha, mesh, leaf) and wait for the health gate (`just up ha --backend compose`).
up profile="ha" *args:
    cargo xtask up --profile {{profile}} {{args}}

# Build the local nats-server image FROM scratch (no registry needed) for the compose files;
# `just image --worker` also builds the worker's.
image *args:
    cargo xtask image {{args}}

# Regenerate the committed configs, compose files and Kubernetes manifests from the model.
render *args:
    cargo xtask render {{args}}

# Two gateway-joined clusters, sea-a (4422-4424) and sea-b (5422-5424).
mesh-up *args:
    cargo xtask mesh-up {{args}}

# Stop the servers this project started (`just down --purge` also deletes their data).
down *args:
    cargo xtask down {{args}}

# Table of servers: URLs, health, meta leader, routes (`just status --json`).
status *args:
    cargo xtask status {{args}}

# Exit 0 only when every server passes the health gate.
health *args:
    cargo xtask health {{args}}

# What this machine has (`just doctor --install` installs nats-server).
doctor *args:
    cargo xtask doctor {{args}}

# Create or update streams and consumers from the spec (`just provision --check`).
provision *args:
    cargo xtask provision {{args}}
