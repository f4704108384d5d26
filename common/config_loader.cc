// Loads the YAML configuration (file or text, plus --set overrides) into a Config,
// collecting every problem with its dotted key path and line.
#include "common/config_loader.h"

#include <unistd.h>

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <span>
#include <sstream>

#include "common/socket_address.h"
#include "common/units.h"

namespace sluice {
namespace {

using Names = std::span<const std::string_view>;

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
// Keys whose value is always text, so an override never reads them as a YAML list or map.
constexpr std::string_view kTextKeys[] = {"message", "name", "path", "username", "password_file"};
constexpr std::string_view kPlaceholders[] = {"size", "limit", "timeout", "listener"};

// mysqld's own bounds, so a value copied from my.cnf means the same here.
constexpr std::uint64_t kMinPacket = 1024;               // max_allowed_packet, net_buffer_length
constexpr std::uint64_t kMaxPacket = 1ull << 30;         // max_allowed_packet
constexpr std::uint64_t kMaxNetBuffer = 1ull << 20;      // net_buffer_length
constexpr Millis kMaxTimeout{365LL * 24 * 3600 * 1000};  // wait_timeout: one year
constexpr std::uint64_t kMaxWorkers = 256;
constexpr std::uint64_t kMaxU32 = std::numeric_limits<std::uint32_t>::max();

template <class E>
struct Choice {
  std::string_view name;
  E value;
};
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
constexpr Choice<SequenceCheck> kSequenceChecks[] = {{"off", SequenceCheck::kOff},
                                                     {"false", SequenceCheck::kOff},
                                                     {"no", SequenceCheck::kOff},
                                                     {"count", SequenceCheck::kCount},
                                                     {"enforce", SequenceCheck::kEnforce}};

std::string join_key(std::string_view parent, std::string_view name) {
  if (parent.empty()) return std::string(name);
  return std::string(parent) + "." + std::string(name);
}

std::string index_key(std::string_view parent, std::string_view index) {
  return std::string(parent) + "[" + std::string(index) + "]";
}

std::string single_quoted(std::string_view text) {
  return "'" + std::string(text) + "'";
}

bool iequals(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) ==
           std::tolower(static_cast<unsigned char>(y));
  });
}

bool contains(Names names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

std::string_view trim(std::string_view text) {
  const std::size_t begin = text.find_first_not_of(" \t\r\n");
  if (begin == std::string_view::npos) return {};
  return text.substr(begin, text.find_last_not_of(" \t\r\n") - begin + 1);
}

std::optional<std::uint64_t> parse_uint(std::string_view text) {
  std::uint64_t value = 0;
  const char* end = text.data() + text.size();
  auto [stop, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc{} || stop != end) return std::nullopt;
  return value;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1] ? 1 : 0)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// "unknown key", with the nearest known key when it is probably a typo.
std::string unknown_key_message(std::string_view name, Names allowed) {
  std::string_view best;
  std::size_t best_distance = 3;  // further than two edits is not a typo
  for (std::string_view candidate : allowed) {
    const std::size_t distance = edit_distance(name, candidate);
    if (distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  if (best.empty()) return "unknown key";
  return "unknown key (did you mean " + single_quoted(best) + "?)";
}

// Collects problems. Knows which key paths --set replaced, so that problems inside them
// say "(--set)" instead of pointing at a line of the file they did not come from.
class Checker {
 public:
  void report(std::string key, const YAML::Node& at, std::string message) {
    const std::string origin = key;
    report_caused(std::move(key), origin, at, std::move(message));
  }
  // A problem at `key` that the value of `origin` caused (e.g. a missing key another one
  // requires): it is located where `origin` was set, so an override is not blamed on the file.
  void report_caused(std::string key, std::string_view origin, const YAML::Node& at,
                     std::string message) {
    int line = overridden(origin) ? ConfigProblem::kLineOverride : line_of(at);
    // A node without a line that holds an overridden key was created by that override.
    if (line == ConfigProblem::kLineNone && holds_override(origin)) {
      line = ConfigProblem::kLineOverride;
    }
    problems_.push_back({std::move(key), line, std::move(message)});
  }
  void report_override(std::string key, std::string message) {
    problems_.push_back({std::move(key), ConfigProblem::kLineOverride, std::move(message)});
  }
  void add_overridden(std::string key) { overridden_.push_back(std::move(key)); }
  // In file order (--set and line-less problems first), whatever order the schema read them.
  std::vector<ConfigProblem> take() {
    std::stable_sort(
        problems_.begin(), problems_.end(),
        [](const ConfigProblem& a, const ConfigProblem& b) { return a.line < b.line; });
    return std::move(problems_);
  }

 private:
  static int line_of(const YAML::Node& node) {
    if (!node.IsDefined()) return ConfigProblem::kLineNone;
    const int line = node.Mark().line;  // 0-based; -1 for nodes built in memory
    return line >= 0 ? line + 1 : ConfigProblem::kLineNone;
  }
  // Whether `inner` is `outer` or a key inside it.
  static bool within(std::string_view inner, std::string_view outer) {
    if (!inner.starts_with(outer)) return false;
    return outer.empty() || inner.size() == outer.size() || inner[outer.size()] == '.' ||
           inner[outer.size()] == '[';
  }
  bool overridden(std::string_view key) const {
    return std::any_of(overridden_.begin(), overridden_.end(),
                       [key](const std::string& path) { return within(key, path); });
  }
  bool holds_override(std::string_view key) const {
    return std::any_of(overridden_.begin(), overridden_.end(),
                       [key](const std::string& path) { return within(path, key); });
  }

  std::vector<std::string> overridden_;
  std::vector<ConfigProblem> problems_;
};

// One YAML map of the schema. The constructor reports unknown and duplicate keys; the readers
// then parse values by name, report bad ones at their key's line, and leave the target
// unchanged when the key is absent or its value is bad, so defaults survive.
class Section {
 public:
  Section(Checker& checker, const YAML::Node& node, std::string key, Names allowed);

  Checker& checker() const { return *checker_; }
  const std::string& key() const { return key_; }
  std::string key(std::string_view name) const { return join_key(key_, name); }
  // False when the node is neither a map nor empty (already reported).
  bool usable() const { return usable_; }
  bool has(std::string_view name) const { return find(name) != nullptr; }
  YAML::Node value(std::string_view name) const;
  Section section(std::string_view name, Names allowed) const {
    return Section(*checker_, value(name), key(name), allowed);
  }

  // At the key's line, or at the section's own line when the key is absent.
  void report(std::string_view name, std::string message) const;
  // A key that `cause` requires: at its own line when present, else where `cause` was set.
  void report_required(std::string_view name, std::string_view cause, std::string message) const;
  // The value's text. Null when the key is absent, and (after reporting) when its value is
  // empty or not a single value.
  const std::string* scalar(std::string_view name) const;

  void size(std::string_view name, std::uint64_t min, std::uint64_t max, std::uint64_t& out) const;
  void duration(std::string_view name, Millis min, Millis& out) const;
  template <class T>
  void number(std::string_view name, std::uint64_t min, std::uint64_t max, T& out) const;
  template <class E, std::size_t N>
  void choice(std::string_view name, const Choice<E> (&choices)[N], E& out) const;
  void text(std::string_view name, std::string& out) const;
  void address(std::string_view name, HostPort& out) const;

 private:
  struct Entry {
    std::string name;
    YAML::Node key;
    YAML::Node value;
  };
  const Entry* find(std::string_view name) const;

  Checker* checker_;
  YAML::Node node_;
  std::string key_;
  bool usable_ = true;
  std::vector<Entry> entries_;  // known keys, first occurrence each
};

Section::Section(Checker& checker, const YAML::Node& node, std::string key, Names allowed)
    : checker_(&checker), node_(node), key_(std::move(key)) {
  if (!node.IsDefined() || node.IsNull()) return;  // an empty or absent section: defaults
  if (!node.IsMap()) {
    usable_ = false;
    checker.report(key_, node, "expected a map of settings");
    return;
  }
  for (const auto& pair : node) {
    if (!pair.first.IsScalar()) {
      checker.report(key_, pair.first, "keys must be plain names");
      continue;
    }
    const std::string& name = pair.first.Scalar();
    if (!contains(allowed, name)) {
      checker.report(join_key(key_, name), pair.first, unknown_key_message(name, allowed));
    } else if (find(name) != nullptr) {
      checker.report(join_key(key_, name), pair.first, "duplicate key");
    } else {
      entries_.push_back({name, pair.first, pair.second});
    }
  }
}

const Section::Entry* Section::find(std::string_view name) const {
  for (const Entry& entry : entries_) {
    if (entry.name == name) return &entry;
  }
  return nullptr;
}

YAML::Node Section::value(std::string_view name) const {
  const Entry* entry = find(name);
  return entry != nullptr ? entry->value : YAML::Node();
}

void Section::report(std::string_view name, std::string message) const {
  const Entry* entry = find(name);
  checker_->report(key(name), entry != nullptr ? entry->key : node_, std::move(message));
}

void Section::report_required(std::string_view name, std::string_view cause,
                              std::string message) const {
  if (has(name)) return report(name, std::move(message));
  const Entry* entry = find(cause);
  checker_->report_caused(key(name), key(cause), entry != nullptr ? entry->key : node_,
                          std::move(message));
}

const std::string* Section::scalar(std::string_view name) const {
  const Entry* entry = find(name);
  if (entry == nullptr) return nullptr;
  const YAML::Node& value = entry->value;
  if (value.IsScalar()) return &value.Scalar();
  if (value.IsNull()) {
    report(name, "missing value");
  } else {
    report(name, value.IsMap() ? "expected a single value, not a map"
                               : "expected a single value, not a list");
  }
  return nullptr;
}

void Section::size(std::string_view name, std::uint64_t min, std::uint64_t max,
                   std::uint64_t& out) const {
  const std::string* text = scalar(name);
  if (text == nullptr) return;
  const std::optional<std::uint64_t> bytes = parse_size(*text);
  if (!bytes) {
    return report(name, "invalid size " + single_quoted(*text) + " (bytes, or K, M or G)");
  }
  if (*bytes < min) return report(name, "must be at least " + format_size(min));
  if (*bytes > max) return report(name, "must be at most " + format_size(max));
  out = *bytes;
}

void Section::duration(std::string_view name, Millis min, Millis& out) const {
  const std::string* text = scalar(name);
  if (text == nullptr) return;
  const std::optional<Millis> value = parse_duration(*text);
  if (!value) {
    return report(name,
                  "invalid duration " + single_quoted(*text) + " (seconds, or ms, s, m or h)");
  }
  if (*value < min) {
    return report(name, min == Millis{1} ? "must be greater than 0"
                                         : "must be at least " + format_duration(min));
  }
  if (*value > kMaxTimeout) return report(name, "must be at most " + format_duration(kMaxTimeout));
  out = *value;
}

template <class T>
void Section::number(std::string_view name, std::uint64_t min, std::uint64_t max, T& out) const {
  const std::string* text = scalar(name);
  if (text == nullptr) return;
  const std::optional<std::uint64_t> value = parse_uint(*text);
  if (!value) return report(name, "invalid number " + single_quoted(*text));
  if (*value < min) return report(name, "must be at least " + std::to_string(min));
  if (*value > max) return report(name, "must be at most " + std::to_string(max));
  out = static_cast<T>(*value);
}

template <class E, std::size_t N>
void Section::choice(std::string_view name, const Choice<E> (&choices)[N], E& out) const {
  const std::string* text = scalar(name);
  if (text == nullptr) return;
  std::string listing;
  for (std::size_t i = 0; i < N; ++i) {
    if (iequals(choices[i].name, *text)) {
      out = choices[i].value;
      return;
    }
    const bool alias = std::any_of(choices, choices + i,
                                   [&](const Choice<E>& c) { return c.value == choices[i].value; });
    if (!alias) listing += (listing.empty() ? "" : " | ") + std::string(choices[i].name);
  }
  report(name, "invalid value " + single_quoted(*text) + " (expected " + listing + ")");
}

void Section::text(std::string_view name, std::string& out) const {
  if (const std::string* text = scalar(name)) out = *text;
}

void Section::address(std::string_view name, HostPort& out) const {
  const std::string* text = scalar(name);
  if (text == nullptr) return;
  std::string why;
  const std::optional<HostPort> parsed = HostPort::parse(*text, &why);
  if (!parsed) return report(name, "invalid address " + single_quoted(*text) + ": " + why);
  out = *parsed;
}

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
  for (const auto& [name, target] : timeouts) section.duration(name, Millis{1}, *target);
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

Config read_config(const YAML::Node& root, Checker& checker) {
  Config config;
  const Section top(checker, root, "", kTopKeys);
  if (!top.usable()) return config;
  read_workers(top, config.workers);
  top.size("memory_limit", kMinPacket, std::numeric_limits<std::uint64_t>::max(),
           config.memory_limit);
  top.duration("shutdown_timeout", Millis{0}, config.shutdown_timeout);
  read_log(top, config.log);
  const Section metrics = read_metrics(top, config.metrics);
  const std::vector<Section> listeners = read_listeners(top, config.listeners);
  read_errors(top, config.errors);
  check_addresses(config, metrics, listeners);
  check_names(config, listeners);
  add_memory_warnings(config);
  return config;
}

// ---- --set overrides ----

// "listeners.0.x" or "listeners[0].x" -> {"listeners", "0", "x"}; nullopt when malformed.
std::optional<std::vector<std::string>> split_key_path(std::string_view path) {
  std::string dotted;
  for (std::size_t i = 0; i < path.size(); ++i) {
    if (path[i] == ']') return std::nullopt;
    if (path[i] != '[') {
      dotted += path[i];
      continue;
    }
    const std::size_t close = path.find(']', i);
    if (close == std::string_view::npos || !parse_uint(path.substr(i + 1, close - i - 1))) {
      return std::nullopt;
    }
    if (close + 1 < path.size() && path[close + 1] != '.' && path[close + 1] != '[') {
      return std::nullopt;
    }
    dotted += '.';
    dotted += path.substr(i + 1, close - i - 1);
    i = close;
  }
  std::vector<std::string> parts;
  std::size_t begin = 0;
  for (std::size_t dot = dotted.find('.'); begin <= dotted.size(); dot = dotted.find('.', begin)) {
    if (dot == std::string::npos) dot = dotted.size();
    if (dot == begin) return std::nullopt;  // empty part
    parts.push_back(dotted.substr(begin, dot - begin));
    begin = dot + 1;
  }
  return parts;
}

// The override's value as a node: see load_config_text for the rules.
YAML::Node override_value(std::string_view raw, bool text_key) {
  const std::string text(trim(raw));
  const char first = text.empty() ? '\0' : text.front();
  const bool quoted_text = first == '"' || first == '\'';
  const bool flow = !text_key && (first == '[' || first == '{');
  if (quoted_text || flow) {
    try {
      YAML::Node parsed = YAML::Load(text);
      if (quoted_text ? parsed.IsScalar() : (parsed.IsSequence() || parsed.IsMap())) return parsed;
    } catch (const YAML::Exception&) {
      // Not YAML after all: the text as written is the value.
    }
  }
  return YAML::Node(text);
}

// One step along an override's path: moves `cursor` to the child `part` (creating a missing map
// key), or sets that child to `*value` when given. Extends `key`; false after reporting.
bool step(YAML::Node& cursor, const std::string& part, const YAML::Node* value, std::string& key,
          Checker& checker) {
  const std::optional<std::uint64_t> index = parse_uint(part);
  const bool empty = !cursor.IsDefined() || cursor.IsNull();
  if (cursor.IsSequence() || (empty && index)) {
    if (!index) {
      checker.report_override(key, "is a list: index it with a number, e.g. " + key + ".0");
      return false;
    }
    const std::size_t size = empty ? 0 : cursor.size();
    const std::string parent = key;
    key = index_key(key, part);
    if (*index >= size) {
      checker.report_override(key,
                              "no such element (" + parent + " has " + std::to_string(size) + ")");
      return false;
    }
    if (value != nullptr)
      cursor[*index] = *value;
    else
      cursor.reset(cursor[*index]);
    return true;
  }
  if (!empty && !cursor.IsMap()) {
    checker.report_override(key, "is a single value, so " + join_key(key, part) + " cannot be set");
    return false;
  }
  key = join_key(key, part);
  if (value != nullptr)
    cursor[part] = *value;
  else
    cursor.reset(cursor[part]);
  return true;
}

void apply_override(YAML::Node root, std::string_view text, Checker& checker) {
  const std::size_t equals = text.find('=');
  const std::string raw_key(trim(text.substr(0, equals)));
  if (equals == std::string_view::npos) {
    return checker.report_override(raw_key, "expected key.path=value");
  }
  const std::optional<std::vector<std::string>> parts = split_key_path(raw_key);
  if (!parts) return checker.report_override(raw_key, "malformed key path");
  const YAML::Node value =
      override_value(text.substr(equals + 1), contains(kTextKeys, parts->back()));
  YAML::Node cursor = root;  // a handle: reset() moves it without touching the tree
  std::string key;
  for (std::size_t i = 0; i < parts->size(); ++i) {
    const bool last = i + 1 == parts->size();
    if (!step(cursor, (*parts)[i], last ? &value : nullptr, key, checker)) return;
  }
  checker.add_overridden(std::move(key));
}

// Notes where each YAML document starts; ignores everything else.
class DocumentStarts : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> marks;
  void OnDocumentStart(const YAML::Mark& mark) override { marks.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

int problem_line(const YAML::Mark& mark) {
  return mark.line >= 0 ? mark.line + 1 : ConfigProblem::kLineNone;
}

// YAML::Load() reads the first document and silently ignores the rest, so a second one is
// refused here. yaml-cpp 0.7 also reads a stray ',' as an empty document that consumes
// nothing (its LoadAll() then loops, allocating, forever: yaml-cpp issue #1040), so at most
// two documents are read, and a second one starting where the first did is that bug.
// Throws YAML::ParserException on syntax errors.
std::optional<ConfigProblem> check_single_document(const std::string& text) {
  std::istringstream stream(text);
  YAML::Parser parser(stream);
  DocumentStarts starts;
  for (int i = 0; i < 2 && parser.HandleNextDocument(starts); ++i) {
  }
  if (starts.marks.size() < 2) return std::nullopt;
  const YAML::Mark& second = starts.marks[1];
  if (second.pos == starts.marks[0].pos) {
    const std::size_t at = static_cast<std::size_t>(std::max(second.pos, 0));
    const std::string token = at < text.size() ? std::string(1, text[at]) : "end of input";
    return ConfigProblem{"", problem_line(second), "YAML syntax error: unexpected '" + token + "'"};
  }
  return ConfigProblem{"", problem_line(second), "only one YAML document is allowed"};
}

LoadedConfig failed(std::string key, int line, std::string message) {
  LoadedConfig loaded;
  loaded.problems.push_back({std::move(key), line, std::move(message)});
  return loaded;
}

}  // namespace

std::string ConfigProblem::text() const {
  std::string where;
  if (line == kLineOverride) where = "--set";
  if (line > 0) where = "line " + std::to_string(line);
  if (key.empty()) return (where.empty() ? "" : where + ": ") + message;
  return key + (where.empty() ? "" : " (" + where + ")") + ": " + message;
}

LoadedConfig load_config_text(std::string_view yaml, const std::vector<std::string>& overrides) {
  YAML::Node root;
  try {
    const std::string text(yaml);
    if (std::optional<ConfigProblem> problem = check_single_document(text)) {
      return failed(std::move(problem->key), problem->line, std::move(problem->message));
    }
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    return failed("", problem_line(e.mark), "YAML syntax error: " + e.msg);
  } catch (const std::exception& e) {
    return failed("", ConfigProblem::kLineNone, std::string("cannot parse YAML: ") + e.what());
  }
  LoadedConfig loaded;
  Checker checker;
  std::string internal_error;
  try {
    // An empty document has no node to hang overrides on; give it an empty map.
    if (root.IsNull()) root.reset(YAML::Node(YAML::NodeType::Map));
    for (const std::string& text : overrides) apply_override(root, text, checker);
    loaded.config = read_config(root, checker);
  } catch (const std::exception& e) {
    // yaml-cpp throws on node misuse; the API promises results, so report it instead.
    internal_error = std::string("internal error while loading: ") + e.what();
  }
  loaded.problems = checker.take();
  if (!internal_error.empty()) {
    loaded.problems.push_back({"", ConfigProblem::kLineNone, std::move(internal_error)});
  }
  return loaded;
}

LoadedConfig load_config_file(const std::string& path, const std::vector<std::string>& overrides) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) {
    return failed("", ConfigProblem::kLineNone, "cannot read " + path + ": is a directory");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return failed("", ConfigProblem::kLineNone,
                  "cannot read " + path + ": " + std::strerror(errno));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return failed("", ConfigProblem::kLineNone, "cannot read " + path);
  return load_config_text(text.str(), overrides);
}

}  // namespace sluice
