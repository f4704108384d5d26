// The test harness itself against a real MariaDB: servers, raw client, processes, metrics.
#include <doctest/doctest.h>
#include <signal.h>

#include <cmath>
#include <filesystem>
#include <string>

#include "tests/support/free_port.h"
#include "tests/support/mariadb_server.h"
#include "tests/support/metrics_scrape.h"
#include "tests/support/process.h"
#include "tests/support/raw_mysql.h"
#include "tests/support/sha1.h"

namespace sluice::test {
namespace {

std::string hex(const Sha1Digest& digest) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (auto byte : digest) {
    out += kDigits[byte >> 4];
    out += kDigits[byte & 15];
  }
  return out;
}

TEST_CASE("harness: sha1 matches the FIPS test vectors") {
  CHECK(hex(sha1("abc")) == "a9993e364706816aba3e25717850c26c9cd0d89d");
  CHECK(hex(sha1("")) == "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  CHECK(hex(sha1("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")) ==
        "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
}

TEST_CASE("harness: frames() splits at 0xFFFFFF and adds the empty trailer") {
  const std::string payload(0xFFFFFF, 'x');
  const std::string wire = frames(7, payload);
  REQUIRE(wire.size() == 4 + 0xFFFFFF + 4);
  CHECK(wire.substr(0, 4) == std::string("\xFF\xFF\xFF\x07", 4));
  CHECK(wire.substr(4 + 0xFFFFFF) == std::string("\x00\x00\x00\x08", 4));
  CHECK(frames(0, "ab") == std::string("\x02\x00\x00\x00"
                                       "ab",
                                       6));
}

TEST_CASE("harness: run_process captures output and exit codes, and enforces timeouts") {
  auto result =
      run_process({"sh", "-c", "echo out; echo err >&2; exit 3"}, std::chrono::seconds(30));
  CHECK(result.out == "out\n");
  CHECK(result.err == "err\n");
  CHECK(result.status.exited);
  CHECK(result.status.code == 3);
  CHECK_FALSE(result.timed_out);

  result = run_process({"cat"}, std::chrono::seconds(30), {.stdin_data = "piped"});
  CHECK(result.out == "piped");

  result = run_process({"sleep", "30"}, std::chrono::milliseconds(200));
  CHECK(result.timed_out);
  CHECK(result.status.signal == SIGKILL);

  CHECK_THROWS(run_process({"/nonexistent/program"}, std::chrono::seconds(5)));
}

TEST_CASE("harness: metric lookup matches label subsets and reports absent or ambiguous series") {
  const std::string text =
      "# HELP sluice_packets_total logical packets\n"
      "# TYPE sluice_packets_total counter\n"
      "sluice_packets_total{listener=\"main\",direction=\"client_to_server\"} 12\n"
      "sluice_packets_total{listener=\"main\",direction=\"server_to_client\"} 30\n"
      "sluice_buffered_bytes 0\n"
      "sluice_odd{listener=\"a\\\"b\"} NaN\n";
  CHECK(metric_value(text, "sluice_packets_total", {{"direction", "server_to_client"}}) == 30);
  CHECK(metric_value(text, "sluice_buffered_bytes") == 0);
  CHECK(std::isnan(metric_value(text, "sluice_odd", {{"listener", "a\"b"}})));
  CHECK(metric_sum(text, "sluice_packets_total", {{"listener", "main"}}) == 42);
  CHECK(metric_exists(text, "sluice_packets_total", {{"listener", "main"}}));
  CHECK_FALSE(metric_exists(text, "sluice_packets_total", {{"listener", "other"}}));
  CHECK_THROWS_WITH(metric_value(text, "sluice_packets_total", {{"listener", "main"}}),
                    doctest::Contains("ambiguous"));
  CHECK_THROWS_WITH(metric_value(text, "sluice_nope"), doctest::Contains("not found"));
}

TEST_CASE("harness: a MariaDbServer accepts TCP and socket logins and leaves nothing behind") {
  std::filesystem::path dir;
  pid_t pid = 0;
  {
    MariaDbServer server;
    dir = server.dir();
    pid = server.pid();
    CHECK(port_listening(server.port()));
    MysqlConn tcp(server.tcp_options());
    CHECK(tcp.scalar("SELECT @@port") == std::to_string(server.port()));
    CHECK(server.connect_socket().scalar("SELECT 1") == "1");
  }
  CHECK_FALSE(std::filesystem::exists(dir));
  CHECK(::kill(pid, 0) != 0);
}

TEST_CASE("harness: RawMysqlClient logs in, queries, and decodes ERR packets") {
  MariaDbServer server({.args = {"--max-allowed-packet=64M"},
                        .bootstrap_sql = "CREATE USER 'pw'@'localhost' IDENTIFIED BY 's3cret';"
                                         "GRANT ALL ON *.* TO 'pw'@'localhost';"});
  RawMysqlClient client;
  REQUIRE_MESSAGE(client.connect(server.port()), client.last_error());
  const auto login = client.handshake();
  REQUIRE_MESSAGE(login.logged_in, login.failure);
  CHECK(login.greeting.protocol_version == 10);
  CHECK(login.greeting.server_version.find("MariaDB") != std::string::npos);
  CHECK(login.last_seq == 2);

  auto result = client.query("SELECT 1 AS one, NULL AS nothing, 'x' AS ex");
  REQUIRE_MESSAGE(result.ok(), result.failure);
  REQUIRE(result.rows().size() == 1);
  CHECK(result.result_sets[0].columns == std::vector<std::string>{"one", "nothing", "ex"});
  CHECK(result.rows()[0][0] == "1");
  CHECK_FALSE(result.rows()[0][1].has_value());

  result = client.query("SELECT 1; SELECT 2, 3");
  REQUIRE(result.ok());
  REQUIRE(result.result_sets.size() == 2);
  CHECK(result.result_sets[1].rows[0][1] == "3");

  result = client.query("SELEC 1");
  REQUIRE(result.error.has_value());
  CHECK(result.error->code == 1064);
  CHECK(result.error->sqlstate == "42000");
  CHECK(result.error->seq == 1);
  CHECK(result.error->message.find("You have an error in your SQL syntax") == 0);

  // Multi-frame both ways: a 17 MB query and a 17 MB row.
  const std::string big(17'000'000, 'a');
  result = client.query("SELECT LENGTH('" + big + "')");
  REQUIRE_MESSAGE(result.ok(), result.failure);
  CHECK(result.rows()[0][0] == "17000000");
  result = client.query("SELECT REPEAT('b', 17000000)");
  REQUIRE_MESSAGE(result.ok(), result.failure);
  CHECK(result.rows()[0][0]->size() == 17'000'000);

  // mysql_native_password with a real password, right and wrong.
  RawMysqlClient with_password;
  REQUIRE_MESSAGE(with_password.connect(server.port()), with_password.last_error());
  const auto good = with_password.handshake("pw", "s3cret");
  CHECK_MESSAGE(good.logged_in, good.failure);
  RawMysqlClient wrong;
  REQUIRE_MESSAGE(wrong.connect(server.port()), wrong.last_error());
  const auto bad = wrong.handshake("pw", "nope");
  CHECK_FALSE(bad.logged_in);
  REQUIRE(bad.error.has_value());
  CHECK(bad.error->code == 1045);
  CHECK(bad.error->sqlstate == "28000");
  CHECK(wrong.is_closed(std::chrono::seconds(10)));
}

}  // namespace
}  // namespace sluice::test
