// Session lifecycle through sluice: churn leaks nothing, partial packets stay, SIGTERM drains.
#include <doctest/doctest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <string>
#include <thread>
#include <vector>

#include "tests/support/fault_peers.h"
#include "tests/support/free_port.h"
#include "tests/support/mariadb_server.h"
#include "tests/support/metrics_scrape.h"
#include "tests/support/mysql_codec.h"
#include "tests/support/mysql_conn.h"
#include "tests/support/raw_mysql.h"
#include "tests/support/target.h"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const std::string kComQuit(1, '\x01');

// Client sessions the server has open, the monitoring connection excluded.
int server_sessions(MysqlConn& monitor) {
  return std::stoi(monitor.scalar("SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS "
                                  "WHERE VARIABLE_NAME = 'THREADS_CONNECTED'")) -
         1;
}

// Waits until the server has `sessions` client sessions besides the monitor.
bool wait_server_sessions(MysqlConn& monitor, int sessions, std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (server_sessions(monitor) != sessions) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

// One short-lived client, ending in one of several ways a real client ends.
void churn_once(int port, int i) {
  RawMysqlClient client;
  REQUIRE_MESSAGE(client.connect(port), client.last_error());
  switch (i % 5) {
    case 0: {  // polite: login, COM_QUIT, close
      const auto login = client.handshake();
      REQUIRE_MESSAGE(login.logged_in, login.failure);
      REQUIRE(client.send_packet(0, kComQuit));
      client.close();
      break;
    }
    case 1: {  // a query, then a close without COM_QUIT
      REQUIRE(client.handshake().logged_in);
      const auto result = client.query("SELECT " + std::to_string(i));
      REQUIRE_MESSAGE(result.ok(), result.failure);
      REQUIRE(result.rows()[0][0] == std::to_string(i));
      client.close();
      break;
    }
    case 2: {  // gone right after the greeting
      REQUIRE(client.read_packet().ok());
      client.close();
      break;
    }
    case 3: {  // logged in, then an RST
      REQUIRE(client.handshake().logged_in);
      client.reset();
      break;
    }
    default:  // gone before the greeting
      client.close();
      break;
  }
}

// Everything but the monitor's own connection that the server has read, in
// bytes. Global Bytes_received sums every session (ended or live); the
// monitor's session counter is taken in the same statement, so however often
// the monitor polls, the difference only moves when another client's bytes
// reach the server.
long long bytes_from_others(MysqlConn& monitor) {
  return std::stoll(
      monitor.scalar("SELECT (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS "
                     "        WHERE VARIABLE_NAME = 'BYTES_RECEIVED') - "
                     "       (SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS "
                     "        WHERE VARIABLE_NAME = 'BYTES_RECEIVED')"));
}

struct ReceivedBytes {
  long long while_open = 0;  // what the server got while the client was still connected
  long long in_total = 0;    // ... and once the session was over
};

// A logged-in client that (optionally) sends the start of a packet (a header
// announcing 1000 bytes plus 10 of them), holds the connection for a moment,
// then closes. Returns what the server received from it.
ReceivedBytes session_with_partial_packet(int port, MysqlConn& monitor, bool partial) {
  REQUIRE(wait_server_sessions(monitor, 0, 30s));
  const long long before = bytes_from_others(monitor);
  RawMysqlClient client;
  REQUIRE_MESSAGE(client.connect(port), client.last_error());
  const auto login = client.handshake();
  REQUIRE_MESSAGE(login.logged_in, login.failure);
  if (partial) REQUIRE(client.send_raw(frame_header(1000, 0) + "0123456789"));
  // Time for a proxy that forwards partial packets to have done so.
  std::this_thread::sleep_for(1s);
  ReceivedBytes received;
  received.while_open = bytes_from_others(monitor) - before;
  CHECK(server_sessions(monitor) == 1);
  client.close();
  // No session may linger in a read on the server once the client is gone.
  CHECK_MESSAGE(wait_server_sessions(monitor, 0, 30s), "server session still open after close");
  received.in_total = bytes_from_others(monitor) - before;
  return received;
}

TEST_CASE(
    "lifecycle: 1,000 connect/disconnect cycles leave sluice's fds and RSS where they started") {
  // Clients that vanish before logging in are connect errors to the server;
  // don't let it block 127.0.0.1 for them.
  MariaDbServer server({.args = {"--max-connect-errors=1000000"}});
  Target target(server);
  MysqlConn monitor(server.socket_options());

  // Warm-up: allocator pools, lazily created objects and thread caches settle first.
  for (int i = 0; i < 100; ++i) churn_once(target.port(), i);
  REQUIRE(wait_server_sessions(monitor, 0, 30s));
  SluiceProcess* sluice = target.sluice();
  int fds_before = 0;
  long rss_before = 0;
  if (sluice != nullptr) {
    std::this_thread::sleep_for(500ms);
    fds_before = sluice->fd_count();
    rss_before = sluice->rss_kib();
  }

  for (int i = 0; i < 1000; ++i) churn_once(target.port(), i);

  // Every session is gone on the server side ...
  CHECK_MESSAGE(wait_server_sessions(monitor, 0, 30s), "server sessions left open");
  if (sluice == nullptr) {
    MESSAGE("direct mode: sluice fd/RSS checks skipped");
    return;
  }
  // ... and in sluice: wait for the descriptor count to come back, then compare.
  const auto deadline = Clock::now() + 30s;
  while (sluice->fd_count() > fds_before && Clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
  }
  const int fds_after = sluice->fd_count();
  const long rss_after = sluice->rss_kib();
  MESSAGE("sluice fds ", fds_before, " -> ", fds_after, ", RSS ", rss_before, " -> ", rss_after,
          " KiB after 1,000 cycles");
  CHECK(fds_after == fds_before);
  // Small tolerance: allocator caches may keep a little more than before.
  CHECK(rss_after <= rss_before + 2048);
  const std::string metrics = http_get(sluice->metrics_port());
  CHECK(metric_value(metrics, "sluice_connections_active", {{"listener", "main"}}) == 0);
  CHECK(metric_value(metrics, "sluice_connections_total", {{"listener", "main"}}) >= 1100);
  CHECK(sluice->running());
}

TEST_CASE("lifecycle: a client that disconnects mid-packet leaves nothing half-sent upstream") {
  MariaDbServer server;
  Target target(server);
  MysqlConn monitor(server.socket_options());

  // The control session differs only in not sending the partial packet, so any
  // difference in what the server received is exactly what got forwarded of it.
  const ReceivedBytes control = session_with_partial_packet(target.port(), monitor, false);
  const ReceivedBytes partial = session_with_partial_packet(target.port(), monitor, true);
  MESSAGE(target.name(), ": server received ", control.in_total,
          " bytes from the control session, ", partial.in_total,
          " from the one that stopped mid-packet (", partial.while_open, " while it was open)");
  CHECK(control.while_open > 0);
  if (target.direct()) {
    // Without sluice the server does get the 14 bytes: this is what the
    // check below would see if sluice forwarded a partial packet.
    CHECK(partial.while_open - control.while_open == 14);
    CHECK(partial.in_total - control.in_total == 14);
  } else {
    CHECK(partial.while_open == control.while_open);
    CHECK(partial.in_total == control.in_total);
  }

  // The proxy is still fine for the next client.
  MysqlConn after(target.options());
  CHECK(after.scalar("SELECT 'next'") == "next");
}

TEST_CASE("lifecycle: a client that half-closes after its query still reads the result, then EOF") {
  // shutdown(SHUT_WR) says "no more commands", not "stop answering": the
  // server finishes the query, sends its result, reads the FIN and closes.
  MariaDbServer server;
  Target target(server);
  RawMysqlClient client;
  REQUIRE_MESSAGE(client.connect(target.port()), client.last_error());
  const auto login = client.handshake();
  REQUIRE_MESSAGE(login.logged_in, login.failure);
  REQUIRE(client.send_query("SELECT SLEEP(0.3), 'after the sleep'"));
  client.shutdown_write();
  const QueryResult result = client.read_query_result(10s);
  REQUIRE_MESSAGE(result.ok(), result.failure);
  REQUIRE(result.rows().size() == 1);
  CHECK(result.rows()[0][1] == "after the sleep");
  CHECK(client.wait_closed(5s) == ReadStatus::kEof);
  if (SluiceProcess* sluice = target.sluice()) {
    CHECK(fault::wait_until(
        [&] {
          return metric_value(http_get(sluice->metrics_port()), "sluice_connections_active",
                              {{"listener", "main"}}) == 0;
        },
        5s));
  }
}

TEST_CASE(
    "lifecycle: a client that half-closes and reads its result only after net_read_timeout gets "
    "all of it") {
  // After the FIN sluice waits for the server's close only as long as
  // nothing is owed to the client: a result still going out is never cut.
  MariaDbServer server;
  Target target(server, {.listener = {{"net_read_timeout", "1s"}}});
  RawMysqlClient client;
  REQUIRE_MESSAGE(client.connect(target.port()), client.last_error());
  const auto login = client.handshake();
  REQUIRE_MESSAGE(login.logged_in, login.failure);
  REQUIRE(client.send_query("SELECT REPEAT('h', 5000000)"));
  client.shutdown_write();
  std::this_thread::sleep_for(2500ms);
  const QueryResult result = client.read_query_result(20s);
  REQUIRE_MESSAGE(result.ok(), result.failure);
  REQUIRE(result.rows().size() == 1);
  CHECK(result.rows()[0][0] == std::string(5000000, 'h'));
  CHECK(client.wait_closed(5s) == ReadStatus::kEof);
}

namespace {

// Reads everything until the peer closes, `chunk` bytes at a time with a
// pause between reads: a client slower than the server's result.
std::string read_slowly(int fd, std::size_t chunk, std::chrono::milliseconds pause,
                        std::chrono::seconds limit) {
  std::string got;
  std::vector<char> buf(chunk);
  const auto end = Clock::now() + limit;
  while (Clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 1000) <= 0) continue;
    const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n <= 0) break;
    got.append(buf.data(), static_cast<std::size_t>(n));
    std::this_thread::sleep_for(pause);
  }
  return got;
}

// Leaves the worker a large buffer kept from a 10 MB client packet, which a
// large server row then streams into whole.
void leave_large_buffer(int port) {
  RawMysqlClient big;
  REQUIRE_MESSAGE(big.connect(port), big.last_error());
  REQUIRE(big.handshake().logged_in);
  const QueryResult r = big.query("SELECT LENGTH('" + std::string(10'000'000, 'y') + "')");
  REQUIRE_MESSAGE(r.ok(), r.failure);
}

const std::string kEightMbRow = "SELECT REPEAT('h', 8000000)";

// Logs in, sends `query` and shuts down its sending side without reading.
void half_closed_query(RawMysqlClient& client, int port, const std::string& query) {
  REQUIRE_MESSAGE(client.connect(port), client.last_error());
  const auto login = client.handshake();
  REQUIRE_MESSAGE(login.logged_in, login.failure);
  REQUIRE(client.buffered() == 0);
  REQUIRE(client.send_query(query));
  client.shutdown_write();
}

}  // namespace

TEST_CASE(
    "lifecycle: a half-closed client reading slower than the server sends gets all of the result "
    "after the server closes, and one that stops reading is cut at net_write_timeout") {
  // The server closes as soon as it has sent its result and read the FIN;
  // sluice may then still hold most of the result (a large buffer kept from
  // an earlier large packet takes a whole row). Everything owed reaches the
  // client however slowly it reads, although its FIN came long before; the
  // close waits until it has it, or until it stops reading.
  MariaDbServer server;
  Target target(server, {.listener = {{"net_write_timeout", "3s"}}, .top = {{"workers", "1"}}});
  leave_large_buffer(target.port());
  RawMysqlClient fast;
  half_closed_query(fast, target.port(), kEightMbRow);
  ReadStatus fast_end{};
  const std::string expected = fast.read_until_closed(20s, &fast_end);
  REQUIRE(fast_end == ReadStatus::kEof);
  REQUIRE(expected.size() > 8'000'000);

  RawMysqlClient slow;
  half_closed_query(slow, target.port(), kEightMbRow);
  // About 1.6 MB/s: the result takes 5 s to read, and the server has closed
  // long before; sluice used to close at the client's FIN, cutting the
  // megabytes it still held.
  const std::string got = read_slowly(slow.fd(), 16384, 10ms, 60s);
  CHECK(got.size() == expected.size());
  CHECK(got == expected);

  if (target.direct()) return;
  const auto write_timeouts = [&] {
    return metric_value(http_get(target.sluice()->metrics_port()), "sluice_timeouts_total",
                        {{"listener", "main"}, {"kind", "write"}});
  };
  const double before = write_timeouts();
  RawMysqlClient stalled;
  half_closed_query(stalled, target.port(), kEightMbRow);
  // Reads nothing: net_write_timeout (3 s without progress) ends it.
  std::this_thread::sleep_for(4500ms);
  CHECK(write_timeouts() == before + 1);
  CHECK(metric_value(http_get(target.sluice()->metrics_port()), "sluice_buffered_bytes") == 0);
  ReadStatus end{};
  const std::string part = stalled.read_until_closed(10s, &end);
  CHECK(part.size() < expected.size());
  CHECK(end != ReadStatus::kTimeout);
}

TEST_CASE(
    "lifecycle: shutdown_timeout also ends a closing session still owed bytes by a client that "
    "does not read") {
  // Owed bytes keep a closing session's linger going; only net_write_timeout
  // (60 s here) or shutdown_timeout may end it, and shutdown_timeout must.
  if (direct_mode()) return;
  MariaDbServer server;
  Target target(server, {.listener = {{"net_write_timeout", "60s"}},
                         .top = {{"workers", "1"}, {"shutdown_timeout", "1s"}}});
  leave_large_buffer(target.port());
  RawMysqlClient stalled;
  half_closed_query(stalled, target.port(), kEightMbRow);
  SluiceProcess& sluice = *target.sluice();
  // The server has sent the row and closed; sluice holds what the client
  // has not read.
  REQUIRE(fault::wait_until(
      [&] {
        return metric_value(http_get(sluice.metrics_port()), "sluice_connections_active",
                            {{"listener", "main"}}) == 0 &&
               metric_value(http_get(sluice.metrics_port()), "sluice_buffered_bytes") > 1e6;
      },
      5s));
  const auto started = Clock::now();
  sluice.send_signal(SIGTERM);
  const auto status = sluice.wait_exit(5s);
  const auto elapsed = Clock::now() - started;
  REQUIRE_MESSAGE(status.has_value(), "sluice still running 5 s after SIGTERM");
  CHECK(status->success());
  CHECK(elapsed < 3s);
}

TEST_CASE(
    "lifecycle: a handshake abandoned with a FIN is counted by the server before the client "
    "sees the close") {
  // mysqld counts an aborted connect (and a max_connect_errors strike) when
  // it reads the client's EOF, and only then closes. A proxy that closed the
  // client at once would let its next attempt overtake that count.
  MariaDbServer server({.args = {"--max-connect-errors=1000000"}});
  Target target(server);
  MysqlConn monitor(server.socket_options());
  auto aborted = [&] {
    return std::stoll(
        monitor.scalar("SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS "
                       "WHERE VARIABLE_NAME = 'ABORTED_CONNECTS'"));
  };
  for (int i = 0; i < 20; ++i) {
    const long long before = aborted();
    RawMysqlClient client;
    REQUIRE_MESSAGE(client.connect(target.port()), client.last_error());
    REQUIRE(client.read_packet(10s).ok());  // the greeting
    client.shutdown_write();
    REQUIRE(client.wait_closed(10s) == ReadStatus::kEof);
    CHECK_MESSAGE(aborted() == before + 1, "attempt ", i);
  }
}

TEST_CASE("lifecycle: SIGTERM closes idle sessions, lets a running command finish, exits 0") {
  MariaDbServer server;
  // shutdown_timeout well above the waits below, so "at once" and "finished
  // on its own" are told apart from "cut off at the deadline".
  Target target(server, {.top = {{"shutdown_timeout", "30s"}}});
  if (target.direct()) {
    MESSAGE("direct mode: draining is sluice's behaviour; nothing to check");
    return;
  }
  SluiceProcess& sluice = *target.sluice();
  MysqlConn monitor(server.socket_options());

  RawMysqlClient idle;
  REQUIRE_MESSAGE(idle.connect(target.port()), idle.last_error());
  REQUIRE(idle.handshake().logged_in);
  REQUIRE(idle.query("SELECT 1").ok());

  RawMysqlClient busy;
  REQUIRE_MESSAGE(busy.connect(target.port()), busy.last_error());
  REQUIRE(busy.handshake().logged_in);
  REQUIRE(busy.send_packet(0, std::string(1, '\x03') + "SELECT SLEEP(3), 'finished'"));
  std::this_thread::sleep_for(500ms);  // the command is on the server now
  REQUIRE(wait_server_sessions(monitor, 2, 30s));

  const auto signalled = Clock::now();
  sluice.send_signal(SIGTERM);

  // The idle session is closed at once: well before the command's 3 s are up.
  const ReadStatus idle_end = idle.wait_closed(10s);
  const auto idle_closed_after = Clock::now() - signalled;
  CHECK((idle_end == ReadStatus::kEof || idle_end == ReadStatus::kReset));
  CHECK(idle_closed_after < 2500ms);
  // The listening sockets are closed at once, so the kernel refuses new clients.
  const auto listening_deadline = Clock::now() + 2s;
  while (port_listening(target.port()) && Clock::now() < listening_deadline) {
    std::this_thread::sleep_for(10ms);
  }
  CHECK_FALSE_MESSAGE(port_listening(target.port()), "sluice still listens while draining");
  CHECK_FALSE(port_accepts(target.port()));

  // The running command still gets its whole result, then the session closes.
  Packet column_count;
  ReadResult read = busy.read_packet(20s);
  REQUIRE_MESSAGE(read.ok(), to_string(read.status));
  CHECK_FALSE(parse_err(read.packet).has_value());
  CHECK(read.packet.payload == std::string(1, '\x02'));  // two columns
  int packets = 1;
  std::string last_row;
  while (true) {
    read = busy.read_packet(20s);
    if (!read.ok()) break;
    ++packets;
    if (packets == 5) last_row = read.packet.payload;  // 2 column defs, EOF, then the row
  }
  CHECK(packets == 6);  // count, 2 definitions, EOF, row, EOF
  CHECK(last_row.find("finished") != std::string::npos);
  CHECK((read.status == ReadStatus::kEof || read.status == ReadStatus::kReset));

  const auto status = sluice.wait_exit(20s);
  REQUIRE_MESSAGE(status.has_value(), "sluice still running 20 s after SIGTERM");
  CHECK_MESSAGE(status->success(), status->describe());
  CHECK(Clock::now() - signalled < 15s);
  // Sluice closed its upstream connections too.
  CHECK(wait_server_sessions(monitor, 0, 30s));
}

// Commands pipelined beyond the 64 responses sluice follows at once wait in
// its buffer: they are in flight all the same, so a drain lets every one of
// them finish, then closes the session (at once, not at shutdown_timeout).
TEST_CASE("lifecycle: SIGTERM lets 200 pipelined commands finish, then closes their session") {
  MariaDbServer server;
  Target target(server, {.top = {{"shutdown_timeout", "30s"}}});
  if (target.direct()) {
    MESSAGE("direct mode: draining is sluice's behaviour; nothing to check");
    return;
  }
  SluiceProcess& sluice = *target.sluice();
  RawMysqlClient client;
  REQUIRE_MESSAGE(client.connect(target.port()), client.last_error());
  REQUIRE(client.handshake().logged_in);
  constexpr int kCommands = 200;  // 10 ms each on the server
  std::string burst;
  for (int i = 0; i < kCommands; ++i) {
    burst += frames(0, "\x03SELECT SLEEP(0.01), " + std::to_string(i));
  }
  REQUIRE(client.send_raw(burst));
  std::this_thread::sleep_for(300ms);
  const auto signalled = Clock::now();
  sluice.send_signal(SIGTERM);
  for (int i = 0; i < kCommands; ++i) {
    CAPTURE(i);
    const QueryResult r = client.read_query_result(20s);
    REQUIRE_MESSAGE(r.ok(), r.failure);
    REQUIRE(r.rows().size() == 1);
    CHECK(r.rows()[0][1] == std::to_string(i));
  }
  const ReadStatus end = client.wait_closed(10s);
  CHECK((end == ReadStatus::kEof || end == ReadStatus::kReset));
  const auto status = sluice.wait_exit(20s);
  REQUIRE_MESSAGE(status.has_value(), "sluice still running 20 s after SIGTERM");
  CHECK_MESSAGE(status->success(), status->describe());
  CHECK(Clock::now() - signalled < 15s);
}

}  // namespace
}  // namespace sluice::test
