// The configuration model: every key of SPEC.md's schema, with its defaults.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice {

using Millis = std::chrono::milliseconds;

// The errors sluice itself sends to clients, in the order of SPEC's `errors:` block.
enum class ErrorKind : std::uint8_t {
  kPacketTooLarge,
  kReadTimeout,
  kWriteTimeout,
  kReadError,
  kWriteError,
  kOutOfOrder,
  kIdleTimeout,
  kTooManyConnections,
  kUpstreamUnavailable,
  kOutOfMemory,
  kBadHandshake,  // not in SPEC's list: what a non-MySQL client (HTTP, noise) receives
  kCount
};
inline constexpr std::size_t kErrorKindCount = static_cast<std::size_t>(ErrorKind::kCount);

struct ErrorSpec {
  std::uint16_t code = 0;
  std::string sqlstate;  // exactly 5 characters
  std::string message;   // may hold {size} {limit} {timeout} {listener}
};

// The config key of each ErrorKind ("packet_too_large", ...).
std::string_view error_key(ErrorKind kind);
// mysqld's own code, SQLSTATE and message for each kind.
ErrorSpec default_error(ErrorKind kind);

struct ErrorTable {
  std::array<ErrorSpec, kErrorKindCount> specs;
  ErrorTable();
  const ErrorSpec& operator[](ErrorKind kind) const {
    return specs[static_cast<std::size_t>(kind)];
  }
  ErrorSpec& operator[](ErrorKind kind) { return specs[static_cast<std::size_t>(kind)]; }
};

enum class OnOversized : std::uint8_t { kClose, kReject };
enum class SequenceCheck : std::uint8_t { kOff, kCount, kEnforce };
enum class LogLevel : std::uint8_t { kTrace, kDebug, kInfo, kWarn, kError };
enum class LogFormat : std::uint8_t { kText, kJson };

struct HostPort {
  std::string host;  // numeric address or name, as written
  std::uint16_t port = 0;
  std::string text() const;  // "host:port", IPv6 hosts in brackets
  // Parses "host:port", "[v6]:port" or "name:port" (port 0..65535: 0 lets the kernel pick a
  // listening port, so callers that connect must refuse it). On failure `why` says what is
  // wrong.
  static std::optional<HostPort> parse(std::string_view text, std::string* why = nullptr);
  bool operator==(const HostPort&) const = default;
};

struct ListenerConfig {
  std::string name;
  HostPort listen;
  std::vector<HostPort> upstreams;
  std::uint32_t max_connections = 10000;
  std::uint64_t max_allowed_packet = 64ull << 20;
  std::uint64_t max_server_packet = 0;  // 0 = unlimited
  OnOversized on_oversized = OnOversized::kClose;
  std::uint64_t net_buffer_length = 16 << 10;
  std::uint32_t net_retry_count = 10;
  Millis connect_timeout{5'000};
  Millis handshake_timeout{10'000};
  Millis net_read_timeout{30'000};
  Millis net_write_timeout{60'000};
  Millis wait_timeout{8 * 3600 * 1000};
  SequenceCheck sequence_check = SequenceCheck::kCount;
};

struct MetricsConfig {
  HostPort listen{"127.0.0.1", 9104};
  std::string path = "/metrics";
  std::string username;       // basic auth; empty = none
  std::string password_file;  // file holding the password (first line)
};

struct LogConfig {
  LogLevel level = LogLevel::kInfo;
  LogFormat format = LogFormat::kText;
};

struct Config {
  unsigned workers = 0;  // 0 = auto (CPU count)
  std::uint64_t memory_limit = 1ull << 30;
  Millis shutdown_timeout{30'000};
  LogConfig log;
  MetricsConfig metrics;
  std::vector<ListenerConfig> listeners;
  ErrorTable errors;
  // Non-fatal findings (e.g. memory_limit below a listener's max_allowed_packet).
  std::vector<std::string> warnings;
};

}  // namespace sluice
