// Helpers for the packet-limit and memory tests (see limits_support.h).
#include "tests/support/limits_support.h"

#include <doctest/doctest.h>

#include <fstream>
#include <stdexcept>
#include <thread>

#include "tests/support/metrics_scrape.h"

namespace sluice::test::limits {

using Clock = std::chrono::steady_clock;

std::string com_query(std::string_view sql) {
  std::string payload(1, kComQueryByte);
  payload.append(sql);
  return payload;
}

std::string sized_query(std::size_t size, std::size_t* fill_length, std::string_view prefix,
                        char fill) {
  std::string payload(1, kComQueryByte);
  payload.append(prefix);
  payload.append("LENGTH('");
  const std::size_t overhead = payload.size() + 2;  // "')"
  if (size < overhead) throw std::invalid_argument("sized_query: size too small");
  const std::size_t n = size - overhead;
  payload.reserve(size);
  payload.append(n, fill);
  payload.append("')");
  if (fill_length != nullptr) *fill_length = n;
  return payload;
}

std::size_t lenenc_size(std::uint64_t n) {
  if (n < 251) return 1 + n;
  if (n < (1u << 16)) return 3 + n;
  if (n < (1u << 24)) return 4 + n;
  return 9 + n;
}

std::string le(std::uint64_t value, int width) {
  std::string out;
  for (int i = 0; i < width; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
  return out;
}

std::string stored_frames(std::string_view inner, std::size_t chunk, std::uint8_t* last) {
  std::string out;
  std::uint8_t seq = 0;
  for (std::size_t at = 0; at < inner.size(); at += chunk) {
    const std::string_view part = inner.substr(at, chunk);
    out += le(part.size(), 3) + std::string(1, static_cast<char>(seq)) + le(0, 3);
    out += part;
    *last = seq++;
  }
  return out;
}

namespace {
std::uint32_t le24(std::string_view bytes) {
  return static_cast<std::uint8_t>(bytes[0]) | static_cast<std::uint8_t>(bytes[1]) << 8 |
         static_cast<std::uint8_t>(bytes[2]) << 16;
}
}  // namespace

Packet read_stored_packet(RawMysqlClient& client, std::uint8_t comp_seq) {
  std::string header;
  REQUIRE(client.read_bytes(7, &header) == ReadStatus::kOk);
  CHECK(static_cast<std::uint8_t>(header[3]) == comp_seq);
  CHECK(le24(std::string_view(header).substr(4)) == 0);
  std::string inner;
  REQUIRE(client.read_bytes(le24(header), &inner) == ReadStatus::kOk);
  REQUIRE(inner.size() >= 4);
  CHECK(le24(inner) == inner.size() - 4);
  Packet packet;
  packet.seq = packet.last_seq = static_cast<std::uint8_t>(inner[3]);
  packet.frames = 1;
  packet.payload = inner.substr(4);
  return packet;
}

double buffered_bytes(int metrics_port) {
  return metric_value(http_get(metrics_port), "sluice_buffered_bytes");
}

bool wait_buffered_zero(int metrics_port, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (buffered_bytes(metrics_port) != 0) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

std::unique_ptr<RawMysqlClient> raw_login(int port, std::uint32_t extra_capabilities) {
  auto client = std::make_unique<RawMysqlClient>();
  REQUIRE_MESSAGE(client->connect(port), client->last_error());
  const auto login = client->handshake("root", "", "", extra_capabilities);
  REQUIRE_MESSAGE(login.logged_in, login.failure);
  return client;
}

RawResponse read_response(RawMysqlClient& client, std::chrono::milliseconds timeout) {
  RawResponse response;
  const auto deadline = Clock::now() + timeout;
  auto next = [&]() -> const Packet* {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    ReadResult read = client.read_packet(std::max(left, std::chrono::milliseconds(1)));
    response.status = read.status;
    if (!read.ok()) return nullptr;
    response.packets.push_back(std::move(read.packet));
    return &response.packets.back();
  };
  const Packet* packet = next();
  if (packet == nullptr) return response;
  if ((response.error = parse_err(*packet))) return response;
  if (!packet->payload.empty() && packet->payload[0] == '\0') return response;  // OK
  PayloadReader count_reader(packet->payload);
  const std::uint64_t columns = count_reader.lenenc();
  for (std::uint64_t i = 0; i < columns; ++i) {
    if (next() == nullptr) return response;
  }
  packet = next();
  if (packet == nullptr) return response;
  if (!is_eof_packet(*packet)) {
    response.status = ReadStatus::kError;
    return response;
  }
  while (true) {
    packet = next();
    if (packet == nullptr) return response;
    if ((response.error = parse_err(*packet))) return response;
    if (is_eof_packet(*packet)) return response;
    PayloadReader reader(packet->payload);
    std::vector<std::optional<std::string>> row;
    for (std::uint64_t i = 0; i < columns; ++i) row.push_back(reader.lenenc_string());
    response.rows.push_back(std::move(row));
  }
}

std::string err_text(const std::optional<ServerError>& err) {
  if (!err) return "no ERR";
  return std::to_string(err->code) + " (" + err->sqlstate + ") " + err->message;
}

std::string why(const RawResponse& response) {
  if (response.error) return "ERR " + err_text(response.error);
  return std::string("transport: ") + to_string(response.status);
}

std::optional<ServerError> expect_err(RawMysqlClient& client, std::uint16_t code,
                                      const std::string& sqlstate, const std::string& message,
                                      int seq, std::chrono::milliseconds timeout) {
  const ReadResult read = client.read_packet(timeout);
  REQUIRE_MESSAGE(read.ok(), "expected an ERR, the read ended with ", to_string(read.status));
  auto err = parse_err(read.packet);
  const int first =
      read.packet.payload.empty() ? -1 : static_cast<unsigned char>(read.packet.payload[0]);
  REQUIRE_MESSAGE(err.has_value(), "expected an ERR, got a packet of ", read.packet.payload.size(),
                  " bytes, seq ", int{read.packet.seq}, ", first byte ", first);
  CHECK(err->code == code);
  CHECK(err->sqlstate == sqlstate);
  CHECK(err->message == message);
  CHECK(int{read.packet.seq} == seq);
  CHECK(read.packet.frames == 1);
  return err;
}

void expect_closed(RawMysqlClient& client, std::chrono::milliseconds timeout) {
  const ReadStatus end = client.wait_closed(timeout);
  CHECK_MESSAGE((end == ReadStatus::kEof || end == ReadStatus::kReset), "connection still open (",
                to_string(end), ")");
}

int server_sessions(MysqlConn& monitor) {
  return std::stoi(monitor.scalar("SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS "
                                  "WHERE VARIABLE_NAME = 'THREADS_CONNECTED'")) -
         1;
}

bool wait_server_sessions(MysqlConn& monitor, int sessions, std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (server_sessions(monitor) != sessions) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

long long server_bytes_from_others(MysqlConn& monitor) {
  return std::stoll(
      monitor.scalar("SELECT (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS "
                     "        WHERE VARIABLE_NAME = 'BYTES_RECEIVED') - "
                     "       (SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS "
                     "        WHERE VARIABLE_NAME = 'BYTES_RECEIVED')"));
}

long proc_status_kib(pid_t pid, const std::string& field) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  const std::string key = field + ":";
  while (std::getline(status, line)) {
    if (line.rfind(key, 0) == 0) return std::strtol(line.c_str() + key.size(), nullptr, 10);
  }
  return -1;
}

RssSampler::RssSampler(pid_t pid, std::chrono::milliseconds interval) : pid_(pid) {
  thread_ = std::thread([this, interval] {
    while (!stop_.load()) {
      const long rss = proc_status_kib(pid_, "VmRSS");
      if (rss > peak_.load()) peak_.store(rss);
      samples_.fetch_add(1);
      std::this_thread::sleep_for(interval);
    }
  });
}

RssSampler::~RssSampler() {
  stop();
}

void RssSampler::stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

}  // namespace sluice::test::limits
