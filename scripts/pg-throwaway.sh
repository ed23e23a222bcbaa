# Sourced by scripts/test and scripts/bench: starts a throwaway PostgreSQL from the local
# installation (PG_BIN, default /usr/lib/postgresql/15/bin) on a free loopback port, exports
# PG_TEST_URL, and stops and removes it when the calling script exits.
# initdb refuses to run as root, so as root the server runs as the postgres user.

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
if [ ! -x "$PG_BIN/initdb" ]; then
  echo "no PostgreSQL at $PG_BIN; install it, set PG_BIN, or set PG_TEST_URL" >&2
  exit 2
fi
pgdir=$(mktemp -d /tmp/afpg.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
as_pg=()
pguser=$(id -un)
if [ "$(id -u)" = 0 ]; then
  as_pg=(runuser -u postgres --)
  pguser=postgres
  chown postgres: "$pgdir"
fi
chmod 700 "$pgdir"
pg_cleanup() {
  "${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$pgdir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$pgdir"
}
trap pg_cleanup EXIT
"${as_pg[@]}" "$PG_BIN/initdb" -D "$pgdir/data" -U "$pguser" --auth=trust --locale=C.UTF-8 -E UTF8 >"$pgdir/initdb.log" 2>&1 \
  || { cat "$pgdir/initdb.log" >&2; exit 1; }
"${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$pgdir/data" -l "$pgdir/server.log" -w -t 30 \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $pgdir ${PG_EXTRA_OPTS:-} -c max_connections=300" \
  start >/dev/null || { cat "$pgdir/server.log" >&2; exit 1; }
"$PG_BIN/pg_isready" -h 127.0.0.1 -p "$port" -t 30 >/dev/null
export PG_TEST_URL="postgres://$pguser@127.0.0.1:$port/postgres"
