// The config schema: which keys exist, their bounds, and the checks across keys; fills a Config.
#include "common/config_schema.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>

#include "common/socket_address.h"
#include "common/units.h"

namespace sluice::config_yaml {
namespace {

constexpr std::string_view kTopKeys[] = {
    "workers", "memory_limit", "shutdown_timeout", "log", "metrics", "listeners", "errors"};
constexpr std::string_view kLogKeys[] = {"level", "format"};
constexpr std::string_view kMetricsKeys[] = {"listen", "path", "username", "password_file"};
// clang-format off
constexpr std::string_view kListenerKeys[] = {
    "name", "listen", "upstreams", "max_connections",
    "max_allowed_packet", "max_server_packet", "on_oversized", "net_buffer_length",
    "net_retry_count", "connect_timeout", "handshake_timeout", "net_read_timeout",
    "net_write_timeout", "wait_timeout", "sequence_check"};
// clang-format on
constexpr std::string_view kErrorSpecKeys[] = {"code", "sqlstate", "message"};
constexpr std::string_view kPlaceholders[] = {"size", "limit", "timeout", "listener"};

// mysqld's own bounds, so a value copied from my.cnf means the same here.
constexpr std::uint64_t kMinPacket = 1024;               // max_allowed_packet, net_buffer_length
constexpr std::uint64_t kMaxPacket = 1ull << 30;         // max_allowed_packet
constexpr std::uint64_t kMaxNetBuffer = 1ull << 20;      // net_buffer_length
constexpr Millis kMaxTimeout{365LL * 24 * 3600 * 1000};  // wait_timeout: one year
constexpr std::uint64_t kMaxWorkers = 256;
constexpr std::uint64_t kMaxU32 = std::numeric_limits<std::uint32_t>::max();

constexpr Choice<LogLevel> kLogLevels[] = {{"trace", LogLevel::kTrace},
                                           {"debug", LogLevel::kDebug},
                                           {"info", LogLevel::kInfo},
                                           {"warn", LogLevel::kWarn},
                                           {"error", LogLevel::kError}};
constexpr Choice<LogFormat> kLogFormats[] = {{"text", LogFormat::kText},
                                             {"json", LogFormat::kJson}};
constexpr Choice<OnOversized> kOversizedActions[] = {{"close", OnOversized::kClose},
                                                     {"reject", OnOversized::kReject}};
// YAML 1.1 reads an unquoted `off` as a boolean; yaml-cpp keeps the text as written, so the
// spellings of false are accepted as `off` (listed after it, they stay out of messages).
constexpr Choice<SequenceCheck> kSequenceChecks[] = {
    {"off", SequenceCheck::kOff},     {"false", SequenceCheck::kOff},
    {"no", SequenceCheck::kOff},      {"n", SequenceCheck::kOff},
    {"count", SequenceCheck::kCount}, {"enforce", SequenceCheck::kEnforce}};

// ---- Sections of the schema ----

void read_workers(const Section& top, unsigned& workers) {
  const std::string* text = top.scalar("workers");
  if (text == nullptr) return;
  if (iequals(*text, "auto")) {
    workers = 0;
    return;
  }
  if (!parse_uint(*text)) {
    return top.report("workers",
                      "invalid value " + single_quoted(*text) + " (expected auto or 1..256)");
  }
  top.number("workers", 1, kMaxWorkers, workers);
}

void read_log(const Section& top, LogConfig& log) {
  const Section section = top.section("log", kLogKeys);
  section.choice("level", kLogLevels, log.level);
  section.choice("format", kLogFormats, log.format);
}

// Why the metrics endpoint could not read its password from `path` at start-up, or "" when it
// can. Checked here so that --check and a reload refuse what a start would. Only looks: a pipe
// or device (a password from process substitution, /dev/fd/N) is not read, as that would
// consume it.
std::string password_file_problem(const std::string& path) {
  std::error_code error;
  const std::filesystem::file_status status = std::filesystem::status(path, error);
  if (error) return "cannot read " + path + ": " + error.message();
  if (std::filesystem::is_directory(status)) return "cannot read " + path + ": is a directory";
  if (!std::filesystem::is_regular_file(status)) {
    return ::access(path.c_str(), R_OK) == 0 ? ""
                                             : "cannot read " + path + ": " + std::strerror(errno);
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return "cannot read " + path + ": " + std::strerror(errno);
  if (in.peek() == std::ifstream::traits_type::eof()) {
    return "cannot read " + path + ": the file is empty (the password is its first line)";
  }
  return "";
}

// Returns the section, for the checks across sections.
Section read_metrics(const Section& top, MetricsConfig& metrics) {
  Section section = top.section("metrics", kMetricsKeys);
  section.address("listen", metrics.listen);
  section.text("path", metrics.path);
  if (metrics.path.empty() || metrics.path.front() != '/') {
    section.report("path", "must start with '/'");
  }
  section.text("username", metrics.username);
  section.text("password_file", metrics.password_file);
  // Basic auth needs both halves; one alone is a half-configured endpoint.
  if (!metrics.username.empty() && metrics.password_file.empty()) {
    section.report_required("password_file", "username",
                            "is required when metrics.username is set");
  }
  if (metrics.username.empty() && !metrics.password_file.empty()) {
    section.report_required("username", "password_file",
                            "is required when metrics.password_file is set");
  }
  if (!metrics.username.empty() && !metrics.password_file.empty()) {
    const std::string problem = password_file_problem(metrics.password_file);
    if (!problem.empty()) section.report("password_file", problem);
  }
  return section;
}

// Listener names are metric labels and log fields: keep them to a plain token.
void read_listener_name(const Section& section, std::string& name) {
  const std::string* text = section.scalar("name");
  if (text == nullptr) return;
  const bool plain = !text->empty() && std::all_of(text->begin(), text->end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
  });
  if (!plain) {
    return section.report("name", "invalid name " + single_quoted(*text) +
                                      " (letters, digits, '_', '-' and '.' only)");
  }
  name = *text;
}

void read_upstream(const Section& section, const YAML::Node& node, std::string key,
                   std::vector<HostPort>& upstreams) {
  if (!node.IsScalar()) {
    return section.checker().report(std::move(key), node, "expected host:port");
  }
  std::string why;
  std::optional<HostPort> parsed = HostPort::parse(node.Scalar(), &why);
  if (parsed && parsed->port == 0) why = "port 0 cannot be connected to";
  if (!parsed || parsed->port == 0) {
    return section.checker().report(std::move(key), node,
                                    "invalid address " + single_quoted(node.Scalar()) + ": " + why);
  }
  upstreams.push_back(std::move(*parsed));
}

void read_upstreams(const Section& section, std::vector<HostPort>& upstreams) {
  if (!section.has("upstreams")) return section.report("upstreams", "missing (at least one)");
  const YAML::Node node = section.value("upstreams");
  const std::string key = section.key("upstreams");
  if (node.IsScalar()) return read_upstream(section, node, key, upstreams);  // one, unlisted
  if (node.IsMap()) return section.report("upstreams", "expected a list of host:port");
  if (node.IsNull() || node.size() == 0) {
    return section.report("upstreams", "must not be empty (at least one host:port)");
  }
  std::size_t index = 0;
  for (const auto& element : node) {
    read_upstream(section, element, index_key(key, std::to_string(index++)), upstreams);
  }
}

void read_timeouts(const Section& section, ListenerConfig& listener) {
  const std::pair<std::string_view, Millis*> timeouts[] = {
      {"connect_timeout", &listener.connect_timeout},
      {"handshake_timeout", &listener.handshake_timeout},
      {"net_read_timeout", &listener.net_read_timeout},
      {"net_write_timeout", &listener.net_write_timeout},
      {"wait_timeout", &listener.wait_timeout}};
  for (const auto& [name, target] : timeouts)
    section.duration(name, Millis{1}, kMaxTimeout, *target);
}

void read_packet_limits(const Section& section, ListenerConfig& listener) {
  section.size("max_allowed_packet", kMinPacket, kMaxPacket, listener.max_allowed_packet);
  std::uint64_t server_packet = listener.max_server_packet;
  section.size("max_server_packet", 0, kMaxPacket, server_packet);
  // 0 means unlimited; otherwise the floor is mysqld's 1K, as for max_allowed_packet.
  if (server_packet != 0 && server_packet < kMinPacket) {
    section.report("max_server_packet", "must be 0 (unlimited) or at least 1K");
  } else {
    listener.max_server_packet = server_packet;
  }
  section.choice("on_oversized", kOversizedActions, listener.on_oversized);
  section.size("net_buffer_length", kMinPacket, kMaxNetBuffer, listener.net_buffer_length);
}

ListenerConfig read_listener(const Section& section, std::size_t index) {
  ListenerConfig listener;
  listener.name = index == 0 ? "main" : "listener" + std::to_string(index);
  read_listener_name(section, listener.name);
  if (!section.has("listen")) section.report("listen", "missing (host:port to accept on)");
  section.address("listen", listener.listen);
  read_upstreams(section, listener.upstreams);
  section.number("max_connections", 1, kMaxU32, listener.max_connections);
  read_packet_limits(section, listener);
  // mysqld's minimum is 1: an interrupted call is always retried at least once.
  section.number("net_retry_count", 1, kMaxU32, listener.net_retry_count);
  read_timeouts(section, listener);
  section.choice("sequence_check", kSequenceChecks, listener.sequence_check);
  return listener;
}

// Returns each listener's section, in order, for the checks across listeners.
std::vector<Section> read_listeners(const Section& top, std::vector<ListenerConfig>& listeners) {
  std::vector<Section> sections;
  const YAML::Node node = top.value("listeners");
  if (!top.has("listeners")) {
    top.checker().report("listeners", YAML::Node(), "at least one listener is required");
    return sections;
  }
  if (!node.IsNull() && !node.IsSequence()) {
    top.report("listeners", "expected a list of listeners");
    return sections;
  }
  if (node.IsNull() || node.size() == 0) {
    top.report("listeners", "at least one listener is required");
    return sections;
  }
  for (const auto& element : node) {
    const std::size_t index = sections.size();
    sections.emplace_back(top.checker(), element, index_key("listeners", std::to_string(index)),
                          kListenerKeys);
    ListenerConfig listener;
    if (sections.back().usable()) listener = read_listener(sections.back(), index);
    listeners.push_back(std::move(listener));
  }
  return sections;
}

// The first unknown {placeholder} in an error message, or "".
std::string unknown_placeholder(std::string_view message) {
  for (std::size_t open = message.find('{'); open != std::string_view::npos;
       open = message.find('{', open + 1)) {
    const std::size_t close = message.find('}', open);
    if (close == std::string_view::npos) break;
    const std::string_view name = message.substr(open + 1, close - open - 1);
    const bool word = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
    });
    if (word && !contains(kPlaceholders, name)) return std::string(name);
  }
  return "";
}

void read_error_spec(const Section& section, ErrorSpec& spec) {
  section.number("code", 1, 65535, spec.code);
  if (const std::string* sqlstate = section.scalar("sqlstate")) {
    const bool valid =
        sqlstate->size() == 5 && std::all_of(sqlstate->begin(), sqlstate->end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c));
        });
    if (valid) {
      spec.sqlstate = *sqlstate;
    } else {
      section.report("sqlstate", "invalid SQLSTATE " + single_quoted(*sqlstate) +
                                     " (exactly 5 letters or digits, e.g. HY000)");
    }
  }
  if (const std::string* message = section.scalar("message")) {
    const std::string unknown = unknown_placeholder(*message);
    if (unknown.empty()) {
      spec.message = *message;
    } else {
      section.report("message", "unknown placeholder {" + unknown +
                                    "} (known: {size} {limit} {timeout} {listener})");
    }
  }
}

void read_errors(const Section& top, ErrorTable& errors) {
  std::array<std::string_view, kErrorKindCount> kinds;
  for (std::size_t i = 0; i < kErrorKindCount; ++i) kinds[i] = error_key(ErrorKind(i));
  const Section section = top.section("errors", kinds);
  for (std::size_t i = 0; i < kErrorKindCount; ++i) {
    const Section entry = section.section(kinds[i], kErrorSpecKeys);
    if (entry.usable()) read_error_spec(entry, errors.specs[i]);
  }
}

// ---- Checks across sections ----

// A listen address as the socket it binds: a name resolved as the listener will resolve it, so
// addresses written differently (localhost, ::ffff:127.0.0.1) are compared by what they bind.
// Null after reporting when the name does not resolve, which would stop sluice at start-up.
std::optional<SocketAddress> bound_address(const Section& section, std::string_view name,
                                           const HostPort& listen) {
  SocketAddress address;
  std::string error;
  if (resolve_host_port(listen, &address, &error)) return address;
  section.report(name, "cannot resolve " + error);
  return std::nullopt;
}

// An upstream written as a numeric address or localhost, as the listener would reach it; no
// name service is asked at check time (other names are looked up when sluice starts).
std::optional<SocketAddress> local_upstream(const HostPort& upstream) {
  SocketAddress address;
  std::string error;
  unsigned char scratch[sizeof(in6_addr)];
  const bool numeric = ::inet_pton(AF_INET, upstream.host.c_str(), scratch) == 1 ||
                       ::inet_pton(AF_INET6, upstream.host.c_str(), scratch) == 1;
  if (!numeric && !iequals(upstream.host, "localhost")) return std::nullopt;
  if (!resolve_host_port(upstream, &address, &error)) return std::nullopt;
  return address;
}

// An upstream that is one of sluice's own listeners would have each session
// connect to sluice again, until max_connections or the fds run out.
void check_loops(const Config& config, const std::vector<Section>& sections,
                 const std::vector<std::optional<SocketAddress>>& addresses) {
  for (std::size_t i = 0; i < sections.size(); ++i) {
    if (!sections[i].usable()) continue;
    const std::vector<HostPort>& upstreams = config.listeners[i].upstreams;
    for (std::size_t k = 0; k < upstreams.size(); ++k) {
      const std::optional<SocketAddress> upstream = local_upstream(upstreams[k]);
      if (!upstream) continue;
      for (std::size_t j = 0; j < addresses.size(); ++j) {
        if (!addresses[j] || !connects_to_listener(*upstream, *addresses[j])) continue;
        sections[i].report("upstreams", "upstream " + upstreams[k].text() + " is sluice's own " +
                                            sections[j].key("listen") + " (" +
                                            config.listeners[j].listen.text() +
                                            "): each session would connect to sluice again");
        break;
      }
    }
  }
}

void check_addresses(const Config& config, const Section& metrics,
                     const std::vector<Section>& sections) {
  const std::optional<SocketAddress> metrics_address =
      bound_address(metrics, "listen", config.metrics.listen);
  std::vector<std::optional<SocketAddress>> addresses(sections.size());
  for (std::size_t i = 0; i < sections.size(); ++i) {
    const HostPort& listen = config.listeners[i].listen;
    if (!sections[i].usable() || listen.host.empty()) continue;  // missing or invalid: reported
    addresses[i] = bound_address(sections[i], "listen", listen);
    if (!addresses[i]) continue;
    if (metrics_address && listen_overlaps(*addresses[i], *metrics_address)) {
      sections[i].report("listen", "address " + listen.text() + " is also metrics.listen (" +
                                       config.metrics.listen.text() + ")");
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (!addresses[j] || !listen_overlaps(*addresses[i], *addresses[j])) continue;
      sections[i].report("listen", "address " + listen.text() + " is also " +
                                       sections[j].key("listen") + " (" +
                                       config.listeners[j].listen.text() + ")");
      break;
    }
  }
  check_loops(config, sections, addresses);
}

void check_names(const Config& config, const std::vector<Section>& sections) {
  for (std::size_t i = 0; i < sections.size(); ++i) {
    if (!sections[i].usable()) continue;
    for (std::size_t j = 0; j < i; ++j) {
      if (config.listeners[i].name != config.listeners[j].name) continue;
      sections[i].report("name", "duplicate listener name " +
                                     single_quoted(config.listeners[i].name) + " (also " +
                                     sections[j].key() + ")");
      break;
    }
  }
}

// Allowed, but packets between the two limits are refused with out_of_memory: say so.
void add_memory_warnings(Config& config) {
  const auto warn = [&config](std::size_t index, std::string_view key, std::uint64_t limit) {
    config.warnings.push_back(
        "memory_limit (" + format_size(config.memory_limit) + ") is below listeners[" +
        std::to_string(index) + "]." + std::string(key) + " (" + format_size(limit) +
        "): packets of memory_limit bytes or more are refused with out_of_memory");
  };
  for (std::size_t i = 0; i < config.listeners.size(); ++i) {
    const ListenerConfig& listener = config.listeners[i];
    if (config.memory_limit < listener.max_allowed_packet) {
      warn(i, "max_allowed_packet", listener.max_allowed_packet);
    }
    if (listener.max_server_packet != 0 && config.memory_limit < listener.max_server_packet) {
      warn(i, "max_server_packet", listener.max_server_packet);
    }
  }
}

}  // namespace

Config read_config(const YAML::Node& root, Checker& checker) {
  Config config;
  const Section top(checker, root, "", kTopKeys);
  if (!top.usable()) return config;
  read_workers(top, config.workers);
  top.size("memory_limit", kMinPacket, std::numeric_limits<std::uint64_t>::max(),
           config.memory_limit);
  top.duration("shutdown_timeout", Millis{0}, kMaxTimeout, config.shutdown_timeout);
  read_log(top, config.log);
  const Section metrics = read_metrics(top, config.metrics);
  const std::vector<Section> listeners = read_listeners(top, config.listeners);
  read_errors(top, config.errors);
  check_addresses(config, metrics, listeners);
  check_names(config, listeners);
  add_memory_warnings(config);
  return config;
}

}  // namespace sluice::config_yaml
