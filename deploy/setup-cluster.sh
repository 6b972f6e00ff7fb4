#!/bin/sh
# Prepare what deploy/compose.cluster.yaml mounts: secrets (broker passwords, the
# database password and URL) and the NATS users and permissions (deploy/nats/auth.conf).
# Safe to run again: existing secrets are kept, and auth.conf is regenerated from
# secrets/nats-users, where devices are added.
#
#   deploy/setup-cluster.sh                     # uses .venv/bin/python, else python3
#   echo 'pump-7:its-password' >> deploy/secrets/nats-users && deploy/setup-cluster.sh
#   docker compose -f deploy/compose.cluster.yaml kill -s SIGHUP nats-1 nats-2 nats-3
#
# Needs clawbeat importable by that Python. See docs/operations.md, "Cluster".
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
cd "$here"

if [ -n "${CLAWBEAT_PYTHON:-}" ]; then
    py=$CLAWBEAT_PYTHON
elif [ -x "$repo/.venv/bin/python" ]; then
    py=$repo/.venv/bin/python
else
    py=python3
fi
root=${CLAWBEAT_TOPIC_ROOT:-clawbeat/v1}
# Must be the replicas' CLAWBEAT_PARTITIONS and the 64 in nats/partitions.conf.
partitions=${CLAWBEAT_PARTITIONS:-64}
clawbeat() { (cd "$repo" && "$py" -m monitor.cli "$@"); }

umask 077
mkdir -p secrets

secret() {  # create secrets/$1 with a random value unless it exists
    [ -s "secrets/$1" ] || "$py" -c 'import secrets; print(secrets.token_urlsafe(24))' > "secrets/$1"
}
secret mqtt-monitor-password
secret mqtt-ops-password
secret postgres-password
# token_urlsafe output needs no escaping inside a URL.
printf 'postgresql://clawbeat:%s@postgres:5432/clawbeat\n' "$(cat secrets/postgres-password)" \
    > secrets/database-url

# name:password lines, one per broker user: the monitor (every replica logs in as it,
# each with a client id of its own), ops, and each device by its id.
users=secrets/nats-users
if [ ! -s "$users" ]; then
    printf 'monitor:%s\nops:%s\n' "$(cat secrets/mqtt-monitor-password)" \
        "$(cat secrets/mqtt-ops-password)" > "$users"
fi
chmod 0600 "$users"
clawbeat broker nats-auth --users "$here/$users" --root "$root" --partitions "$partitions" \
    --output "$here/nats/auth.conf"
# nats-server reads it as root inside its container; mode 600 keeps it from others here.
chmod 0600 nats/auth.conf

# Compose mounts file secrets as they are on the host (owner and mode kept), and the
# monitor runs as uid 10001: make the ones it reads readable, keep the directory private.
chmod 0700 secrets
chmod 0644 secrets/mqtt-monitor-password secrets/mqtt-ops-password secrets/postgres-password \
    secrets/database-url
echo "ready: docker compose -f $here/compose.cluster.yaml up -d --build"
