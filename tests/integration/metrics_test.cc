// sluice's /metrics, driven event by event: every family at zero, then each counter's exact delta.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <mysql.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/free_port.h"
#include "tests/support/json_value.h"
#include "tests/support/mariadb_server.h"
#include "tests/support/metrics_scrape.h"
#include "tests/support/mysql_codec.h"
#include "tests/support/mysql_conn.h"
#include "tests/support/process.h"
#include "tests/support/prometheus_server.h"
#include "tests/support/raw_mysql.h"
#include "tests/support/sluice_process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tls_certs.h"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const std::string kC2S = "client_to_server";
const std::string kS2C = "server_to_client";

// Every command label sluice exports (common/command.cc), in index order.
const std::vector<std::string> kCommandLabels = {"COM_SLEEP",
                                                 "COM_QUIT",
                                                 "COM_INIT_DB",
                                                 "COM_QUERY",
                                                 "COM_FIELD_LIST",
                                                 "COM_CREATE_DB",
                                                 "COM_DROP_DB",
                                                 "COM_REFRESH",
                                                 "COM_SHUTDOWN",
                                                 "COM_STATISTICS",
                                                 "COM_PROCESS_INFO",
                                                 "COM_CONNECT",
                                                 "COM_PROCESS_KILL",
                                                 "COM_DEBUG",
                                                 "COM_PING",
                                                 "COM_TIME",
                                                 "COM_DELAYED_INSERT",
                                                 "COM_CHANGE_USER",
                                                 "COM_BINLOG_DUMP",
                                                 "COM_TABLE_DUMP",
                                                 "COM_CONNECT_OUT",
                                                 "COM_REGISTER_SLAVE",
                                                 "COM_STMT_PREPARE",
                                                 "COM_STMT_EXECUTE",
                                                 "COM_STMT_SEND_LONG_DATA",
                                                 "COM_STMT_CLOSE",
                                                 "COM_STMT_RESET",
                                                 "COM_SET_OPTION",
                                                 "COM_STMT_FETCH",
                                                 "COM_DAEMON",
                                                 "COM_BINLOG_DUMP_GTID",
                                                 "COM_RESET_CONNECTION",
                                                 "COM_STMT_BULK_EXECUTE",
                                                 "COM_UNKNOWN"};

// ---------------------------------------------------------------------------
// Scraping

Labels lis(Labels extra = {}) {
  extra["listener"] = "main";
  return extra;
}

std::string scrape(const SluiceProcess& sluice) {
  return scrape_metrics(sluice.metrics_port());
}

// after - before for one sample (which must exist exactly once in both).
double delta(const std::string& before, const std::string& after, std::string_view name,
             const Labels& labels) {
  return metric_value(after, name, labels) - metric_value(before, name, labels);
}

// Scrapes until `name{labels}` satisfies `ok` or `timeout` passes; returns the
// last scrape (the caller asserts on it).
std::string wait_metric(const SluiceProcess& sluice, std::string_view name, const Labels& labels,
                        const std::function<bool(double)>& ok,
                        std::chrono::milliseconds timeout = 15s) {
  const auto deadline = Clock::now() + timeout;
  std::string text = scrape(sluice);
  while (!ok(metric_value(text, name, labels)) && Clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
    text = scrape(sluice);
  }
  return text;
}

// Waits for every session of listener "main" to be gone, then scrapes.
std::string scrape_when_idle(const SluiceProcess& sluice) {
  return wait_metric(sluice, "sluice_connections_active", lis(), [](double v) { return v == 0; });
}

// ---------------------------------------------------------------------------
// A raw client that tallies what crosses the wire in each direction.

struct Tally {
  long long packets = 0;
  long long bytes = 0;    // headers included
  long long payload = 0;  // logical payload bytes
};

struct Wire {
  Tally c2s;
  Tally s2c;
};

void put_le(std::string* out, std::uint64_t value, int width) {
  for (int i = 0; i < width; ++i) out->push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
}

class CountingClient {
 public:
  bool connect(int port) { return client_.connect(port); }
  RawMysqlClient& raw() { return client_; }
  const Wire& wire() const { return wire_; }

  ReadResult read() {
    ReadResult r = client_.read_packet(30s);
    if (r.ok()) {
      wire_.s2c.packets += 1;
      wire_.s2c.bytes += static_cast<long long>(r.packet.payload.size()) + 4LL * r.packet.frames;
      wire_.s2c.payload += static_cast<long long>(r.packet.payload.size());
    }
    return r;
  }

  bool send(std::uint8_t seq, std::string_view payload) {
    wire_.c2s.packets += 1;
    wire_.c2s.bytes += static_cast<long long>(payload.size()) + 4;
    wire_.c2s.payload += static_cast<long long>(payload.size());
    return client_.send_packet(seq, payload);
  }

  // Greeting, HandshakeResponse (root, no password, mysql_native_password),
  // auth switches if any, OK. Every packet is tallied.
  std::uint32_t connection_id = 0;  // the server's thread id, from the greeting

  void login() {
    const ReadResult greeting = read();
    REQUIRE_MESSAGE(greeting.ok(), std::string(to_string(greeting.status)));
    REQUIRE_FALSE(parse_err(greeting.packet).has_value());
    const auto parsed = parse_greeting(greeting.packet.payload);
    REQUIRE(parsed.has_value());
    connection_id = parsed->connection_id;
    using namespace client_flag;
    std::uint32_t caps = kLongPassword | kLongFlag | kProtocol41 | kTransactions |
                         kSecureConnection | kMultiStatements | kMultiResults | kPsMultiResults |
                         kPluginAuth;
    caps &= static_cast<std::uint32_t>(parsed->capabilities) | kProtocol41;
    std::string response;
    put_le(&response, caps, 4);
    put_le(&response, 16u << 20, 4);
    response.push_back(static_cast<char>(parsed->charset ? parsed->charset : 8));
    response.append(23, '\0');
    response += "root";
    response.push_back('\0');
    response.push_back('\0');  // empty auth response
    response += "mysql_native_password";
    response.push_back('\0');
    REQUIRE(send(static_cast<std::uint8_t>(greeting.packet.seq + 1), response));
    while (true) {
      const ReadResult reply = read();
      REQUIRE_MESSAGE(reply.ok(), std::string(to_string(reply.status)));
      const auto& payload = reply.packet.payload;
      REQUIRE(!payload.empty());
      if (payload[0] == '\x00') return;
      REQUIRE_FALSE_MESSAGE(parse_err(reply.packet).has_value(), parse_err(reply.packet)->message);
      REQUIRE(payload[0] == '\xFE');  // auth switch: the empty password again
      REQUIRE(send(static_cast<std::uint8_t>(reply.packet.seq + 1), ""));
    }
  }

  // COM_QUERY and its whole text response (classic EOFs; no multi-results used).
  // Returns the rows' raw payloads.
  std::vector<std::string> query(const std::string& sql) {
    REQUIRE(send(0, "\x03" + sql));
    return read_result();
  }

  // A column count, definitions, EOF, rows, EOF; or one OK / ERR packet.
  std::vector<std::string> read_result() {
    std::vector<std::string> rows;
    const ReadResult first = read();
    REQUIRE_MESSAGE(first.ok(), std::string(to_string(first.status)));
    const char head = first.packet.payload.empty() ? '\0' : first.packet.payload[0];
    if (head == '\x00' || head == '\xFF') {
      last_error_ = parse_err(first.packet);
      return rows;
    }
    last_error_.reset();
    int eofs = 0;
    while (eofs < 2) {
      const ReadResult r = read();
      REQUIRE_MESSAGE(r.ok(), std::string(to_string(r.status)));
      if (is_eof_packet(r.packet)) {
        ++eofs;
      } else if (is_err_packet(r.packet)) {
        last_error_ = parse_err(r.packet);
        return rows;
      } else if (eofs == 1) {
        rows.push_back(r.packet.payload);
      }
    }
    return rows;
  }

  const std::optional<ServerError>& last_error() const { return last_error_; }

 private:
  RawMysqlClient client_;
  Wire wire_;
  std::optional<ServerError> last_error_;
};

// The value of `key=` in sluice's text log line for `event` (the last such line).
std::string log_field(const std::string& log, const std::string& event, const std::string& key) {
  std::string value;
  std::size_t pos = 0;
  while ((pos = log.find(" " + event + " ", pos)) != std::string::npos) {
    const std::size_t end = log.find('\n', pos);
    const std::string line = log.substr(pos, end - pos);
    const std::regex field(" " + key + "=(\"[^\"]*\"|[^ ]*)");
    std::smatch m;
    if (std::regex_search(line, m, field)) value = m[1];
    pos = end == std::string::npos ? log.size() : end;
  }
  return value;
}

std::string local_address(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "?";
  char host[INET_ADDRSTRLEN] = "?";
  ::inet_ntop(AF_INET, &addr.sin_addr, host, sizeof host);
  return std::string(host) + ":" + std::to_string(ntohs(addr.sin_port));
}

// ===========================================================================

TEST_CASE("metrics: every family in SPEC's table is exported at zero from start-up") {
  // No database needed: nothing connects. The upstream is a port nobody listens on.
  const int dead = free_port();
  SluiceProcess sluice({.upstream_ports = {dead}});
  const std::string text = scrape(sluice);
  INFO("scrape:\n", text);

  // # TYPE lines: every family of SPEC's table (and README's three additions) with its type.
  const std::map<std::string, std::string> families = {
      {"sluice_build_info", "gauge"},
      {"sluice_connections_total", "counter"},
      {"sluice_connections_active", "gauge"},
      {"sluice_connections_rejected_total", "counter"},
      {"sluice_upstream_connect_seconds", "histogram"},
      {"sluice_upstream_connect_errors_total", "counter"},
      {"sluice_packets_total", "counter"},
      {"sluice_bytes_total", "counter"},
      {"sluice_packet_size_bytes", "histogram"},
      {"sluice_oversized_packets_total", "counter"},
      {"sluice_timeouts_total", "counter"},
      {"sluice_eintr_retries_total", "counter"},
      {"sluice_io_errors_total", "counter"},
      {"sluice_sequence_errors_total", "counter"},
      {"sluice_commands_total", "counter"},
      {"sluice_command_duration_seconds", "histogram"},
      {"sluice_response_tracking_lost_total", "counter"},
      {"sluice_tls_sessions_total", "counter"},
      {"sluice_compressed_sessions_total", "counter"},
      {"sluice_buffered_bytes", "gauge"},
      {"sluice_memory_limit_waits_total", "counter"},
      {"sluice_memory_limit_refusals_total", "counter"},
      {"sluice_allocation_failures_total", "counter"},
      {"sluice_config_reloads_total", "counter"},
  };
  for (const auto& [name, type] : families) {
    CHECK_MESSAGE(text.find("\n# TYPE " + name + " " + type + "\n") != std::string::npos,
                  "no '# TYPE ", name, " ", type, "' line");
  }

  // build_info{version} = 1, the version being sluice --version's.
  const auto version = run_sluice({"--version"});
  REQUIRE(version.status.success());
  std::string v = version.out.substr(version.out.find(' ') + 1);
  while (!v.empty() && (v.back() == '\n' || v.back() == '\r')) v.pop_back();
  CHECK(metric_value(text, "sluice_build_info", {{"version", v}}) == 1);

  // Plain per-listener series.
  for (const std::string name :
       {"sluice_connections_total", "sluice_connections_active", "sluice_sequence_errors_total",
        "sluice_response_tracking_lost_total", "sluice_compressed_sessions_total"}) {
    CHECK_MESSAGE(metric_value(text, name, lis()) == 0, name);
  }
  // Label sets from SPEC.
  auto all_zero = [&](const std::string& name, const std::string& key,
                      std::vector<std::string> values) {
    for (const std::string& value : values) {
      const auto found = find_metric(text, name, lis({{key, value}}));
      CHECK_MESSAGE(found.has_value(), name, "{", key, "=\"", value, "\"} missing");
      if (found) CHECK_MESSAGE(*found == 0, name, "{", key, "=\"", value, "\"}");
    }
  };
  all_zero("sluice_connections_rejected_total", "reason",
           {"max_connections", "upstream_unavailable", "shutdown"});
  all_zero("sluice_timeouts_total", "kind", {"connect", "handshake", "read", "write", "idle"});
  all_zero("sluice_eintr_retries_total", "op", {"read", "write", "accept", "connect"});
  all_zero("sluice_io_errors_total", "op", {"read", "write", "accept", "connect"});
  all_zero("sluice_packets_total", "direction", {kC2S, kS2C});
  all_zero("sluice_bytes_total", "direction", {kC2S, kS2C});
  all_zero("sluice_memory_limit_refusals_total", "direction", {kC2S, kS2C});
  all_zero("sluice_allocation_failures_total", "direction", {kC2S, kS2C});
  all_zero("sluice_tls_sessions_total", "mode", {"passthrough", "terminated"});
  all_zero("sluice_commands_total", "command", kCommandLabels);
  all_zero("sluice_upstream_connect_errors_total", "upstream",
           {"127.0.0.1:" + std::to_string(dead)});
  for (const std::string& d : {kC2S, kS2C}) {
    for (const char* action : {"close", "reject"}) {
      CHECK(metric_value(text, "sluice_oversized_packets_total",
                         lis({{"direction", d}, {"action", action}})) == 0);
    }
  }
  // Histograms: _count, _sum and every bucket at zero, +Inf included.
  auto histogram_zero = [&](const std::string& name, const Labels& labels) {
    CHECK_MESSAGE(metric_value(text, name + "_count", labels) == 0, name);
    CHECK_MESSAGE(metric_value(text, name + "_sum", labels) == 0, name);
    Labels inf = labels;
    inf["le"] = "+Inf";
    CHECK_MESSAGE(metric_value(text, name + "_bucket", inf) == 0, name);
    CHECK_MESSAGE(metric_sum(text, name + "_bucket", labels) == 0, name);
  };
  histogram_zero("sluice_upstream_connect_seconds", lis());
  histogram_zero("sluice_packet_size_bytes", lis({{"direction", kC2S}}));
  histogram_zero("sluice_packet_size_bytes", lis({{"direction", kS2C}}));
  for (const std::string& c : kCommandLabels) {
    histogram_zero("sluice_command_duration_seconds", lis({{"command", c}}));
  }
  // Duration buckets: 100 µs .. 10 s.
  CHECK(metric_exists(text, "sluice_command_duration_seconds_bucket",
                      lis({{"command", "COM_QUERY"}, {"le", "0.0001"}})));
  CHECK(metric_exists(text, "sluice_command_duration_seconds_bucket",
                      lis({{"command", "COM_QUERY"}, {"le", "10"}})));
  // Process-wide series.
  CHECK(metric_value(text, "sluice_buffered_bytes") == 0);
  CHECK(metric_value(text, "sluice_memory_limit_waits_total") == 0);
  CHECK(metric_value(text, "sluice_config_reloads_total", {{"result", "ok"}}) == 0);
  CHECK(metric_value(text, "sluice_config_reloads_total", {{"result", "failed"}}) == 0);

  // No per-connection or per-user labels anywhere.
  for (const Sample& s : parse_samples(text)) {
    for (const auto& [key, value] : s.labels) {
      CHECK_MESSAGE((key != "user" && key != "client" && key != "connection_id"), s.name, " has ",
                    key);
    }
  }
}

TEST_CASE(
    "metrics: handshake, SELECT 1 and COM_QUIT move packets and bytes by exactly the wire's") {
  MariaDbServer server;
  SluiceProcess sluice({.upstream_ports = {server.port()}});
  const std::string before = scrape(sluice);

  CountingClient client;
  REQUIRE_MESSAGE(client.connect(sluice.port()), client.last_error());
  client.login();
  const auto rows = client.query("SELECT 1");
  REQUIRE(rows.size() == 1);
  CHECK(rows[0] == std::string("\x01"
                               "1",
                               2));
  const std::string client_addr = local_address(client.raw().fd());
  REQUIRE(client.send(0, "\x01"));  // COM_QUIT
  CHECK(client.raw().wait_closed(10s) != ReadStatus::kTimeout);
  client.raw().close();
  const std::string after = scrape_when_idle(sluice);

  const Wire& w = client.wire();
  MESSAGE("wire: client->server ", w.c2s.packets, " packets / ", w.c2s.bytes,
          " bytes, server->client ", w.s2c.packets, " packets / ", w.s2c.bytes, " bytes");
  // The exchange itself: HandshakeResponse, COM_QUERY, COM_QUIT one way;
  // greeting, OK, column count, column definition, EOF, row, EOF the other.
  CHECK(w.c2s.packets == 3);
  CHECK(w.s2c.packets == 7);

  CHECK(delta(before, after, "sluice_packets_total", lis({{"direction", kC2S}})) == w.c2s.packets);
  CHECK(delta(before, after, "sluice_packets_total", lis({{"direction", kS2C}})) == w.s2c.packets);
  CHECK(delta(before, after, "sluice_bytes_total", lis({{"direction", kC2S}})) == w.c2s.bytes);
  CHECK(delta(before, after, "sluice_bytes_total", lis({{"direction", kS2C}})) == w.s2c.bytes);
  for (const auto& [dir, tally] : {std::pair{kC2S, w.c2s}, std::pair{kS2C, w.s2c}}) {
    CAPTURE(dir);
    CHECK(delta(before, after, "sluice_packet_size_bytes_count", lis({{"direction", dir}})) ==
          tally.packets);
    // Payload sizes: the sum is the payload bytes (headers excluded).
    CHECK(delta(before, after, "sluice_packet_size_bytes_sum", lis({{"direction", dir}})) ==
          tally.payload);
  }
  CHECK(delta(before, after, "sluice_connections_total", lis()) == 1);
  CHECK(metric_value(after, "sluice_connections_active", lis()) == 0);
  CHECK(metric_value(after, "sluice_buffered_bytes") == 0);  // every buffer went back
  CHECK(delta(before, after, "sluice_upstream_connect_seconds_count", lis()) == 1);
  CHECK(delta(before, after, "sluice_commands_total", lis({{"command", "COM_QUERY"}})) == 1);
  CHECK(delta(before, after, "sluice_commands_total", lis({{"command", "COM_QUIT"}})) == 1);
  CHECK(metric_sum(after, "sluice_commands_total") - metric_sum(before, "sluice_commands_total") ==
        2);

  // The session_close log line carries the same numbers.
  const std::string log = sluice.stderr_text();
  INFO("sluice log:\n", tail_lines(log, 20));
  CHECK(log_field(log, "session_close", "client") == client_addr);
  CHECK(log_field(log, "session_close", "user") == "root");
  CHECK(log_field(log, "session_close", "upstream") ==
        "127.0.0.1:" + std::to_string(server.port()));
  CHECK(log_field(log, "session_close", "c2s_packets") == std::to_string(w.c2s.packets));
  CHECK(log_field(log, "session_close", "s2c_packets") == std::to_string(w.s2c.packets));
  CHECK(log_field(log, "session_close", "c2s_bytes") == std::to_string(w.c2s.bytes));
  CHECK(log_field(log, "session_close", "s2c_bytes") == std::to_string(w.s2c.bytes));
  CHECK(log_field(log, "session_close", "reason") == "client_quit");
  // The server's thread id, as SHOW PROCESSLIST and KILL know the session.
  CHECK(log_field(log, "session_close", "server_thread") == std::to_string(client.connection_id));
  CHECK(client.connection_id != 0);
}

// The COM_STMT_PREPARE response: the statement id, after its definitions are read.
std::uint32_t read_prepare_ok(CountingClient& client) {
  const ReadResult ok = client.read();
  REQUIRE(ok.ok());
  REQUIRE_FALSE_MESSAGE(parse_err(ok.packet).has_value(), parse_err(ok.packet)->message);
  PayloadReader r(ok.packet.payload);
  REQUIRE(r.fixed(1) == 0);
  const auto id = static_cast<std::uint32_t>(r.fixed(4));
  const auto columns = r.fixed(2);
  const auto params = r.fixed(2);
  for (auto block : {params, columns}) {
    if (block == 0) continue;
    for (std::uint64_t i = 0; i < block; ++i) REQUIRE(client.read().ok());
    const ReadResult eof = client.read();
    REQUIRE(eof.ok());
    REQUIRE(is_eof_packet(eof.packet));
  }
  return id;
}

std::string stmt_header(std::uint8_t command, std::uint32_t id) {
  std::string p(1, static_cast<char>(command));
  put_le(&p, id, 4);
  return p;
}

TEST_CASE("metrics: commands are counted by name and every command is timed exactly once") {
  MariaDbServer server;
  SluiceProcess sluice({.upstream_ports = {server.port()}});
  const std::string before = scrape(sluice);

  CountingClient client;
  REQUIRE_MESSAGE(client.connect(sluice.port()), client.last_error());
  client.login();
  REQUIRE(client.query("SELECT 1").size() == 1);  // COM_QUERY
  REQUIRE(client.send(0, "\x0e"));                // COM_PING
  CHECK(client.read_result().empty());
  CHECK_FALSE(client.last_error().has_value());
  REQUIRE(client.send(0, "\x02mysql"));  // COM_INIT_DB
  CHECK(client.read_result().empty());
  CHECK_FALSE(client.last_error().has_value());

  // COM_STMT_PREPARE, COM_STMT_EXECUTE with a bound parameter, COM_STMT_CLOSE.
  REQUIRE(client.send(0, "\x16SELECT ? + 1"));
  const std::uint32_t plus_one = read_prepare_ok(client);
  std::string execute = stmt_header(0x17, plus_one);
  execute += '\0';                        // flags: no cursor
  put_le(&execute, 1, 4);                 // iteration count
  execute += '\0';                        // NULL bitmap for one parameter
  execute += '\x01';                      // types follow
  execute += std::string("\x08\x00", 2);  // MYSQL_TYPE_LONGLONG, signed
  put_le(&execute, 41, 8);
  REQUIRE(client.send(0, execute));
  const auto binary_rows = client.read_result();
  CHECK_FALSE(client.last_error().has_value());
  CHECK(binary_rows.size() == 1);
  REQUIRE(client.send(0, stmt_header(0x19, plus_one)));  // COM_STMT_CLOSE: no answer

  // COM_STMT_SEND_LONG_DATA (no answer) feeding the next execute.
  REQUIRE(client.send(0, "\x16SELECT ?"));
  const std::uint32_t echo = read_prepare_ok(client);
  std::string long_data = stmt_header(0x18, echo);
  put_le(&long_data, 0, 2);  // parameter 0
  long_data += "sent as long data";
  REQUIRE(client.send(0, long_data));
  execute = stmt_header(0x17, echo);
  execute += '\0';
  put_le(&execute, 1, 4);
  execute += '\0';
  execute += '\x01';
  execute += std::string("\xFE\x00", 2);  // MYSQL_TYPE_STRING; the value came as long data
  REQUIRE(client.send(0, execute));
  const auto echoed = client.read_result();
  CHECK_FALSE(client.last_error().has_value());
  REQUIRE(echoed.size() == 1);
  CHECK(echoed[0].find("sent as long data") != std::string::npos);
  REQUIRE(client.send(0, stmt_header(0x19, echo)));

  // The session still works, and answers come in order.
  const auto rows = client.query("SELECT 'still here'");
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].find("still here") != std::string::npos);
  REQUIRE(client.send(0, "\x01"));  // COM_QUIT
  CHECK(client.raw().wait_closed(10s) != ReadStatus::kTimeout);
  client.raw().close();
  const std::string after = scrape_when_idle(sluice);

  const std::map<std::string, int> expected = {{"COM_QUERY", 2},
                                               {"COM_PING", 1},
                                               {"COM_INIT_DB", 1},
                                               {"COM_STMT_PREPARE", 2},
                                               {"COM_STMT_EXECUTE", 2},
                                               {"COM_STMT_CLOSE", 2},
                                               {"COM_STMT_SEND_LONG_DATA", 1},
                                               {"COM_QUIT", 1}};
  for (const std::string& c : kCommandLabels) {
    CAPTURE(c);
    const auto it = expected.find(c);
    const double want = it == expected.end() ? 0 : it->second;
    CHECK(delta(before, after, "sluice_commands_total", lis({{"command", c}})) == want);
    // Commands with a response are timed once each. Those without one
    // (COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA, COM_QUIT) complete at once in
    // sluice's tracker, so they are "timed" too, at ~0 s.
    CHECK(delta(before, after, "sluice_command_duration_seconds_count", lis({{"command", c}})) ==
          want);
  }
  for (const std::string c : {"COM_STMT_CLOSE", "COM_STMT_SEND_LONG_DATA", "COM_QUIT"}) {
    const double sum =
        delta(before, after, "sluice_command_duration_seconds_sum", lis({{"command", c}}));
    MESSAGE(c, " (no response): duration count +",
            delta(before, after, "sluice_command_duration_seconds_count", lis({{"command", c}})),
            ", sum +", sum, " s");
    CHECK(sum < 0.001);
  }
  CHECK(delta(before, after, "sluice_command_duration_seconds_sum",
              lis({{"command", "COM_QUERY"}})) > 0);
  CHECK(delta(before, after, "sluice_response_tracking_lost_total", lis()) == 0);
}

TEST_CASE("metrics: a 300 ms query is timed from send to the end of its response") {
  MariaDbServer server;
  SluiceProcess sluice({.upstream_ports = {server.port()}});
  const std::string before = scrape(sluice);
  RawMysqlClient client;
  REQUIRE_MESSAGE(client.connect(sluice.port()), client.last_error());
  REQUIRE(client.handshake().logged_in);
  const auto sent = Clock::now();
  const QueryResult result = client.query("SELECT SLEEP(0.3)");
  const double client_seconds = std::chrono::duration<double>(Clock::now() - sent).count();
  REQUIRE(result.ok());
  client.close();
  const std::string after = scrape_when_idle(sluice);
  const Labels query = lis({{"command", "COM_QUERY"}});
  const double sum = delta(before, after, "sluice_command_duration_seconds_sum", query);
  MESSAGE("SELECT SLEEP(0.3): sluice timed ", sum, " s, the client waited ", client_seconds, " s");
  CHECK(delta(before, after, "sluice_command_duration_seconds_count", query) == 1);
  CHECK(sum >= 0.3);
  CHECK(sum <= client_seconds);
  auto bucket = [&](const char* le) {
    Labels labels = query;
    labels["le"] = le;
    return delta(before, after, "sluice_command_duration_seconds_bucket", labels);
  };
  CHECK(bucket("0.25") == 0);
  CHECK(bucket("0.5") == 1);
  CHECK(bucket("+Inf") == 1);
}

TEST_CASE("metrics: an unknown command byte counts as COM_UNKNOWN and its ERR is timed") {
  MariaDbServer server;
  SluiceProcess sluice({.upstream_ports = {server.port()}});
  const std::string before = scrape(sluice);

  CountingClient client;
  REQUIRE_MESSAGE(client.connect(sluice.port()), client.last_error());
  client.login();
  REQUIRE(client.send(0, "\x60"));  // no such command
  CHECK(client.read_result().empty());
  REQUIRE(client.last_error().has_value());
  CHECK(client.last_error()->code == 1047);  // ER_UNKNOWN_COM_ERROR: one ERR packet
  REQUIRE(client.query("SELECT 1").size() == 1);
  // MySQL's COM_CLONE (0x20): MariaDB does not know it and answers one ERR;
  // the session is still followed afterwards.
  REQUIRE(client.send(0, "\x20"));
  CHECK(client.read_result().empty());
  REQUIRE(client.last_error().has_value());
  CHECK(client.last_error()->code == 1047);
  // An empty command packet: mysqld takes it for COM_SLEEP, and so does every
  // metric (one label in both families).
  REQUIRE(client.send(0, ""));
  CHECK(client.read_result().empty());
  REQUIRE(client.last_error().has_value());
  CHECK(client.last_error()->code == 1047);
  REQUIRE(client.send(0, "\x01"));
  CHECK(client.raw().wait_closed(10s) != ReadStatus::kTimeout);
  client.raw().close();
  const std::string after = scrape_when_idle(sluice);

  CHECK(delta(before, after, "sluice_commands_total", lis({{"command", "COM_SLEEP"}})) == 1);
  CHECK(delta(before, after, "sluice_command_duration_seconds_count",
              lis({{"command", "COM_SLEEP"}})) == 1);
  CHECK(delta(before, after, "sluice_commands_total", lis({{"command", "COM_UNKNOWN"}})) == 2);
  CHECK(delta(before, after, "sluice_commands_total", lis({{"command", "COM_QUERY"}})) == 1);
  // The server answered with exactly one ERR, as for any command byte it does
  // not know: the response is trackable, so it should be timed and the
  // session's later commands too.
  CHECK(delta(before, after, "sluice_command_duration_seconds_count",
              lis({{"command", "COM_UNKNOWN"}})) == 2);
  CHECK(delta(before, after, "sluice_command_duration_seconds_count",
              lis({{"command", "COM_QUERY"}})) == 1);
  CHECK(delta(before, after, "sluice_response_tracking_lost_total", lis()) == 0);
}

TEST_CASE("metrics: after an unknown command byte, wait_timeout still closes the idle session") {
  // Consequence of losing track: a session whose tracker is lost never counts
  // as idle between commands, so wait_timeout would never apply to it.
  MariaDbServer server;
  SluiceProcess sluice({.upstream_ports = {server.port()}, .listener = {{"wait_timeout", "1s"}}});
  RawMysqlClient client;
  REQUIRE_MESSAGE(client.connect(sluice.port()), client.last_error());
  REQUIRE(client.handshake().logged_in);
  REQUIRE(client.send_packet(0, "\x60"));
  const ReadResult unknown = client.read_packet(5s);
  REQUIRE(unknown.ok());
  REQUIRE(parse_err(unknown.packet).has_value());
  CHECK(parse_err(unknown.packet)->code == 1047);
  const ReadResult idle = client.read_packet(4s);  // wait_timeout is 1 s
  CHECK_MESSAGE(idle.ok(), "no ERR 4031 within 4 s: ", std::string(to_string(idle.status)));
  if (idle.ok()) {
    REQUIRE(parse_err(idle.packet).has_value());
    CHECK(parse_err(idle.packet)->code == 4031);
  }
  client.close();
  const std::string after = scrape_when_idle(sluice);
  CHECK(metric_value(after, "sluice_timeouts_total", lis({{"kind", "idle"}})) == 1);
}

TEST_CASE("metrics: oversized packets are counted by direction and action, never as forwarded") {
  MariaDbServer server;
  const std::string big_query = "\x03SELECT '" + std::string(5000, 'q') + "'";

  SUBCASE("client packet, on_oversized close") {
    SluiceProcess sluice({.upstream_ports = {server.port()},
                          .listener = {{"max_allowed_packet", "4K"}, {"on_oversized", "close"}}});
    const std::string before = scrape(sluice);
    CountingClient client;
    REQUIRE_MESSAGE(client.connect(sluice.port()), client.last_error());
    client.login();
    REQUIRE(client.raw().send_packet(0, big_query));
    const ReadResult err = client.raw().read_packet();
    REQUIRE(err.ok());
    REQUIRE(parse_err(err.packet).has_value());
    CHECK(parse_err(err.packet)->code == 1153);
    CHECK(client.raw().wait_closed(10s) != ReadStatus::kTimeout);
    client.raw().close();
    const std::string after = scrape_when_idle(sluice);
    CHECK(delta(before, after, "sluice_oversized_packets_total",
                lis({{"direction", kC2S}, {"action", "close"}})) == 1);
    CHECK(metric_sum(after, "sluice_oversized_packets_total") -
              metric_sum(before, "sluice_oversized_packets_total") ==
          1);
    // Only the handshake was forwarded.
    CHECK(delta(before, after, "sluice_packets_total", lis({{"direction", kC2S}})) ==
          client.wire().c2s.packets);
    CHECK(delta(before, after, "sluice_packets_total", lis({{"direction", kS2C}})) ==
          client.wire().s2c.packets);
    CHECK(delta(before, after, "sluice_commands_total", lis({{"command", "COM_QUERY"}})) == 0);
  }

  SUBCASE("client packet, on_oversized reject") {
    SluiceProcess sluice({.upstream_ports = {server.port()},
                          .listener = {{"max_allowed_packet", "4K"}, {"on_oversized", "reject"}}});
    const std::string before = scrape(sluice);
    CountingClient client;
    REQUIRE_MESSAGE(client.connect(sluice.port()), client.last_error());
    client.login();
    REQUIRE(client.raw().send_packet(0, big_query));
    const ReadResult err = client.raw().read_packet();
    REQUIRE(err.ok());
    REQUIRE(parse_err(err.packet).has_value());
    CHECK(parse_err(err.packet)->code == 1153);
    REQUIRE(client.query("SELECT 1").size() == 1);  // the session goes on
    REQUIRE(client.send(0, "\x01"));
    CHECK(client.raw().wait_closed(10s) != ReadStatus::kTimeout);
    client.raw().close();
    const std::string after = scrape_when_idle(sluice);
    CHECK(delta(before, after, "sluice_oversized_packets_total",
                lis({{"direction", kC2S}, {"action", "reject"}})) == 1);
    CHECK(metric_sum(after, "sluice_oversized_packets_total") -
              metric_sum(before, "sluice_oversized_packets_total") ==
          1);
    // Neither the discarded packet nor sluice's own ERR is a forwarded packet.
    CHECK(delta(before, after, "sluice_packets_total", lis({{"direction", kC2S}})) ==
          client.wire().c2s.packets);
    CHECK(delta(before, after, "sluice_packets_total", lis({{"direction", kS2C}})) ==
          client.wire().s2c.packets);
    CHECK(delta(before, after, "sluice_bytes_total", lis({{"direction", kC2S}})) ==
          client.wire().c2s.bytes);
  }

  SUBCASE("server packet over max_server_packet") {
    SluiceProcess sluice(
        {.upstream_ports = {server.port()}, .listener = {{"max_server_packet", "4K"}}});
    const std::string before = scrape(sluice);
    CountingClient client;
    REQUIRE_MESSAGE(client.connect(sluice.port()), client.last_error());
    client.login();
    REQUIRE(client.send(0, "\x03SELECT REPEAT('s', 10000)"));
    ReadResult r;
    std::optional<ServerError> err;
    for (int i = 0; i < 10 && !err; ++i) {
      r = client.raw().read_packet();
      REQUIRE(r.ok());
      err = parse_err(r.packet);
    }
    REQUIRE(err.has_value());
    CHECK(err->code == 1153);
    CHECK(client.raw().wait_closed(10s) != ReadStatus::kTimeout);
    client.raw().close();
    const std::string after = scrape_when_idle(sluice);
    CHECK(delta(before, after, "sluice_oversized_packets_total",
                lis({{"direction", kS2C}, {"action", "close"}})) == 1);
    CHECK(metric_sum(after, "sluice_oversized_packets_total") -
              metric_sum(before, "sluice_oversized_packets_total") ==
          1);
  }
}

TEST_CASE("metrics: idle, read and handshake timeouts are counted by kind") {
  MariaDbServer server;
  SluiceProcess sluice(
      {.upstream_ports = {server.port()},
       .listener = {
           {"wait_timeout", "1s"}, {"net_read_timeout", "1s"}, {"handshake_timeout", "2s"}}});
  const std::string before = scrape(sluice);

  RawMysqlClient idle;
  REQUIRE_MESSAGE(idle.connect(sluice.port()), idle.last_error());
  REQUIRE(idle.handshake().logged_in);

  RawMysqlClient stalled;
  REQUIRE_MESSAGE(stalled.connect(sluice.port()), stalled.last_error());
  REQUIRE(stalled.handshake().logged_in);
  REQUIRE(stalled.send_raw(frame_header(100, 0) + "\x03SELECT"));  // 7 of 100 bytes

  RawMysqlClient silent;
  REQUIRE_MESSAGE(silent.connect(sluice.port()), silent.last_error());
  REQUIRE(silent.read_packet().ok());  // the greeting; no answer follows

  const ReadResult idle_err = idle.read_packet(10s);
  REQUIRE(idle_err.ok());
  REQUIRE(parse_err(idle_err.packet).has_value());
  CHECK(parse_err(idle_err.packet)->code == 4031);
  CHECK(idle_err.packet.seq == 0);
  const ReadResult read_err = stalled.read_packet(10s);
  REQUIRE(read_err.ok());
  REQUIRE(parse_err(read_err.packet).has_value());
  CHECK(parse_err(read_err.packet)->code == 1159);
  CHECK(silent.wait_closed(10s) != ReadStatus::kTimeout);

  const std::string after = scrape_when_idle(sluice);
  CHECK(delta(before, after, "sluice_timeouts_total", lis({{"kind", "idle"}})) == 1);
  CHECK(delta(before, after, "sluice_timeouts_total", lis({{"kind", "read"}})) == 1);
  CHECK(delta(before, after, "sluice_timeouts_total", lis({{"kind", "handshake"}})) == 1);
  CHECK(delta(before, after, "sluice_timeouts_total", lis({{"kind", "connect"}})) == 0);
  CHECK(delta(before, after, "sluice_timeouts_total", lis({{"kind", "write"}})) == 0);
}

TEST_CASE("metrics: rejected connections and upstream connect errors") {
  MariaDbServer server;

  SUBCASE("max_connections") {
    SluiceProcess sluice(
        {.upstream_ports = {server.port()}, .listener = {{"max_connections", "1"}}});
    const std::string before = scrape(sluice);
    RawMysqlClient first;
    REQUIRE_MESSAGE(first.connect(sluice.port()), first.last_error());
    REQUIRE(first.handshake().logged_in);
    RawMysqlClient second;
    REQUIRE_MESSAGE(second.connect(sluice.port()), second.last_error());
    const ReadResult err = second.read_packet(10s);
    REQUIRE(err.ok());
    REQUIRE(parse_err(err.packet).has_value());
    CHECK(parse_err(err.packet)->code == 1040);
    CHECK(err.packet.seq == 0);
    CHECK(second.wait_closed(10s) != ReadStatus::kTimeout);
    const std::string during = scrape(sluice);
    CHECK(metric_value(during, "sluice_connections_active", lis()) == 1);
    REQUIRE(first.query("SELECT 1").ok());  // unaffected
    first.close();
    const std::string after = scrape_when_idle(sluice);
    CHECK(delta(before, after, "sluice_connections_rejected_total",
                lis({{"reason", "max_connections"}})) == 1);
    CHECK(metric_sum(after, "sluice_connections_rejected_total") -
              metric_sum(before, "sluice_connections_rejected_total") ==
          1);
    CHECK(delta(before, after, "sluice_connections_total", lis()) == 2);  // refused one included
    CHECK(delta(before, after, "sluice_upstream_connect_seconds_count", lis()) == 1);
  }

  SUBCASE("upstream_unavailable: every upstream refuses") {
    const int dead1 = free_port();
    const int dead2 = free_port();
    SluiceProcess sluice({.upstream_ports = {dead1, dead2}});
    const std::string before = scrape(sluice);
    RawMysqlClient client;
    REQUIRE_MESSAGE(client.connect(sluice.port()), client.last_error());
    const ReadResult err = client.read_packet(20s);
    REQUIRE(err.ok());
    REQUIRE(parse_err(err.packet).has_value());
    CHECK(parse_err(err.packet)->code == 2003);
    CHECK(err.packet.seq == 0);
    CHECK(client.wait_closed(10s) != ReadStatus::kTimeout);
    client.close();
    const std::string after = scrape_when_idle(sluice);
    CHECK(delta(before, after, "sluice_connections_rejected_total",
                lis({{"reason", "upstream_unavailable"}})) == 1);
    CHECK(metric_sum(after, "sluice_connections_rejected_total") -
              metric_sum(before, "sluice_connections_rejected_total") ==
          1);
    for (int dead : {dead1, dead2}) {
      CHECK(delta(before, after, "sluice_upstream_connect_errors_total",
                  lis({{"upstream", "127.0.0.1:" + std::to_string(dead)}})) == 1);
    }
    CHECK(delta(before, after, "sluice_connections_total", lis()) == 1);
    CHECK(delta(before, after, "sluice_upstream_connect_seconds_count", lis()) == 0);
    CHECK(delta(before, after, "sluice_timeouts_total", lis({{"kind", "connect"}})) == 0);
    CHECK(delta(before, after, "sluice_packets_total", lis({{"direction", kS2C}})) == 0);
  }

  SUBCASE("failover past a dead upstream counts one connect error") {
    const int dead = free_port();
    // One worker, so the round-robin order is the listener's own.
    SluiceProcess sluice({.upstream_ports = {dead, server.port()}, .top = {{"workers", "1"}}});
    const std::string before = scrape(sluice);
    for (int i = 0; i < 2; ++i) {  // the first starts at the dead one, the second at the live one
      RawMysqlClient client;
      REQUIRE_MESSAGE(client.connect(sluice.port()), client.last_error());
      REQUIRE(client.handshake().logged_in);
      client.close();
    }
    const std::string after = scrape_when_idle(sluice);
    CHECK(delta(before, after, "sluice_upstream_connect_errors_total",
                lis({{"upstream", "127.0.0.1:" + std::to_string(dead)}})) == 1);
    CHECK(delta(before, after, "sluice_upstream_connect_errors_total",
                lis({{"upstream", "127.0.0.1:" + std::to_string(server.port())}})) == 0);
    CHECK(delta(before, after, "sluice_upstream_connect_seconds_count", lis()) == 2);
    CHECK(metric_sum(after, "sluice_connections_rejected_total") ==
          metric_sum(before, "sluice_connections_rejected_total"));
  }
}

const std::string kOutOfOrderErrors =
    "errors:\n  out_of_order: { code: 1156, sqlstate: \"08S01\", message: \"sluice: packets out "
    "of order\" }\n";

// What happens when a logged-in client starts a command with sequence id `seq`.
struct SequenceOutcome {
  double sequence_errors = 0;  // delta
  double queries = 0;          // COM_QUERY delta: counted only when forwarded
  std::optional<ServerError> err;
  std::uint8_t err_seq = 0;
  ReadStatus end = ReadStatus::kError;
  double close_seconds = 0;  // from reading the ERR to the connection's end
  std::string log;
};

SequenceOutcome out_of_order_command(const MariaDbServer& server, const std::string& mode,
                                     std::uint8_t seq) {
  SluiceProcess sluice({.upstream_ports = {server.port()},
                        .listener = {{"sequence_check", mode}},
                        .extra_yaml = kOutOfOrderErrors});
  const std::string before = scrape(sluice);
  RawMysqlClient client;
  REQUIRE_MESSAGE(client.connect(sluice.port()), client.last_error());
  const auto login = client.handshake();
  REQUIRE(login.logged_in);
  REQUIRE(login.last_seq == 2);  // greeting 0, response 1, OK 2: no auth switch
  SequenceOutcome out;
  REQUIRE(client.send_packet(seq, "\x03SELECT 'out of order'"));
  const ReadResult reply = client.read_packet(10s);
  REQUIRE_MESSAGE(reply.ok(), std::string(to_string(reply.status)));
  out.err = parse_err(reply.packet);
  out.err_seq = reply.packet.seq;
  // The verdict is final either way: sluice's (enforce) or mysqld's, which
  // answers ERR 1156 and drops the connection (count). The client then sees
  // the connection end without sending anything more.
  const auto waited = Clock::now();
  out.end = client.wait_closed(3s);
  out.close_seconds = std::chrono::duration<double>(Clock::now() - waited).count();
  client.close();
  const std::string after = scrape_when_idle(sluice);
  out.sequence_errors = delta(before, after, "sluice_sequence_errors_total", lis());
  out.queries = delta(before, after, "sluice_commands_total", lis({{"command", "COM_QUERY"}}));
  out.log = sluice.stderr_text();
  if (out.err) {
    MESSAGE("sequence_check ", mode, ", command with seq ", int(seq), ": ERR ", out.err->code, " '",
            out.err->message, "' seq ", int(out.err_seq), "; sequence_errors +",
            out.sequence_errors, ", COM_QUERY +", out.queries, "; then ",
            std::string(to_string(out.end)), " after ", out.close_seconds, " s");
  }
  return out;
}

TEST_CASE("metrics: sequence_check count counts an out-of-order command and lets it through") {
  MariaDbServer server;
  const SequenceOutcome out = out_of_order_command(server, "count", 9);
  // sluice counts it and forwards it: the verdict is the server's own
  // (mysqld answers ERR 1156 and closes), not sluice's out_of_order ERR.
  // One event, counted once: mysqld's ERR then carries a sequence id of its
  // own, which is not a second error.
  CHECK(out.sequence_errors == 1);
  CHECK(out.queries >= 1);
  REQUIRE(out.err.has_value());
  CHECK(out.err->code == 1156);
  CHECK(out.err->message.find("sluice:") == std::string::npos);
  CHECK(out.log.find("reason=out_of_order") == std::string::npos);
  // (mysqld then drops the connection: see "an upstream reset right after its
  // last packet ends the session at once".)
}

TEST_CASE("metrics: an upstream reset right after its last packet ends the session at once") {
  // mysqld answers an out-of-order command with ERR 1156 and closes with the
  // command's bytes unread: the ERR and the RST arrive together. Directly
  // connected, the client sees the reset at once; through sluice it must see
  // the connection end too, and the session must leave connections_active,
  // without the client having to send anything. Several rounds, because
  // whether the RST lands in the same poll wake-up as the data is timing.
  MariaDbServer server;
  int hung = 0;
  const int rounds = 8;
  for (int round = 0; round < rounds; ++round) {
    CAPTURE(round);
    const SequenceOutcome out = out_of_order_command(server, "count", 9);
    REQUIRE(out.err.has_value());
    CHECK(out.err->code == 1156);
    if (out.end == ReadStatus::kTimeout) ++hung;
  }
  CHECK_MESSAGE(hung == 0, hung, " of ", rounds,
                " sessions stayed open 3 s after the server had reset them");
}

// A one-connection fake MySQL server: greets, accepts any login, reads one
// command, then (when told) answers it with an ERR and resets the connection
// (SO_LINGER 0), so the ERR's bytes and the RST reach sluice together.
class ResettingUpstream {
 public:
  ResettingUpstream() {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listen_fd_, 4) == 0);
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~ResettingUpstream() {
    go_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    ::close(listen_fd_);
  }
  int port() const { return port_; }
  bool command_received() const { return command_received_.load(); }
  void answer_and_reset() { go_ = true; }
  bool done() const { return done_.load(); }

 private:
  static bool read_packet(int fd) {
    unsigned char header[4];
    if (::recv(fd, header, 4, MSG_WAITALL) != 4) return false;
    std::string payload(header[0] | (header[1] << 8) | (header[2] << 16), '\0');
    return payload.empty() || ::recv(fd, payload.data(), payload.size(), MSG_WAITALL) ==
                                  static_cast<ssize_t>(payload.size());
  }
  static void send_packet(int fd, std::uint8_t seq, const std::string& payload) {
    const std::string bytes =
        frame_header(static_cast<std::uint32_t>(payload.size()), seq) + payload;
    ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  }
  void run() {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return;
    const timeval limit{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    std::string greeting =
        "\x0a"
        "5.5.5-10.11.0-fake";
    greeting += '\0';
    put_le(&greeting, 42, 4);  // connection id
    greeting += "abcdefgh";    // scramble, part 1
    greeting += '\0';
    put_le(&greeting, 0xA20D, 2);  // capabilities, low half
    greeting += '\x08';            // latin1
    put_le(&greeting, 2, 2);       // status: autocommit
    put_le(&greeting, 0x000F, 2);  // capabilities, high half
    greeting += '\x15';            // auth data length
    greeting.append(10, '\0');
    greeting += "ijklmnopqrst";  // scramble, part 2
    greeting += '\0';
    greeting += "mysql_native_password";
    greeting += '\0';
    send_packet(fd, 0, greeting);
    if (read_packet(fd)) {  // HandshakeResponse
      send_packet(fd, 2, std::string("\x00\x00\x00\x02\x00\x00\x00", 7));
      if (read_packet(fd)) {  // the command
        command_received_ = true;
        while (!go_.load()) std::this_thread::sleep_for(5ms);
        send_packet(fd, 1, std::string("\xFF\x84\x04#08S01fake server error", 26));
        const linger reset{1, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
      }
    }
    ::close(fd);
    done_ = true;
  }

  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> command_received_{false};
  std::atomic<bool> go_{false};
  std::atomic<bool> done_{false};
  std::thread thread_;
};

TEST_CASE("metrics: an upstream whose last packet and reset arrive together is noticed") {
  // Deterministic form of the test above: sluice is stopped (SIGSTOP) while
  // the server sends its ERR and resets, so that both are waiting when it
  // resumes. The client must then get the ERR and see the connection end.
  ResettingUpstream upstream;
  SluiceProcess sluice({.upstream_ports = {upstream.port()}, .top = {{"workers", "1"}}});
  RawMysqlClient client;
  REQUIRE_MESSAGE(client.connect(sluice.port()), client.last_error());
  const auto login = client.handshake();
  REQUIRE_MESSAGE(login.logged_in, login.failure);
  REQUIRE(client.send_packet(0, "\x03SELECT 1"));
  const auto deadline = Clock::now() + 10s;
  while (!upstream.command_received() && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
  REQUIRE(upstream.command_received());
  sluice.send_signal(SIGSTOP);
  upstream.answer_and_reset();
  while (!upstream.done() && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
  std::this_thread::sleep_for(100ms);  // the RST is in sluice's socket now
  sluice.send_signal(SIGCONT);
  const ReadResult reply = client.read_packet(5s);
  REQUIRE_MESSAGE(reply.ok(), std::string(to_string(reply.status)));
  REQUIRE(parse_err(reply.packet).has_value());
  CHECK(parse_err(reply.packet)->message == "fake server error");
  const auto waited = Clock::now();
  const ReadStatus end = client.wait_closed(3s);
  MESSAGE("after the server's ERR and reset: ", std::string(to_string(end)), " after ",
          std::chrono::duration<double>(Clock::now() - waited).count(), " s");
  CHECK_MESSAGE(end != ReadStatus::kTimeout,
                "sluice kept the client's session open after the upstream reset it");
  const std::string text = scrape(sluice);
  CHECK(metric_value(text, "sluice_connections_active", lis()) == 0);
}

TEST_CASE("metrics: sequence_check enforce refuses an out-of-order command with ERR 1156") {
  MariaDbServer server;
  const SequenceOutcome out = out_of_order_command(server, "enforce", 9);
  REQUIRE(out.err.has_value());
  CHECK(out.err->code == 1156);
  CHECK(out.err->message == "sluice: packets out of order");
  CHECK(out.err_seq == 10);
  CHECK(out.end != ReadStatus::kTimeout);
  CHECK(out.sequence_errors == 1);
  CHECK(out.queries == 0);  // never forwarded
  CHECK(out.log.find("reason=out_of_order") != std::string::npos);
}

// sluice with sequence_check `mode` in front of `server`, its metrics at the
// start, and a client logged in through it.
struct CheckingSession {
  explicit CheckingSession(const MariaDbServer& server, const std::string& mode = "enforce")
      : sluice({.upstream_ports = {server.port()},
                .listener = {{"sequence_check", mode}},
                .extra_yaml = kOutOfOrderErrors}),
        before(scrape(sluice)) {
    REQUIRE_MESSAGE(client.connect(sluice.port()), client.last_error());
    REQUIRE(client.handshake().logged_in);
  }
  SluiceProcess sluice;
  std::string before;
  RawMysqlClient client;
};

// Pipelined commands each start at 0, and each response starts one past its
// own command's last frame, whatever else is in flight: none of it is out of
// order, also for a two-frame command and after a command with no response.
TEST_CASE(
    "metrics: sequence_check enforce lets pipelined commands through, each reply numbered "
    "from its own command") {
  MariaDbServer server({.args = {"--max-allowed-packet=64M"}});
  CheckingSession session(server);
  SluiceProcess& sluice = session.sluice;
  RawMysqlClient& client = session.client;
  const std::string before = session.before;
  std::string burst;
  constexpr int kPairs = 100;
  for (int i = 0; i < kPairs; ++i) {
    burst += frames(0, "\x0e");  // COM_PING
    burst += frames(0, "\x03SELECT " + std::to_string(i));
  }
  // Frames seq 0 and 1: its response starts at 2.
  const std::string big = "SELECT LENGTH('" + std::string(0xFFFFFF, 'k') + "')";
  burst += frames(0, "\x03" + big);
  burst += frames(0, std::string("\x19\x01\x00\x00\x00", 5));  // COM_STMT_CLOSE: no response
  burst += frames(0, "\x0e");
  REQUIRE(client.send_raw(burst, 120s));
  for (int i = 0; i < kPairs; ++i) {
    CAPTURE(i);
    const ReadResult pong = client.read_packet(30s);
    REQUIRE(pong.ok());
    CHECK(int{pong.packet.seq} == 1);
    CHECK_FALSE(parse_err(pong.packet).has_value());
    const QueryResult r = client.read_query_result(30s);
    REQUIRE_MESSAGE(r.ok(), r.failure);
    CHECK(r.rows()[0][0] == std::to_string(i));
    CHECK(int{r.last_seq} == 5);  // count, definition, EOF, row, EOF from 1
  }
  const QueryResult length = client.read_query_result(60s);
  REQUIRE_MESSAGE(length.ok(), length.failure);
  CHECK(length.rows()[0][0] == std::to_string(0xFFFFFF));
  CHECK(int{length.last_seq} == 6);  // from 2
  const ReadResult pong = client.read_packet(30s);
  REQUIRE(pong.ok());
  CHECK(int{pong.packet.seq} == 1);
  CHECK_FALSE(parse_err(pong.packet).has_value());
  REQUIRE(client.query("SELECT 'after'").ok());
  client.close();
  const std::string after = scrape_when_idle(sluice);
  CHECK(delta(before, after, "sluice_sequence_errors_total", lis()) == 0);
  CHECK(delta(before, after, "sluice_commands_total", lis({{"command", "COM_PING"}})) ==
        kPairs + 1);
}

// mysqld reads a pipelined out-of-order frame only after answering the
// commands before it: so does the client get them first from sluice.
// A query, then a COM_PING at seq 5 pipelined behind it: the query's answer
// must come first, then the 1156 for the PING (returned), then the close;
// *after gets the metrics once the session is gone.
ServerError answer_then_refuse_pipelined(CheckingSession& session, std::string* after) {
  RawMysqlClient& client = session.client;
  REQUIRE(client.send_raw(frames(0, "\x03SELECT SLEEP(0.2), 'first'") + frames(5, "\x0e")));
  const QueryResult first = client.read_query_result(30s);
  REQUIRE_MESSAGE(first.ok(), first.failure);
  CHECK(first.rows()[0][1] == "first");
  const ReadResult refused = client.read_packet(30s);
  REQUIRE(refused.ok());
  const auto err = parse_err(refused.packet);
  REQUIRE(err.has_value());
  CHECK(err->code == 1156);
  CHECK(client.wait_closed(10s) != ReadStatus::kTimeout);
  client.close();
  *after = scrape_when_idle(session.sluice);
  return *err;
}

TEST_CASE(
    "metrics: sequence_check enforce answers the commands before a pipelined out-of-order "
    "one, then refuses it with 1156") {
  MariaDbServer server;
  CheckingSession session(server);
  std::string after;
  const ServerError err = answer_then_refuse_pipelined(session, &after);
  CHECK(err.message == "sluice: packets out of order");
  CHECK(int{err.seq} == 6);
  CHECK(delta(session.before, after, "sluice_sequence_errors_total", lis()) == 1);
  CHECK(delta(session.before, after, "sluice_commands_total", lis({{"command", "COM_PING"}})) == 0);
}

// In count mode the frame goes on to mysqld, which also reads it only after
// answering the commands before it, then answers ERR 1156 at an id of its
// own: one event, counted once.
TEST_CASE(
    "metrics: sequence_check count counts a pipelined out-of-order frame once, mysqld's answer "
    "to it included") {
  MariaDbServer server;
  CheckingSession session(server, "count");
  std::string after;
  const ServerError err = answer_then_refuse_pipelined(session, &after);
  CHECK(err.message.find("sluice:") == std::string::npos);  // mysqld's verdict
  CHECK(delta(session.before, after, "sluice_sequence_errors_total", lis()) == 1);
  CHECK(delta(session.before, after, "sluice_commands_total", lis({{"command", "COM_PING"}})) == 1);
}

TEST_CASE("metrics: a command whose sequence id continues the login exchange is out of order") {
  // After the OK (seq 2) a new command must start at 0. Seq 3 merely
  // continues the previous exchange's numbering, which is no less wrong.
  MariaDbServer server;
  const SequenceOutcome out = out_of_order_command(server, "enforce", 3);
  REQUIRE(out.err.has_value());
  CHECK(out.err->code == 1156);
  CHECK(out.err->message == "sluice: packets out of order");
  CHECK(out.err_seq == 4);
  CHECK(out.sequence_errors == 1);
  CHECK(out.queries == 0);  // sluice must not forward it to the server
}

TEST_CASE("metrics: a mariadb --ssl session counts as a passthrough TLS session") {
  TlsCerts certs;
  MariaDbServer server({.args = certs.server_args()});
  SluiceProcess sluice({.upstream_ports = {server.port()}});
  const std::string before = scrape(sluice);
  const auto result =
      run_process({"mariadb", "--no-defaults", "--protocol=TCP", "-h", "127.0.0.1", "-P",
                   std::to_string(sluice.port()), "-u", "root", "--batch", "--skip-column-names",
                   "--connect-timeout=60", "--ssl", "--ssl-ca=" + certs.ca_cert(),
                   "--ssl-verify-server-cert", "-e",
                   "SELECT VARIABLE_VALUE <> '' FROM information_schema.SESSION_STATUS "
                   "WHERE VARIABLE_NAME = 'Ssl_cipher'; SELECT REPEAT('t', 100000)"},
                  std::chrono::minutes(2));
  REQUIRE_MESSAGE(result.status.success(), result.err);
  CHECK(result.out.substr(0, 2) == "1\n");
  const std::string after = scrape_when_idle(sluice);
  CHECK(delta(before, after, "sluice_tls_sessions_total", lis({{"mode", "passthrough"}})) == 1);
  CHECK(delta(before, after, "sluice_tls_sessions_total", lis({{"mode", "terminated"}})) == 0);
  // Opaque, but still counted: the 100,000-byte row crossed encrypted.
  CHECK(delta(before, after, "sluice_bytes_total", lis({{"direction", kS2C}})) > 100000);
  // Framed before TLS: the greeting one way, the SSLRequest the other.
  CHECK(delta(before, after, "sluice_packets_total", lis({{"direction", kS2C}})) == 1);
  CHECK(delta(before, after, "sluice_packets_total", lis({{"direction", kC2S}})) == 1);
  CHECK(delta(before, after, "sluice_commands_total", lis({{"command", "COM_QUERY"}})) == 0);
}

TEST_CASE("metrics: bytes that arrive together with the SSLRequest are counted") {
  // A client's first TLS record can arrive in the same read as its
  // SSLRequest. Those bytes are forwarded, so they must be counted too.
  TlsCerts certs;
  MariaDbServer server({.args = certs.server_args()});
  SluiceProcess sluice({.upstream_ports = {server.port()},
                        .extra_yaml =
                            "errors:\n  read_error: { code: 1158, sqlstate: \"08S01\", message: "
                            "\"sluice: read error\" }\n"});
  const std::string before = scrape(sluice);

  RawMysqlClient client;
  REQUIRE_MESSAGE(client.connect(sluice.port()), client.last_error());
  const ReadResult greeting = client.read_packet();
  REQUIRE(greeting.ok());
  const auto parsed = parse_greeting(greeting.packet.payload);
  REQUIRE(parsed.has_value());
  REQUIRE((parsed->capabilities & client_flag::kSsl) != 0);
  // Not a valid TLS ClientHello: the server gives up and closes, which is fine.
  const std::string record(64, '\x16');
  const std::string sent = frames(1, ssl_request_payload(*parsed)) + record;
  REQUIRE(client.send_raw(sent));
  // Everything the client gets until the connection ends.
  // (The server resets the connection after its ERR; 3 s is plenty, and
  // sluice sometimes misses that reset: see "an upstream reset right after its
  // last packet ends the session at once".)
  std::string received;
  const auto deadline = Clock::now() + 3s;
  while (Clock::now() < deadline) {
    pollfd pfd{client.fd(), POLLIN, 0};
    if (::poll(&pfd, 1, 100) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::recv(client.fd(), buf, sizeof buf, 0);
    if (n > 0) {
      received.append(buf, static_cast<std::size_t>(n));
    } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
      break;
    }
  }
  client.close();
  const std::string after = scrape_when_idle(sluice);
  const long long greeting_bytes = 4 + static_cast<long long>(greeting.packet.payload.size());
  std::string printable;
  for (const char ch : received) printable += (ch >= 32 && ch < 127) ? ch : '.';
  MESSAGE("sent ", sent.size(), " bytes (36 SSLRequest + 64 TLS), received ", greeting_bytes, " + ",
          received.size(), ": ", printable);
  // The server's reply is one plaintext ERR ("Bad handshake"). When its close
  // reaches sluice as a reset, sluice may append its own read_error ERR: that
  // one is sluice's, not forwarded, and not counted, so it is cut off here.
  std::size_t from_server = received.size();
  const std::size_t own = received.find("sluice: read error");
  if (own != std::string::npos && received.size() >= 4) {
    const std::size_t first = 4 + (static_cast<std::uint8_t>(received[0]) |
                                   (static_cast<std::uint8_t>(received[1]) << 8) |
                                   (static_cast<std::uint8_t>(received[2]) << 16));
    from_server = std::min(first, received.size());
  }
  WARN_MESSAGE(own == std::string::npos,
               "sluice wrote a plaintext read_error ERR into a TLS pass-through session");
  CHECK(delta(before, after, "sluice_tls_sessions_total", lis({{"mode", "passthrough"}})) == 1);
  CHECK(delta(before, after, "sluice_bytes_total", lis({{"direction", kC2S}})) ==
        static_cast<double>(sent.size()));
  CHECK(delta(before, after, "sluice_bytes_total", lis({{"direction", kS2C}})) ==
        static_cast<double>(greeting_bytes + static_cast<long long>(from_server)));
}

TEST_CASE("metrics: a mariadb --compress session counts as compressed and is tracked inside") {
  MariaDbServer server;
  SluiceProcess sluice({.upstream_ports = {server.port()}});
  const std::string before = scrape(sluice);
  const auto result = run_process(
      {"mariadb", "--no-defaults", "--protocol=TCP", "-h", "127.0.0.1", "-P",
       std::to_string(sluice.port()), "-u", "root", "--batch", "--skip-column-names",
       "--connect-timeout=60", "--compress", "-e",
       "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = "
       "'Compression'; SELECT LENGTH(REPEAT('z', 300000)); SELECT 1; SELECT 2"},
      std::chrono::minutes(2));
  REQUIRE_MESSAGE(result.status.success(), result.err);
  CHECK(result.out == "ON\n300000\n1\n2\n");
  const std::string after = scrape_when_idle(sluice);
  CHECK(delta(before, after, "sluice_compressed_sessions_total", lis()) == 1);
  CHECK(delta(before, after, "sluice_tls_sessions_total", lis({{"mode", "passthrough"}})) == 0);
  const double queries =
      delta(before, after, "sluice_commands_total", lis({{"command", "COM_QUERY"}}));
  CHECK(queries >= 4);
  CHECK(delta(before, after, "sluice_command_duration_seconds_count",
              lis({{"command", "COM_QUERY"}})) == queries);
  CHECK(delta(before, after, "sluice_response_tracking_lost_total", lis()) == 0);
}

TEST_CASE("metrics: SIGHUP reloads are counted ok and failed") {
  MariaDbServer server;
  SluiceProcess sluice({.upstream_ports = {server.port()}});
  const std::string good = sluice.config_text();
  auto reloads = [&](const std::string& text, const char* result) {
    return metric_value(text, "sluice_config_reloads_total", {{"result", result}});
  };
  const std::string start = scrape(sluice);
  REQUIRE(reloads(start, "ok") == 0);

  sluice.send_signal(SIGHUP);
  std::string text = wait_metric(sluice, "sluice_config_reloads_total", {{"result", "ok"}},
                                 [](double v) { return v >= 1; });
  CHECK(reloads(text, "ok") == 1);
  CHECK(reloads(text, "failed") == 0);

  write_file(sluice.config_path(), good + "    max_allowed_packet: lots\n");
  sluice.send_signal(SIGHUP);
  text = wait_metric(sluice, "sluice_config_reloads_total", {{"result", "failed"}},
                     [](double v) { return v >= 1; });
  CHECK(reloads(text, "ok") == 1);
  CHECK(reloads(text, "failed") == 1);
  CHECK(sluice.running());
  {
    MysqlConn conn(ConnectOptions{.port = sluice.port()});
    CHECK(conn.scalar("SELECT 'old config still serves'") == "old config still serves");
  }

  write_file(sluice.config_path(), good + "    max_allowed_packet: 8M\n");
  sluice.send_signal(SIGHUP);
  text = wait_metric(sluice, "sluice_config_reloads_total", {{"result", "ok"}},
                     [](double v) { return v >= 2; });
  CHECK(reloads(text, "ok") == 2);
  CHECK(reloads(text, "failed") == 1);
  // Give a stray extra count time to show before the final check.
  std::this_thread::sleep_for(300ms);
  text = scrape(sluice);
  CHECK(reloads(text, "ok") == 2);
  CHECK(reloads(text, "failed") == 1);
}

// ---------------------------------------------------------------------------
// Response tracker under real clients.

void check_every_command_timed(const std::string& before, const std::string& after) {
  double total = 0;
  std::string summary;
  for (const std::string& c : kCommandLabels) {
    CAPTURE(c);
    const double commands = delta(before, after, "sluice_commands_total", lis({{"command", c}}));
    const double timed =
        delta(before, after, "sluice_command_duration_seconds_count", lis({{"command", c}}));
    if (commands != 0 || timed != 0) {
      summary += "\n  " + c + ": " + std::to_string(static_cast<long long>(commands)) +
                 " commands, " + std::to_string(static_cast<long long>(timed)) + " timed";
    }
    total += commands;
    CHECK(timed == commands);
  }
  MESSAGE("commands through sluice:", summary);
  CHECK(total > 0);
  CHECK(delta(before, after, "sluice_response_tracking_lost_total", lis()) == 0);
}

MYSQL_BIND bind_long(long long* value) {
  MYSQL_BIND bind{};
  bind.buffer_type = MYSQL_TYPE_LONGLONG;
  bind.buffer = value;
  return bind;
}

// Every kind of exchange libmariadb has, through one connection and a second one.
void connector_mix(int port, const std::string& infile) {
  ConnectOptions options{.port = port};
  options.local_infile = true;
  MysqlConn conn(options);
  MYSQL* m = conn.get();
  conn.exec(
      "CREATE DATABASE mix; CREATE TABLE mix.t (id BIGINT PRIMARY KEY, name VARCHAR(40), "
      "note TEXT NULL);"
      "CREATE PROCEDURE mix.two_results() BEGIN SELECT 1 AS a; SELECT 'b' AS b, 2 AS c; END");
  REQUIRE(mysql_select_db(m, "mix") == 0);              // COM_INIT_DB
  REQUIRE_MESSAGE(mysql_ping(m) == 0, mysql_error(m));  // COM_PING
  const char* stat = mysql_stat(m);                     // COM_STATISTICS
  REQUIRE(stat != nullptr);
  CHECK(std::string(stat).find("Uptime") != std::string::npos);
  MYSQL_RES* fields = mysql_list_fields(m, "t", nullptr);  // COM_FIELD_LIST
  REQUIRE_MESSAGE(fields != nullptr, mysql_error(m));
  CHECK(mysql_num_fields(fields) == 3);
  mysql_free_result(fields);
  REQUIRE(mysql_set_server_option(m, MYSQL_OPTION_MULTI_STATEMENTS_ON) == 0);  // COM_SET_OPTION

  // Prepared INSERTs with parameters, one with long data.
  {
    MYSQL_STMT* st = mysql_stmt_init(m);
    const std::string sql = "INSERT INTO t VALUES (?, ?, ?)";
    REQUIRE_MESSAGE(mysql_stmt_prepare(st, sql.data(), sql.size()) == 0, mysql_stmt_error(st));
    for (long long i = 1; i <= 50; ++i) {
      long long id = i;
      std::string name = "row " + std::to_string(i);
      unsigned long name_len = name.size();
      MYSQL_BIND binds[3] = {};
      binds[0] = bind_long(&id);
      binds[1].buffer_type = MYSQL_TYPE_STRING;
      binds[1].buffer = name.data();
      binds[1].buffer_length = name.size();
      binds[1].length = &name_len;
      binds[2].buffer_type = MYSQL_TYPE_BLOB;
      REQUIRE(mysql_stmt_bind_param(st, binds) == 0);
      if (i % 10 == 0) {
        const std::string chunk(3000, 'L');
        REQUIRE(mysql_stmt_send_long_data(st, 2, chunk.data(), chunk.size()) == 0);
        REQUIRE(mysql_stmt_send_long_data(st, 2, chunk.data(), chunk.size()) == 0);
      } else {
        binds[2].buffer_type = MYSQL_TYPE_NULL;
        REQUIRE(mysql_stmt_bind_param(st, binds) == 0);
      }
      REQUIRE_MESSAGE(mysql_stmt_execute(st) == 0, mysql_stmt_error(st));
      if (i % 25 == 0) REQUIRE(mysql_stmt_reset(st) == 0);  // COM_STMT_RESET
    }
    mysql_stmt_close(st);
  }
  // MariaDB array binding: COM_STMT_BULK_EXECUTE.
  {
    MYSQL_STMT* st = mysql_stmt_init(m);
    const std::string sql = "INSERT INTO t (id, name) VALUES (?, ?)";
    REQUIRE(mysql_stmt_prepare(st, sql.data(), sql.size()) == 0);
    long long ids[3] = {1001, 1002, 1003};
    const char* names[3] = {"bulk a", "bulk b", "bulk c"};
    unsigned int size = 3;
    REQUIRE(mysql_stmt_attr_set(st, STMT_ATTR_ARRAY_SIZE, &size) == 0);
    MYSQL_BIND binds[2] = {};
    binds[0].buffer_type = MYSQL_TYPE_LONGLONG;
    binds[0].buffer = ids;
    binds[1].buffer_type = MYSQL_TYPE_STRING;
    binds[1].buffer = names;
    char indicators[3] = {STMT_INDICATOR_NTS, STMT_INDICATOR_NTS, STMT_INDICATOR_NTS};
    binds[1].u.indicator = indicators;
    REQUIRE(mysql_stmt_bind_param(st, binds) == 0);
    REQUIRE_MESSAGE(mysql_stmt_execute(st) == 0, mysql_stmt_error(st));
    CHECK(mysql_stmt_affected_rows(st) == 3);
    mysql_stmt_close(st);
  }
  // Prepared SELECT with a binary result, buffered; then a cursor (COM_STMT_FETCH).
  for (const bool cursor : {false, true}) {
    MYSQL_STMT* st = mysql_stmt_init(m);
    if (cursor) {
      unsigned long type = CURSOR_TYPE_READ_ONLY;
      unsigned long prefetch = 7;
      REQUIRE(mysql_stmt_attr_set(st, STMT_ATTR_CURSOR_TYPE, &type) == 0);
      REQUIRE(mysql_stmt_attr_set(st, STMT_ATTR_PREFETCH_ROWS, &prefetch) == 0);
    }
    const std::string sql = "SELECT id, name FROM t WHERE id > ? ORDER BY id";
    REQUIRE(mysql_stmt_prepare(st, sql.data(), sql.size()) == 0);
    long long floor = 0;
    MYSQL_BIND param[1] = {bind_long(&floor)};
    REQUIRE(mysql_stmt_bind_param(st, param) == 0);
    REQUIRE_MESSAGE(mysql_stmt_execute(st) == 0, mysql_stmt_error(st));
    long long id = 0;
    char name[64];
    unsigned long name_len = 0;
    MYSQL_BIND out[2] = {};
    out[0] = bind_long(&id);
    out[1].buffer_type = MYSQL_TYPE_STRING;
    out[1].buffer = name;
    out[1].buffer_length = sizeof name;
    out[1].length = &name_len;
    REQUIRE(mysql_stmt_bind_result(st, out) == 0);
    if (!cursor) REQUIRE(mysql_stmt_store_result(st) == 0);
    int rows = 0;
    while (mysql_stmt_fetch(st) == 0) ++rows;
    CHECK(rows == 53);
    mysql_stmt_close(st);
  }
  // Multi-statements, a procedure with two result sets, a prepared CALL, an error.
  conn.exec("SELECT 1; SELECT 'two', 2; DO 0; UPDATE t SET name = 'x' WHERE id = 1");
  conn.exec("CALL two_results()");
  {
    MYSQL_STMT* st = mysql_stmt_init(m);
    const std::string sql = "CALL two_results()";
    REQUIRE(mysql_stmt_prepare(st, sql.data(), sql.size()) == 0);
    REQUIRE_MESSAGE(mysql_stmt_execute(st) == 0, mysql_stmt_error(st));
    int results = 0;
    do {
      if (mysql_stmt_field_count(st) > 0) {
        ++results;
        REQUIRE(mysql_stmt_store_result(st) == 0);
        while (mysql_stmt_fetch(st) == 0) {
        }
        mysql_stmt_free_result(st);
      }
    } while (mysql_stmt_next_result(st) == 0);
    CHECK(results == 2);
    mysql_stmt_close(st);
  }
  CHECK_THROWS_AS(conn.exec("SELECT * FROM no_such_table"), MysqlError);
  CHECK_THROWS_AS(conn.exec("SELECT 1; SELECT * FROM no_such_table; SELECT 3"), MysqlError);
  // LOAD DATA LOCAL INFILE: the server asks for the file, the client streams it.
  conn.exec("LOAD DATA LOCAL INFILE '" + infile +
            "' INTO TABLE t FIELDS TERMINATED BY ',' (id, name)");
  CHECK(conn.scalar("SELECT COUNT(*) FROM t WHERE id >= 5000") == "1000");
  // A large result and a large statement.
  CHECK(conn.scalar("SELECT LENGTH(REPEAT('r', 2000000))") == "2000000");
  CHECK(conn.scalar("SELECT LENGTH('" + std::string(100000, 'w') + "')") == "100000");
  REQUIRE(mysql_reset_connection(m) == 0);  // COM_RESET_CONNECTION
  REQUIRE_MESSAGE(mysql_change_user(m, "root", "", "mix") == 0, mysql_error(m));  // COM_CHANGE_USER
  CHECK(conn.scalar("SELECT DATABASE()") == "mix");
  // The connection closes with COM_QUIT in the destructor.
}

TEST_CASE("metrics: sysbench and a Connector/C mix never lose response tracking") {
  MariaDbServer server({.args = {"--max-connections=200", "--local-infile=1"},
                        .bootstrap_sql = "CREATE DATABASE sbtest"});
  SluiceProcess sluice({.upstream_ports = {server.port()}});
  const std::string before = scrape(sluice);

  const std::vector<std::string> common = {"oltp_read_write",
                                           "--db-driver=mysql",
                                           "--mysql-host=127.0.0.1",
                                           "--mysql-port=" + std::to_string(sluice.port()),
                                           "--mysql-user=root",
                                           "--mysql-db=sbtest",
                                           "--tables=4",
                                           "--table-size=2000"};
  std::vector<std::string> prepare = {"sysbench"};
  prepare.insert(prepare.end(), common.begin(), common.end());
  prepare.insert(prepare.end(), {"--threads=2", "prepare"});
  const auto prepared = run_process(prepare, std::chrono::minutes(3));
  REQUIRE_MESSAGE(prepared.status.success(), prepared.out, prepared.err);
  std::vector<std::string> run = {"sysbench"};
  run.insert(run.end(), common.begin(), common.end());
  // Deadlocks between the threads are the server's business (sysbench retries
  // them); their ERR responses are one more thing the tracker must follow.
  run.insert(run.end(), {"--threads=4", "--time=5", "--report-interval=0",
                         "--mysql-ignore-errors=1213,1205,1020", "run"});
  const auto ran = run_process(run, std::chrono::minutes(2));
  REQUIRE_MESSAGE(ran.status.success(), ran.out, ran.err);
  CHECK(ran.out.find("FATAL") == std::string::npos);

  TempDir files("sluice-mix");
  std::string csv;
  for (int i = 5000; i < 6000; ++i)
    csv += std::to_string(i) + ",infile row " + std::to_string(i) + "\n";
  write_file(files / "rows.csv", csv);
  connector_mix(sluice.port(), (files / "rows.csv").string());

  const std::string after = scrape_when_idle(sluice);
  check_every_command_timed(before, after);
  // The mix reached the commands it was written for.
  for (const std::string c :
       {"COM_STMT_PREPARE", "COM_STMT_EXECUTE", "COM_STMT_CLOSE", "COM_STMT_FETCH",
        "COM_STMT_RESET", "COM_STMT_SEND_LONG_DATA", "COM_STMT_BULK_EXECUTE", "COM_FIELD_LIST",
        "COM_STATISTICS", "COM_SET_OPTION", "COM_CHANGE_USER", "COM_RESET_CONNECTION", "COM_PING",
        "COM_INIT_DB", "COM_QUIT"}) {
    CHECK_MESSAGE(delta(before, after, "sluice_commands_total", lis({{"command", c}})) > 0, c);
  }
}

// ---------------------------------------------------------------------------
// Logs

// Every non-empty line of `text` parsed as a JSON object; failures reported.
std::vector<JsonValue> json_lines(const std::string& text) {
  std::vector<JsonValue> out;
  std::size_t start = 0;
  int line_no = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (line.empty()) continue;
    std::string error;
    auto v = parse_json(line, &error);
    CHECK_MESSAGE(v.has_value(), "stderr line ", line_no, " is not JSON (", error, "): ", line);
    if (!v) continue;
    CHECK_MESSAGE(v->is_object(), "stderr line ", line_no, " is not an object: ", line);
    CHECK_MESSAGE(v->string_or("event") != "", "stderr line ", line_no, " has no event: ", line);
    CHECK_MESSAGE(v->string_or("level") != "", "stderr line ", line_no, " has no level: ", line);
    CHECK_MESSAGE(v->string_or("ts") != "", "stderr line ", line_no, " has no ts: ", line);
    out.push_back(std::move(*v));
  }
  return out;
}

TEST_CASE("metrics: log.format json writes one JSON object per line, session_close complete") {
  MariaDbServer server;
  SluiceProcess sluice(
      {.upstream_ports = {server.port()},
       .listener = {{"wait_timeout", "3s"}, {"max_allowed_packet", "4K"}, {"max_connections", "2"}},
       .top = {{"log", "{ level: info, format: json }"}}});
  // A polite session whose exact traffic is known.
  CountingClient client;
  REQUIRE_MESSAGE(client.connect(sluice.port()), client.last_error());
  client.login();
  REQUIRE(client.query("SELECT \"quotes\\\\ and \\ttabs\"").size() == 1);
  const std::string client_addr = local_address(client.raw().fd());
  REQUIRE(client.send(0, "\x01"));
  CHECK(client.raw().wait_closed(10s) != ReadStatus::kTimeout);
  client.raw().close();
  scrape_when_idle(sluice);
  // Events of other kinds: an idle timeout, an oversized packet, a rejection, reloads.
  {
    RawMysqlClient idle;
    REQUIRE_MESSAGE(idle.connect(sluice.port()), idle.last_error());
    REQUIRE(idle.handshake().logged_in);
    RawMysqlClient big;
    REQUIRE_MESSAGE(big.connect(sluice.port()), big.last_error());
    REQUIRE(big.handshake().logged_in);
    RawMysqlClient third;
    REQUIRE_MESSAGE(third.connect(sluice.port()), third.last_error());
    CHECK(third.wait_closed(10s) != ReadStatus::kTimeout);  // max_connections
    REQUIRE(big.send_packet(0, "\x03" + std::string(5000, ' ')));
    CHECK(big.wait_closed(10s) != ReadStatus::kTimeout);
    CHECK(idle.wait_closed(10s) != ReadStatus::kTimeout);
  }
  scrape_when_idle(sluice);
  sluice.send_signal(SIGHUP);
  wait_metric(sluice, "sluice_config_reloads_total", {{"result", "ok"}},
              [](double v) { return v >= 1; });
  const std::string good = sluice.config_text();
  write_file(sluice.config_path(), good + "bogus_key: \"with \\\"quotes\\\"\"\n");
  sluice.send_signal(SIGHUP);
  wait_metric(sluice, "sluice_config_reloads_total", {{"result", "failed"}},
              [](double v) { return v >= 1; });
  write_file(sluice.config_path(), good);
  const ExitStatus stopped = sluice.stop();
  CHECK(stopped.success());

  const std::string log = sluice.stderr_text();
  INFO("sluice stderr:\n", log);
  const std::vector<JsonValue> lines = json_lines(log);
  std::set<std::string> events;
  const JsonValue* closed_line = nullptr;
  for (const JsonValue& line : lines) {
    events.insert(line.string_or("event"));
    if (line.string_or("event") == "session_close" && line.string_or("client") == client_addr) {
      closed_line = &line;
    }
  }
  for (const std::string e : {"started", "session_close", "connection_rejected", "oversized_packet",
                              "reloaded", "reload_failed", "stopped"}) {
    CHECK_MESSAGE(events.count(e) == 1, "no '", e, "' event");
  }
  // At info, no per-packet lines: a handful of events, not hundreds.
  CHECK(lines.size() < 30);
  REQUIRE_MESSAGE(closed_line != nullptr, "no session_close line for ", client_addr);
  CHECK(closed_line->string_or("listener") == "main");
  CHECK(closed_line->string_or("user") == "root");
  CHECK(closed_line->string_or("upstream") == "127.0.0.1:" + std::to_string(server.port()));
  CHECK(closed_line->string_or("reason") == "client_quit");
  CHECK(closed_line->string_or("level") == "info");
  const JsonValue* duration = closed_line->get("duration_s");
  REQUIRE(duration != nullptr);
  CHECK(duration->is_number());
  CHECK(duration->as_number() >= 0);
  CHECK(duration->as_number() < 60);
  const Wire& w = client.wire();
  const std::map<std::string, long long> numbers = {{"c2s_bytes", w.c2s.bytes},
                                                    {"c2s_packets", w.c2s.packets},
                                                    {"s2c_bytes", w.s2c.bytes},
                                                    {"s2c_packets", w.s2c.packets}};
  for (const auto& [key, want] : numbers) {
    const JsonValue* v = closed_line->get(key);
    REQUIRE_MESSAGE(v != nullptr, key);
    CHECK_MESSAGE(v->is_number(), key);
    CHECK_MESSAGE(v->as_number() == static_cast<double>(want), key);
  }
  // Other closes carry their reasons.
  std::multiset<std::string> reasons;
  for (const JsonValue& line : lines) {
    if (line.string_or("event") == "session_close") reasons.insert(line.string_or("reason"));
  }
  CHECK(reasons.count("idle_timeout") == 1);
  CHECK(reasons.count("packet_too_large") == 1);
}

TEST_CASE("metrics: with log.format json a start-up config warning is a JSON line too") {
  // memory_limit below a listener's max_allowed_packet is allowed, with a warning.
  const int dead = free_port();
  SluiceProcess sluice({.upstream_ports = {dead},
                        .listener = {{"max_allowed_packet", "8M"}},
                        .top = {{"log", "{ level: info, format: json }"}, {"memory_limit", "4M"}}});
  sluice.stop();
  const std::string log = sluice.stderr_text();
  INFO("sluice stderr:\n", log);
  const auto lines = json_lines(log);
  int warnings = 0;
  for (const JsonValue& line : lines) warnings += line.string_or("event") == "config_warning";
  CHECK(warnings == 1);  // once, not once per format
}

// ---------------------------------------------------------------------------
// Basic auth

TEST_CASE("metrics: basic auth on /metrics answers 401 without credentials and 200 with them") {
  const int dead = free_port();
  TempDir dir("sluice-auth");
  write_file(dir / "password", "s3cret pass\n");
  SluiceProcess sluice({.yaml = "shutdown_timeout: 5s\n"
                                "metrics:\n  listen: 127.0.0.1:${METRICS_PORT}\n  path: /metrics\n"
                                "  username: prom\n  password_file: " +
                                (dir / "password").string() +
                                "\n"
                                "listeners:\n  - name: main\n    listen: 127.0.0.1:${LISTEN_PORT}\n"
                                "    upstreams: [127.0.0.1:${UPSTREAM_PORT}]\n",
                        .upstream_ports = {dead}});
  HttpResponse anonymous = http_request(sluice.metrics_port(), "/metrics");
  for (int i = 0; i < 100 && anonymous.status == 404; ++i) {  // the start-up window
    std::this_thread::sleep_for(20ms);
    anonymous = http_request(sluice.metrics_port(), "/metrics");
  }
  CHECK(anonymous.status == 401);
  CHECK(anonymous.body.find("sluice_") == std::string::npos);
  CHECK(anonymous.headers.find("WWW-Authenticate") != std::string::npos);
  const HttpResponse wrong = http_request_with_headers(sluice.metrics_port(), "/metrics",
                                                       {basic_auth_header("prom", "nope")});
  CHECK(wrong.status == 401);
  CHECK(wrong.body.find("sluice_") == std::string::npos);
  const HttpResponse wrong_user = http_request_with_headers(
      sluice.metrics_port(), "/metrics", {basic_auth_header("other", "s3cret pass")});
  CHECK(wrong_user.status == 401);
  const HttpResponse ok = http_request_with_headers(sluice.metrics_port(), "/metrics",
                                                    {basic_auth_header("prom", "s3cret pass")});
  CHECK(ok.status == 200);
  CHECK(metric_value(ok.body, "sluice_connections_total", lis()) == 0);
}

// ---------------------------------------------------------------------------
// Start-up

// One GET /metrics the moment a connect succeeds; the status (0: no answer).
int first_answer(int port, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd);
      continue;  // not listening yet: try again at once
    }
    const std::string request = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    std::string raw;
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
        static_cast<ssize_t>(request.size())) {
      char buf[4096];
      ssize_t n;
      while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) raw.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return raw.rfind("HTTP/", 0) == 0 ? std::atoi(raw.c_str() + raw.find(' ') + 1) : 0;
  }
  return -1;
}

TEST_CASE("metrics: /metrics answers 200 as soon as the metrics port listens") {
  // Prometheus may scrape the moment the port opens (a restart under a
  // running Prometheus): that first scrape must not be a 404.
  TempDir dir("sluice-race");
  std::map<int, int> statuses;
  for (int round = 0; round < 30; ++round) {
    const int metrics_port = free_port();
    write_file(dir / "sluice.yaml",
               "metrics:\n  listen: 127.0.0.1:" + std::to_string(metrics_port) +
                   "\n  path: /metrics\nlisteners:\n  - name: main\n    listen: 127.0.0.1:" +
                   std::to_string(free_port()) +
                   "\n    upstreams: [127.0.0.1:" + std::to_string(free_port()) + "]\n");
    ChildProcess sluice({sluice_binary(), "--config", (dir / "sluice.yaml").string()});
    ++statuses[first_answer(metrics_port, 10s)];
    sluice.terminate(5s);
  }
  std::string summary;
  for (const auto& [status, count] : statuses) {
    summary += " " + std::to_string(count) + "x" + std::to_string(status);
  }
  MESSAGE("first answer per start-up (count x status):", summary);
  CHECK(statuses[404] == 0);
  CHECK(statuses[200] == 30);
}

}  // namespace
}  // namespace sluice::test
