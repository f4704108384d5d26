// Structured event log to stderr: one line per event, as text (key=value) or JSON.
#pragma once

#include <atomic>
#include <initializer_list>
#include <string>
#include <string_view>

#include "common/config.h"

namespace sluice {

struct LogField {
  std::string_view key;
  std::string value;
  bool quoted_number = false;  // JSON: emit as a bare number
};

inline LogField field(std::string_view key, std::string value) {
  return {key, std::move(value)};
}
inline LogField number(std::string_view key, double value) {
  char buf[32];
  const int n = std::snprintf(buf, sizeof buf, "%.15g", value);
  return {key, std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0), true};
}
inline LogField number(std::string_view key, std::uint64_t value) {
  return {key, std::to_string(value), true};
}

// `s` as a JSON string literal: escapes what JSON requires, and each byte
// that is not part of well-formed UTF-8 as \u00XX (as if Latin-1), so every
// line is valid JSON whatever bytes a client sent as its user name.
void append_json_string(std::string& out, std::string_view s);

// The process's log. Level and format change on reload, hence atomics; each
// line is written with a single write(2) so lines from workers never mix.
class Log {
 public:
  static Log& get();
  void configure(LogLevel level, LogFormat format);
  bool enabled(LogLevel level) const { return level >= level_.load(std::memory_order_relaxed); }
  void write(LogLevel level, std::string_view event, std::initializer_list<LogField> fields);

 private:
  std::atomic<LogLevel> level_{LogLevel::kInfo};
  std::atomic<LogFormat> format_{LogFormat::kText};
};

template <typename... F>
void log_event(LogLevel level, std::string_view event, F&&... fields) {
  Log& log = Log::get();
  if (log.enabled(level)) log.write(level, event, {std::forward<F>(fields)...});
}

}  // namespace sluice
