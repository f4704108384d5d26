// The configuration model's defaults: mysqld's own errors, and host:port text.
#include "common/config.h"

#include <arpa/inet.h>

#include <charconv>
#include <iterator>

namespace sluice {
namespace {

struct ErrorDefault {
  std::string_view key;
  std::uint16_t code;
  std::string_view sqlstate;
  std::string_view message;
};

// In ErrorKind order; the values are mysqld's (SPEC's `errors:` block, then bad_handshake:
// mysqld's ER_HANDSHAKE_ERROR).
constexpr ErrorDefault kErrorDefaults[] = {
    {"packet_too_large", 1153, "08S01", "Got a packet bigger than 'max_allowed_packet' bytes"},
    {"read_timeout", 1159, "08S01", "Got timeout reading communication packets"},
    {"write_timeout", 1161, "08S01", "Got timeout writing communication packets"},
    {"read_error", 1158, "08S01", "Got an error reading communication packets"},
    {"write_error", 1160, "08S01", "Got an error writing communication packets"},
    {"out_of_order", 1156, "08S01", "Got packets out of order"},
    {"idle_timeout", 4031, "HY000",
     "The client was disconnected by the server because of inactivity."},
    {"too_many_connections", 1040, "08004", "Too many connections"},
    {"upstream_unavailable", 2003, "HY000", "Can't connect to MySQL server"},
    {"out_of_memory", 1041, "HY000", "Out of memory"},
    {"bad_handshake", 1043, "08S01", "Bad handshake"},
};
static_assert(std::size(kErrorDefaults) == kErrorKindCount, "one default per ErrorKind");

std::nullopt_t reject(std::string* why, std::string message) {
  if (why != nullptr) *why = std::move(message);
  return std::nullopt;
}

bool is_numeric_host(std::string_view host) {
  return host.find_first_not_of("0123456789.") == std::string_view::npos;
}

// Dot-separated labels of letters, digits, '-' and '_' (container names use '_').
bool is_hostname(std::string_view host) {
  if (host.size() > 253) return false;
  std::size_t label = 0;
  for (char c : host) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
    } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '_') {
      if (++label > 63) return false;
    } else {
      return false;
    }
  }
  return label > 0;
}

// What is wrong with a host, or "" when it is a valid address or name.
std::string host_error(std::string_view host, bool bracketed) {
  const std::string copy(host);
  unsigned char address[16];
  if (bracketed) {
    if (inet_pton(AF_INET6, copy.c_str(), address) == 1) return "";
    return "invalid IPv6 address '" + copy + "'";
  }
  if (host.empty()) return "missing host (use 0.0.0.0 for every interface)";
  if (host.find(':') != std::string_view::npos) {
    return "an IPv6 address needs brackets, e.g. [::1]:3306";
  }
  if (is_numeric_host(host)) {
    if (inet_pton(AF_INET, copy.c_str(), address) == 1) return "";
    return "invalid IPv4 address '" + copy + "'";
  }
  if (is_hostname(host)) return "";
  return "invalid host name '" + copy + "'";
}

std::optional<std::uint16_t> parse_port(std::string_view text) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(value);
}

}  // namespace

std::string_view error_key(ErrorKind kind) {
  const auto index = static_cast<std::size_t>(kind);
  return index < kErrorKindCount ? kErrorDefaults[index].key : std::string_view{};
}

ErrorSpec default_error(ErrorKind kind) {
  const auto index = static_cast<std::size_t>(kind);
  if (index >= kErrorKindCount) return {};
  const ErrorDefault& d = kErrorDefaults[index];
  return ErrorSpec{d.code, std::string(d.sqlstate), std::string(d.message)};
}

ErrorTable::ErrorTable() {
  for (std::size_t i = 0; i < kErrorKindCount; ++i) {
    specs[i] = default_error(static_cast<ErrorKind>(i));
  }
}

std::string HostPort::text() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::optional<HostPort> HostPort::parse(std::string_view text, std::string* why) {
  std::string_view host;
  std::string_view rest;
  const bool bracketed = !text.empty() && text.front() == '[';
  if (bracketed) {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos) return reject(why, "missing ']'");
    host = text.substr(1, close - 1);
    rest = text.substr(close + 1);
    if (rest.empty() || rest.front() != ':') return reject(why, "missing :port after ']'");
    rest.remove_prefix(1);
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return reject(why, "missing :port");
    host = text.substr(0, colon);
    rest = text.substr(colon + 1);
  }
  if (std::string error = host_error(host, bracketed); !error.empty()) {
    return reject(why, std::move(error));
  }
  const std::optional<std::uint16_t> port = parse_port(rest);
  if (!port) return reject(why, "invalid port '" + std::string(rest) + "' (0..65535)");
  return HostPort{std::string(host), *port};
}

}  // namespace sluice
