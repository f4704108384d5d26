// Compressed sessions: framed by their compressed headers, limits on the uncompressed lengths.
#include <doctest/doctest.h>
#include <mysql.h>
#include <zlib.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/limits_support.h"
#include "tests/support/mariadb_cli.h"
#include "tests/support/mariadb_server.h"
#include "tests/support/metrics_scrape.h"
#include "tests/support/mysql_conn.h"
#include "tests/support/process.h"
#include "tests/support/target.h"
#include "tests/support/temp_dir.h"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;

// `mariadb --compress` against port with `sql` on stdin.
ProcessResult compressed_cli(int port, const std::string& sql,
                             const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args = {"--compress", "--max-allowed-packet=64M"};
  args.insert(args.end(), extra.begin(), extra.end());
  return mariadb_cli(port, args, sql);
}

// A statement whose COM_QUERY payload (1 command byte + the text) is exactly `payload` bytes.
std::string query_of_payload(std::size_t payload) {
  const std::string head = "SELECT LENGTH('";
  const std::string tail = "')";
  return head + std::string(payload - 1 - head.size() - tail.size(), 'q') + tail;
}

TEST_CASE("compression: queries, result sets and tracking work in a compressed session") {
  MariaDbServer server;
  Target target(server);
  const auto r = compressed_cli(target.port(),
                                "SELECT 1;\n"
                                "SELECT COUNT(*) > 100 FROM information_schema.columns;\n"
                                "SELECT LENGTH(REPEAT('z', 3000000));\n");
  REQUIRE_MESSAGE(r.status.success(), r.err);
  CHECK(r.out == "1\n1\n3000000\n");
  if (target.direct()) return;
  const std::string m = http_get(target.sluice()->metrics_port());
  CHECK(metric_value(m, "sluice_compressed_sessions_total", {{"listener", "main"}}) == 1);
  CHECK(metric_value(m, "sluice_response_tracking_lost_total", {{"listener", "main"}}) == 0);
  CHECK(metric_value(m, "sluice_commands_total", {{"command", "COM_QUERY"}}) >= 3);
  CHECK(metric_value(m, "sluice_command_duration_seconds_count", {{"command", "COM_QUERY"}}) ==
        metric_value(m, "sluice_commands_total", {{"command", "COM_QUERY"}}));
}

// A deflated frame whose stream ends before the frame does (bytes after the
// stream's end): mysqld's uncompress() ignores them and answers. sluice used
// to ask inflate for them forever, which took no input, and its worker spun
// with every session on it. (Found by fuzz_compressed_framer.)
TEST_CASE(
    "compression: a frame with bytes after its deflate stream's end is answered, and its worker "
    "goes on") {
  MariaDbServer server;
  Target target(server, {.top = {{"workers", "1"}}});
  using limits::le;
  auto client = limits::raw_login(target.port(), CLIENT_COMPRESS);
  const std::string ping = frames(0, "\x0e");
  uLongf size = compressBound(ping.size());
  std::string deflated(size, '\0');
  REQUIRE(compress2(reinterpret_cast<Bytef*>(deflated.data()), &size,
                    reinterpret_cast<const Bytef*>(ping.data()), ping.size(), 6) == Z_OK);
  deflated.resize(size);
  deflated += "trailing";
  REQUIRE(client->send_raw(le(deflated.size(), 3) + std::string(1, '\0') + le(ping.size(), 3) +
                           deflated));
  const Packet ok = limits::read_stored_packet(*client, 1);
  CHECK(ok.seq == 1);
  REQUIRE(!ok.payload.empty());
  CHECK(ok.payload[0] == '\0');
  // A frame declaring more inflated bytes than its stream gives: mysqld's
  // uncompress() takes what the stream ends with.
  REQUIRE(client->send_raw(le(deflated.size(), 3) + std::string(1, '\0') + le(ping.size() + 5, 3) +
                           deflated));
  const Packet ok2 = limits::read_stored_packet(*client, 1);
  REQUIRE(!ok2.payload.empty());
  CHECK(ok2.payload[0] == '\0');
  // The session and the worker go on: another session on it logs in and queries.
  auto other = limits::raw_login(target.port());
  const QueryResult r = other->query("SELECT 'after'");
  REQUIRE(r.ok());
  CHECK(r.rows()[0][0] == "after");
}

// A client frame sluice cannot inflate: mysqld would just close; sluice says
// why (1158), at the sequence id the client expects for its command's
// answer, in a stored frame, then closes. Nothing reaches the server.
TEST_CASE(
    "compression: a client frame that cannot be inflated gets 1158 at seq 1, then the close") {
  MariaDbServer server;
  Target target(server);
  if (target.direct()) {
    MESSAGE("direct mode: the ERR is sluice's (mysqld closes without one)");
    return;
  }
  MysqlConn monitor(server.socket_options());
  auto client = limits::raw_login(target.port(), CLIENT_COMPRESS);
  const long long before = limits::server_bytes_from_others(monitor);
  using limits::le;
  const std::string garbage(40, '\x5a');
  REQUIRE(client->send_raw(le(garbage.size(), 3) + std::string(1, '\0') + le(100, 3) + garbage));
  const Packet err = limits::read_stored_packet(*client, 1);
  CHECK(err.seq == 1);
  const auto parsed = parse_err(err);
  REQUIRE(parsed.has_value());
  CHECK(parsed->code == 1158);
  CHECK(parsed->sqlstate == "08S01");
  limits::expect_closed(*client);
  CHECK(limits::server_bytes_from_others(monitor) == before);
}

// An idle compressed session holds no inflate state: a worker's sessions
// share one scratch, and zlib's state and window (about 40 KiB each way) are
// lent only while a deflated frame is open. They used to stay with the
// session: 77 KiB per idle session after a result like this one, against
// under 2 KiB for a plain session.
TEST_CASE("compression: idle compressed sessions cost sluice under 10 KiB of RSS each") {
  MariaDbServer server;
  Target target(server, {.top = {{"workers", "1"}}});
  if (target.direct()) {
    MESSAGE("direct mode: sluice's memory");
    return;
  }
  SluiceProcess* sluice = target.sluice();
  ConnectOptions options = target.options();
  options.compress = true;
  // Both directions deflated: a query of 50 bytes or more, and a result
  // that does not compress away.
  const std::string sql =
      "SELECT REPEAT(CONCAT(RAND(), 'a'), 5000) /* long enough to be deflated */";
  auto open = [&](std::vector<std::unique_ptr<MysqlConn>>& conns, int n) {
    for (int i = 0; i < n; ++i) {
      conns.push_back(std::make_unique<MysqlConn>(options));
      REQUIRE(conns.back()->scalar(sql).size() > 50000);
    }
  };
  std::vector<std::unique_ptr<MysqlConn>> warm;
  open(warm, 10);  // allocator pools and the worker's inflate streams settle first
  std::this_thread::sleep_for(300ms);
  const long before = sluice->rss_kib();
  constexpr int kSessions = 120;
  std::vector<std::unique_ptr<MysqlConn>> conns;
  open(conns, kSessions);
  std::this_thread::sleep_for(300ms);
  const long after = sluice->rss_kib();
  const double per_session = static_cast<double>(after - before) / kSessions;
  MESSAGE("sluice RSS ", before, " -> ", after, " KiB with ", kSessions,
          " idle compressed sessions: ", per_session, " KiB each");
  CHECK(per_session < 10);
  const std::string m = http_get(sluice->metrics_port());
  CHECK(metric_value(m, "sluice_compressed_sessions_total", {{"listener", "main"}}) ==
        kSessions + 10);
}

// Connector/C writes one compressed frame per command: sluice holds the
// commands after the 64th outstanding one frame by frame, and the session
// stays tracked.
TEST_CASE("compression: 300 commands pipelined by Connector/C are answered in order, tracked") {
  MariaDbServer server;
  Target target(server);
  ConnectOptions options = target.options();
  options.compress = true;
  MysqlConn conn(options);
  auto scrape = [&] {
    return target.direct() ? std::string() : http_get(target.sluice()->metrics_port());
  };
  const std::string before = scrape();
  constexpr int kCommands = 300;
  for (int i = 0; i < kCommands; ++i) {
    const std::string sql = "SELECT " + std::to_string(i);
    REQUIRE_MESSAGE(mysql_send_query(conn.get(), sql.data(), sql.size()) == 0,
                    mysql_error(conn.get()));
  }
  for (int i = 0; i < kCommands; ++i) {
    CAPTURE(i);
    REQUIRE_MESSAGE(mysql_read_query_result(conn.get()) == 0, mysql_error(conn.get()));
    MYSQL_RES* result = mysql_store_result(conn.get());
    REQUIRE(result != nullptr);
    MYSQL_ROW row = mysql_fetch_row(result);
    REQUIRE(row != nullptr);
    CHECK(std::string(row[0]) == std::to_string(i));
    mysql_free_result(result);
  }
  CHECK(conn.scalar("SELECT 'after'") == "after");
  if (target.direct()) return;
  const std::string after = scrape();
  const Labels main = {{"listener", "main"}};
  CHECK(metric_value(after, "sluice_response_tracking_lost_total", main) ==
        metric_value(before, "sluice_response_tracking_lost_total", main));
  const Labels query = {{"listener", "main"}, {"command", "COM_QUERY"}};
  CHECK(metric_value(after, "sluice_command_duration_seconds_count", query) -
            metric_value(before, "sluice_command_duration_seconds_count", query) ==
        kCommands + 1);
}

TEST_CASE("compression: max_allowed_packet applies to the uncompressed packet") {
  MariaDbServer server({.args = {"--max-allowed-packet=64M"}});
  SluiceConfig config;
  config.listener = {{"max_allowed_packet", "1M"}};
  Target target(server, config);
  if (target.direct()) return;  // the limit under test is sluice's
  // Highly compressible: a few KiB on the wire, 1 MiB - 1 and 1 MiB uncompressed.
  const auto pass = compressed_cli(target.port(), query_of_payload((1 << 20) - 1) + ";\n");
  REQUIRE_MESSAGE(pass.status.success(), pass.err);
  CHECK(pass.out == std::to_string((1 << 20) - 1 - 17 - 1) + "\n");
  const auto refused = compressed_cli(target.port(), query_of_payload(1 << 20) + ";\n");
  CHECK(refused.status.code == 1);
  CHECK(refused.err.find("ERROR 1153 (08S01)") != std::string::npos);
  CHECK(refused.err.find("Got a packet bigger than 'max_allowed_packet' bytes") !=
        std::string::npos);
  const std::string m = http_get(target.sluice()->metrics_port());
  CHECK(metric_value(m, "sluice_oversized_packets_total",
                     {{"direction", "client_to_server"}, {"action", "close"}}) == 1);
}

TEST_CASE(
    "compression: LOAD DATA LOCAL and a packet of exactly 0xFFFFFF bytes, which both end with an "
    "empty packet, reach the server") {
  MariaDbServer server({.args = {"--max-allowed-packet=64M"},
                        .bootstrap_sql = "CREATE DATABASE d; CREATE TABLE d.t (a INT, b TEXT);"});
  // A frame held for good would show as a read timeout: make that quick.
  Target target(server, {.listener = {{"net_read_timeout", "5s"}}});
  TempDir dir("sluice-compress-infile");
  std::string rows;
  for (int i = 0; i < 1000; ++i) rows += std::to_string(i) + "\trow " + std::to_string(i) + "\n";
  write_file(dir / "rows.tsv", rows);
  write_file(dir / "empty.tsv", "");
  const std::string sql = "LOAD DATA LOCAL INFILE '" + (dir / "rows.tsv").string() +
                          "' INTO TABLE d.t;\n"
                          "LOAD DATA LOCAL INFILE '" +
                          (dir / "empty.tsv").string() +
                          "' INTO TABLE d.t;\n"
                          "SELECT COUNT(*), SUM(a) FROM d.t;\n" +
                          query_of_payload(0xFFFFFF) + ";\n";
  const auto r = compressed_cli(target.port(), sql, {"--local-infile=1"});
  REQUIRE_MESSAGE(r.status.success(), r.err);
  CHECK(r.out == "1000\t499500\n" + std::to_string(0xFFFFFF - 1 - 17) + "\n");
  if (target.direct()) return;
  const std::string m = http_get(target.sluice()->metrics_port());
  CHECK(metric_value(m, "sluice_compressed_sessions_total", {{"listener", "main"}}) == 1);
  CHECK(metric_value(m, "sluice_timeouts_total", {{"listener", "main"}, {"kind", "read"}}) == 0);
}

TEST_CASE(
    "compression: a server packet of 16 MiB or more over max_server_packet reaches the client as "
    "1153, none of it before") {
  MariaDbServer server({.args = {"--max-allowed-packet=64M"}});
  Target target(server, {.listener = {{"max_server_packet", "20M"}}});
  if (target.direct()) return;  // the limit under test is sluice's
  ConnectOptions options = target.options();
  options.compress = true;
  MysqlConn conn(options);
  // Two inner frames under the limit pass whole.
  const std::size_t legal = 18u << 20;
  CHECK(conn.scalar("SELECT REPEAT('y', " + std::to_string(legal) + ")") ==
        std::string(legal, 'y'));
  // The second inner frame crosses it: the first, held, goes with it, and
  // the ERR takes the packet's place (a client given part of it would report
  // a malformed packet, 2027, instead). The result's metadata shares the
  // held frame with the row's start, so the query itself may fail.
  const std::string over = "SELECT REPEAT('y', " + std::to_string(30u << 20) + ")";
  MYSQL_RES* result = nullptr;
  if (mysql_real_query(conn.get(), over.data(), over.size()) == 0) {
    result = mysql_store_result(conn.get());
  }
  CHECK(result == nullptr);
  if (result != nullptr) mysql_free_result(result);
  CHECK(mysql_errno(conn.get()) == 1153);
  CHECK(std::string(mysql_sqlstate(conn.get())) == "08S01");
  CHECK(std::string(mysql_error(conn.get())) ==
        "Got a packet bigger than 'max_allowed_packet' bytes");
  const std::string m = http_get(target.sluice()->metrics_port());
  CHECK(metric_value(m, "sluice_oversized_packets_total",
                     {{"direction", "server_to_client"}, {"action", "close"}}) == 1);
  // Every buffer goes back once the closing session's linger ends.
  CHECK(limits::wait_buffered_zero(target.sluice()->metrics_port(), 10s));
}

}  // namespace
}  // namespace sluice::test
