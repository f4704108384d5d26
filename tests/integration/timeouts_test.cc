// Timeouts end to end with real timing: net_read_timeout (slowloris, half a header, mid-payload,
// during the handshake), wait_timeout, handshake_timeout (black-hole upstream, silent client,
// silent server, a stalled TLS handshake), net_write_timeout (a client that stops reading a 200 MB
// result, a server that stops reading), and a server session killed mid-result. Against a real
// MariaDB, except where a real server cannot be made to misbehave (mid-packet stalls, not reading):
// there a scripted fake server (tests/support/fault_peers.h) stands in.
//
// Every timeout here is 1-2 s. An event must happen no earlier than timeout - 0.2 s and no later
// than timeout + 1 s, measured from the moment the stall started.
#include <doctest/doctest.h>
#include <sys/socket.h>

#include <csignal>

#include <atomic>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/fault_peers.h"
#include "tests/support/mariadb_cli.h"
#include "tests/support/mariadb_server.h"
#include "tests/support/metrics_scrape.h"
#include "tests/support/mysql_conn.h"
#include "tests/support/probes.h"
#include "tests/support/raw_mysql.h"
#include "tests/support/sluice_process.h"
#include "tests/support/target.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tls_certs.h"

namespace sluice::test {
namespace {

using namespace fault;  // tests/support/fault_peers.h, probes.h

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

const Labels kMain = {{"listener", "main"}};

Labels main_and(const std::string& key, const std::string& value) {
  return {{"listener", "main"}, {key, value}};
}

// The event came within [timeout - 0.2 s, timeout + 1 s] of the stall's start.
void check_timing(Clock::duration elapsed, milliseconds timeout, const std::string& what) {
  INFO(what, " after ", seconds(elapsed), " s (timeout ", timeout.count() / 1000.0, " s)");
  CHECK(elapsed >= timeout - 200ms);
  CHECK(elapsed <= timeout + 1s);
}

void check_err(const ReadResult& read, int code, const std::string& sqlstate, int seq) {
  INFO("client received: ", describe(read));
  REQUIRE(read.ok());
  const auto err = parse_err(read.packet);
  REQUIRE(err.has_value());
  CHECK(err->code == code);
  CHECK(err->sqlstate == sqlstate);
  CHECK(static_cast<int>(err->seq) == seq);
}

// A logged-in raw client on `port`.
void login(RawMysqlClient& client, int port) {
  REQUIRE_MESSAGE(client.connect(port), client.last_error());
  const HandshakeResult login = client.handshake();
  REQUIRE_MESSAGE(login.logged_in, login.failure);
}

// Sends `bytes` one at a time, `gap` apart, until an answer (or a close)
// arrives; returns what arrived. Sending stops early when sluice answers.
ReadResult dribble(RawMysqlClient& client, const std::string& bytes, milliseconds gap,
                   Clock::time_point* first_byte_at) {
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (!client.send_raw(bytes.substr(i, 1), 1s)) break;  // sluice may be gone already
    if (i == 0) *first_byte_at = Clock::now();
    ReadResult read = client.read_packet(gap);
    if (read.status != ReadStatus::kTimeout) return read;
  }
  return client.read_packet(10s);
}

TEST_CASE(
    "timeouts: a slowloris client dribbling one packet byte by byte gets 1159 at "
    "net_read_timeout, then both sides close") {
  if (direct_mode()) return;  // mysqld bounds each read(), not the packet: nothing to compare
  MariaDbServer server;
  Target target(server, {.listener = {{"net_read_timeout", "1s"}}});
  SluiceProcess& sluice = *target.sluice();
  MysqlConn monitor(server.socket_options());
  const double reads_before =
      scrape(sluice.metrics_port(), "sluice_timeouts_total", main_and("kind", "read"));

  RawMysqlClient client;
  login(client, target.port());
  REQUIRE(client.query("SELECT 1").ok());
  REQUIRE(wait_server_sessions(monitor, 1, 10s));

  // 25 bytes, one every 300 ms: each byte comes well within the timeout, the
  // packet as a whole (7.5 s) does not.
  const std::string packet = frames(0, "\x03SELECT 'slow loris'");
  Clock::time_point started;
  const ReadResult read = dribble(client, packet, 300ms, &started);
  const auto elapsed = Clock::now() - started;
  check_err(read, 1159, "08S01", 1);  // one past the stalled frame (seq 0)
  check_timing(elapsed, 1s, "ERR 1159");

  const ReadStatus end = client.wait_closed(5s);
  CHECK_MESSAGE((end == ReadStatus::kEof || end == ReadStatus::kReset),
                std::string(to_string(end)));
  CHECK_MESSAGE(wait_server_sessions(monitor, 0, 5s), "the server session outlived the timeout");
  CHECK(wait_until(
      [&] { return scrape(sluice.metrics_port(), "sluice_connections_active", kMain) == 0; }, 5s));
  CHECK(scrape(sluice.metrics_port(), "sluice_timeouts_total", main_and("kind", "read")) ==
        reads_before + 1);
}

TEST_CASE("timeouts: half a header (2 bytes) and silence gets 1159 seq 1 at net_read_timeout") {
  if (direct_mode()) return;
  MariaDbServer server;
  Target target(server, {.listener = {{"net_read_timeout", "1s"}}});
  SluiceProcess& sluice = *target.sluice();
  MysqlConn monitor(server.socket_options());

  RawMysqlClient client;
  login(client, target.port());
  REQUIRE(client.query("SELECT 1").ok());
  REQUIRE(wait_server_sessions(monitor, 1, 10s));

  // The header's first two length bytes; no sequence id has arrived, and a
  // new command would be seq 0, so the ERR is seq 1.
  REQUIRE(client.send_raw(std::string("\x0e\x00", 2)));
  const auto started = Clock::now();
  const ReadResult read = client.read_packet(10s);
  const auto elapsed = Clock::now() - started;
  check_err(read, 1159, "08S01", 1);
  check_timing(elapsed, 1s, "ERR 1159");

  const ReadStatus end = client.wait_closed(5s);
  CHECK_MESSAGE((end == ReadStatus::kEof || end == ReadStatus::kReset),
                std::string(to_string(end)));
  CHECK_MESSAGE(wait_server_sessions(monitor, 0, 5s), "the server session outlived the timeout");
  CHECK(scrape(sluice.metrics_port(), "sluice_timeouts_total", main_and("kind", "read")) == 1);
}

TEST_CASE(
    "timeouts: a client stalling mid-payload in a later frame gets 1159 one past that "
    "frame's seq") {
  if (direct_mode()) return;
  MariaDbServer server({.args = {"--max-allowed-packet=64M"}});
  Target target(server, {.listener = {{"net_read_timeout", "2s"}}});
  SluiceProcess& sluice = *target.sluice();

  RawMysqlClient client;
  login(client, target.port());
  // A COM_QUERY of 0xFFFFFF + 100 bytes: frame seq 0 (full), then frame seq 1
  // announcing 100 bytes of which only 10 come.
  std::string query = "\x03SELECT '" + std::string(kMaxFrame + 100 - 10, 'a') + "'";
  query.resize(kMaxFrame + 100);
  const std::string wire = frames(0, query);
  REQUIRE(client.send_raw(wire.substr(0, 4 + kMaxFrame + 4 + 10), 60s));
  const auto started = Clock::now();
  const ReadResult read = client.read_packet(10s);
  const auto elapsed = Clock::now() - started;
  check_err(read, 1159, "08S01", 2);
  // The deadline is per packet: it started with the first frame, so it may
  // come a little before 2 s after the stall; but never after 3 s.
  INFO("ERR after ", seconds(elapsed), " s");
  CHECK(elapsed <= 3s);
  CHECK(scrape(sluice.metrics_port(), "sluice_timeouts_total", main_and("kind", "read")) == 1);
}

TEST_CASE(
    "timeouts: half a HandshakeResponse header gets 1159 with the seq after the "
    "response's (2)") {
  if (direct_mode()) return;
  MariaDbServer server;
  Target target(server, {.listener = {{"net_read_timeout", "1s"}, {"handshake_timeout", "10s"}}});
  SluiceProcess& sluice = *target.sluice();

  RawMysqlClient client;
  REQUIRE_MESSAGE(client.connect(target.port()), client.last_error());
  const ReadResult greeting = client.read_packet(10s);
  REQUIRE_MESSAGE(greeting.ok(), describe(greeting));
  REQUIRE(greeting.packet.seq == 0);
  // The response would be seq 1; two bytes of its header arrive, then nothing.
  REQUIRE(client.send_raw(std::string("\x40\x00", 2)));
  const auto started = Clock::now();
  const ReadResult read = client.read_packet(10s);
  const auto elapsed = Clock::now() - started;
  check_err(read, 1159, "08S01", 2);
  check_timing(elapsed, 1s, "ERR 1159");
  CHECK(scrape(sluice.metrics_port(), "sluice_timeouts_total", main_and("kind", "read")) == 1);
}

TEST_CASE("timeouts: a HandshakeResponse stalled mid-payload gets 1159 seq 2") {
  if (direct_mode()) return;
  MariaDbServer server;
  Target target(server, {.listener = {{"net_read_timeout", "1s"}, {"handshake_timeout", "10s"}}});
  SluiceProcess& sluice = *target.sluice();

  RawMysqlClient client;
  REQUIRE_MESSAGE(client.connect(target.port()), client.last_error());
  const ReadResult greeting = client.read_packet(10s);
  REQUIRE_MESSAGE(greeting.ok(), describe(greeting));
  // Header of a 64-byte response with seq 1, and 8 bytes of it.
  REQUIRE(client.send_raw(frame_header(64, 1) + std::string(8, '\0')));
  const auto started = Clock::now();
  const ReadResult read = client.read_packet(10s);
  const auto elapsed = Clock::now() - started;
  check_err(read, 1159, "08S01", 2);
  check_timing(elapsed, 1s, "ERR 1159");
  CHECK(scrape(sluice.metrics_port(), "sluice_timeouts_total", main_and("kind", "read")) == 1);
  // Logged when it happened, although this client keeps its end open (sluice
  // waits up to 2 s for it to read the ERR and close).
  CHECK_MESSAGE(
      wait_until(
          [&] { return sluice.stderr_text().find("reason=read_timeout") != std::string::npos; },
          500ms),
      sluice.stderr_text());
}

TEST_CASE(
    "timeouts: a HandshakeResponse stalled after a first byte that could start a PROXY header "
    "gets 1159 seq 2") {
  if (direct_mode()) return;
  MariaDbServer server;
  Target target(server, {.listener = {{"net_read_timeout", "1s"}, {"handshake_timeout", "10s"}}});
  SluiceProcess& sluice = *target.sluice();
  // An 80-byte response (root, a 20-byte scramble, nothing else) starts with
  // 'P' (0x50), as a PROXY v1 header does; 0x0D starts a v2 one.
  for (const char* first : {"\x50", "\x0d"}) {
    CAPTURE(static_cast<int>(first[0]));
    RawMysqlClient client;
    REQUIRE_MESSAGE(client.connect(target.port()), client.last_error());
    const ReadResult greeting = client.read_packet(10s);
    REQUIRE_MESSAGE(greeting.ok(), describe(greeting));
    REQUIRE(client.send_raw(first));
    const auto started = Clock::now();
    const ReadResult read = client.read_packet(10s);
    const auto elapsed = Clock::now() - started;
    check_err(read, 1159, "08S01", 2);
    check_timing(elapsed, 1s, "ERR 1159");
  }
  CHECK(scrape(sluice.metrics_port(), "sluice_timeouts_total", main_and("kind", "read")) == 2);
  CHECK(scrape(sluice.metrics_port(), "sluice_timeouts_total", main_and("kind", "handshake")) == 0);
}

TEST_CASE("timeouts: an idle client gets 4031 HY000 seq 0 at wait_timeout, then a close") {
  if (direct_mode()) return;
  MariaDbServer server;
  Target target(server, {.listener = {{"wait_timeout", "2s"}}});
  SluiceProcess& sluice = *target.sluice();
  MysqlConn monitor(server.socket_options());

  RawMysqlClient client;
  login(client, target.port());
  REQUIRE(client.query("SELECT 1").ok());
  const auto idle_from = Clock::now();  // the response is complete: idle from here
  const ReadResult read = client.read_packet(10s);
  const auto elapsed = Clock::now() - idle_from;
  check_err(read, 4031, "HY000", 0);
  check_timing(elapsed, 2s, "ERR 4031");

  const ReadStatus end = client.wait_closed(5s);
  CHECK_MESSAGE((end == ReadStatus::kEof || end == ReadStatus::kReset),
                std::string(to_string(end)));
  CHECK_MESSAGE(wait_server_sessions(monitor, 0, 5s), "the server session outlived the timeout");
  CHECK(scrape(sluice.metrics_port(), "sluice_timeouts_total", main_and("kind", "idle")) == 1);
  CHECK(wait_until(
      [&] { return scrape(sluice.metrics_port(), "sluice_connections_active", kMain) == 0; }, 5s));
}

TEST_CASE(
    "timeouts: a wait_timeout lowered by SIGHUP cuts a session already idle, counted from its "
    "last exchange") {
  if (direct_mode()) return;
  MariaDbServer server;
  Target target(server, {.listener = {{"wait_timeout", "8h"}}});
  SluiceProcess& sluice = *target.sluice();
  RawMysqlClient client;
  login(client, target.port());
  REQUIRE(client.query("SELECT 1").ok());
  const auto idle_from = Clock::now();
  std::string yaml = sluice.config_text();
  const auto at = yaml.find("wait_timeout: 8h");
  REQUIRE(at != std::string::npos);
  yaml.replace(at, 16, "wait_timeout: 3s");
  write_file(sluice.config_path(), yaml);
  const Labels ok = {{"result", "ok"}};
  const double reloads = scrape(sluice.metrics_port(), "sluice_config_reloads_total", ok);
  sluice.send_signal(SIGHUP);
  REQUIRE(wait_until(
      [&] {
        return scrape(sluice.metrics_port(), "sluice_config_reloads_total", ok) == reloads + 1;
      },
      2s));
  // No packet since: the new 3 s run from the last exchange, not from the
  // reload, and not from the session's next packet.
  const ReadResult read = client.read_packet(10s);
  check_err(read, 4031, "HY000", 0);
  check_timing(Clock::now() - idle_from, 3s, "ERR 4031");
  CHECK(scrape(sluice.metrics_port(), "sluice_timeouts_total", main_and("kind", "idle")) == 1);
}

TEST_CASE(
    "timeouts: a client querying more often than wait_timeout for 3x wait_timeout is never "
    "cut off") {
  if (direct_mode()) return;
  MariaDbServer server;
  Target target(server, {.listener = {{"wait_timeout", "2s"}}});
  SluiceProcess& sluice = *target.sluice();

  RawMysqlClient client;
  login(client, target.port());
  const QueryResult id = client.query("SELECT CONNECTION_ID()");
  REQUIRE(id.ok());
  const auto started = Clock::now();
  int queries = 0;
  while (Clock::now() - started < 6s) {
    std::this_thread::sleep_for(700ms);
    const QueryResult r = client.query("SELECT CONNECTION_ID()");
    REQUIRE_MESSAGE(r.ok(), "query ", queries, " at ", seconds(Clock::now() - started),
                    " s: ", r.failure, r.error ? " ERR " + std::to_string(r.error->code) : "");
    CHECK(r.rows() == id.rows());
    ++queries;
  }
  // A command running longer than wait_timeout is not idleness either.
  const QueryResult slow = client.query("SELECT SLEEP(3)");
  CHECK_MESSAGE(slow.ok(), slow.failure);
  CHECK(scrape(sluice.metrics_port(), "sluice_timeouts_total", main_and("kind", "idle")) == 0);

  // Control: the setting is live; once the client stops, it is cut off.
  const auto idle_from = Clock::now();
  const ReadResult read = client.read_packet(10s);
  check_err(read, 4031, "HY000", 0);
  check_timing(Clock::now() - idle_from, 2s, "ERR 4031");
}

TEST_CASE(
    "timeouts: a black-hole upstream is cut off at handshake_timeout with 1159 seq 0, and "
    "500 of them leave no fd behind") {
  if (direct_mode()) return;
  FakeUpstream black_hole(FakeUpstream::Mode::kBlackHole);
  SluiceProcess sluice({.upstream_ports = {black_hole.port()},
                        .listener = {{"handshake_timeout", "1s"}, {"max_connections", "1000"}}});
  const int metrics = sluice.metrics_port();

  {  // One, timed.
    RawMysqlClient client;
    REQUIRE_MESSAGE(client.connect(sluice.port()), client.last_error());
    const auto started = Clock::now();
    const ReadResult read = client.read_packet(10s);
    const auto elapsed = Clock::now() - started;
    check_err(read, 1159, "08S01", 0);
    check_timing(elapsed, 1s, "ERR 1159");
    const ReadStatus end = client.wait_closed(5s);
    CHECK_MESSAGE((end == ReadStatus::kEof || end == ReadStatus::kReset),
                  std::string(to_string(end)));
  }
  REQUIRE(
      wait_until([&] { return scrape(metrics, "sluice_connections_active", kMain) == 0; }, 10s));
  REQUIRE(wait_until([&] { return black_hole.open_now() == 0; }, 10s));
  std::this_thread::sleep_for(200ms);
  const int fds_before = sluice.fd_count();
  const long rss_before = sluice.rss_kib();

  // 500 more, 100 at a time.
  constexpr int kBatches = 5;
  constexpr int kBatch = 100;
  int errs = 0;
  std::string first_unexpected;
  const auto all_started = Clock::now();
  for (int b = 0; b < kBatches; ++b) {
    std::vector<RawMysqlClient> clients(kBatch);
    for (auto& c : clients) REQUIRE_MESSAGE(c.connect(sluice.port()), c.last_error());
    const auto batch_started = Clock::now();
    for (auto& c : clients) {
      const ReadResult read = c.read_packet(10s);
      const auto err = read.ok() ? parse_err(read.packet) : std::nullopt;
      if (err && err->code == 1159 && err->seq == 0) {
        ++errs;
      } else if (first_unexpected.empty()) {
        first_unexpected = describe(read);
      }
      c.close();
    }
    CHECK(Clock::now() - batch_started < 5s);
  }
  MESSAGE("500 black-hole sessions in ", seconds(Clock::now() - all_started), " s");
  CHECK_MESSAGE(errs == kBatches * kBatch, "first unexpected answer: ", first_unexpected);

  CHECK(wait_until([&] { return scrape(metrics, "sluice_connections_active", kMain) == 0; }, 10s));
  CHECK(wait_until([&] { return sluice.fd_count() <= fds_before; }, 10s));
  const int fds_after = sluice.fd_count();
  MESSAGE("sluice fds ", fds_before, " -> ", fds_after, ", RSS ", rss_before, " -> ",
          sluice.rss_kib(), " KiB");
  CHECK(fds_after == fds_before);
  CHECK(wait_until([&] { return black_hole.open_now() == 0; }, 10s));
  CHECK(black_hole.accepted() == 1 + kBatches * kBatch);
  const std::string text = http_get(metrics);
  CHECK(metric_value(text, "sluice_timeouts_total", main_and("kind", "handshake")) ==
        1 + kBatches * kBatch);
  CHECK(metric_value(text, "sluice_buffered_bytes") == 0);
  CHECK(sluice.running());
}

TEST_CASE(
    "timeouts: a client that never answers the greeting is closed at handshake_timeout "
    "without an ERR") {
  if (direct_mode()) return;
  MariaDbServer server;
  Target target(server, {.listener = {{"handshake_timeout", "1s"}}});
  SluiceProcess& sluice = *target.sluice();
  MysqlConn monitor(server.socket_options());

  RawMysqlClient client;
  const auto started = Clock::now();  // handshake_timeout runs from the accept
  REQUIRE_MESSAGE(client.connect(target.port()), client.last_error());
  const ReadResult greeting = client.read_packet(10s);
  REQUIRE_MESSAGE(greeting.ok(), describe(greeting));
  REQUIRE_FALSE(parse_err(greeting.packet).has_value());

  const ReadResult read = client.read_packet(10s);
  const auto elapsed = Clock::now() - started;
  INFO("after the greeting the client received: ", describe(read));
  CHECK((read.status == ReadStatus::kEof || read.status == ReadStatus::kReset));
  check_timing(elapsed, 1s, "close");
  CHECK_MESSAGE(wait_server_sessions(monitor, 0, 5s), "the server session outlived the timeout");
  CHECK(scrape(sluice.metrics_port(), "sluice_timeouts_total", main_and("kind", "handshake")) == 1);
}

TEST_CASE(
    "timeouts: a client stalled in its TLS handshake is closed at handshake_timeout, while a TLS "
    "session that has logged in outlives it") {
  if (direct_mode()) return;
  // Past the SSLRequest sluice sees only TLS records, yet handshake_timeout
  // still bounds the handshake (before, only the server's own connect_timeout
  // of 10 s did).
  TlsCerts certs;
  MariaDbServer server({.args = certs.server_args()});
  Target target(server, {.listener = {{"handshake_timeout", "2s"}}});
  SluiceProcess& sluice = *target.sluice();
  MysqlConn monitor(server.socket_options());

  for (const bool began_hello : {false, true}) {
    INFO((began_hello ? "a ClientHello record begun, never finished" : "nothing after SSLRequest"));
    RawMysqlClient client;
    const auto started = Clock::now();  // handshake_timeout runs from the accept
    REQUIRE_MESSAGE(client.connect(target.port()), client.last_error());
    const ReadResult greeting = client.read_packet(10s);
    REQUIRE_MESSAGE(greeting.ok(), describe(greeting));
    const auto parsed = parse_greeting(greeting.packet.payload);
    REQUIRE(parsed.has_value());
    std::string sent = frames(1, ssl_request_payload(*parsed));
    if (began_hello) sent += std::string("\x16\x03\x01\x02\x00", 5) + std::string(100, '\x01');
    REQUIRE(client.send_raw(sent));
    const ReadResult read = client.read_packet(10s);
    const auto elapsed = Clock::now() - started;
    INFO("after the SSLRequest the client received: ", describe(read));
    // No plaintext ERR: the client expects TLS records.
    CHECK((read.status == ReadStatus::kEof || read.status == ReadStatus::kReset));
    check_timing(elapsed, 2s, "close");
  }
  CHECK_MESSAGE(wait_server_sessions(monitor, 0, 5s), "the server session outlived the timeout");
  CHECK(scrape(sluice.metrics_port(), "sluice_timeouts_total", main_and("kind", "handshake")) == 2);

  // The watch ends with the handshake: a session longer than it goes on,
  // whichever TLS version the watch followed.
  for (const char* version : {"TLSv1.3", "TLSv1.2"}) {
    const auto result = mariadb_cli(
        target.port(),
        {"--ssl", "--ssl-ca=" + certs.ca_cert(), std::string("--tls-version=") + version, "-e",
         "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE "
         "VARIABLE_NAME = 'Ssl_version'; SELECT SLEEP(2.5), 'done'"});
    REQUIRE_MESSAGE(result.status.success(), result.err);
    CHECK(result.out == std::string(version) + "\n0\tdone\n");
  }
  CHECK(scrape(sluice.metrics_port(), "sluice_timeouts_total", main_and("kind", "handshake")) == 2);
}

// A logged-in raw client with a 4 KiB receive buffer sends a query whose
// result is ~200 MB and never reads. Returns when sluice counted a write
// timeout (or after 15 s), with the elapsed time and sluice's peak RSS.
struct StalledReader {
  Clock::duration elapsed{};
  Clock::duration last_progress{};  // when sluice last forwarded server bytes (from the query)
  long peak_rss_kib = 0;
  bool timed_out = false;
};

StalledReader stop_reading_big_result(SluiceProcess& sluice, RawMysqlClient& client) {
  REQUIRE_MESSAGE(client.connect(sluice.port()), client.last_error());
  const int small = 4096;
  ::setsockopt(client.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  const HandshakeResult hello = client.handshake();
  REQUIRE_MESSAGE(hello.logged_in, hello.failure);
  StalledReader out;
  REQUIRE(client.send_packet(0, "\x03SELECT seq, REPEAT('x', 1000) FROM mysql.seq_1_to_200000"));
  const auto started = Clock::now();
  const auto deadline = started + 15s;
  double forwarded = 0;
  while (Clock::now() < deadline) {
    out.peak_rss_kib = std::max(out.peak_rss_kib, sluice.rss_kib());
    const std::string text = http_get(sluice.metrics_port());
    const double now_forwarded =
        metric_value(text, "sluice_bytes_total", main_and("direction", "server_to_client"));
    if (now_forwarded != forwarded) out.last_progress = Clock::now() - started;
    forwarded = now_forwarded;
    if (metric_sum(text, "sluice_timeouts_total", kMain) > 0) {
      out.timed_out = metric_value(text, "sluice_timeouts_total", main_and("kind", "write")) > 0;
      break;
    }
    std::this_thread::sleep_for(50ms);
  }
  out.elapsed = Clock::now() - started;
  return out;
}

TEST_CASE(
    "timeouts: a client that stops reading a 200 MB result is cut off at "
    "net_write_timeout, with sluice's memory bounded meanwhile") {
  if (direct_mode()) return;
  MariaDbServer server;
  Target target(server, {.listener = {{"net_write_timeout", "2s"}}});
  SluiceProcess& sluice = *target.sluice();
  MysqlConn monitor(server.socket_options());

  const int fds_before = sluice.fd_count();
  RawMysqlClient client;
  const StalledReader stalled = stop_reading_big_result(sluice, client);
  MESSAGE("sluice last forwarded server bytes ", seconds(stalled.last_progress),
          " s after the query; the session ended after ", seconds(stalled.elapsed), " s");
  REQUIRE_MESSAGE(stalled.timed_out, "no write timeout after ", seconds(stalled.elapsed), " s");
  check_timing(stalled.elapsed, 2s, "write timeout");
  MESSAGE("sluice peak RSS while the client stalled: ", stalled.peak_rss_kib, " KiB");
  CHECK(stalled.peak_rss_kib < 64 * 1024);

  // Both sides are gone: the server session, and (after what was already in
  // flight) the client's connection.
  CHECK_MESSAGE(wait_server_sessions(monitor, 0, 10s), "the server session outlived the timeout");
  // sluice's end of the client connection is closed: its fd is gone, and the
  // kernel holds the socket in FIN-WAIT while it still delivers the MBs that
  // were queued (slowly, through the client's 4 KiB window) before the FIN.
  const int client_port = local_port(client.fd());
  CHECK(wait_until([&] { return sluice.fd_count() <= fds_before; }, 5s));
  const std::string state = tcp_state(sluice.port(), client_port);
  INFO("sluice's end of the client connection: ", state);
  CHECK((state.rfind("FIN_WAIT", 0) == 0 || state == "CLOSING" || state == "TIME_WAIT" ||
         state == "CLOSE" || state == "LAST_ACK" || state == "absent"));
  client.reset();
  const std::string text = http_get(sluice.metrics_port());
  CHECK(metric_value(text, "sluice_timeouts_total", main_and("kind", "write")) == 1);
  CHECK(metric_value(text, "sluice_timeouts_total", main_and("kind", "read")) == 0);
  CHECK(metric_value(text, "sluice_connections_active", kMain) == 0);
  CHECK(metric_value(text, "sluice_buffered_bytes") == 0);
}

TEST_CASE(
    "timeouts: a client that stops reading is a write timeout even when net_read_timeout "
    "is shorter") {
  if (direct_mode()) return;
  // sluice stops reading the server when the client does not drain (back
  // pressure). A server packet caught half-read by that pause did not stall on
  // the server's side, so it must not turn into a read timeout.
  MariaDbServer server;
  Target target(server, {.listener = {{"net_write_timeout", "2s"}, {"net_read_timeout", "1s"}}});
  SluiceProcess& sluice = *target.sluice();

  RawMysqlClient client;
  const StalledReader stalled = stop_reading_big_result(sluice, client);
  const std::string text = http_get(sluice.metrics_port());
  INFO("timeouts: write ", metric_value(text, "sluice_timeouts_total", main_and("kind", "write")),
       ", read ", metric_value(text, "sluice_timeouts_total", main_and("kind", "read")));
  MESSAGE("sluice last forwarded server bytes ", seconds(stalled.last_progress),
          " s after the query; the session ended after ", seconds(stalled.elapsed), " s");
  CHECK(stalled.timed_out);
  CHECK(metric_value(text, "sluice_timeouts_total", main_and("kind", "read")) == 0);
}

// Logs the client in as a real server would (any credentials), then runs `then`.
ScriptedUpstream::Script fake_login_then(std::function<void(ScriptedConn&)> then) {
  return [then = std::move(then)](ScriptedConn& c) {
    if (!c.send(frames(0, fake_greeting(77)))) return;
    if (!c.read_frame()) return;  // HandshakeResponse
    if (!c.send(frames(2, fake_ok_payload()))) return;
    then(c);
  };
}

TEST_CASE(
    "timeouts: a server stalling mid-response gives the client 1159 with the seq it "
    "expects next, then both sides close") {
  if (direct_mode()) return;
  // A real server cannot be made to stop mid-packet; this one can.
  ScriptedUpstream server(fake_login_then([](ScriptedConn& c) {
    if (!c.read_frame()) return;  // the query
    // Column count (seq 1), then 10 bytes of a 100-byte column definition (seq 2).
    c.send(frames(1, std::string(1, '\x01')) + frame_header(100, 2) + std::string(10, 'c'));
    c.hold();
  }));
  SluiceProcess sluice(
      {.upstream_ports = {server.port()}, .listener = {{"net_read_timeout", "1s"}}});

  RawMysqlClient client;
  login(client, sluice.port());
  REQUIRE(client.send_packet(0, "\x03SELECT 'stall'"));
  const auto started = Clock::now();  // the fake answers at once, then stalls
  const ReadResult count = client.read_packet(10s);
  REQUIRE_MESSAGE(count.ok(), describe(count));
  CHECK(count.packet.payload == std::string(1, '\x01'));
  const ReadResult read = client.read_packet(10s);
  const auto elapsed = Clock::now() - started;
  check_err(read, 1159, "08S01", 2);
  check_timing(elapsed, 1s, "ERR 1159");
  const ReadStatus end = client.wait_closed(5s);
  CHECK_MESSAGE((end == ReadStatus::kEof || end == ReadStatus::kReset),
                std::string(to_string(end)));
  CHECK_MESSAGE(wait_until([&] { return server.running() == 0; }, 5s),
                "sluice kept the stalled upstream connection open");
  CHECK(scrape(sluice.metrics_port(), "sluice_timeouts_total", main_and("kind", "read")) == 1);
}

TEST_CASE("timeouts: a PROXY header made whole before a slow greeting ends its read deadline") {
  if (direct_mode()) return;
  // The server greets 1.5 s after the connect, past net_read_timeout.
  ScriptedUpstream server([](ScriptedConn& c) {
    std::this_thread::sleep_for(1500ms);
    if (!c.send(frames(0, fake_greeting(78)))) return;
    c.hold();
  });
  SluiceProcess sluice({.upstream_ports = {server.port()},
                        .listener = {{"net_read_timeout", "1s"}, {"handshake_timeout", "10s"}}});
  RawMysqlClient client;
  REQUIRE_MESSAGE(client.connect(sluice.port()), client.last_error());
  // In two reads, so that sluice holds a part of it first; once it is whole
  // nothing is started, and the wait for the greeting is no stalled packet.
  REQUIRE(client.send_raw("PROXY TCP4 127.0.0.1 "));
  std::this_thread::sleep_for(100ms);
  REQUIRE(client.send_raw("127.0.0.1 40000 3306\r\n"));
  const ReadResult greeting = client.read_packet(10s);
  REQUIRE_MESSAGE(greeting.ok(), describe(greeting));
  CHECK(greeting.packet.payload == fake_greeting(78));
  CHECK(scrape(sluice.metrics_port(), "sluice_timeouts_total", main_and("kind", "read")) == 0);
}

// A fake server that answers the query with a column count and then the
// first `sent` bytes of a 1 MiB row (seq 2), and stalls there.
ScriptedUpstream::Script stall_in_large_row(std::size_t sent) {
  return fake_login_then([sent](ScriptedConn& c) {
    if (!c.read_frame()) return;  // the query
    c.send(frames(1, std::string(1, '\x01')) + frame_header(1 << 20, 2) + std::string(sent, 'r'));
    c.hold();
  });
}

TEST_CASE(
    "timeouts: a server stalling early in a large row gives the client 1159: the row was "
    "still held") {
  if (direct_mode()) return;
  ScriptedUpstream server(stall_in_large_row(100 * 1024));
  SluiceProcess sluice(
      {.upstream_ports = {server.port()}, .listener = {{"net_read_timeout", "1s"}}});
  RawMysqlClient client;
  login(client, sluice.port());
  REQUIRE(client.send_packet(0, "\x03SELECT 'stall'"));
  REQUIRE(client.read_packet(10s).ok());  // the column count
  check_err(client.read_packet(10s), 1159, "08S01", 2);
  CHECK(scrape(sluice.metrics_port(), "sluice_timeouts_total", main_and("kind", "read")) == 1);
}

TEST_CASE(
    "timeouts: a server stalling in a large row that is streaming: the client has part of it, "
    "then the close, never an ERR") {
  if (direct_mode()) return;
  // 512 KiB of a 1 MiB row: past the 256 KiB after which server packets
  // stream, so the client already has part of the row and can no longer read
  // an ERR; it gets what a dead server would leave it.
  ScriptedUpstream server(stall_in_large_row(512 * 1024));
  SluiceProcess sluice(
      {.upstream_ports = {server.port()}, .listener = {{"net_read_timeout", "1s"}}});
  RawMysqlClient client;
  login(client, sluice.port());
  REQUIRE(client.send_packet(0, "\x03SELECT 'stall'"));
  const auto started = Clock::now();
  REQUIRE(client.read_packet(10s).ok());  // the column count
  ReadStatus end = ReadStatus::kOk;
  const std::string row = client.read_until_closed(10s, &end);
  check_timing(Clock::now() - started, 1s, "the close");
  CHECK_MESSAGE((end == ReadStatus::kEof || end == ReadStatus::kReset),
                std::string(to_string(end)));
  // The row's header, then its bytes as far as they came: nothing after them.
  REQUIRE(row.size() >= 4 + 256 * 1024);
  CHECK(row.size() <= 4 + 512 * 1024);
  CHECK(row.substr(0, 4) == frame_header(1 << 20, 2));
  CHECK(row.find_first_not_of('r', 4) == std::string::npos);
  CHECK(scrape(sluice.metrics_port(), "sluice_timeouts_total", main_and("kind", "read")) == 1);
  CHECK_MESSAGE(wait_until([&] { return server.running() == 0; }, 5s),
                "sluice kept the stalled upstream connection open");
}

TEST_CASE(
    "timeouts: a server stalling mid-greeting gives the client 1159 seq 0 at "
    "net_read_timeout") {
  if (direct_mode()) return;
  ScriptedUpstream server([](ScriptedConn& c) {
    const std::string greeting = frames(0, fake_greeting(78));
    c.send(greeting.substr(0, 9));  // header and 5 bytes
    c.hold();
  });
  SluiceProcess sluice({.upstream_ports = {server.port()},
                        .listener = {{"net_read_timeout", "1s"}, {"handshake_timeout", "10s"}}});

  RawMysqlClient client;
  const auto started = Clock::now();
  REQUIRE_MESSAGE(client.connect(sluice.port()), client.last_error());
  const ReadResult read = client.read_packet(10s);
  const auto elapsed = Clock::now() - started;
  check_err(read, 1159, "08S01", 0);
  check_timing(elapsed, 1s, "ERR 1159");
  CHECK(wait_until([&] { return server.running() == 0; }, 5s));
  CHECK(scrape(sluice.metrics_port(), "sluice_timeouts_total", main_and("kind", "read")) == 1);
}

TEST_CASE(
    "timeouts: a server that never answers the login gives the client 1159 seq 2 at "
    "handshake_timeout") {
  if (direct_mode()) return;
  ScriptedUpstream server([](ScriptedConn& c) {
    if (!c.send(frames(0, fake_greeting(79)))) return;
    if (!c.read_frame()) return;  // HandshakeResponse (seq 1); no OK ever comes
    c.hold();
  });
  SluiceProcess sluice(
      {.upstream_ports = {server.port()}, .listener = {{"handshake_timeout", "2s"}}});

  RawMysqlClient client;
  const auto started = Clock::now();  // handshake_timeout runs from the accept
  REQUIRE_MESSAGE(client.connect(sluice.port()), client.last_error());
  const HandshakeResult login = client.handshake("root", "", "", 0, 10s);
  const auto elapsed = Clock::now() - started;
  REQUIRE_FALSE(login.logged_in);
  REQUIRE_MESSAGE(login.error.has_value(), login.failure);
  CHECK(login.error->code == 1159);
  CHECK(login.error->sqlstate == "08S01");
  CHECK(static_cast<int>(login.error->seq) == 2);
  check_timing(elapsed, 2s, "ERR 1159");
  CHECK(wait_until([&] { return server.running() == 0; }, 5s));
  CHECK(scrape(sluice.metrics_port(), "sluice_timeouts_total", main_and("kind", "handshake")) == 1);
}

TEST_CASE("timeouts: a server that stops reading gives the client 1161 at net_write_timeout") {
  if (direct_mode()) return;
  std::atomic<int> sluice_side_port{0};
  ScriptedUpstream server(fake_login_then([&](ScriptedConn& c) {
    sluice_side_port = remote_port(c.fd());
    c.hold();
  }));
  SluiceProcess sluice(
      {.upstream_ports = {server.port()}, .listener = {{"net_write_timeout", "1s"}}});

  RawMysqlClient client;
  login(client, sluice.port());
  // 30 MiB: two frames (seq 0 and 1); far more than the socket buffers take.
  std::string query = "\x03SELECT '" + std::string(30u << 20, 'w') + "'";
  REQUIRE(client.send_packet(0, query, 60s));
  const auto started = Clock::now();
  const ReadResult read = client.read_packet(10s);
  const auto elapsed = Clock::now() - started;
  check_err(read, 1161, "08S01", 2);
  check_timing(elapsed, 1s, "ERR 1161");
  const ReadStatus end = client.wait_closed(5s);
  CHECK_MESSAGE((end == ReadStatus::kEof || end == ReadStatus::kReset),
                std::string(to_string(end)));
  // sluice closed its upstream socket. The fake never reads, so the FIN stays
  // queued behind the unsent MBs (the kernel holds the orphan in FIN-WAIT-1)
  // and the fake cannot notice; what can be checked is sluice's end.
  const std::string state = tcp_state(sluice_side_port, server.port());
  INFO("sluice's end of the upstream connection: ", state);
  CHECK((state.rfind("FIN_WAIT", 0) == 0 || state == "CLOSING" || state == "TIME_WAIT" ||
         state == "CLOSE" || state == "LAST_ACK" || state == "absent"));
  const std::string text = http_get(sluice.metrics_port());
  CHECK(metric_value(text, "sluice_timeouts_total", main_and("kind", "write")) == 1);
  client.close();  // after an ERR sluice lingers for the client's FIN
  CHECK(wait_until(
      [&] { return scrape(sluice.metrics_port(), "sluice_connections_active", kMain) == 0; }, 5s));
  CHECK(scrape(sluice.metrics_port(), "sluice_buffered_bytes") == 0);
}

TEST_CASE(
    "timeouts: the server session killed mid-result gives the client an error or a clean "
    "close within seconds") {
  MariaDbServer server;
  Target target(server);
  MysqlConn monitor(server.socket_options());

  RawMysqlClient client;
  REQUIRE_MESSAGE(client.connect(target.port()), client.last_error());
  const HandshakeResult hello = client.handshake();
  REQUIRE_MESSAGE(hello.logged_in, hello.failure);
  const std::uint32_t id = hello.greeting.connection_id;
  // Endless enough: ~10 GB of rows, streamed while the client reads.
  REQUIRE(client.send_packet(0, "\x03SELECT seq, REPEAT('y', 100) FROM mysql.seq_1_to_100000000"));
  int packets = 0;
  for (; packets < 2000; ++packets) {
    const ReadResult read = client.read_packet(10s);
    REQUIRE_MESSAGE(read.ok(), describe(read));
    REQUIRE_FALSE(parse_err(read.packet).has_value());
  }
  monitor.exec("KILL " + std::to_string(id));
  const auto killed = Clock::now();

  // Keep reading: rows still in flight, then an ERR or a close; never a hang.
  ReadResult read;
  std::optional<ServerError> err;
  while (Clock::now() - killed < 15s) {
    read = client.read_packet(15s);
    if (!read.ok()) break;
    ++packets;
    err = parse_err(read.packet);
    if (err) break;
  }
  const auto ended_after = Clock::now() - killed;
  MESSAGE(target.name(), ": ", packets, " packets, then ", describe(read), " ",
          seconds(ended_after), " s after KILL");
  CHECK(ended_after < 5s);
  const bool clean = read.status == ReadStatus::kEof || read.status == ReadStatus::kReset ||
                     (read.ok() && err.has_value());
  CHECK_MESSAGE(clean, describe(read));
  if (err) {
    // The connection is over after the server's ERR.
    const ReadStatus end = client.wait_closed(5s);
    CHECK_MESSAGE((end == ReadStatus::kEof || end == ReadStatus::kReset),
                  std::string(to_string(end)));
  }
  CHECK(wait_server_sessions(monitor, 0, 10s));
  if (SluiceProcess* sluice = target.sluice()) {
    CHECK(wait_until(
        [&] { return scrape(sluice->metrics_port(), "sluice_connections_active", kMain) == 0; },
        5s));
    CHECK(sluice->running());
  }
}

}  // namespace
}  // namespace sluice::test
