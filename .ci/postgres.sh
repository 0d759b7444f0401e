#!/usr/bin/env bash
# A throwaway PostgreSQL server on loopback for the multi-worker sweep test
# (tests/test_sweep_postgres.py). Prints one line on stdout, the URL:
#   postgresql://USER:PASS@127.0.0.1:PORT/fitclass_test
# Everything else goes to stderr. Idempotent: when the server already answers, it only
# prints the URL. Installs the Debian `postgresql` package when no server binaries are found
# (needs root or sudo). Exits non-zero with a message when it cannot provide a server.
#
# Settings (environment): FITCLASS_PG_PORT (55432), FITCLASS_PG_DIR (data folder,
# /tmp/fitclass-postgres), FITCLASS_PG_USER (fitclass), FITCLASS_PG_PASSWORD (fitclass).
set -euo pipefail

PORT="${FITCLASS_PG_PORT:-55432}"
DATA="${FITCLASS_PG_DIR:-/tmp/fitclass-postgres}"
DB_USER="${FITCLASS_PG_USER:-fitclass}"
DB_PASS="${FITCLASS_PG_PASSWORD:-fitclass}"
DB_NAME="fitclass_test"
SOCKETS="$DATA/sockets"
URL="postgresql://$DB_USER:$DB_PASS@127.0.0.1:$PORT/$DB_NAME"

say() { echo "postgres.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }

# --- server binaries (initdb, pg_ctl, postgres, psql) ----------------------------------------
find_bindir() {
    local dir
    if command -v pg_config >/dev/null 2>&1; then
        dir="$(pg_config --bindir 2>/dev/null || true)"
        if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then echo "$dir"; return 0; fi
    fi
    # Debian/Ubuntu keep the server out of PATH: /usr/lib/postgresql/<major>/bin
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then echo "$dir"; return 0; fi
    done
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v initdb)"; return 0
    fi
    return 1
}

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo -n "$@"
    else return 1
    fi
}

if ! BIN="$(find_bindir)"; then
    command -v apt-get >/dev/null 2>&1 \
        || die "no PostgreSQL server binaries and no apt-get to install them"
    say "no PostgreSQL server binaries; installing the Debian postgresql package"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq >&2 || die "apt-get update failed (no root/sudo or no network?)"
    as_root apt-get install -y -qq postgresql >&2 || die "apt-get install postgresql failed"
    BIN="$(find_bindir)" || die "postgresql installed but initdb/pg_ctl not found"
fi
PSQL="$BIN/psql"
[[ -x "$PSQL" ]] || PSQL="$(command -v psql)" || die "psql not found"

# --- who runs the server: postgres refuses to run as root --------------------------------
if [[ $(id -u) -eq 0 ]]; then
    if ! id postgres >/dev/null 2>&1; then
        useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres \
            || die "cannot create the postgres system user"
    fi
    run_pg() { runuser -u postgres -- "$@"; }
else
    run_pg() { "$@"; }
fi

# Works as the database user over TCP with the password: the test's own view of "ready".
url_works() {
    PGPASSWORD="$DB_PASS" PGCONNECT_TIMEOUT=3 "$PSQL" -X -q -h 127.0.0.1 -p "$PORT" \
        -U "$DB_USER" -d "$DB_NAME" -tAc "select 1" >/dev/null 2>&1
}

if url_works; then
    echo "$URL"
    exit 0
fi

# --- a cluster of our own in $DATA, listening on 127.0.0.1 only ---------------------------
if [[ ! -f "$DATA/PG_VERSION" ]]; then
    say "initialising a cluster in $DATA"
    mkdir -p "$DATA"
    if [[ $(id -u) -eq 0 ]]; then chown postgres: "$DATA"; fi
    chmod 700 "$DATA"
    run_pg "$BIN/initdb" -D "$DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
        -E UTF8 >&2 || die "initdb failed in $DATA"
fi
run_pg mkdir -p "$SOCKETS"

if ! run_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    say "starting PostgreSQL on 127.0.0.1:$PORT"
    run_pg "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $PORT -c unix_socket_directories=$SOCKETS" \
        start >&2 || {
        tail -n 20 "$DATA/server.log" >&2 || true
        die "the server did not start (port $PORT taken?)"
    }
fi

# --- the user and the database (superuser over the private socket, trust auth) ------------
admin() {
    run_pg "$PSQL" -X -q -h "$SOCKETS" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"
}
if [[ -z "$(admin -tAc "select 1 from pg_roles where rolname = '$DB_USER'")" ]]; then
    admin -c "create role \"$DB_USER\" login password '$DB_PASS'" >&2 || die "cannot create role"
else
    admin -c "alter role \"$DB_USER\" login password '$DB_PASS'" >&2 || die "cannot set password"
fi
if [[ -z "$(admin -tAc "select 1 from pg_database where datname = '$DB_NAME'")" ]]; then
    admin -c "create database \"$DB_NAME\" owner \"$DB_USER\"" >&2 || die "cannot create database"
fi

url_works || die "the server runs but $DB_USER cannot connect to $DB_NAME on 127.0.0.1:$PORT"
echo "$URL"
