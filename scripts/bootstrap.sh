#!/usr/bin/env bash
# Make this machine able to run clawbeat (and, with --tests, its tests): Debian packages
# (Mosquitto and its clients, openssl; for the tests also the PostgreSQL server binaries
# for throwaway clusters, nats-server for the cluster partition test and Chromium for the
# dashboard test), then a virtualenv with
# the project and its dev tools. Safe to run repeatedly; does nothing that is done.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
tests=false
[ "${1:-}" = "--tests" ] && tests=true

if $tests && ! command -v pg_config >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    need+=(postgresql)
fi
python3 -c "import venv, ensurepip" >/dev/null 2>&1 || need+=(python3-venv)
command -v make >/dev/null 2>&1 || need+=(make)
# The dashboard's browser test drives the system Chromium (never `playwright install`).
if $tests; then
    command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need+=(chromium)
    command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || need+=(nats-server)
fi

if [ ${#need[@]} -gt 0 ]; then
    echo "bootstrap: installing ${need[*]}" >&2
    if [ "$(id -u)" -eq 0 ]; then SUDO=(); elif command -v sudo >/dev/null 2>&1; then SUDO=(sudo); else
        echo "bootstrap: please install: ${need[*]} (apt-get install ${need[*]})" >&2; exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq
    # The postgresql package would start its own cluster; the tests never use it, they
    # start throwaway clusters from the binaries.
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

VENV=${VENV:-.venv}
stamp="$VENV/.clawbeat-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e '.[dev]'
    touch "$stamp"
fi
