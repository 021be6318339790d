#!/bin/bash
# The entrypoint of a harness primary on an image that carries an initdb template
# (label org.pgstandby.template, see lab/image/Dockerfile). It is the image's own
# docker-entrypoint.sh, sourced, with two steps replaced: instead of running initdb, it
# unpacks the template (made by the same initdb when the image was built) into PGDATA; and
# the superuser's password, which initdb would have set, is set with POSTGRES_DB's check.
# Every other step runs unchanged and in the same order: the `host all all all`
# pg_hba.conf line, the temporary socket-only server, /docker-entrypoint-initdb.d/
# (lab/setup-primary.sh: the replication role and its pg_hba.conf line), then "PostgreSQL
# init process complete", then the server.
#
# The temporary server is waited for by polling every 10 ms rather than pg_ctl -w's 100 ms.
#
#   usage: primary-init.sh postgres [server options...]
set -Eeo pipefail

# shellcheck source=/dev/null
source /usr/local/bin/docker-entrypoint.sh

if [ "$(id -u)" = 0 ]; then
	docker_setup_env
	docker_create_db_directories
	# as the entrypoint does, but re-running this file (not docker-entrypoint.sh)
	exec env HOME=/var/lib/postgresql USER=postgres LOGNAME=postgres \
		setpriv --reuid=postgres --regid=postgres --init-groups bash "${BASH_SOURCE[0]}" "$@"
fi

docker_init_database_dir() {
	printf 'unpacking the initdb template %s (made by initdb --username=postgres when the image was built)\n' \
		"$PGSTANDBY_TEMPLATE"
	tar -xf "$PGSTANDBY_TEMPLATE" -C "$PGDATA"
}

# initdb would have set the password from POSTGRES_PASSWORD; the template has none. One
# psql for it and for the entrypoint's own step (create POSTGRES_DB unless it exists).
docker_setup_db() {
	# POSTGRES_DB='' only stops docker_process_sql from adding --dbname; :'db' must see
	# the real name, hence the expansion of the outer value on the same line
	# shellcheck disable=SC2097,SC2098
	POSTGRES_DB='' docker_process_sql --dbname postgres --quiet --set pw="$POSTGRES_PASSWORD" \
		--set user="$POSTGRES_USER" --set db="$POSTGRES_DB" <<-'EOSQL'
		ALTER ROLE :"user" PASSWORD :'pw';
		SELECT format('CREATE DATABASE %I', :'db')
		WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')
		\gexec
	EOSQL
}

_pgstandby_wait() {  # usage: _pgstandby_wait up|down
	local _
	for _ in $(seq 1 3000); do
		if [ "$1" = up ]; then
			pg_isready -q -h /var/run/postgresql -p "${PGPORT:-5432}" && return 0
		else
			[ -e "$PGDATA/postmaster.pid" ] || return 0
		fi
		sleep 0.01
	done
	printf 'error: the temporary server did not come %s in 30 s\n' "$1" >&2
	return 1
}

docker_temp_server_start() {
	if [ "$1" = 'postgres' ]; then
		shift
	fi
	set -- "$@" -c listen_addresses='' -p "${PGPORT:-5432}"
	PGUSER="${PGUSER:-$POSTGRES_USER}" pg_ctl -D "$PGDATA" -o "$(printf '%q ' "$@")" -W start
	_pgstandby_wait up
}

docker_temp_server_stop() {
	PGUSER="${PGUSER:-postgres}" pg_ctl -D "$PGDATA" -m fast -W stop
	_pgstandby_wait down
}

_main "$@"
