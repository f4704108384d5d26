// Reading sluice's Prometheus endpoint in tests: a tiny HTTP client and sample lookup.
#include "tests/support/metrics_scrape.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>
#include <stdexcept>

namespace sluice::test {
namespace {

using Clock = std::chrono::steady_clock;

std::string describe(std::string_view name, const Labels& labels) {
  std::string out(name);
  out += '{';
  bool first = true;
  for (const auto& [key, value] : labels) {
    out += (first ? "" : ",") + key + "=\"" + value + "\"";
    first = false;
  }
  return out + '}';
}

// Parses `{a="x",b="y"}` starting at text[*pos] == '{'; advances past '}'.
bool parse_labels(std::string_view line, std::size_t* pos, Labels* labels) {
  ++*pos;
  while (*pos < line.size()) {
    while (*pos < line.size() && (line[*pos] == ' ' || line[*pos] == ',')) ++*pos;
    if (*pos < line.size() && line[*pos] == '}') {
      ++*pos;
      return true;
    }
    const std::size_t eq = line.find('=', *pos);
    if (eq == std::string_view::npos || eq + 1 >= line.size() || line[eq + 1] != '"') return false;
    std::string key(line.substr(*pos, eq - *pos));
    std::string value;
    std::size_t i = eq + 2;
    for (; i < line.size() && line[i] != '"'; ++i) {
      if (line[i] == '\\' && i + 1 < line.size()) {
        ++i;
        value += line[i] == 'n' ? '\n' : line[i];
      } else {
        value += line[i];
      }
    }
    if (i >= line.size()) return false;
    (*labels)[key] = value;
    *pos = i + 1;
  }
  return false;
}

double parse_value(const std::string& token) {
  if (token == "NaN") return std::nan("");
  if (token == "+Inf") return HUGE_VAL;
  if (token == "-Inf") return -HUGE_VAL;
  return std::strtod(token.c_str(), nullptr);
}

std::vector<const Sample*> matching(const std::vector<Sample>& samples, std::string_view name,
                                    const Labels& labels) {
  std::vector<const Sample*> out;
  for (const auto& sample : samples) {
    if (sample.name != name) continue;
    bool all = true;
    for (const auto& [key, value] : labels) {
      const auto it = sample.labels.find(key);
      if (it == sample.labels.end() || it->second != value) {
        all = false;
        break;
      }
    }
    if (all) out.push_back(&sample);
  }
  return out;
}

std::string same_name_listing(const std::vector<Sample>& samples, std::string_view name) {
  std::string out;
  for (const auto& sample : samples) {
    if (sample.name == name) {
      std::ostringstream line;
      line << "\n  " << describe(sample.name, sample.labels) << " " << sample.value;
      out += line.str();
    }
  }
  return out.empty() ? " (no sample has that name)" : out;
}

}  // namespace

HttpResponse http_request(int port, std::string_view path, std::chrono::milliseconds timeout) {
  return http_request_with_headers(port, path, {}, timeout);
}

HttpResponse http_request_with_headers(int port, std::string_view path,
                                       const std::vector<std::string>& headers,
                                       std::chrono::milliseconds timeout) {
  HttpResponse response;
  const auto deadline = Clock::now() + timeout;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return response;
  // Bound every blocking call, so a server that never answers cannot hang a test.
  const auto millis = timeout.count();
  const timeval limit{static_cast<time_t>(millis / 1000),
                      static_cast<suseconds_t>((millis % 1000) * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string raw;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    std::string request =
        "GET " + std::string(path) + " HTTP/1.0\r\nHost: 127.0.0.1\r\nUser-Agent: sluice-tests\r\n";
    for (const std::string& h : headers) request += h + "\r\n";
    request += "\r\n";
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
        static_cast<ssize_t>(request.size())) {
      char chunk[65536];
      while (Clock::now() < deadline) {
        const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
        if (n > 0) {
          raw.append(chunk, static_cast<std::size_t>(n));
        } else if (n == 0 || errno != EINTR) {
          break;
        }
      }
    }
  }
  ::close(fd);
  // "HTTP/1.x 200 OK\r\n" headers "\r\n\r\n" body
  const auto header_end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/", 0) != 0 || header_end == std::string::npos) return response;
  const auto space = raw.find(' ');
  response.status = std::atoi(raw.c_str() + space + 1);
  response.headers = raw.substr(0, header_end);
  response.body = raw.substr(header_end + 4);
  return response;
}

std::string http_get(int port, std::string_view path, std::chrono::milliseconds timeout) {
  const HttpResponse response = http_request(port, path, timeout);
  if (response.status != 200) {
    throw std::runtime_error("GET http://127.0.0.1:" + std::to_string(port) + std::string(path) +
                             (response.status == 0
                                  ? ": no HTTP response"
                                  : ": status " + std::to_string(response.status)));
  }
  return response.body;
}

std::vector<Sample> parse_samples(std::string_view text) {
  std::vector<Sample> samples;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(start, end - start);
    start = end + 1;
    if (line.empty() || line[0] == '#') continue;
    Sample sample;
    std::size_t pos = line.find_first_of("{ ");
    if (pos == std::string_view::npos) continue;
    sample.name = std::string(line.substr(0, pos));
    if (line[pos] == '{' && !parse_labels(line, &pos, &sample.labels)) continue;
    std::istringstream rest{std::string(line.substr(pos))};
    std::string value;
    if (!(rest >> value)) continue;
    sample.value = parse_value(value);
    samples.push_back(std::move(sample));
  }
  return samples;
}

std::optional<double> find_metric(const std::string& text, std::string_view name,
                                  const Labels& labels) {
  const auto samples = parse_samples(text);
  const auto found = matching(samples, name, labels);
  if (found.empty()) return std::nullopt;
  if (found.size() > 1) {
    throw std::runtime_error("metric " + describe(name, labels) +
                             " is ambiguous: " + std::to_string(found.size()) +
                             " samples match:" + same_name_listing(samples, name));
  }
  return found.front()->value;
}

double metric_value(const std::string& text, std::string_view name, const Labels& labels) {
  const auto value = find_metric(text, name, labels);
  if (!value) {
    throw std::runtime_error(
        "metric " + describe(name, labels) +
        " not found; samples with that name:" + same_name_listing(parse_samples(text), name));
  }
  return *value;
}

bool metric_exists(const std::string& text, std::string_view name, const Labels& labels) {
  return !matching(parse_samples(text), name, labels).empty();
}

double metric_sum(const std::string& text, std::string_view name, const Labels& labels) {
  const auto samples = parse_samples(text);
  double sum = 0;
  for (const Sample* sample : matching(samples, name, labels)) sum += sample->value;
  return sum;
}

}  // namespace sluice::test
