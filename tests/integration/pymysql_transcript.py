#!/usr/bin/python3
# PyMySQL session script: runs one fixed workload against host:port and prints a transcript of what the client saw.
#
#   pymysql_transcript.py PORT DATABASE
#
# Every step prints one JSON line: its name and what PyMySQL returned (rows or
# a digest of them, column metadata, affected rows, warnings, or the error code
# and message). Nothing that differs between two connections to the same server
# (thread ids, timings, ports) goes into it, so the transcript of a run through
# sluice must equal the transcript of a direct run against the same server:
# pymysql_test.cc compares the two. Exit status 0 unless the script itself broke.
import hashlib
import json
import os
import sys
import tempfile

import pymysql
import pymysql.constants.CLIENT as CLIENT
import pymysql.cursors

PORT = int(sys.argv[1])
DB = sys.argv[2]
BLOB = 20 * 1024 * 1024


def emit(step, **what):
    print(json.dumps({"step": step, **what}, sort_keys=True, default=str), flush=True)


def connect(**kw):
    args = dict(host="127.0.0.1", port=PORT, user="root", password="", charset="utf8mb4",
                local_infile=True, client_flag=CLIENT.MULTI_STATEMENTS,
                max_allowed_packet=64 * 1024 * 1024, connect_timeout=30, read_timeout=120,
                write_timeout=120)
    args.update(kw)
    return pymysql.connect(**args)


def digest(rows):
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def describe(cursor):
    if cursor.description is None:
        return None
    return [list(d) for d in cursor.description]


def run(conn, step, sql, args=None, many=None, rows="all"):
    """Executes `sql` and prints what came back: rows (all, or a digest), metadata, counts."""
    cur = conn.cursor()
    try:
        n = cur.executemany(sql, many) if many is not None else cur.execute(sql, args)
        got = cur.fetchall()
        # The OK/EOF packet's warning count (PyMySQL keeps it on the result).
        warnings = getattr(getattr(conn, "_result", None), "warning_count", None)
        out = {"affected": n, "description": describe(cur), "warnings": warnings}
        if rows == "all":
            out["rows"] = [list(r) for r in got]
        else:
            out["count"] = len(got)
            out["digest"] = digest(got)
        out["insert_id"] = cur.lastrowid
        emit(step, **out)
    except pymysql.MySQLError as e:
        emit(step, error=list(e.args))
    finally:
        cur.close()


def main():
    conn = connect()
    emit("greeting", server_version=conn.get_server_info(), protocol=conn.protocol_version,
         capabilities=conn.server_capabilities, charset=conn.server_charset,
         status=conn.server_status)
    run(conn, "create database", f"CREATE DATABASE {DB}")
    conn.select_db(DB)
    emit("select_db", db=DB)
    run(conn, "create table",
        "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(64), price DECIMAL(10,2), "
        "seen DATETIME(6), data BLOB, note TEXT CHARACTER SET utf8mb4) ENGINE=InnoDB")
    run(conn, "executemany", "INSERT INTO t (id, name, price, seen, data, note) VALUES "
        "(%s, %s, %s, %s, %s, %s)",
        many=[(i, f"name {i}", f"{i}.{i % 100:02d}", f"2026-01-{1 + i % 28:02d} 12:00:00.{i:06d}",
               bytes([i % 256]) * (i % 300), "zażółć gęślą jaźń 🐬" * (i % 5))
              for i in range(2000)])
    conn.commit()
    run(conn, "select all", "SELECT * FROM t ORDER BY id", rows="digest")
    run(conn, "select params", "SELECT id, name, price FROM t WHERE id IN %s ORDER BY id",
        args=((3, 5, 7),))
    run(conn, "unicode round trip", "SELECT %s AS s, LENGTH(%s) AS l, CHAR_LENGTH(%s) AS c",
        args=("🐬 ÿ ñ 中文",) * 3)
    run(conn, "warning", "SELECT CAST('12abc' AS INTEGER) AS v")
    run(conn, "show warnings", "SHOW WARNINGS")
    run(conn, "no such table", "SELECT * FROM no_such_table")
    run(conn, "syntax error", "SELEKT 1")
    run(conn, "duplicate key", "INSERT INTO t (id) VALUES (1)")
    run(conn, "after errors", "SELECT COUNT(*), SUM(price) FROM t")

    # Several statements in one COM_QUERY: every result set in order.
    cur = conn.cursor()
    sets = []
    try:
        cur.execute("SELECT 1 AS a; SELECT 2 AS b, 'x' AS c; UPDATE t SET name = 'z' WHERE id < 10; "
                    "SELECT name FROM t WHERE id < 3 ORDER BY id; DO 1")
        while True:
            sets.append({"rowcount": cur.rowcount, "rows": [list(r) for r in cur.fetchall()],
                         "description": describe(cur)})
            if not cur.nextset():
                break
        emit("multi statements", sets=sets)
    except pymysql.MySQLError as e:
        emit("multi statements", sets=sets, error=list(e.args))
    cur.close()
    conn.commit()

    # A stored procedure: two result sets, an OUT parameter, and the final status.
    run(conn, "create procedure",
        "CREATE PROCEDURE p(IN n INT, OUT total INT) BEGIN "
        "SELECT id FROM t WHERE id < n ORDER BY id; SELECT COUNT(*) FROM t; "
        "SELECT SUM(id) INTO total FROM t WHERE id < n; END")
    cur = conn.cursor()
    try:
        cur.callproc("p", (5, 0))
        sets = []
        while True:
            sets.append([list(r) for r in cur.fetchall()])
            if not cur.nextset():
                break
        cur.execute("SELECT @_p_1")
        emit("callproc", sets=sets, out=[list(r) for r in cur.fetchall()])
    except pymysql.MySQLError as e:
        emit("callproc", error=list(e.args))
    cur.close()

    # An unbuffered result read in part, then abandoned: PyMySQL drains the
    # rest, and the connection takes the next query.
    cur = conn.cursor(pymysql.cursors.SSCursor)
    cur.execute("SELECT seq, REPEAT('r', 100) FROM seq_1_to_200000")
    first = [list(cur.fetchone()) for _ in range(3)]
    many = cur.fetchmany(1000)
    cur.close()
    emit("unbuffered partial", first=first, next_count=len(many), next_last=list(many[-1]))
    run(conn, "after unbuffered", "SELECT 42")

    # LOAD DATA LOCAL INFILE: the server asks for the file, the client sends it.
    with tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False) as f:
        for i in range(100000, 150000):
            f.write(f"{i}\tloaded {i}\t{i % 1000}.5\n")
        path = f.name
    try:
        run(conn, "load data local",
            f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE t (id, name, price)")
        # The server names the missing file in its error: a fixed name keeps
        # the transcript the same from run to run.
        missing = os.path.join(os.path.dirname(path), "sluice-pymysql-no-such-file.tsv")
        run(conn, "local missing file",
            f"LOAD DATA LOCAL INFILE '{missing}' INTO TABLE t (id, name, price)")
    finally:
        os.unlink(path)
    run(conn, "after load", "SELECT COUNT(*), SUM(id), SUM(price) FROM t")
    conn.commit()

    # A 20 MiB value in (one COM_QUERY of two packet frames) and back.
    blob = bytes((i * 7) % 251 for i in range(256)) * (BLOB // 256)
    run(conn, "blob table", "CREATE TABLE b (id INT PRIMARY KEY, v LONGBLOB)")
    run(conn, "blob insert", "INSERT INTO b VALUES (1, %s)", args=(blob,))
    cur = conn.cursor()
    cur.execute("SELECT v FROM b WHERE id = 1")
    back = cur.fetchone()[0]
    cur.close()
    emit("blob select", length=len(back), same=back == blob)

    # Transactions, autocommit, ping.
    conn.begin()
    run(conn, "in transaction", "DELETE FROM t WHERE id < 100")
    conn.rollback()
    run(conn, "after rollback", "SELECT COUNT(*) FROM t WHERE id < 100")
    conn.autocommit(True)
    emit("autocommit", value=conn.get_autocommit())
    conn.ping(reconnect=False)
    emit("ping", ok=True)
    run(conn, "session variable", "SET @v = 'kept'")
    run(conn, "variable kept", "SELECT @v")

    # Other users: a password login, a wrong password, an unknown database.
    # Both hosts: 127.0.0.1 is 'localhost' unless the server skips name resolving.
    for host in ("localhost", "127.0.0.1"):
        run(conn, f"create user @{host}", f"CREATE USER 'pyu'@'{host}' IDENTIFIED BY 'secret'")
        run(conn, f"grant @{host}", f"GRANT SELECT ON {DB}.* TO 'pyu'@'{host}'")
    try:
        other = connect(user="pyu", password="secret", database=DB)
        run(other, "password login", "SELECT CURRENT_USER(), DATABASE(), COUNT(*) FROM t")
        run(other, "not granted", "DELETE FROM t")
        other.close()
    except pymysql.MySQLError as e:
        emit("password login", error=list(e.args))
    for step, kw in (("wrong password", dict(user="pyu", password="nope")),
                     ("unknown database", dict(database="no_such_db"))):
        try:
            connect(**kw).close()
            emit(step, error=None)
        except pymysql.MySQLError as e:
            emit(step, error=list(e.args))

    run(conn, "drop database", f"DROP DATABASE {DB}")
    run(conn, "drop user", "DROP USER 'pyu'@'localhost', 'pyu'@'127.0.0.1'")
    conn.close()
    emit("closed", open=conn.open)


if __name__ == "__main__":
    main()
