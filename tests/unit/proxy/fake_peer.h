// Blocking-socket MySQL peers for loop-level tests: a fake server's greeting/OK, a client's hello.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

namespace sluice::testing {

using Bytes = std::vector<std::uint8_t>;

inline Bytes frame(std::uint8_t seq, const Bytes& payload) {
  Bytes out{static_cast<std::uint8_t>(payload.size()),
            static_cast<std::uint8_t>(payload.size() >> 8),
            static_cast<std::uint8_t>(payload.size() >> 16), seq};
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

inline void append(Bytes& b, const std::string& s, bool nul = true) {
  b.insert(b.end(), s.begin(), s.end());
  if (nul) b.push_back(0);
}

// Protocol-10 greeting with CLIENT_PROTOCOL_41 | SECURE_CONNECTION | PLUGIN_AUTH.
inline Bytes greeting_payload() {
  Bytes p{0x0A};
  append(p, "5.5.5-10.11.99-fake");
  p.insert(p.end(), {7, 0, 0, 0});  // connection id
  p.insert(p.end(), 8, 'a');        // auth data part 1
  p.push_back(0);                   // filler
  p.insert(p.end(), {0x00, 0x82});  // caps low: PROTOCOL_41 | SECURE_CONNECTION
  p.push_back(33);                  // charset
  p.insert(p.end(), {0x02, 0x00});  // status
  p.insert(p.end(), {0x08, 0x00});  // caps high: PLUGIN_AUTH
  p.push_back(21);                  // auth data length
  p.insert(p.end(), 10, 0);         // reserved
  p.insert(p.end(), 12, 'b');       // auth data part 2
  p.push_back(0);
  append(p, "mysql_native_password");
  return p;
}

inline Bytes hello_payload() {
  Bytes p{0x00, 0x82, 0x08, 0x00};  // PROTOCOL_41 | SECURE_CONNECTION | PLUGIN_AUTH
  p.insert(p.end(), {0, 0, 0, 1});  // max packet
  p.push_back(33);
  p.insert(p.end(), 23, 0);
  append(p, "root");
  p.push_back(0);  // empty auth response
  append(p, "mysql_native_password");
  return p;
}

inline Bytes ok_payload() {
  return {0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00};
}

inline int listen_loopback(std::uint16_t* port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::listen(fd, 64);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

// rcvbuf > 0 sets SO_RCVBUF before connecting, so the window never grows past it.
inline int connect_loopback(std::uint16_t port, int rcvbuf = 0) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (rcvbuf > 0) ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

inline int accept_within(int listen_fd, int timeout_ms) {
  pollfd p{listen_fd, POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) != 1) return -1;
  return ::accept(listen_fd, nullptr, nullptr);
}

inline bool send_all(int fd, const Bytes& b) {
  std::size_t off = 0;
  while (off < b.size()) {
    const ssize_t n = ::send(fd, b.data() + off, b.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<std::size_t>(n);
  }
  return true;
}

// Reads exactly n bytes within timeout_ms; returns fewer on EOF/timeout.
inline Bytes recv_n(int fd, std::size_t n, int timeout_ms = 5000) {
  Bytes out(n);
  std::size_t got = 0;
  while (got < n) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) != 1) break;
    const ssize_t r = ::recv(fd, out.data() + got, n - got, 0);
    if (r <= 0) break;
    got += static_cast<std::size_t>(r);
  }
  out.resize(got);
  return out;
}

struct Packet {
  bool ok = false;
  std::uint8_t seq = 0;
  Bytes payload;
};

// One frame (header + payload).
inline Packet recv_packet(int fd, int timeout_ms = 5000) {
  Packet p;
  const Bytes h = recv_n(fd, 4, timeout_ms);
  if (h.size() != 4) return p;
  const std::size_t len = h[0] | (h[1] << 8) | (h[2] << 16);
  p.seq = h[3];
  p.payload = recv_n(fd, len, timeout_ms);
  p.ok = p.payload.size() == len;
  return p;
}

// True when the peer closed (EOF or reset) within timeout_ms.
inline bool closed_within(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) != 1) return false;
  std::uint8_t b;
  const ssize_t r = ::recv(fd, &b, 1, MSG_PEEK);
  return r <= 0;
}

}  // namespace sluice::testing
