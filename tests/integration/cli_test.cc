// The `mariadb` command-line client through sluice: queries, error output, TLS and compression.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "tests/support/mariadb_cli.h"
#include "tests/support/mariadb_server.h"
#include "tests/support/metrics_scrape.h"
#include "tests/support/process.h"
#include "tests/support/target.h"
#include "tests/support/tls_certs.h"

namespace sluice::test {
namespace {

std::string describe(const ProcessResult& result) {
  return result.status.describe() + (result.timed_out ? " (timed out)" : "") + "\nstdout:\n" +
         result.out + "\nstderr:\n" + result.err;
}

TEST_CASE("cli: SELECT through sluice") {
  MariaDbServer server;
  Target target(server);
  const auto result = mariadb_cli(target.port(), {"-e", "SELECT 1 + 1, 'sluice', NULL"});
  REQUIRE_MESSAGE(result.status.success(), describe(result));
  CHECK(result.out == "2\tsluice\tNULL\n");
  CHECK(result.err.empty());
}

TEST_CASE("cli: CREATE, INSERT and SELECT through sluice") {
  MariaDbServer server;
  Target target(server);
  const auto result = mariadb_cli(
      target.port(),
      {"-e",
       "CREATE DATABASE app; USE app;"
       "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20), price DECIMAL(8,2));"
       "INSERT INTO items VALUES (1, 'bolt', 0.25), (2, 'nut', 0.10), (3, 'washer', NULL);"
       "UPDATE items SET price = 0.05 WHERE id = 3;"
       "SELECT id, name, price FROM items ORDER BY id;"
       "SELECT COUNT(*), SUM(price) FROM items;"});
  REQUIRE_MESSAGE(result.status.success(), describe(result));
  CHECK(result.out == "1\tbolt\t0.25\n2\tnut\t0.10\n3\twasher\t0.05\n3\t0.40\n");
  // The rows really are on the server.
  CHECK(server.connect_socket().scalar("SELECT GROUP_CONCAT(name ORDER BY id) FROM app.items") ==
        "bolt,nut,washer");
}

TEST_CASE("cli: an SQL error prints exactly what a direct connection prints") {
  MariaDbServer server;
  Target target(server);
  const std::vector<std::string> bad = {"-e", "SELECT 1; SELEC 2"};
  const auto proxied = mariadb_cli(target.port(), bad);
  const auto direct = mariadb_cli(server.port(), bad);
  CHECK(proxied.status.exited);
  CHECK(proxied.status.code == 1);
  CHECK(proxied.out == "1\n");
  // (The 10.11 client echoes the failing statement between dashes first.)
  CHECK(proxied.err.find("\nERROR 1064 (42000) at line 1: You have an error in your SQL syntax") !=
        std::string::npos);
  CHECK(proxied.err == direct.err);
  CHECK(proxied.out == direct.out);

  // A server-side error after a successful statement, in the same session.
  const std::vector<std::string> missing = {"-e", "SELECT 1; USE nope"};
  const auto proxied_missing = mariadb_cli(target.port(), missing);
  CHECK(proxied_missing.err.find("ERROR 1049 (42000) at line 1: Unknown database 'nope'\n") !=
        std::string::npos);
  CHECK(proxied_missing.err == mariadb_cli(server.port(), missing).err);
}

TEST_CASE("cli: mariadb --ssl passes TLS through to a server with generated certificates") {
  TlsCerts certs;
  MariaDbServer server({.args = certs.server_args()});
  Target target(server);
  // The server certificate names 127.0.0.1, so the client can verify it even
  // though it talks to sluice: TLS is end to end, sluice only moves the bytes.
  const auto result = mariadb_cli(
      target.port(), {"--ssl", "--ssl-ca=" + certs.ca_cert(), "--ssl-verify-server-cert", "-e",
                      "SELECT VARIABLE_VALUE <> '' FROM information_schema.SESSION_STATUS "
                      "WHERE VARIABLE_NAME = 'Ssl_cipher';"
                      "SELECT LENGTH(REPEAT('t', 200000)), MD5(REPEAT('t', 200000));"});
  REQUIRE_MESSAGE(result.status.success(), describe(result));
  CHECK(result.out ==
        "1\n200000\t" + server.connect_socket().scalar("SELECT MD5(REPEAT('t', 200000))") + "\n");
}

TEST_CASE(
    "cli: a mariadb --ssl query longer than wait_timeout is not cut as idle, an idle TLS session "
    "is") {
  TlsCerts certs;
  MariaDbServer server({.args = certs.server_args()});
  Target target(server, {.listener = {{"wait_timeout", "2s"}}});
  // Inside TLS sluice cannot see commands; the client spoke last, so a
  // request is in flight and wait_timeout does not run (mysqld's does not).
  const auto result = mariadb_cli(
      target.port(), {"--ssl", "--ssl-ca=" + certs.ca_cert(), "-e", "SELECT SLEEP(3), 'done'"});
  REQUIRE_MESSAGE(result.status.success(), describe(result));
  CHECK(result.out == "0\tdone\n");
  if (target.direct()) return;
  CHECK(metric_value(http_get(target.sluice()->metrics_port()), "sluice_timeouts_total",
                     {{"listener", "main"}, {"kind", "idle"}}) == 0);

  // A TLS session idle after the server's last answer still goes at
  // wait_timeout (PyMySQL, whose connection can be held open idle).
  const std::string script =
      "import pymysql, sys, time\n"
      "c = pymysql.connect(host='127.0.0.1', port=int(sys.argv[1]), user='root',\n"
      "                    ssl={'ca': sys.argv[2]})\n"
      "cur = c.cursor(); cur.execute('SELECT 1'); print(cur.fetchone()[0])\n"
      "time.sleep(3.5)\n"
      "try:\n"
      "    cur.execute('SELECT 2'); print('still open')\n"
      "except pymysql.err.OperationalError as e:\n"
      "    print('closed', e.args[0])\n";
  const auto idle = run_process(
      {"/usr/bin/python3", "-c", script, std::to_string(target.port()), certs.ca_cert()},
      std::chrono::minutes(1));
  REQUIRE_MESSAGE(idle.status.success(), describe(idle));
  CHECK(idle.out.starts_with("1\nclosed "));
  CHECK(metric_value(http_get(target.sluice()->metrics_port()), "sluice_timeouts_total",
                     {{"listener", "main"}, {"kind", "idle"}}) == 1);
}

TEST_CASE("cli: mariadb --compress works through sluice") {
  MariaDbServer server;
  Target target(server);
  const auto result =
      mariadb_cli(target.port(), {"--compress", "-e",
                                  "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS "
                                  "WHERE VARIABLE_NAME = 'Compression';"
                                  "SELECT LENGTH(REPEAT('z', 3000000)), MD5(REPEAT('z', 3000000));"
                                  "SELECT LENGTH(RANDOM_BYTES(1024));"});
  REQUIRE_MESSAGE(result.status.success(), describe(result));
  CHECK(result.out == "ON\n3000000\t" +
                          server.connect_socket().scalar("SELECT MD5(REPEAT('z', 3000000))") +
                          "\n1024\n");
}

}  // namespace
}  // namespace sluice::test
