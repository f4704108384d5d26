// Structured event log to stderr: one line per event, as text (key=value) or JSON.
#include "proxy/log.h"

#include <sys/time.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>

namespace sluice {
namespace {

constexpr std::string_view kLevelNames[] = {"trace", "debug", "info", "warn", "error"};

std::string timestamp() {
  timeval tv{};
  gettimeofday(&tv, nullptr);
  tm utc{};
  gmtime_r(&tv.tv_sec, &utc);
  char buf[40];
  const std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(buf + n, sizeof buf - n, ".%03ldZ", static_cast<long>(tv.tv_usec / 1000));
  return buf;
}

void append_json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  for (const char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char esc[8];
          std::snprintf(esc, sizeof esc, "\\u%04x", c);
          out += esc;
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

bool needs_quotes(std::string_view s) {
  if (s.empty()) return true;
  for (const char c : s) {
    if (c == ' ' || c == '"' || c == '=' || static_cast<unsigned char>(c) < 0x20) return true;
  }
  return false;
}

}  // namespace

Log& Log::get() {
  static Log log;
  return log;
}

void Log::configure(LogLevel level, LogFormat format) {
  level_.store(level, std::memory_order_relaxed);
  format_.store(format, std::memory_order_relaxed);
}

void Log::write(LogLevel level, std::string_view event, std::initializer_list<LogField> fields) {
  std::string line;
  line.reserve(256);
  const std::string_view lvl = kLevelNames[static_cast<int>(level)];
  if (format_.load(std::memory_order_relaxed) == LogFormat::kJson) {
    line += "{\"ts\":\"" + timestamp() + "\",\"level\":\"";
    line += lvl;
    line += "\",\"event\":";
    append_json_string(line, event);
    for (const LogField& f : fields) {
      line.push_back(',');
      append_json_string(line, f.key);
      line.push_back(':');
      if (f.quoted_number) {
        line += f.value;
      } else {
        append_json_string(line, f.value);
      }
    }
    line += "}\n";
  } else {
    line += timestamp();
    line.push_back(' ');
    line += lvl;
    line.push_back(' ');
    line += event;
    for (const LogField& f : fields) {
      line.push_back(' ');
      line += f.key;
      line.push_back('=');
      if (needs_quotes(f.value)) {
        append_json_string(line, f.value);
      } else {
        line += f.value;
      }
    }
    line.push_back('\n');
  }
  // One write per line: lines from different workers never interleave.
  [[maybe_unused]] const ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace sluice
