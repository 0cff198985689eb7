#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for the suite over the PostgreSQL
# engine: a temporary folder, an unprivileged user (PostgreSQL refuses
# root), a loopback port, TLS with a self-signed CA, password (SCRAM)
# authentication, fsync and synchronous_commit on.
#
#   eval "$(./Scripts/postgres.sh start)"   # exports PV_TEST_POSTGRES_URL, PV_TEST_POSTGRES_DIR
#   ./Scripts/postgres.sh stop "$PV_TEST_POSTGRES_DIR"
#
# The URL names the CA (`sslrootcert`) and asks for `sslmode=verify-full`.
set -euo pipefail
bin=/usr/lib/postgresql/15/bin
user=pvpostgres
port=${PV_TEST_POSTGRES_PORT:-54329}
as_user() {
    if [ "$(id -u)" = 0 ]; then runuser -u "$user" -- "$@"; else "$@"; fi
}
case "${1:-}" in
start)
    if [ "$(id -u)" = 0 ] && ! id "$user" >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin "$user"
    fi
    # Some machines' images make the root folder 0700: no other user can
    # reach a program, PostgreSQL's included. The search bit alone for
    # others (no listing) lets the server's user run it.
    if [ "$(id -u)" = 0 ] && ! as_user /bin/true 2>/dev/null; then
        chmod o+x /
    fi
    dir=$(mktemp -d /tmp/pv-postgres.XXXXXX)
    chmod 755 "$dir"
    password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
    # A CA of this run and a server certificate for localhost it signs.
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=PatientVault test CA" \
        -keyout "$dir/ca.key" -out "$dir/ca.crt" >/dev/null 2>&1
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
        -keyout "$dir/server.key" -out "$dir/server.csr" >/dev/null 2>&1
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$dir/san.ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial -days 2 \
        -extfile "$dir/san.ext" -out "$dir/server.crt" >/dev/null 2>&1
    chmod 600 "$dir/server.key"
    printf '%s\n' "$password" >"$dir/pwfile"
    [ "$(id -u)" = 0 ] && chown -R "$user" "$dir"
    as_user "$bin/initdb" -D "$dir/data" -U patientvault --pwfile="$dir/pwfile" \
        --auth-local=scram-sha-256 --auth-host=scram-sha-256 >"$dir/initdb.log" 2>&1
    cat >>"$dir/data/postgresql.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
max_connections = 400
shared_buffers = 128MB
fsync = on
synchronous_commit = on
ssl = on
ssl_cert_file = '$dir/server.crt'
ssl_key_file = '$dir/server.key'
CONF
    as_user "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
    PGPASSWORD=$password as_user "$bin/createdb" -h 127.0.0.1 -p "$port" -U patientvault patientvault
    echo "export PV_TEST_POSTGRES_DIR='$dir'"
    echo "export PV_TEST_POSTGRES_URL='postgres://patientvault:$password@localhost:$port/patientvault?sslmode=verify-full&sslrootcert=$dir/ca.crt'"
    ;;
stop)
    dir=${2:?usage: postgres.sh stop DIR}
    as_user "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
*)
    echo "usage: $0 start | stop DIR" >&2
    exit 2
    ;;
esac
