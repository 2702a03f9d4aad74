#!/bin/sh
# Kept for muscle memory only: provisioning is `cargo xtask provision` (see docs/configuration.md).
exec cargo xtask provision "$@"
