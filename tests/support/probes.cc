// Probes shared by the timeout, upstream and EINTR tests (see probes.h).
#include "tests/support/probes.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <fstream>
#include <sstream>
#include <thread>

namespace sluice::test::fault {

using Clock = std::chrono::steady_clock;

int server_sessions(MysqlConn& monitor) {
  return std::stoi(monitor.scalar("SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS "
                                  "WHERE VARIABLE_NAME = 'THREADS_CONNECTED'")) -
         1;
}

bool wait_server_sessions(MysqlConn& monitor, int sessions, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (server_sessions(monitor) != sessions) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

double scrape(int metrics_port, const std::string& name, const Labels& labels) {
  return find_metric(http_get(metrics_port), name, labels).value_or(0);
}

std::string describe(const ReadResult& read) {
  if (!read.ok()) return to_string(read.status);
  if (const auto err = parse_err(read.packet)) {
    return "ERR " + std::to_string(err->code) + " (" + err->sqlstate + ") seq " +
           std::to_string(err->seq) + ": " + err->message;
  }
  return "packet seq " + std::to_string(read.packet.seq) + " of " +
         std::to_string(read.packet.payload.size()) + " bytes";
}

int local_port(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
  return ntohs(addr.sin_port);
}

int remote_port(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
  return ntohs(addr.sin_port);
}

std::string tcp_state(int local_port, int remote_port) {
  static const char* const kStates[] = {
      "?",     "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2",   "TIME_WAIT",
      "CLOSE", "CLOSE_WAIT",  "LAST_ACK", "LISTEN",   "CLOSING",   "NEW_SYN_RECV"};
  std::ifstream in("/proc/net/tcp");
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    // "  0: 0100007F:1F91 0100007F:9C40 01 ..." : slot, local, remote (hex), state (hex)
    std::istringstream fields(line);
    std::string slot, local, remote, state;
    if (!(fields >> slot >> local >> remote >> state)) continue;
    auto port_of = [](const std::string& a) {
      const auto colon = a.rfind(':');
      return colon == std::string::npos ? -1 : std::stoi(a.substr(colon + 1), nullptr, 16);
    };
    if (port_of(local) != local_port || port_of(remote) != remote_port) continue;
    const int s = std::stoi(state, nullptr, 16);
    return s > 0 && s < static_cast<int>(std::size(kStates)) ? kStates[s] : "?";
  }
  return "absent";
}

}  // namespace sluice::test::fault
