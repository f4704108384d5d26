// Packet limits through sluice: max_allowed_packet / max_server_packet boundaries (single and
// multi-frame), close and reject (and where reject falls back to close), configured errors seen
// by the mariadb CLI and Connector/C, and the oversized / packet-size metrics.
#include <doctest/doctest.h>
#include <errmsg.h>
#include <mysql.h>

#include <signal.h>

#include <cstring>
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
#include "tests/support/raw_mysql.h"
#include "tests/support/target.h"
#include "tests/support/temp_dir.h"

namespace sluice::test::limits {
namespace {

using namespace std::chrono_literals;

// Server-side limit for tests where sluice decides: far above sluice's.
const std::string kServerBig = "--max-allowed-packet=1G";

// In direct mode the server itself must enforce the limit the test expects
// (this is how the expectations are checked against MariaDB's own behaviour).
std::string server_limit_arg(const std::string& limit) {
  return direct_mode() ? "--max-allowed-packet=" + limit : kServerBig;
}

struct Oversized {
  double c2s_close = 0, c2s_reject = 0, s2c_close = 0, s2c_reject = 0;
};

Oversized oversized(Target& target, const std::string& listener = "main") {
  Oversized counts;
  if (target.direct()) return counts;
  const std::string text = http_get(target.sluice()->metrics_port());
  auto value = [&](const char* direction, const char* action) {
    return metric_value(text, "sluice_oversized_packets_total",
                        {{"listener", listener}, {"direction", direction}, {"action", action}});
  };
  counts.c2s_close = value("client_to_server", "close");
  counts.c2s_reject = value("client_to_server", "reject");
  counts.s2c_close = value("server_to_client", "close");
  counts.s2c_reject = value("server_to_client", "reject");
  return counts;
}

// The oversized counters moved by exactly these amounts since `before`.
void check_oversized_delta(Target& target, const Oversized& before, double c2s_close,
                           double c2s_reject, double s2c_close,
                           const std::string& listener = "main") {
  if (target.direct()) return;
  const Oversized after = oversized(target, listener);
  CHECK(after.c2s_close - before.c2s_close == c2s_close);
  CHECK(after.c2s_reject - before.c2s_reject == c2s_reject);
  CHECK(after.s2c_close - before.s2c_close == s2c_close);
  CHECK(after.s2c_reject - before.s2c_reject == 0);
}

// Sends a COM_QUERY of exactly `size` payload bytes and checks the server's
// answer: the number of fill bytes, i.e. the whole packet arrived intact.
void expect_query_passes(RawMysqlClient& client, std::size_t size) {
  std::size_t fill = 0;
  const std::string payload = sized_query(size, &fill);
  REQUIRE(payload.size() == size);
  REQUIRE_MESSAGE(client.send_packet(0, payload, 120s), client.last_error());
  const RawResponse response = read_response(client);
  REQUIRE_MESSAGE(response.ok(), why(response));
  REQUIRE(response.rows.size() == 1);
  CHECK(response.rows[0][0] == std::to_string(fill));
}

// Sends a logical packet of `size` payload bytes that the proxy must refuse.
// The send may fail once the proxy has closed: what counts is what comes back.
void send_refused(RawMysqlClient& client, std::size_t size, std::uint8_t seq = 0) {
  const std::string payload = sized_query(size);
  client.send_packet(seq, payload, 60s);
}

std::string describe(const ProcessResult& result) {
  return result.status.describe() + (result.timed_out ? " (timed out)" : "") + "\nstdout:\n" +
         result.out + "\nstderr:\n" + result.err;
}

// ---------------------------------------------------------------------------
// Client -> server boundaries, on_oversized: close
// ---------------------------------------------------------------------------

TEST_CASE("limits: a 1M limit passes 1048575 payload bytes and refuses 1048576 with 1153") {
  MariaDbServer server({.args = {server_limit_arg("1M")}});
  Target target(server, {.listener = {{"max_allowed_packet", "1M"}}});
  MysqlConn monitor(server.socket_options());

  auto keeper = raw_login(target.port());
  expect_query_passes(*keeper, 1048575);
  CHECK(keeper->query("SELECT 1").ok());

  const Oversized before = oversized(target);
  auto client = raw_login(target.port());
  REQUIRE(wait_server_sessions(monitor, 2, 30s));
  const long long bytes_before = server_bytes_from_others(monitor);
  send_refused(*client, 1048576);
  // One past the offending frame's id (0), as MariaDB sends it itself.
  expect_err(*client, 1153, "08S01", kPacketTooLargeMessage, 1);
  expect_closed(*client);
  // Both sides close: the server session behind it is gone, the other one stays.
  CHECK_MESSAGE(wait_server_sessions(monitor, 1, 30s), "server session not closed");
  if (!target.direct()) {
    CHECK_MESSAGE(server_bytes_from_others(monitor) == bytes_before,
                  "the server received bytes of the refused packet");
  }
  check_oversized_delta(target, before, 1, 0, 0);
  // The other session is untouched.
  const auto after = keeper->query("SELECT 'still here'");
  REQUIRE(after.ok());
  CHECK(after.rows()[0][0] == "still here");
}

// mysqld refuses a packet only when it reads it, after answering every
// command sent before it: a pipelining client gets those answers first.
TEST_CASE("limits: close answers a pipelined command before refusing the packet behind it") {
  MariaDbServer server({.args = {server_limit_arg("1M")}});
  Target target(server, {.listener = {{"max_allowed_packet", "1M"}}});
  MysqlConn monitor(server.socket_options());
  auto client = raw_login(target.port());
  REQUIRE(wait_server_sessions(monitor, 1, 30s));
  const Oversized before = oversized(target);
  const long long bytes_before = server_bytes_from_others(monitor);
  // Without waiting for SLEEP's answer, a 1,048,576-byte COM_QUERY (seq 0).
  const std::string slow = com_query("SELECT SLEEP(1), 'late'");
  REQUIRE(client->send_packet(0, slow));
  send_refused(*client, 1048576);
  const RawResponse first = read_response(*client, 30s);
  REQUIRE_MESSAGE(first.ok(), target.name() << ": " << why(first));
  REQUIRE(first.rows.size() == 1);
  CHECK(first.rows[0][1] == "late");
  // Count, definitions, EOF, row, EOF: seq 1, 2, ... as the server sent them.
  for (std::size_t i = 0; i < first.packets.size(); ++i) {
    CHECK(int{first.packets[i].seq} == static_cast<int>(i + 1));
  }
  // Then the refusal, one past the refused frame's id (0), and the end.
  expect_err(*client, 1153, "08S01", kPacketTooLargeMessage, 1);
  expect_closed(*client);
  CHECK_MESSAGE(wait_server_sessions(monitor, 0, 30s), "server session not closed");
  if (!target.direct()) {
    CHECK_MESSAGE(
        server_bytes_from_others(monitor) - bytes_before == static_cast<long long>(slow.size() + 4),
        "the server received bytes of the refused packet");
  }
  check_oversized_delta(target, before, 1, 0, 0);
}

TEST_CASE("limits: a 20M limit passes a two-frame 20M-1 packet and refuses 20M at frame 2") {
  MariaDbServer server({.args = {server_limit_arg("20M")}});
  Target target(server, {.listener = {{"max_allowed_packet", "20M"}}});
  MysqlConn monitor(server.socket_options());

  auto keeper = raw_login(target.port());
  expect_query_passes(*keeper, 20 * kMiB - 1);  // frames of 16777215 + 4194304 bytes

  const Oversized before = oversized(target);
  auto client = raw_login(target.port());
  REQUIRE(wait_server_sessions(monitor, 2, 30s));
  const long long bytes_before = server_bytes_from_others(monitor);
  send_refused(*client, 20 * kMiB);  // frames of 16777215 (seq 0) + 4194305 (seq 1)
  // The second frame's header crosses the limit: one past its id.
  expect_err(*client, 1153, "08S01", kPacketTooLargeMessage, 2);
  expect_closed(*client);
  CHECK(wait_server_sessions(monitor, 1, 30s));
  if (!target.direct()) {
    // The legal first frame that sluice may have held never reached the server.
    CHECK_MESSAGE(server_bytes_from_others(monitor) == bytes_before,
                  "the server received part of the refused packet");
  }
  check_oversized_delta(target, before, 1, 0, 0);
  CHECK(keeper->query("SELECT 1").ok());
}

TEST_CASE("limits: a 16M limit passes 0xFFFFFF bytes (full frame + empty frame) and refuses 16M") {
  MariaDbServer server({.args = {server_limit_arg("16M")}});
  Target target(server, {.listener = {{"max_allowed_packet", "16M"}}});
  MysqlConn monitor(server.socket_options());

  auto keeper = raw_login(target.port());
  // 16777215 bytes: a full frame and the empty trailer, both must be forwarded.
  expect_query_passes(*keeper, 0xFFFFFF);
  CHECK(keeper->query("SELECT 1").ok());

  const Oversized before = oversized(target);
  auto client = raw_login(target.port());
  send_refused(*client, 16 * kMiB);  // 0xFFFFFF (seq 0) + 1 byte (seq 1)
  expect_err(*client, 1153, "08S01", kPacketTooLargeMessage, 2);
  expect_closed(*client);
  CHECK(wait_server_sessions(monitor, 1, 30s));
  check_oversized_delta(target, before, 1, 0, 0);
}

TEST_CASE("limits: a limit of 0xFFFFFF bytes passes 0xFFFFFE and refuses a full frame at once") {
  // MariaDB rounds max_allowed_packet to 1K, so this one is sluice's alone.
  MariaDbServer server({.args = {kServerBig}});
  Target target(server, {.listener = {{"max_allowed_packet", "16777215"}}});
  if (target.direct()) {
    MESSAGE("direct mode: MariaDB cannot be set to this limit");
    return;
  }
  MysqlConn monitor(server.socket_options());
  auto keeper = raw_login(target.port());
  expect_query_passes(*keeper, 0xFFFFFE);

  const Oversized before = oversized(target);
  auto client = raw_login(target.port());
  // The first header already announces 0xFFFFFF: refused before the empty trailer.
  send_refused(*client, 0xFFFFFF);
  expect_err(*client, 1153, "08S01", kPacketTooLargeMessage, 1);
  expect_closed(*client);
  CHECK(wait_server_sessions(monitor, 1, 30s));
  check_oversized_delta(target, before, 1, 0, 0);
}

// ---------------------------------------------------------------------------
// Server -> client: max_server_packet
// ---------------------------------------------------------------------------

// Sends SELECT REPEAT('a', n) and reads the column count, definition and EOF
// (seq 1, 2, 3): what precedes the row.
void select_repeat_header(RawMysqlClient& client, std::size_t n) {
  REQUIRE(client.send_packet(0, com_query("SELECT REPEAT('a', " + std::to_string(n) + ")")));
  for (int seq = 1; seq <= 3; ++seq) {
    const ReadResult read = client.read_packet(60s);
    REQUIRE_MESSAGE(read.ok(), to_string(read.status));
    REQUIRE_FALSE_MESSAGE(parse_err(read.packet).has_value(), parse_err(read.packet)->message);
    CHECK(int{read.packet.seq} == seq);
    if (seq == 3) CHECK(is_eof_packet(read.packet));
  }
}

// A row of payload `row_payload` (= lenenc(n) + n) arrives whole, then the EOF.
void expect_row_passes(RawMysqlClient& client, std::size_t n, int row_frames) {
  select_repeat_header(client, n);
  const ReadResult row = client.read_packet(120s);
  REQUIRE_MESSAGE(row.ok(), to_string(row.status));
  REQUIRE_FALSE(parse_err(row.packet).has_value());
  CHECK(row.packet.payload.size() == lenenc_size(n));
  CHECK(int{row.packet.seq} == 4);
  CHECK(row.packet.frames == row_frames);
  PayloadReader reader(row.packet.payload);
  const auto value = reader.lenenc_string();
  REQUIRE(value.has_value());
  CHECK(value->size() == n);
  CHECK(value->find_first_not_of('a') == std::string::npos);
  const ReadResult eof = client.read_packet(60s);
  REQUIRE(eof.ok());
  CHECK(is_eof_packet(eof.packet));
  CHECK(int{eof.packet.seq} == 4 + row_frames);
}

// The row is dropped: the very next frame is the ERR carrying the row's own id
// (4), nothing of the row came first, then the connection closes.
void expect_row_refused(RawMysqlClient& client, std::size_t n, const std::string& message) {
  select_repeat_header(client, n);
  const ReadResult frame = client.read_frame(120s);
  REQUIRE_MESSAGE(frame.ok(), to_string(frame.status));
  const auto err = parse_err(frame.packet);
  REQUIRE_MESSAGE(err.has_value(), "got a frame of ", frame.packet.payload.size(),
                  " bytes instead of the ERR (part of the refused row?)");
  CHECK(err->code == 1153);
  CHECK(err->sqlstate == "08S01");
  CHECK(err->message == message);
  CHECK(int{frame.packet.seq} == 4);
  expect_closed(client);
}

TEST_CASE("limits: max_server_packet 1M passes a 1048575-byte row and refuses 1048576") {
  MariaDbServer server({.args = {kServerBig}});
  Target target(server, {.listener = {{"max_server_packet", "1M"}}});
  if (target.direct()) {
    MESSAGE("direct mode: max_server_packet is sluice's");
    return;
  }
  MysqlConn monitor(server.socket_options());
  auto keeper = raw_login(target.port());
  expect_row_passes(*keeper, 1048575 - 4, 1);  // lenenc 0xFD + 3 bytes

  const Oversized before = oversized(target);
  auto client = raw_login(target.port());
  REQUIRE(wait_server_sessions(monitor, 2, 30s));
  expect_row_refused(*client, 1048576 - 4, kPacketTooLargeMessage);
  CHECK_MESSAGE(wait_server_sessions(monitor, 1, 30s), "server session not closed");
  check_oversized_delta(target, before, 0, 0, 1);
  CHECK(keeper->query("SELECT 1").ok());
}

TEST_CASE("limits: max_server_packet 20M passes a two-frame 20M-1 row and refuses 20M") {
  MariaDbServer server({.args = {kServerBig}});
  Target target(server, {.listener = {{"max_server_packet", "20M"}}});
  if (target.direct()) {
    MESSAGE("direct mode: max_server_packet is sluice's");
    return;
  }
  MysqlConn monitor(server.socket_options());
  auto keeper = raw_login(target.port());
  expect_row_passes(*keeper, 20 * kMiB - 1 - 9, 2);  // lenenc 0xFE + 8 bytes

  const Oversized before = oversized(target);
  auto client = raw_login(target.port());
  REQUIRE(wait_server_sessions(monitor, 2, 30s));
  expect_row_refused(*client, 20 * kMiB - 9, kPacketTooLargeMessage);
  CHECK(wait_server_sessions(monitor, 1, 30s));
  check_oversized_delta(target, before, 0, 0, 1);
}

TEST_CASE(
    "limits: max_server_packet 16M passes a 0xFFFFFF row (full + empty frame) and refuses 16M") {
  MariaDbServer server({.args = {kServerBig}});
  Target target(server, {.listener = {{"max_server_packet", "16M"}}});
  if (target.direct()) {
    MESSAGE("direct mode: max_server_packet is sluice's");
    return;
  }
  MysqlConn monitor(server.socket_options());
  auto keeper = raw_login(target.port());
  expect_row_passes(*keeper, 0xFFFFFF - 4, 2);

  const Oversized before = oversized(target);
  auto client = raw_login(target.port());
  expect_row_refused(*client, 16 * kMiB - 4, kPacketTooLargeMessage);
  CHECK(wait_server_sessions(monitor, 1, 30s));
  check_oversized_delta(target, before, 0, 0, 1);
}

// ---------------------------------------------------------------------------
// on_oversized: reject
// ---------------------------------------------------------------------------

TEST_CASE(
    "limits: reject answers after the whole packet and keeps the session while the server sees "
    "nothing") {
  MariaDbServer server({.args = {kServerBig}});
  Target target(server, {.listener = {{"max_allowed_packet", "1M"}, {"on_oversized", "reject"}}});
  if (target.direct()) {
    MESSAGE("direct mode: reject is sluice's");
    return;
  }
  MysqlConn monitor(server.socket_options());
  auto client = raw_login(target.port());
  REQUIRE(wait_server_sessions(monitor, 1, 30s));
  const Oversized before = oversized(target);
  const long long bytes_before = server_bytes_from_others(monitor);

  // Single frame: one past its only frame (seq 0).
  send_refused(*client, 1048576);
  expect_err(*client, 1153, "08S01", kPacketTooLargeMessage, 1);
  CHECK(server_bytes_from_others(monitor) == bytes_before);
  const auto one = client->query("SELECT 1");
  REQUIRE_MESSAGE(one.ok(), one.failure);
  CHECK(one.rows()[0][0] == "1");
  // The server got exactly the SELECT 1 packet (4-byte header + 9 bytes).
  CHECK(server_bytes_from_others(monitor) - bytes_before == 13);

  // Two frames (20M): one past the last frame (seq 1) -- not the crossing one.
  send_refused(*client, 20 * kMiB);
  expect_err(*client, 1153, "08S01", kPacketTooLargeMessage, 2);
  // Three frames, the last one empty: 2 x 0xFFFFFF.
  send_refused(*client, 2 * 0xFFFFFF);
  expect_err(*client, 1153, "08S01", kPacketTooLargeMessage, 3);
  CHECK(server_bytes_from_others(monitor) - bytes_before == 13);

  // A command right behind the refused packet, in the same write, still runs.
  REQUIRE(
      client->send_raw(frames(0, sized_query(2 * kMiB)) + frames(0, com_query("SELECT 'next'"))));
  expect_err(*client, 1153, "08S01", kPacketTooLargeMessage, 1);
  const RawResponse next = read_response(*client);
  REQUIRE(next.ok());
  REQUIRE(next.rows.size() == 1);
  CHECK(next.rows[0][0] == "next");

  const auto last = client->query("SELECT 2");
  REQUIRE(last.ok());
  CHECK(last.rows()[0][0] == "2");
  CHECK(server_sessions(monitor) == 1);
  check_oversized_delta(target, before, 0, 4, 0);
}

TEST_CASE(
    "limits: a rejected packet is a command for wait_timeout: the idle clock restarts after it") {
  MariaDbServer server({.args = {kServerBig}});
  Target target(server, {.listener = {{"max_allowed_packet", "1M"},
                                      {"on_oversized", "reject"},
                                      {"wait_timeout", "2s"}}});
  if (target.direct()) {
    MESSAGE("direct mode: reject is sluice's");
    return;
  }
  const std::string framed = frames(0, sized_query(2 * kMiB));
  const std::string idle_message =
      "The client was disconnected by the server because of inactivity.";
  {
    // Rejected 1.5 s after the login: 1 s after the answer (2.5 s after the
    // login) the session is not idle, and the next command works.
    auto client = raw_login(target.port());
    std::this_thread::sleep_for(1500ms);
    REQUIRE(client->send_raw(framed, 30s));
    expect_err(*client, 1153, "08S01", kPacketTooLargeMessage, 1);
    std::this_thread::sleep_for(1000ms);
    const QueryResult next = client->query("SELECT 1", 10s);
    REQUIRE_MESSAGE(next.ok(), next.failure);
  }
  {
    // Sent in two parts across the deadline the login started: once it is
    // answered, the session idles and goes at wait_timeout from the answer.
    auto client = raw_login(target.port());
    std::this_thread::sleep_for(1500ms);
    REQUIRE(client->send_raw(std::string_view(framed).substr(0, kMiB), 30s));
    std::this_thread::sleep_for(1000ms);
    REQUIRE(client->send_raw(std::string_view(framed).substr(kMiB), 30s));
    expect_err(*client, 1153, "08S01", kPacketTooLargeMessage, 1);
    const auto answered = std::chrono::steady_clock::now();
    expect_err(*client, 4031, "HY000", idle_message, 0, 5s);
    const auto idle = std::chrono::steady_clock::now() - answered;
    CHECK(idle >= 1800ms);
    CHECK(idle <= 3s);
  }
}

TEST_CASE("limits: reject with a 20M limit drops the held first frame and answers after the last") {
  MariaDbServer server({.args = {kServerBig}});
  Target target(server, {.listener = {{"max_allowed_packet", "20M"}, {"on_oversized", "reject"}}});
  if (target.direct()) {
    MESSAGE("direct mode: reject is sluice's");
    return;
  }
  MysqlConn monitor(server.socket_options());
  auto client = raw_login(target.port());
  REQUIRE(wait_server_sessions(monitor, 1, 30s));
  const Oversized before = oversized(target);
  const long long bytes_before = server_bytes_from_others(monitor);

  send_refused(*client, 20 * kMiB);  // seq 0 (legal so far), seq 1 crosses
  expect_err(*client, 1153, "08S01", kPacketTooLargeMessage, 2);
  send_refused(*client, 3 * 0xFFFFFF);  // seq 0..3, the last one empty
  expect_err(*client, 1153, "08S01", kPacketTooLargeMessage, 4);
  CHECK_MESSAGE(server_bytes_from_others(monitor) == bytes_before,
                "the server received part of a rejected packet");
  expect_query_passes(*client, 20 * kMiB - 1);
  CHECK(server_sessions(monitor) == 1);
  check_oversized_delta(target, before, 0, 2, 0);
}

TEST_CASE(
    "limits: reject throws away every later frame of a refused packet whatever its first byte, "
    "and logs the packet once") {
  MariaDbServer server({.args = {kServerBig}});
  Target target(server, {.listener = {{"max_allowed_packet", "1M"}, {"on_oversized", "reject"}}});
  if (target.direct()) {
    MESSAGE("direct mode: reject is sluice's");
    return;
  }
  MysqlConn monitor(server.socket_options());
  auto client = raw_login(target.port());
  REQUIRE(wait_server_sessions(monitor, 1, 30s));
  const Oversized before = oversized(target);
  const long long bytes_before = server_bytes_from_others(monitor);
  // A COM_QUERY whose second and third frames start with 0x18, the byte of
  // COM_STMT_SEND_LONG_DATA (which reject must close for, when it is the
  // packet's command byte): only the first frame's first byte is a command.
  std::string payload = sized_query(2 * 0xFFFFFF + 100);
  payload[0xFFFFFF] = 0x18;
  payload[2 * 0xFFFFFF] = 0x18;
  REQUIRE(client->send_packet(0, payload, 120s));
  expect_err(*client, 1153, "08S01", kPacketTooLargeMessage, 3);
  CHECK(server_bytes_from_others(monitor) == bytes_before);
  const auto next = client->query("SELECT 1");
  REQUIRE_MESSAGE(next.ok(), next.failure);
  CHECK(next.rows()[0][0] == "1");
  check_oversized_delta(target, before, 0, 1, 0);
  const std::string log = target.sluice()->stderr_text();
  std::size_t lines = 0;
  for (std::size_t at = log.find("oversized_packet"); at != std::string::npos;
       at = log.find("oversized_packet", at + 1)) {
    ++lines;
  }
  CHECK(lines == 1);
  CHECK(log.find("action=reject") != std::string::npos);
}

TEST_CASE("limits: reject logs the refused packet's size, also when it arrives whole at once") {
  MariaDbServer server({.args = {kServerBig}});
  Target target(server, {.listener = {{"max_allowed_packet", "2K"}, {"on_oversized", "reject"}}});
  if (target.direct()) {
    MESSAGE("direct mode: reject is sluice's");
    return;
  }
  auto client = raw_login(target.port());
  REQUIRE(client->send_packet(0, sized_query(3000)));
  expect_err(*client, 1153, "08S01", kPacketTooLargeMessage, 1);
  REQUIRE(client->query("SELECT 1").ok());
  const std::string log = target.sluice()->stderr_text();
  CHECK_MESSAGE(log.find("size=3000 limit=2048 action=reject") != std::string::npos, log);
}

TEST_CASE("limits: reject falls back to close for an oversized HandshakeResponse") {
  MariaDbServer server({.args = {kServerBig}});
  Target target(server, {.listener = {{"max_allowed_packet", "1K"}, {"on_oversized", "reject"}}});
  if (target.direct()) {
    MESSAGE("direct mode: reject is sluice's");
    return;
  }
  MysqlConn monitor(server.socket_options());
  // A normal login fits.
  auto keeper = raw_login(target.port());
  CHECK(keeper->query("SELECT 1").ok());
  const Oversized before = oversized(target);

  RawMysqlClient client;
  REQUIRE_MESSAGE(client.connect(target.port()), client.last_error());
  const ReadResult greeting = client.read_packet();
  REQUIRE(greeting.ok());
  REQUIRE(greeting.packet.seq == 0);
  // HandshakeResponse41 with a 2000-character user name: 2059 bytes.
  std::string response;
  const std::uint32_t caps = client_flag::kLongPassword | client_flag::kProtocol41 |
                             client_flag::kSecureConnection | client_flag::kPluginAuth |
                             client_flag::kTransactions;
  for (int i = 0; i < 4; ++i) response.push_back(static_cast<char>((caps >> (8 * i)) & 0xFF));
  response.append("\x00\x00\x00\x01", 4);  // max packet 16M
  response.push_back('\x21');              // utf8
  response.append(23, '\0');
  response.append(2000, 'u');
  response.push_back('\0');
  response.push_back('\0');  // empty auth response
  response.append("mysql_native_password");
  response.push_back('\0');
  REQUIRE(response.size() > 1024);
  client.send_packet(1, response);
  expect_err(client, 1153, "08S01", kPacketTooLargeMessage, 2);
  expect_closed(client);
  CHECK_MESSAGE(wait_server_sessions(monitor, 1, 30s), "the upstream connection stayed open");
  check_oversized_delta(target, before, 1, 0, 0);
  CHECK(keeper->query("SELECT 1").ok());
}

TEST_CASE("limits: reject falls back to close for oversized LOAD DATA LOCAL INFILE content") {
  MariaDbServer server({.args = {kServerBig, "--local-infile=1"},
                        .bootstrap_sql = "CREATE DATABASE d; CREATE TABLE d.t (a LONGTEXT);"});
  Target target(server, {.listener = {{"max_allowed_packet", "64K"}, {"on_oversized", "reject"}}});
  if (target.direct()) {
    MESSAGE("direct mode: reject is sluice's");
    return;
  }
  MysqlConn monitor(server.socket_options());
  const std::string load = "LOAD DATA LOCAL INFILE 'rows.txt' INTO TABLE d.t";

  // Control: legal file content goes through.
  auto good = raw_login(target.port(), client_flag::kLocalFiles);
  REQUIRE(good->send_packet(0, com_query(load)));
  ReadResult request = good->read_packet();
  REQUIRE(request.ok());
  REQUIRE(!request.packet.payload.empty());
  CHECK(static_cast<unsigned char>(request.packet.payload[0]) == 0xFB);
  CHECK(request.packet.seq == 1);
  REQUIRE(good->send_packet(2, "one\ntwo\n"));
  REQUIRE(good->send_packet(3, ""));
  const RawResponse ok = read_response(*good);
  REQUIRE_MESSAGE(ok.ok(), why(ok));
  CHECK(ok.packets.back().seq == 4);
  CHECK(monitor.scalar("SELECT COUNT(*) FROM d.t") == "2");

  const Oversized before = oversized(target);
  auto client = raw_login(target.port(), client_flag::kLocalFiles);
  REQUIRE(client->send_packet(0, com_query(load)));
  request = client->read_packet();
  REQUIRE(request.ok());
  REQUIRE(static_cast<unsigned char>(request.packet.payload[0]) == 0xFB);
  // 100K of file content in one packet (seq 2): over the 64K limit.
  std::string content;
  while (content.size() < 100 * kKiB) content += "row " + std::to_string(content.size()) + "\n";
  client->send_packet(2, content);
  expect_err(*client, 1153, "08S01", kPacketTooLargeMessage, 3);
  expect_closed(*client);
  CHECK(wait_server_sessions(monitor, 1, 30s));
  CHECK(monitor.scalar("SELECT COUNT(*) FROM d.t") == "2");
  check_oversized_delta(target, before, 1, 0, 0);
}

// COM_STMT_PREPARE of `sql` with one parameter; returns the statement id.
std::uint32_t prepare_one_param(RawMysqlClient& client, const std::string& sql) {
  REQUIRE(client.send_packet(0, std::string(1, '\x16') + sql));
  const ReadResult ok = client.read_packet();
  REQUIRE(ok.ok());
  REQUIRE_FALSE_MESSAGE(parse_err(ok.packet).has_value(), parse_err(ok.packet)->message);
  PayloadReader reader(ok.packet.payload);
  reader.skip(1);
  const auto id = static_cast<std::uint32_t>(reader.fixed(4));
  const auto columns = reader.fixed(2);
  const auto params = reader.fixed(2);
  REQUIRE(columns == 0);
  REQUIRE(params == 1);
  REQUIRE(client.read_packet().ok());  // the parameter's definition
  const ReadResult eof = client.read_packet();
  REQUIRE(eof.ok());
  CHECK(is_eof_packet(eof.packet));
  return id;
}

std::string send_long_data(std::uint32_t id, std::string_view data) {
  return std::string(1, '\x18') + le(id, 4) + le(0, 2) + std::string(data);
}

TEST_CASE("limits: reject falls back to close for an oversized COM_STMT_SEND_LONG_DATA") {
  MariaDbServer server(
      {.args = {kServerBig}, .bootstrap_sql = "CREATE DATABASE d; CREATE TABLE d.t (a LONGBLOB);"});
  if (direct_mode()) {
    MESSAGE("direct mode: reject is sluice's");
    return;
  }
  MysqlConn monitor(server.socket_options());
  for (const std::string limit : {"64K", "20M"}) {
    CAPTURE(limit);
    Target target(server,
                  {.listener = {{"max_allowed_packet", limit}, {"on_oversized", "reject"}}});
    auto client = raw_login(target.port());
    const std::uint32_t id = prepare_one_param(*client, "INSERT INTO d.t VALUES (?)");
    // Control: legal long data, then COM_STMT_EXECUTE (the parameter comes
    // from the long data: null bitmap 0, new-params-bound 1, type LONG_BLOB).
    REQUIRE(client->send_packet(0, send_long_data(id, "hello")));
    REQUIRE(client->send_packet(0, std::string(1, '\x17') + le(id, 4) + std::string(1, '\0') +
                                       le(1, 4) + std::string(1, '\0') + std::string(1, '\x01') +
                                       std::string("\xfb\x00", 2)));
    const RawResponse executed = read_response(*client);
    REQUIRE_MESSAGE(executed.ok(), why(executed));
    CHECK(monitor.scalar("SELECT COUNT(*) FROM d.t WHERE a = 'hello'") != "0");

    const Oversized before = oversized(target);
    const long long bytes_before = server_bytes_from_others(monitor);
    // 64K: the first header crosses (seq 0 -> ERR 1). 20M: the second does (-> ERR 2).
    const std::size_t size = limit == "64K" ? 100 * kKiB : 20 * kMiB;
    client->send_packet(0, send_long_data(id, std::string(size - 7, 'L')));
    expect_err(*client, 1153, "08S01", kPacketTooLargeMessage, limit == "64K" ? 1 : 2);
    expect_closed(*client);
    CHECK(wait_server_sessions(monitor, 0, 30s));
    CHECK(server_bytes_from_others(monitor) == bytes_before);
    check_oversized_delta(target, before, 1, 0, 0);
    // Logged once, with what was done (its command byte decided it).
    const std::string log = target.sluice()->stderr_text();
    const std::size_t line = log.find("oversized_packet");
    REQUIRE(line != std::string::npos);
    CHECK(log.find("oversized_packet", line + 1) == std::string::npos);
    CHECK(log.find("action=close", line) != std::string::npos);
    CHECK(log.find("action=reject") == std::string::npos);
  }
}

TEST_CASE("limits: reject falls back to close while an earlier response is outstanding") {
  MariaDbServer server({.args = {kServerBig}});
  Target target(server, {.listener = {{"max_allowed_packet", "64K"}, {"on_oversized", "reject"}}});
  if (target.direct()) {
    MESSAGE("direct mode: reject is sluice's");
    return;
  }
  MysqlConn monitor(server.socket_options());
  auto client = raw_login(target.port());
  const Oversized before = oversized(target);
  // A pipelining client: the oversized command follows a slow one at once.
  REQUIRE(client->send_packet(0, com_query("SELECT SLEEP(2), 'late'")));
  client->send_packet(0, sized_query(100 * kKiB));
  // The ERR must not be taken for SLEEP's answer and the session carry on:
  // close, as mysqld does: SLEEP's answer first, then the ERR (one past the
  // crossing frame) and the end.
  const RawResponse first = read_response(*client, 30s);
  REQUIRE_MESSAGE(first.ok(), why(first));
  REQUIRE(first.rows.size() == 1);
  CHECK(first.rows[0][1] == "late");
  expect_err(*client, 1153, "08S01", kPacketTooLargeMessage, 1);
  expect_closed(*client, 30s);
  CHECK(wait_server_sessions(monitor, 0, 30s));
  check_oversized_delta(target, before, 1, 0, 0);
}

// sluice follows at most 64 outstanding responses; commands pipelined beyond
// them wait (the client is not read) until one completes, rather than have
// the session lose track, which would end reject for it.
TEST_CASE(
    "limits: 300 commands pipelined at once are answered in order, and reject still applies") {
  MariaDbServer server({.args = {kServerBig}});
  Target target(server, {.listener = {{"max_allowed_packet", "64K"}, {"on_oversized", "reject"}}});
  auto client = raw_login(target.port());
  auto scrape = [&] {
    return target.direct() ? std::string() : http_get(target.sluice()->metrics_port());
  };
  const std::string before = scrape();
  constexpr int kCommands = 300;
  std::string burst;
  for (int i = 0; i < kCommands; ++i) burst += frames(0, com_query("SELECT " + std::to_string(i)));
  REQUIRE(client->send_raw(burst, 30s));
  for (int i = 0; i < kCommands; ++i) {
    CAPTURE(i);
    const RawResponse r = read_response(*client, 30s);
    REQUIRE_MESSAGE(r.ok(), why(r));
    REQUIRE(r.rows.size() == 1);
    CHECK(r.rows[0][0] == std::to_string(i));
  }
  if (target.direct()) {
    MESSAGE("direct mode: reject is sluice's");
    return;
  }
  const Oversized over_before = oversized(target);
  REQUIRE(client->send_packet(0, sized_query(100 * kKiB)));
  expect_err(*client, 1153, "08S01", kPacketTooLargeMessage, 1);
  const QueryResult next = client->query("SELECT 'after'", 10s);
  REQUIRE_MESSAGE(next.ok(), next.failure);
  check_oversized_delta(target, over_before, 0, 1, 0);
  const std::string after = scrape();
  const Labels main = {{"listener", "main"}};
  CHECK(metric_value(after, "sluice_response_tracking_lost_total", main) -
            metric_value(before, "sluice_response_tracking_lost_total", main) ==
        0);
  // Every command was timed: the tracker saw each response end.
  const Labels query = {{"listener", "main"}, {"command", "COM_QUERY"}};
  CHECK(metric_value(after, "sluice_command_duration_seconds_count", query) -
            metric_value(before, "sluice_command_duration_seconds_count", query) ==
        kCommands + 1);
}

// A logged-in raw compressed session on a listener with max_allowed_packet
// `limit` and on_oversized: reject, and what the server had read and the
// counters said before the test's packets.
struct CompressedRejectSession {
  explicit CompressedRejectSession(const std::string& limit)
      : target(server, {.listener = {{"max_allowed_packet", limit}, {"on_oversized", "reject"}}}) {}
  MariaDbServer server{{.args = {kServerBig}}};
  Target target;
  MysqlConn monitor{server.socket_options()};
  std::unique_ptr<RawMysqlClient> client = raw_login(target.port(), CLIENT_COMPRESS);
  Oversized before = oversized(target);
  long long server_before = server_bytes_from_others(monitor);
};

TEST_CASE(
    "limits: reject in a compressed session drops the packet's frames and keeps the session") {
  CompressedRejectSession s("17M");
  if (s.target.direct()) {
    MESSAGE("direct mode: reject is sluice's");
    return;
  }
  auto& client = s.client;
  // 20 MiB in stored frames of 1 MiB: its first inner frame (16 MiB - 1,
  // under the limit) is held until the second one's header crosses it.
  std::uint8_t last = 0;
  const std::string inner = frames(0, sized_query(20 * kMiB));
  REQUIRE(client->send_raw(stored_frames(inner, kMiB, &last), 60s));
  const Packet err = read_stored_packet(*client, static_cast<std::uint8_t>(last + 1));
  CHECK(err.seq == 2);  // one past the packet's last inner frame (ids 0 and 1)
  const auto parsed = parse_err(err);
  REQUIRE(parsed.has_value());
  CHECK(parsed->code == 1153);
  CHECK(parsed->sqlstate == "08S01");
  CHECK(parsed->message == kPacketTooLargeMessage);
  // The next command starts again at 0 in both layers, and is answered.
  REQUIRE(client->send_raw(stored_frames(frames(0, "\x0e"), kMiB, &last)));
  const Packet ok = read_stored_packet(*client, 1);
  CHECK(ok.seq == 1);
  REQUIRE(!ok.payload.empty());
  CHECK(ok.payload[0] == '\0');
  // Nothing of the 20 MiB reached the server, only the COM_PING's frame.
  CHECK(server_bytes_from_others(s.monitor) - s.server_before < 100);
  check_oversized_delta(s.target, s.before, 0, 1, 0);

  // Connector/C, which writes each command in frames of its own, sees the
  // error and goes on (its first frame holds the packet's start, the later
  // ones the rest).
  ConnectOptions options = s.target.options();
  options.compress = true;
  MysqlConn conn(options);
  const std::string big = "SELECT LENGTH('" + std::string(18 * kMiB, 'x') + "')";
  CHECK(mysql_real_query(conn.get(), big.data(), big.size()) != 0);
  CHECK(mysql_errno(conn.get()) == 1153);
  CHECK(std::string(mysql_sqlstate(conn.get())) == "08S01");
  CHECK(std::string(mysql_error(conn.get())) == kPacketTooLargeMessage);
  CHECK(conn.scalar("SELECT 'after'") == "after");
  check_oversized_delta(s.target, s.before, 0, 2, 0);
}

TEST_CASE(
    "limits: reject closes in a compressed session when a command shares the packet's frame") {
  CompressedRejectSession s("2K");
  if (s.target.direct()) {
    MESSAGE("direct mode: reject is sluice's");
    return;
  }
  auto& client = s.client;
  // The refused packet and a COM_PING in one compressed frame: the frame
  // cannot be forwarded without part of the packet, so the PING is lost with
  // it and no reject can stand for both.
  std::uint8_t last = 0;
  const std::string inner = frames(0, sized_query(3000)) + frames(0, "\x0e");
  REQUIRE(client->send_raw(stored_frames(inner, kMiB, &last)));
  const Packet err = read_stored_packet(*client, 1);
  CHECK(err.seq == 1);  // close: one past the crossing frame
  const auto parsed = parse_err(err);
  REQUIRE(parsed.has_value());
  CHECK(parsed->code == 1153);
  expect_closed(*client);
  CHECK(wait_server_sessions(s.monitor, 0, 30s));
  CHECK(server_bytes_from_others(s.monitor) == s.server_before);
  check_oversized_delta(s.target, s.before, 1, 0, 0);
}

// ---------------------------------------------------------------------------
// Configured errors
// ---------------------------------------------------------------------------

const std::string kCustomErrors =
    "errors:\n"
    "  packet_too_large: { code: 4242, sqlstate: \"HY042\", "
    "message: \"packet of {size} bytes refused: limit {limit} on {listener}\" }\n";

TEST_CASE("limits: the configured packet_too_large error as the mariadb CLI prints it") {
  MariaDbServer server({.args = {kServerBig}});
  Target target(server, {.listener_name = "edge",
                         .listener = {{"max_allowed_packet", "1K"}, {"max_server_packet", "1K"}},
                         .extra_yaml = kCustomErrors});
  if (target.direct()) {
    MESSAGE("direct mode: configured errors are sluice's");
    return;
  }
  // Client -> server: COM_QUERY of 1 + 2009 bytes.
  const std::string big = "SELECT '" + std::string(2000, 'x') + "'";
  const auto c2s = mariadb_cli(target.port(), {"-e", big});
  CHECK_MESSAGE(c2s.status.code == 1, describe(c2s));
  CHECK_MESSAGE(c2s.err.find("ERROR 4242 (HY042) at line 1: packet of 2010 bytes refused: "
                             "limit 1024 on edge\n") != std::string::npos,
                describe(c2s));
  CHECK(c2s.out.empty());

  // Server -> client: a row of 3 + 2000 bytes.
  const auto s2c = mariadb_cli(target.port(), {"-e", "SELECT REPEAT('y', 2000)"});
  CHECK_MESSAGE(s2c.status.code == 1, describe(s2c));
  CHECK_MESSAGE(s2c.err.find("ERROR 4242 (HY042) at line 1: packet of 2003 bytes refused: "
                             "limit 1024 on edge\n") != std::string::npos,
                describe(s2c));
  CHECK(s2c.out.find("yyyy") == std::string::npos);

  // Small things still work through the same listener.
  const auto fine = mariadb_cli(target.port(), {"-e", "SELECT 'fine'"});
  CHECK_MESSAGE(fine.status.success(), describe(fine));
  CHECK(fine.out == "fine\n");
}

TEST_CASE("limits: the configured packet_too_large error as Connector/C reports it") {
  MariaDbServer server({.args = {kServerBig}});
  if (direct_mode()) {
    MESSAGE("direct mode: configured errors are sluice's");
    return;
  }
  const std::string big = "SELECT '" + std::string(3000, 'x') + "'";  // a 3010-byte COM_QUERY
  for (const std::string action : {"close", "reject"}) {
    CAPTURE(action);
    Target target(server, {.listener_name = "edge",
                           .listener = {{"max_allowed_packet", "2K"}, {"on_oversized", action}},
                           .extra_yaml = kCustomErrors});
    MysqlConn conn(target.options());
    CHECK(conn.scalar("SELECT 'before'") == "before");
    CHECK(mysql_real_query(conn.get(), big.data(), big.size()) != 0);
    CHECK(mysql_errno(conn.get()) == 4242);
    CHECK(std::string(mysql_sqlstate(conn.get())) == "HY042");
    CHECK(std::string(mysql_error(conn.get())) ==
          "packet of 3010 bytes refused: limit 2048 on edge");
    if (action == "reject") {
      // The same MYSQL handle carries on.
      CHECK(conn.scalar("SELECT 'after'") == "after");
    } else {
      CHECK(mysql_query(conn.get(), "SELECT 'after'") != 0);
      const unsigned int code = mysql_errno(conn.get());
      CHECK_MESSAGE((code == CR_SERVER_LOST || code == CR_SERVER_GONE_ERROR), "after close: ", code,
                    " ", mysql_error(conn.get()));
    }
  }
}

TEST_CASE("limits: SIGHUP applies a new limit and error message to an open session") {
  MariaDbServer server({.args = {kServerBig}});
  // ({size} is left out here: it has its own test above.)
  Target target(server,
                {.listener = {{"max_allowed_packet", "64K"}, {"on_oversized", "reject"}},
                 .extra_yaml = "errors:\n  packet_too_large: { code: 4242, sqlstate: "
                               "\"HY042\", message: \"refused at {limit} on {listener}\" }\n"});
  if (target.direct()) {
    MESSAGE("direct mode: reload is sluice's");
    return;
  }
  SluiceProcess& sluice = *target.sluice();
  auto client = raw_login(target.port());
  send_refused(*client, 100 * kKiB);
  expect_err(*client, 4242, "HY042", "refused at 65536 on main", 1);
  expect_query_passes(*client, 60 * kKiB);

  // New limit and message in the file, then SIGHUP.
  std::string yaml = sluice.config_text();
  const auto replace = [&](const std::string& from, const std::string& to) {
    const auto at = yaml.find(from);
    REQUIRE_MESSAGE(at != std::string::npos, from);
    yaml.replace(at, from.size(), to);
  };
  replace("max_allowed_packet: 64K", "max_allowed_packet: 32K");
  replace("refused at {limit}", "now over {limit}");
  write_file(sluice.config_path(), yaml);
  const auto reloads = [&] {
    return metric_value(http_get(sluice.metrics_port()), "sluice_config_reloads_total",
                        {{"result", "ok"}});
  };
  const double before = reloads();
  sluice.send_signal(SIGHUP);
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (reloads() == before && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  REQUIRE(reloads() == before + 1);

  // The same session: 60K is now refused, with the new message.
  send_refused(*client, 60 * kKiB);
  expect_err(*client, 4242, "HY042", "now over 32768 on main", 1);
  expect_query_passes(*client, 32 * kKiB - 1);
}

// ---------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------

struct Sizes {
  double count = 0, sum = 0, packets = 0, bytes = 0;
};

Sizes sizes(const std::string& text, const char* direction) {
  const Labels labels = {{"listener", "main"}, {"direction", direction}};
  return {metric_value(text, "sluice_packet_size_bytes_count", labels),
          metric_value(text, "sluice_packet_size_bytes_sum", labels),
          metric_value(text, "sluice_packets_total", labels),
          metric_value(text, "sluice_bytes_total", labels)};
}

TEST_CASE("limits: oversized counters and the packet-size histogram move by the exact exchange") {
  MariaDbServer server({.args = {kServerBig}});
  Target target(server, {.listener = {{"max_allowed_packet", "20M"},
                                      {"max_server_packet", "1M"},
                                      {"on_oversized", "reject"}}});
  if (target.direct()) {
    MESSAGE("direct mode: metrics are sluice's");
    return;
  }
  const int metrics_port = target.sluice()->metrics_port();
  auto client = raw_login(target.port());

  // 1. SELECT 1: one client packet of 9 bytes, five server packets.
  std::string text = http_get(metrics_port);
  Sizes c2s0 = sizes(text, "client_to_server");
  Sizes s2c0 = sizes(text, "server_to_client");
  REQUIRE(client->send_packet(0, com_query("SELECT 1")));
  RawResponse response = read_response(*client);
  REQUIRE(response.ok());
  REQUIRE(response.packets.size() == 5);
  double s2c_payload = 0;
  for (const Packet& packet : response.packets) s2c_payload += packet.payload.size();
  text = http_get(metrics_port);
  Sizes c2s1 = sizes(text, "client_to_server");
  Sizes s2c1 = sizes(text, "server_to_client");
  CHECK(c2s1.count - c2s0.count == 1);
  CHECK(c2s1.sum - c2s0.sum == 9);
  CHECK(c2s1.packets - c2s0.packets == 1);
  CHECK(c2s1.bytes - c2s0.bytes == 13);
  CHECK(s2c1.count - s2c0.count == 5);
  CHECK(s2c1.sum - s2c0.sum == s2c_payload);
  CHECK(s2c1.packets - s2c0.packets == 5);
  CHECK(s2c1.bytes - s2c0.bytes == s2c_payload + 5 * 4);

  // 2. A two-frame legal packet is one logical packet of 20M-1 bytes.
  std::size_t fill = 0;
  REQUIRE(client->send_packet(0, sized_query(20 * kMiB - 1, &fill), 120s));
  response = read_response(*client);
  REQUIRE(response.ok());
  s2c_payload = 0;
  for (const Packet& packet : response.packets) s2c_payload += packet.payload.size();
  text = http_get(metrics_port);
  Sizes c2s2 = sizes(text, "client_to_server");
  Sizes s2c2 = sizes(text, "server_to_client");
  CHECK(c2s2.count - c2s1.count == 1);
  CHECK(c2s2.sum - c2s1.sum == 20 * kMiB - 1);
  CHECK(c2s2.packets - c2s1.packets == 1);
  CHECK(c2s2.bytes - c2s1.bytes == 20 * kMiB - 1 + 2 * 4);
  CHECK(s2c2.count - s2c1.count == response.packets.size());
  CHECK(s2c2.sum - s2c1.sum == s2c_payload);
  // The bucket counts add up to the count.
  CHECK(metric_value(text, "sluice_packet_size_bytes_bucket",
                     {{"listener", "main"}, {"direction", "client_to_server"}, {"le", "+Inf"}}) ==
        c2s2.count);

  // 3. Refusals are counted by direction and action, and are not packets.
  Oversized before = oversized(target);
  send_refused(*client, 20 * kMiB);  // rejected
  expect_err(*client, 1153, "08S01", kPacketTooLargeMessage, 2);
  send_refused(*client, 40 * kMiB);  // rejected: three frames
  expect_err(*client, 1153, "08S01", kPacketTooLargeMessage, 3);
  text = http_get(metrics_port);
  Sizes c2s3 = sizes(text, "client_to_server");
  CHECK(c2s3.count == c2s2.count);
  CHECK(c2s3.packets == c2s2.packets);
  CHECK(c2s3.bytes == c2s2.bytes);
  check_oversized_delta(target, before, 0, 2, 0);

  before = oversized(target);
  REQUIRE(client->send_packet(0, com_query("SELECT REPEAT('z', 2000000)")));
  response = read_response(*client);
  REQUIRE(response.error.has_value());
  CHECK(response.error->code == 1153);
  expect_closed(*client);
  check_oversized_delta(target, before, 0, 0, 1);

  // One more session that is closed for a client packet (on a close listener
  // this would be action=close; on reject, a handshake packet falls back to close).
  before = oversized(target);
  RawMysqlClient raw;
  REQUIRE_MESSAGE(raw.connect(target.port()), raw.last_error());
  REQUIRE(raw.read_packet().ok());
  raw.send_packet(1, std::string(21 * kMiB, 'h'), 60s);
  expect_err(raw, 1153, "08S01", kPacketTooLargeMessage, 3);
  expect_closed(raw);
  check_oversized_delta(target, before, 1, 0, 0);
}

}  // namespace
}  // namespace sluice::test::limits
