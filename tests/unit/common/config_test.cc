// Tests for the config model's defaults and the YAML loader: values, problems (key and line),
// --set overrides and warnings.
#include "common/config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "common/config_loader.h"
#include "common/socket_address.h"

namespace sluice {
namespace {

// One listener on line 2, its listen on line 2, upstreams on line 3.
constexpr std::string_view kMinimal =
    "listeners:\n"
    "  - listen: 127.0.0.1:6033\n"
    "    upstreams: [127.0.0.1:3306]\n";

LoadedConfig load(std::string_view yaml, const std::vector<std::string>& overrides = {}) {
  return load_config_text(yaml, overrides);
}

// kMinimal plus `extra` lines appended to the listener (so they start on line 4).
LoadedConfig load_listener(std::string_view extra, const std::vector<std::string>& overrides = {}) {
  return load(std::string(kMinimal) + std::string(extra), overrides);
}

std::string all_problems(const LoadedConfig& loaded) {
  std::string text;
  for (const ConfigProblem& problem : loaded.problems) text += problem.text() + "\n";
  return text;
}

// Asserts the load produced exactly one problem, at `key` and `line`; returns its message.
std::string only_problem(const LoadedConfig& loaded, std::string_view key, int line) {
  INFO(all_problems(loaded));
  REQUIRE(loaded.problems.size() == 1);
  CHECK(loaded.problems[0].key == key);
  CHECK(loaded.problems[0].line == line);
  return loaded.problems[0].message;
}

bool has_problem(const LoadedConfig& loaded, std::string_view key, int line) {
  for (const ConfigProblem& problem : loaded.problems) {
    if (problem.key == key && problem.line == line) return true;
  }
  return false;
}

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

// A file under /tmp holding `contents`, removed with the object: a metrics password file.
class TempFile {
 public:
  explicit TempFile(std::string_view contents) {
    char name[] = "/tmp/sluice-config-test-XXXXXX";
    const int fd = ::mkstemp(name);
    REQUIRE(fd >= 0);
    path_ = name;
    REQUIRE(::write(fd, contents.data(), contents.size()) == static_cast<ssize_t>(contents.size()));
    ::close(fd);
  }
  ~TempFile() { ::unlink(path_.c_str()); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST_CASE("error defaults are mysqld's") {
  CHECK(error_key(ErrorKind::kPacketTooLarge) == "packet_too_large");
  CHECK(error_key(ErrorKind::kOutOfMemory) == "out_of_memory");
  const ErrorSpec too_large = default_error(ErrorKind::kPacketTooLarge);
  CHECK(too_large.code == 1153);
  CHECK(too_large.sqlstate == "08S01");
  CHECK(too_large.message == "Got a packet bigger than 'max_allowed_packet' bytes");
  const ErrorTable table;
  CHECK(table[ErrorKind::kReadTimeout].code == 1159);
  CHECK(table[ErrorKind::kWriteTimeout].code == 1161);
  CHECK(table[ErrorKind::kReadError].code == 1158);
  CHECK(table[ErrorKind::kWriteError].code == 1160);
  CHECK(table[ErrorKind::kOutOfOrder].code == 1156);
  CHECK(table[ErrorKind::kIdleTimeout].code == 4031);
  CHECK(table[ErrorKind::kIdleTimeout].sqlstate == "HY000");
  CHECK(table[ErrorKind::kIdleTimeout].message ==
        "The client was disconnected by the server because of inactivity.");
  CHECK(table[ErrorKind::kTooManyConnections].code == 1040);
  CHECK(table[ErrorKind::kTooManyConnections].sqlstate == "08004");
  CHECK(table[ErrorKind::kUpstreamUnavailable].code == 2003);
  CHECK(table[ErrorKind::kUpstreamUnavailable].message == "Can't connect to MySQL server");
  CHECK(table[ErrorKind::kOutOfMemory].code == 1041);
  CHECK(table[ErrorKind::kBadHandshake].code == 1043);
  CHECK(error_key(ErrorKind::kBadHandshake) == "bad_handshake");
  for (const ErrorSpec& spec : table.specs) CHECK(spec.sqlstate.size() == 5);
}

TEST_CASE("HostPort parses IPv4, bracketed IPv6 and names, and prints them back") {
  CHECK(HostPort::parse("127.0.0.1:6033") == HostPort{"127.0.0.1", 6033});
  CHECK(HostPort::parse("[::1]:3306") == HostPort{"::1", 3306});
  CHECK(HostPort::parse("db-1.example_net:3306") == HostPort{"db-1.example_net", 3306});
  CHECK(HostPort::parse("0.0.0.0:0") == HostPort{"0.0.0.0", 0});
  CHECK(HostPort{"::1", 3306}.text() == "[::1]:3306");
  CHECK(HostPort{"127.0.0.1", 6033}.text() == "127.0.0.1:6033");
  for (const char* bad : {"", "127.0.0.1", "127.0.0.1:", ":3306", "127.0.0.1:65536", "127.0.0.1:-1",
                          "127.0.0.1:x", "::1:3306", "[::1]", "[::1]3306", "[nonsense]:1",
                          "300.1.1.1:3306", "1.2.3:3306", "a b:1", "a..b:1"}) {
    CAPTURE(bad);
    std::string why;
    CHECK_FALSE(HostPort::parse(bad, &why).has_value());
    CHECK_FALSE(why.empty());
  }
}

TEST_CASE("a minimal config takes every default") {
  const LoadedConfig loaded = load(kMinimal);
  INFO(all_problems(loaded));
  REQUIRE(loaded.ok());
  const Config& config = loaded.config;
  CHECK(config.workers == 0);
  CHECK(config.memory_limit == 1ull << 30);
  CHECK(config.shutdown_timeout == Millis{30'000});
  CHECK(config.log.level == LogLevel::kInfo);
  CHECK(config.log.format == LogFormat::kText);
  CHECK(config.metrics.listen == HostPort{"127.0.0.1", 9104});
  CHECK(config.metrics.path == "/metrics");
  CHECK(config.warnings.empty());
  REQUIRE(config.listeners.size() == 1);
  const ListenerConfig& listener = config.listeners[0];
  CHECK(listener.name == "main");
  CHECK(listener.listen == HostPort{"127.0.0.1", 6033});
  CHECK(listener.upstreams == std::vector<HostPort>{{"127.0.0.1", 3306}});
  CHECK(listener.max_connections == 10000);
  CHECK(listener.max_allowed_packet == 64ull << 20);
  CHECK(listener.max_server_packet == 0);
  CHECK(listener.on_oversized == OnOversized::kClose);
  CHECK(listener.net_buffer_length == 16u << 10);
  CHECK(listener.net_retry_count == 10);
  CHECK(listener.connect_timeout == Millis{5'000});
  CHECK(listener.handshake_timeout == Millis{10'000});
  CHECK(listener.net_read_timeout == Millis{30'000});
  CHECK(listener.net_write_timeout == Millis{60'000});
  CHECK(listener.wait_timeout == Millis{8 * 3'600'000});
  CHECK(listener.sequence_check == SequenceCheck::kCount);
  CHECK(config.errors[ErrorKind::kPacketTooLarge].code == 1153);
}

TEST_CASE("every key is read") {
  const TempFile password("secret\n");
  const LoadedConfig loaded = load(R"(workers: 4
memory_limit: 2G
shutdown_timeout: 1.5s
log: { level: debug, format: json }
metrics: { listen: "[::1]:9200", path: /m, username: u, password_file: )" +
                                   password.path() + R"( }
listeners:
  - name: alpha
    listen: 0.0.0.0:7000
    upstreams: [db1:3306, "[::1]:3307"]
    max_connections: 5
    max_allowed_packet: 1M
    max_server_packet: 2M
    on_oversized: reject
    net_buffer_length: 1K
    net_retry_count: 3
    connect_timeout: 500ms
    handshake_timeout: 2
    net_read_timeout: 1m
    net_write_timeout: 2m
    wait_timeout: 1h
    sequence_check: enforce
  - listen: 127.0.0.1:7001
    upstreams: 127.0.0.1:3306
errors:
  read_timeout: { message: "slow: {timeout}" }
  out_of_memory: { code: 5000, sqlstate: HY001 }
)");
  INFO(all_problems(loaded));
  REQUIRE(loaded.ok());
  const Config& config = loaded.config;
  CHECK(config.workers == 4);
  CHECK(config.memory_limit == 2ull << 30);
  CHECK(config.shutdown_timeout == Millis{1500});
  CHECK(config.log.level == LogLevel::kDebug);
  CHECK(config.log.format == LogFormat::kJson);
  CHECK(config.metrics.listen == HostPort{"::1", 9200});
  CHECK(config.metrics.path == "/m");
  CHECK(config.metrics.username == "u");
  CHECK(config.metrics.password_file == password.path());
  REQUIRE(config.listeners.size() == 2);
  const ListenerConfig& a = config.listeners[0];
  CHECK(a.name == "alpha");
  CHECK(a.listen == HostPort{"0.0.0.0", 7000});
  CHECK(a.upstreams == std::vector<HostPort>{{"db1", 3306}, {"::1", 3307}});
  CHECK(a.max_connections == 5);
  CHECK(a.max_allowed_packet == 1u << 20);
  CHECK(a.max_server_packet == 2u << 20);
  CHECK(a.on_oversized == OnOversized::kReject);
  CHECK(a.net_buffer_length == 1024);
  CHECK(a.net_retry_count == 3);
  CHECK(a.connect_timeout == Millis{500});
  CHECK(a.handshake_timeout == Millis{2000});
  CHECK(a.net_read_timeout == Millis{60'000});
  CHECK(a.net_write_timeout == Millis{120'000});
  CHECK(a.wait_timeout == Millis{3'600'000});
  CHECK(a.sequence_check == SequenceCheck::kEnforce);
  CHECK(config.listeners[1].name == "listener1");
  CHECK(config.listeners[1].upstreams == std::vector<HostPort>{{"127.0.0.1", 3306}});
  // Partial error entries keep the other fields' defaults.
  CHECK(config.errors[ErrorKind::kReadTimeout].code == 1159);
  CHECK(config.errors[ErrorKind::kReadTimeout].sqlstate == "08S01");
  CHECK(config.errors[ErrorKind::kReadTimeout].message == "slow: {timeout}");
  CHECK(config.errors[ErrorKind::kOutOfMemory].code == 5000);
  CHECK(config.errors[ErrorKind::kOutOfMemory].sqlstate == "HY001");
  CHECK(config.errors[ErrorKind::kOutOfMemory].message == "Out of memory");
  CHECK(config.errors[ErrorKind::kPacketTooLarge].code == 1153);
}

TEST_CASE("the documented example config loads with no problems and SPEC's defaults") {
  const LoadedConfig loaded = load_config_file(SLUICE_SOURCE_DIR "/conf/sluice.yaml");
  INFO(all_problems(loaded));
  REQUIRE(loaded.ok());
  CHECK(loaded.config.warnings.empty());
  const LoadedConfig minimal = load(kMinimal);
  REQUIRE(loaded.config.listeners.size() == 1);
  const ListenerConfig& a = loaded.config.listeners[0];
  const ListenerConfig& b = minimal.config.listeners[0];
  CHECK(a.name == b.name);
  CHECK(a.listen == b.listen);
  CHECK(a.upstreams == b.upstreams);
  CHECK(a.max_allowed_packet == b.max_allowed_packet);
  CHECK(a.wait_timeout == b.wait_timeout);
  CHECK(a.sequence_check == b.sequence_check);
  CHECK(loaded.config.memory_limit == minimal.config.memory_limit);
  CHECK(loaded.config.workers == minimal.config.workers);
  for (std::size_t i = 0; i < kErrorKindCount; ++i) {
    CHECK(loaded.config.errors.specs[i].code == minimal.config.errors.specs[i].code);
    CHECK(loaded.config.errors.specs[i].sqlstate == minimal.config.errors.specs[i].sqlstate);
    CHECK(loaded.config.errors.specs[i].message == minimal.config.errors.specs[i].message);
  }
}

TEST_CASE("empty sections and an empty errors block take defaults") {
  const LoadedConfig loaded = load(std::string(kMinimal) + "log:\nmetrics: {}\nerrors:\n");
  INFO(all_problems(loaded));
  CHECK(loaded.ok());
  CHECK(loaded.config.log.level == LogLevel::kInfo);
}

TEST_CASE("sequence_check takes YAML 1.1 spellings of off, unquoted") {
  for (const char* off : {"off", "false", "no", "n", "N", "\"off\"", "OFF", "Off", "NO", "FALSE"}) {
    CAPTURE(off);
    const LoadedConfig loaded = load_listener(std::string("    sequence_check: ") + off + "\n");
    INFO(all_problems(loaded));
    REQUIRE(loaded.ok());
    CHECK(loaded.config.listeners[0].sequence_check == SequenceCheck::kOff);
  }
  const std::string message =
      only_problem(load_listener("    sequence_check: on\n"), "listeners[0].sequence_check", 4);
  CHECK(contains(message, "off | count | enforce"));
}

struct BadValue {
  const char* line;      // one line added to kMinimal's listener: it is line 4
  const char* key;       // the key the problem must name
  const char* fragment;  // part of the message
};

TEST_CASE("bad listener values name the key and line 4") {
  const BadValue cases[] = {
      {"    max_allowed_packet: abc", "listeners[0].max_allowed_packet", "invalid size 'abc'"},
      {"    max_allowed_packet: 512", "listeners[0].max_allowed_packet", "at least 1K"},
      {"    max_allowed_packet: 2G", "listeners[0].max_allowed_packet", "at most 1G"},
      {"    max_allowed_packet: -1M", "listeners[0].max_allowed_packet", "invalid size"},
      {"    max_server_packet: 100", "listeners[0].max_server_packet", "0 (unlimited)"},
      {"    net_buffer_length: 512", "listeners[0].net_buffer_length", "at least 1K"},
      {"    net_buffer_length: 2M", "listeners[0].net_buffer_length", "at most 1M"},
      {"    max_connections: 0", "listeners[0].max_connections", "at least 1"},
      {"    max_connections: lots", "listeners[0].max_connections", "invalid number"},
      {"    max_connections: 5000000000", "listeners[0].max_connections", "at most"},
      {"    net_retry_count: 0", "listeners[0].net_retry_count", "at least 1"},
      {"    connect_timeout: 0", "listeners[0].connect_timeout", "greater than 0"},
      {"    handshake_timeout: 0ms", "listeners[0].handshake_timeout", "greater than 0"},
      {"    net_read_timeout: soon", "listeners[0].net_read_timeout", "invalid duration"},
      {"    net_write_timeout: -5s", "listeners[0].net_write_timeout", "invalid duration"},
      {"    wait_timeout: 9000h", "listeners[0].wait_timeout", "at most 8760h"},
      {"    wait_timeout: 5d", "listeners[0].wait_timeout", "invalid duration"},
      {"    on_oversized: drop", "listeners[0].on_oversized", "close | reject"},
      {"    sequence_check: strict", "listeners[0].sequence_check", "off | count | enforce"},
      {"    name: two words", "listeners[0].name", "invalid name"},
      {"    name: \"\"", "listeners[0].name", "invalid name"},
      {"    max_alowed_packet: 1M", "listeners[0].max_alowed_packet",
       "did you mean 'max_allowed_packet'"},
      {"    frobnicate: 1", "listeners[0].frobnicate", "unknown key"},
      {"    max_allowed_packet: [1M]", "listeners[0].max_allowed_packet", "not a list"},
      {"    max_allowed_packet: {a: 1}", "listeners[0].max_allowed_packet", "not a map"},
      {"    max_allowed_packet:", "listeners[0].max_allowed_packet", "missing value"},
      {"    listen: 127.0.0.1:6034", "listeners[0].listen", "duplicate key"},
  };
  for (const BadValue& bad : cases) {
    CAPTURE(bad.line);
    const std::string message =
        only_problem(load_listener(std::string(bad.line) + "\n"), bad.key, 4);
    CHECK_MESSAGE(contains(message, bad.fragment), message);
  }
}

TEST_CASE("a value on the line after its key is reported at the key's line") {
  const LoadedConfig loaded = load_listener("    max_allowed_packet:\n      huge\n");
  CHECK(contains(only_problem(loaded, "listeners[0].max_allowed_packet", 4), "'huge'"));
}

TEST_CASE("addresses: syntax, ports, IPv6 brackets") {
  const BadValue cases[] = {
      {"    listen: 127.0.0.1", "listeners[0].listen", "missing :port"},
      {"    listen: 127.0.0.1:70000", "listeners[0].listen", "invalid port"},
      {"    listen: ::1:6033", "listeners[0].listen", "needs brackets"},
      {"    listen: 256.0.0.1:6033", "listeners[0].listen", "invalid IPv4"},
      {"    upstreams: [127.0.0.1:0]", "listeners[0].upstreams[0]", "port 0"},
      {"    upstreams: [db:3306, db]", "listeners[0].upstreams[1]", "missing :port"},
      {"    upstreams: [[a]]", "listeners[0].upstreams[0]", "expected host:port"},
      {"    upstreams: []", "listeners[0].upstreams", "must not be empty"},
      {"    upstreams:", "listeners[0].upstreams", "must not be empty"},
      {"    upstreams: {a: 1}", "listeners[0].upstreams", "expected a list"},
  };
  for (const BadValue& bad : cases) {
    CAPTURE(bad.line);
    // Replace the listener's own listen/upstreams line rather than duplicating the key.
    std::string yaml(kMinimal);
    const std::string line(bad.line);
    const std::string field = line.substr(4, line.find(':') - 4);
    const std::size_t at = yaml.find(field == "listen" ? "  - listen" : "    upstreams");
    const std::size_t end = yaml.find('\n', at);
    yaml.replace(at, end - at, field == "listen" ? "  - " + line.substr(4) : line);
    const std::string message = only_problem(load(yaml), bad.key, field == "listen" ? 2 : 3);
    CHECK_MESSAGE(contains(message, bad.fragment), message);
  }
  const LoadedConfig ipv6 = load(
      "listeners:\n  - listen: \"[::]:6033\"\n    upstreams: [\"[fe80::1]:3306\", "
      "db.local:3306]\n");
  INFO(all_problems(ipv6));
  REQUIRE(ipv6.ok());
  CHECK(ipv6.config.listeners[0].listen == HostPort{"::", 6033});
}

TEST_CASE("missing listen and upstreams are reported at the listener") {
  const LoadedConfig loaded = load("listeners:\n  - name: x\n  - listen: 127.0.0.1:1\n");
  INFO(all_problems(loaded));
  CHECK(loaded.problems.size() == 3);
  CHECK(has_problem(loaded, "listeners[0].listen", 2));
  CHECK(has_problem(loaded, "listeners[0].upstreams", 2));
  CHECK(has_problem(loaded, "listeners[1].upstreams", 3));
}

TEST_CASE("listeners must be a non-empty list") {
  CHECK(contains(only_problem(load("workers: 2\n"), "listeners", ConfigProblem::kLineNone),
                 "at least one listener"));
  CHECK(contains(only_problem(load(""), "listeners", ConfigProblem::kLineNone),
                 "at least one listener"));
  CHECK(contains(only_problem(load("workers: 2\nlisteners: []\n"), "listeners", 2),
                 "at least one listener"));
  CHECK(contains(only_problem(load("workers: 2\nlisteners:\n"), "listeners", 2),
                 "at least one listener"));
  CHECK(contains(only_problem(load("listeners: {listen: 127.0.0.1:1}\n"), "listeners", 1),
                 "expected a list"));
  CHECK(contains(only_problem(load("listeners: [5]\n"), "listeners[0]", 1), "expected a map"));
}

TEST_CASE("duplicate and overlapping listen addresses, and the metrics address") {
  const LoadedConfig loaded = load(R"(metrics: { listen: 127.0.0.1:9104 }
listeners:
  - listen: 127.0.0.1:6033
    upstreams: [db:3306]
  - listen: 127.0.0.1:6033
    upstreams: [db:3306]
  - listen: 0.0.0.0:6033
    upstreams: [db:3306]
  - listen: 127.0.0.1:9104
    upstreams: [db:3306]
  - listen: 127.0.0.1:0
    upstreams: [db:3306]
  - listen: 127.0.0.1:0
    upstreams: [db:3306]
  - listen: "[::1]:7000"
    upstreams: [db:3306]
  - listen: 0.0.0.0:7000
    upstreams: [db:3306]
)");
  INFO(all_problems(loaded));
  CHECK(loaded.problems.size() == 3);  // port 0 never collides; v4 wildcard misses [::1]
  CHECK(has_problem(loaded, "listeners[1].listen", 5));
  CHECK(has_problem(loaded, "listeners[2].listen", 7));
  CHECK(has_problem(loaded, "listeners[3].listen", 9));
  CHECK(contains(all_problems(loaded), "is also metrics.listen"));
}

TEST_CASE("listen addresses are compared by what they bind, not as written") {
  // localhost is whatever its first lookup gives here (127.0.0.1, or ::1 on many hosts), as
  // the listener binds that; written as that address it is the same listening socket.
  SocketAddress localhost;
  std::string error;
  REQUIRE_MESSAGE(resolve_host_port({"localhost", 7000}, &localhost, &error), error);
  char text[INET6_ADDRSTRLEN] = {};
  const bool v6 = localhost.storage.ss_family == AF_INET6;
  const void* raw = v6 ? static_cast<const void*>(
                             &reinterpret_cast<const sockaddr_in6*>(&localhost.storage)->sin6_addr)
                       : &reinterpret_cast<const sockaddr_in*>(&localhost.storage)->sin_addr;
  REQUIRE(inet_ntop(localhost.storage.ss_family, raw, text, sizeof text) != nullptr);
  const std::string shown = v6 ? "[" + std::string(text) + "]:7000" : std::string(text) + ":7000";
  const std::string numeric = v6 ? "\"" + shown + "\"" : shown;
  const LoadedConfig loaded = load(R"(listeners:
  - listen: )" + numeric + R"(
    upstreams: [db:3306]
  - listen: localhost:7000
    upstreams: [db:3306]
  - listen: 127.0.0.1:6033
    upstreams: [db:3306]
  - listen: "[::ffff:127.0.0.1]:6033"
    upstreams: [db:3306]
  - listen: "[::ffff:0.0.0.0]:6034"
    upstreams: [db:3306]
  - listen: 127.0.0.1:6034
    upstreams: [db:3306]
  - listen: "[::ffff:127.0.0.1]:9104"
    upstreams: [db:3306]
)");
  INFO(all_problems(loaded));
  CHECK(loaded.problems.size() == 4);
  CHECK(has_problem(loaded, "listeners[1].listen", 4));
  CHECK(has_problem(loaded, "listeners[3].listen", 8));
  CHECK(has_problem(loaded, "listeners[5].listen", 12));  // inside the mapped v4 wildcard
  CHECK(has_problem(loaded, "listeners[6].listen", 14));  // the default metrics.listen
  CHECK(contains(all_problems(loaded),
                 "address localhost:7000 is also listeners[0].listen (" + shown + ")"));
  CHECK(contains(all_problems(loaded),
                 "address [::ffff:127.0.0.1]:6033 is also listeners[2].listen (127.0.0.1:6033)"));
}

TEST_CASE("an upstream that is one of sluice's own listeners is a problem") {
  const LoadedConfig loaded = load(R"(listeners:
  - listen: 127.0.0.1:6033
    upstreams: [127.0.0.1:6033]
  - listen: 0.0.0.0:6034
    upstreams: [127.0.0.2:6034, "[::ffff:127.0.0.1]:6034"]
  - listen: "[::]:6035"
    upstreams: ["[::1]:6035"]
  - listen: 127.0.0.1:6036
    upstreams: [127.0.0.1:6033]
  - listen: 127.0.0.1:6037
    upstreams: [127.0.0.2:6037, 10.1.2.3:6034, 127.0.0.1:3306, db.example:6037]
  - listen: 0.0.0.0:6038
    upstreams: [10.1.2.3:6038]
)");
  INFO(all_problems(loaded));
  // The last two reach other sockets: another loopback address than the one listened on,
  // other hosts (other servers, maybe another sluice), a name not looked up here.
  CHECK(loaded.problems.size() == 5);
  CHECK(has_problem(loaded, "listeners[0].upstreams", 3));
  CHECK(has_problem(loaded, "listeners[1].upstreams", 5));  // all 127/8 reaches a v4 wildcard
  CHECK(has_problem(loaded, "listeners[2].upstreams", 7));  // ::1 on the v6 wildcard
  CHECK(has_problem(loaded, "listeners[3].upstreams", 9));  // another listener of this config
  CHECK(contains(all_problems(loaded),
                 "upstream 127.0.0.1:6033 is sluice's own listeners[0].listen (127.0.0.1:6033)"));
}

TEST_CASE("a listen or metrics address whose name does not resolve is a problem") {
  const LoadedConfig loaded = load(R"(metrics: { listen: "no-such-host.invalid:9104" }
listeners:
  - listen: no-such-host.invalid:6033
    upstreams: [no-such-host.invalid:3306]
)");
  INFO(all_problems(loaded));
  CHECK(loaded.problems.size() == 2);
  CHECK(has_problem(loaded, "metrics.listen", 1));
  CHECK(has_problem(loaded, "listeners[0].listen", 3));
  CHECK(contains(all_problems(loaded), "cannot resolve no-such-host.invalid:6033: "));
}

TEST_CASE("duplicate listener names, including a default one") {
  const LoadedConfig loaded = load(R"(listeners:
  - listen: 127.0.0.1:1
    upstreams: [db:3306]
  - name: main
    listen: 127.0.0.1:2
    upstreams: [db:3306]
)");
  CHECK(contains(only_problem(loaded, "listeners[1].name", 4), "duplicate listener name 'main'"));
}

TEST_CASE("top-level, log and metrics problems") {
  const std::string tail(kMinimal);
  const BadValue cases[] = {
      {"workers: 0", "workers", "at least 1"},
      {"workers: 300", "workers", "at most 256"},
      {"workers: many", "workers", "auto or 1..256"},
      {"memory_limit: 1T", "memory_limit", "invalid size"},
      {"memory_limit: 0", "memory_limit", "at least 1K"},
      {"shutdown_timeout: forever", "shutdown_timeout", "invalid duration"},
      {"log: { level: verbose }", "log.level", "trace | debug | info | warn | error"},
      {"log: { format: xml }", "log.format", "text | json"},
      {"log: { colour: red }", "log.colour", "unknown key"},
      {"log: loud", "log", "expected a map"},
      {"metrics: { path: metrics }", "metrics.path", "start with '/'"},
      {"metrics: { listen: localhost }", "metrics.listen", "missing :port"},
      {"metrics: { username: prom }", "metrics.password_file", "required"},
      {"metrics: { password_file: /p }", "metrics.username", "required"},
      {"colour: red", "colour", "unknown key"},
      {"listener: []", "listener", "did you mean 'listeners'"},
  };
  for (const BadValue& bad : cases) {
    CAPTURE(bad.line);
    const std::string message = only_problem(load(std::string(bad.line) + "\n" + tail), bad.key, 1);
    CHECK_MESSAGE(contains(message, bad.fragment), message);
  }
  CHECK(load("workers: auto\n" + tail).config.workers == 0);
  CHECK(load("shutdown_timeout: 0\n" + tail).ok());
}

TEST_CASE("errors block problems") {
  const BadValue cases[] = {
      {"  read_timeout: { code: 0 }", "errors.read_timeout.code", "at least 1"},
      {"  read_timeout: { code: 65536 }", "errors.read_timeout.code", "at most 65535"},
      {"  read_timeout: { code: x }", "errors.read_timeout.code", "invalid number"},
      {"  read_timeout: { sqlstate: HY00 }", "errors.read_timeout.sqlstate", "exactly 5"},
      {"  read_timeout: { sqlstate: HY0000 }", "errors.read_timeout.sqlstate", "exactly 5"},
      {"  read_timeout: { sqlstate: \"HY 00\" }", "errors.read_timeout.sqlstate", "exactly 5"},
      {"  read_timeout: { message: \"{sise}\" }", "errors.read_timeout.message", "{sise}"},
      {"  read_timeout: { text: x }", "errors.read_timeout.text", "unknown key"},
      {"  read_timeout: 1159", "errors.read_timeout", "expected a map"},
      {"  read_timeouts: {}", "errors.read_timeouts", "did you mean 'read_timeout'"},
  };
  for (const BadValue& bad : cases) {
    CAPTURE(bad.line);
    const std::string yaml = std::string(kMinimal) + "errors:\n" + bad.line + "\n";
    const std::string message = only_problem(load(yaml), bad.key, 5);
    CHECK_MESSAGE(contains(message, bad.fragment), message);
  }
}

TEST_CASE("all problems are collected, in file order") {
  const LoadedConfig loaded = load(R"(workers: none
listeners:
  - listen: 127.0.0.1:6033
    upstreams: []
    max_allowed_packet: big
errors:
  out_of_order: { code: 0, sqlstate: x }
log: { level: loud }
)");
  INFO(all_problems(loaded));
  REQUIRE(loaded.problems.size() == 6);
  const std::pair<std::string_view, int> expected[] = {{"workers", 1},
                                                       {"listeners[0].upstreams", 4},
                                                       {"listeners[0].max_allowed_packet", 5},
                                                       {"errors.out_of_order.code", 7},
                                                       {"errors.out_of_order.sqlstate", 7},
                                                       {"log.level", 8}};
  for (std::size_t i = 0; i < 6; ++i) {
    CHECK(loaded.problems[i].key == expected[i].first);
    CHECK(loaded.problems[i].line == expected[i].second);
  }
}

TEST_CASE("a YAML syntax error is one problem with its line") {
  const LoadedConfig loaded = load("workers: 2\nlisteners:\n  - listen: [127.0.0.1:1\n");
  REQUIRE(loaded.problems.size() == 1);
  CHECK(loaded.problems[0].key.empty());
  CHECK(loaded.problems[0].line >= 3);
  CHECK(contains(loaded.problems[0].text(), "YAML syntax error"));
  const LoadedConfig tabs = load("workers: 2\nlog:\n  level: info\n bad: indent\n");
  REQUIRE(tabs.problems.size() == 1);
  CHECK(tabs.problems[0].line == 4);
}

TEST_CASE("a second YAML document is refused rather than ignored") {
  const LoadedConfig loaded = load(std::string(kMinimal) + "---\nworkers: 2\n");
  REQUIRE(loaded.problems.size() == 1);
  CHECK(loaded.problems[0].line == 4);
  CHECK(contains(loaded.problems[0].message, "one YAML document"));
  CHECK(load("---\n" + std::string(kMinimal)).ok());
}

TEST_CASE("a stray comma is a syntax error, not a hang (yaml-cpp issue #1040)") {
  for (const char* yaml : {",\n", "# comment\n,# x\nworkers: 2\n", ",a: 1\n"}) {
    CAPTURE(yaml);
    const LoadedConfig loaded = load(yaml);
    REQUIRE(loaded.problems.size() == 1);
    CHECK(contains(loaded.problems[0].message, "YAML syntax error"));
  }
  CHECK(load("# comment\n,# x\nworkers: 2\n").problems.at(0).line == 2);
}

TEST_CASE("a top level that is not a map is one problem") {
  const LoadedConfig loaded = load("just text\n");
  REQUIRE(loaded.problems.size() == 1);
  CHECK(loaded.problems[0].line == 1);
  CHECK(contains(loaded.problems[0].message, "expected a map"));
}

TEST_CASE("memory_limit below a packet limit is a warning, not an error") {
  const LoadedConfig loaded =
      load("memory_limit: 1M\n" + std::string(kMinimal) + "    max_server_packet: 2M\n");
  INFO(all_problems(loaded));
  REQUIRE(loaded.ok());
  REQUIRE(loaded.config.warnings.size() == 2);
  CHECK(contains(loaded.config.warnings[0], "listeners[0].max_allowed_packet (64M)"));
  CHECK(contains(loaded.config.warnings[1], "listeners[0].max_server_packet (2M)"));
  CHECK(load("memory_limit: 64M\n" + std::string(kMinimal)).config.warnings.empty());
}

TEST_CASE("ConfigProblem::text shows the key and where it came from") {
  CHECK(ConfigProblem{"listeners[0].max_allowed_packet", 12, "invalid size 'abc'"}.text() ==
        "listeners[0].max_allowed_packet (line 12): invalid size 'abc'");
  CHECK(ConfigProblem{"log.level", ConfigProblem::kLineOverride, "bad"}.text() ==
        "log.level (--set): bad");
  CHECK(ConfigProblem{"listeners", ConfigProblem::kLineNone, "missing"}.text() ==
        "listeners: missing");
  CHECK(ConfigProblem{"", 3, "YAML syntax error: x"}.text() == "line 3: YAML syntax error: x");
}

TEST_CASE("an unreadable file is a problem, not an exception") {
  const LoadedConfig missing = load_config_file("/nonexistent/sluice.yaml");
  REQUIRE(missing.problems.size() == 1);
  CHECK(contains(missing.problems[0].message, "/nonexistent/sluice.yaml"));
  const LoadedConfig directory = load_config_file(SLUICE_SOURCE_DIR "/conf");
  REQUIRE(directory.problems.size() == 1);
  CHECK(contains(directory.problems[0].message, "directory"));
}

TEST_CASE("--set overrides are applied before validation") {
  const LoadedConfig loaded = load(
      kMinimal, {"listeners.0.max_allowed_packet=16M", "listeners[0].upstreams=[127.0.0.1:3307]",
                 "log.level=debug", "errors.packet_too_large.message=too big: {size}",
                 "listeners.0.sequence_check=off", "errors.read_timeout.sqlstate=\"HY000\"",
                 "errors.read_error.message={size} is too big", "workers = 3"});
  INFO(all_problems(loaded));
  REQUIRE(loaded.ok());
  const ListenerConfig& listener = loaded.config.listeners[0];
  CHECK(listener.max_allowed_packet == 16u << 20);
  CHECK(listener.upstreams == std::vector<HostPort>{{"127.0.0.1", 3307}});
  CHECK(listener.sequence_check == SequenceCheck::kOff);
  CHECK(loaded.config.log.level == LogLevel::kDebug);
  CHECK(loaded.config.workers == 3);
  CHECK(loaded.config.errors[ErrorKind::kPacketTooLarge].message == "too big: {size}");
  CHECK(loaded.config.errors[ErrorKind::kPacketTooLarge].code == 1153);
  CHECK(loaded.config.errors[ErrorKind::kReadTimeout].sqlstate == "HY000");
  CHECK(loaded.config.errors[ErrorKind::kReadError].message == "{size} is too big");
}

TEST_CASE("--set can replace a bad file value, and the last override wins") {
  const LoadedConfig loaded =
      load_listener("    max_allowed_packet: oops\n",
                    {"listeners.0.max_allowed_packet=1M", "listeners.0.max_allowed_packet=2M"});
  INFO(all_problems(loaded));
  REQUIRE(loaded.ok());
  CHECK(loaded.config.listeners[0].max_allowed_packet == 2u << 20);
}

TEST_CASE("--set can build a whole config from an empty file") {
  const LoadedConfig loaded =
      load("", {"listeners=[{listen: 127.0.0.1:6033, upstreams: [127.0.0.1:3306]}]"});
  INFO(all_problems(loaded));
  REQUIRE(loaded.ok());
  CHECK(loaded.config.listeners[0].listen == HostPort{"127.0.0.1", 6033});
}

TEST_CASE("bad --set values are validated like the file and say (--set)") {
  CHECK(contains(only_problem(load(kMinimal, {"listeners.0.max_allowed_packet=abc"}),
                              "listeners[0].max_allowed_packet", ConfigProblem::kLineOverride),
                 "invalid size 'abc'"));
  CHECK(only_problem(load(kMinimal, {"log.level=loud"}), "log.level", 0).size() > 0);
  CHECK(contains(
      only_problem(load(kMinimal, {"listeners.0.frobnicate=1"}), "listeners[0].frobnicate", 0),
      "unknown key"));
  CHECK(contains(only_problem(load(kMinimal, {"metrics.pth=/x"}), "metrics.pth", 0),
                 "did you mean 'path'"));
  // A whole replaced subtree reports its inner problems as --set too.
  CHECK(
      only_problem(load(kMinimal, {"errors.read_timeout={code: 0}"}), "errors.read_timeout.code", 0)
          .size() > 0);
  CHECK(only_problem(load(kMinimal, {"listeners.0.upstreams=[127.0.0.1:0]"}),
                     "listeners[0].upstreams[0]", 0)
            .size() > 0);
  const LoadedConfig text = load(kMinimal, {"log.level=loud"});
  CHECK(contains(text.problems.at(0).text(), "log.level (--set): invalid value 'loud'"));
}

TEST_CASE("--set paths that do not fit the tree are errors naming the key") {
  CHECK(contains(
      only_problem(load(kMinimal, {"listeners.1.max_allowed_packet=1M"}), "listeners[1]", 0),
      "no such element (listeners has 1)"));
  CHECK(contains(only_problem(load(kMinimal, {"listeners[5].name=x"}), "listeners[5]", 0),
                 "no such element"));
  CHECK(contains(only_problem(load(kMinimal, {"listeners.main.name=x"}), "listeners", 0),
                 "index it with a number"));
  CHECK(contains(
      only_problem(load(std::string(kMinimal) + "log:\n  level: info\n", {"log.level.colour=red"}),
                   "log.level", 0),
      "single value"));
  // Here the override itself made log.level a map, so validation reports it as --set.
  CHECK(contains(only_problem(load(kMinimal, {"log.level.colour=red"}), "log.level", 0),
                 "not a map"));
  CHECK(contains(only_problem(load(kMinimal, {"log.level"}), "log.level", 0), "key.path=value"));
  CHECK(contains(only_problem(load(kMinimal, {"log..level=x"}), "log..level", 0), "malformed"));
  CHECK(contains(only_problem(load(kMinimal, {"listeners[x].name=x"}), "listeners[x].name", 0),
                 "malformed"));
  CHECK(contains(only_problem(load(kMinimal, {"=x"}), "", 0), "malformed"));
  // With no listeners at all, an index is out of range too; the missing list is then reported.
  const LoadedConfig empty = load("", {"listeners.0.listen=127.0.0.1:1"});
  INFO(all_problems(empty));
  CHECK(empty.problems.size() == 2);
  CHECK(has_problem(empty, "listeners[0]", 0));
  CHECK(has_problem(empty, "listeners", ConfigProblem::kLineNone));
}

TEST_CASE("a key that an override requires is reported as (--set), not at a file line") {
  const std::string file = std::string(kMinimal) + "metrics:\n  listen: 127.0.0.1:9104\n";
  const LoadedConfig loaded = load(file, {"metrics.username=u"});
  CHECK(contains(only_problem(loaded, "metrics.password_file", ConfigProblem::kLineOverride),
                 "is required when metrics.username is set"));
  CHECK(contains(loaded.problems[0].text(), "metrics.password_file (--set): is required"));
  // The other way round, and with no metrics section in the file at all.
  CHECK(contains(only_problem(load(kMinimal, {"metrics.password_file=/p"}), "metrics.username",
                              ConfigProblem::kLineOverride),
                 "is required when metrics.password_file is set"));
  // Set in the file, it is reported at the line that set it.
  CHECK(only_problem(load(file + "  username: u\n"), "metrics.password_file", 6).size() > 0);
}

TEST_CASE("a metrics password file that cannot be read is a problem, as it stops a start") {
  const std::string file = std::string(kMinimal) + "metrics:\n  username: u\n";
  const LoadedConfig missing = load(file, {"metrics.password_file=/nonexistent/pw"});
  CHECK(contains(only_problem(missing, "metrics.password_file", ConfigProblem::kLineOverride),
                 "cannot read /nonexistent/pw: No such file or directory"));
  CHECK(contains(missing.problems[0].text(), "metrics.password_file (--set): cannot read"));
  CHECK(contains(only_problem(load(file + "  password_file: /tmp\n"), "metrics.password_file", 6),
                 "cannot read /tmp: is a directory"));
  const TempFile empty("");
  CHECK(contains(only_problem(load(file + "  password_file: " + empty.path() + "\n"),
                              "metrics.password_file", 6),
                 "the file is empty"));
  const TempFile good("secret\n");
  const LoadedConfig ok = load(file + "  password_file: " + good.path() + "\n");
  INFO(all_problems(ok));
  CHECK(ok.ok());
  // Without a username there is no basic auth, and the file is never read: only that is said.
  CHECK(contains(only_problem(load(kMinimal, {"metrics.password_file=/nonexistent/pw"}),
                              "metrics.username", ConfigProblem::kLineOverride),
                 "is required"));
}

TEST_CASE("a problem outside the overridden keys keeps its file line") {
  const LoadedConfig loaded = load_listener("    wait_timeout: never\n", {"log.level=debug"});
  CHECK(only_problem(loaded, "listeners[0].wait_timeout", 4).size() > 0);
}

}  // namespace
}  // namespace sluice
