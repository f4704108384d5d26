# Sourced by the bench scripts: a scratch MariaDB in $WORK/db on a free loopback port, with
# sysbench's one-table point-select data. Sets DB_PORT and SB (the sysbench command, without
# --mysql-port); writes the server's pid to $WORK/db.pid for the caller's cleanup.
# Extra mariadbd options may be passed as arguments to start_scratch_db.

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_scratch_db() {
  DB_PORT=$(free_port)
  mariadb-install-db --datadir="$WORK/db" --auth-root-authentication-method=normal --skip-test-db >/dev/null 2>&1
  mariadbd --no-defaults --datadir="$WORK/db" --user=root --port="$DB_PORT" --socket="$WORK/db.sock" \
    --bind-address=127.0.0.1 --skip-log-bin "$@" >"$WORK/db.log" 2>&1 &
  echo $! >"$WORK/db.pid"
  for _ in $(seq 100); do mariadb -h127.0.0.1 -P"$DB_PORT" -uroot -e 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.2; done
  mariadb -h127.0.0.1 -P"$DB_PORT" -uroot -e 'CREATE DATABASE sbtest'
  SB=(sysbench oltp_point_select --db-driver=mysql --mysql-host=127.0.0.1 --mysql-user=root
    --mysql-db=sbtest --tables=1 --table-size=10000)
  "${SB[@]}" --mysql-port="$DB_PORT" prepare >/dev/null
}
