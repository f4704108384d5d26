// Misbehaving peers for timeout and failover tests (see fault_peers.h).
#include "tests/support/fault_peers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace sluice::test::fault {
namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

sockaddr_in loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

// A TCP socket bound to 127.0.0.1 on a kernel-chosen port; returns the fd and sets *port.
int bound_socket(int* port, bool nonblocking) {
  const int fd =
      ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
  if (fd < 0) fail("socket");
  sockaddr_in addr = loopback(0);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    fail("bind 127.0.0.1:0");
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  *port = ntohs(addr.sin_port);
  return fd;
}

// Starts a non-blocking connect to 127.0.0.1:port; returns the fd.
int start_connect(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) fail("socket");
  sockaddr_in addr = loopback(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 && errno != EINPROGRESS) {
    ::close(fd);
    fail("connect");
  }
  return fd;
}

// True when the connect on `fd` completed (successfully) within `timeout`.
bool connect_completes(int fd, std::chrono::milliseconds timeout) {
  pollfd pfd{fd, POLLOUT, 0};
  if (::poll(&pfd, 1, static_cast<int>(timeout.count())) <= 0) return false;
  int error = 0;
  socklen_t len = sizeof error;
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len);
  return error == 0;
}

}  // namespace

FakeUpstream::FakeUpstream(Mode mode) : mode_(mode) {
  listen_fd_ = bound_socket(&port_, true);
  if (::listen(listen_fd_, 4096) != 0) fail("listen");
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) fail("eventfd");
  thread_ = std::thread([this] { run(); });
}

FakeUpstream::~FakeUpstream() {
  const std::uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(wake_fd_, &one, sizeof one);
  if (thread_.joinable()) thread_.join();
  ::close(wake_fd_);
  ::close(listen_fd_);
}

void FakeUpstream::run() {
  std::vector<pollfd> fds = {{wake_fd_, POLLIN, 0}, {listen_fd_, POLLIN, 0}};
  char sink[65536];
  while (true) {
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents != 0) break;
    if (fds[1].revents & POLLIN) {
      while (true) {
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) break;
        ++accepted_;
        if (mode_ == Mode::kAcceptClose) {
          ::close(fd);
          continue;
        }
        ++open_;
        fds.push_back({fd, POLLIN, 0});
      }
    }
    // Black hole: swallow input, let go of connections the peer closed.
    for (std::size_t i = 2; i < fds.size();) {
      bool gone = false;
      if (fds[i].revents != 0) {
        const ssize_t n = ::recv(fds[i].fd, sink, sizeof sink, 0);
        gone = n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR);
      }
      if (gone) {
        ::close(fds[i].fd);
        --open_;
        fds[i] = fds.back();
        fds.pop_back();
      } else {
        fds[i].revents = 0;
        ++i;
      }
    }
  }
  for (std::size_t i = 2; i < fds.size(); ++i) ::close(fds[i].fd);
  open_ = 0;
}

bool ScriptedConn::send(std::string_view bytes) {
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) return false;
    pollfd fds[2] = {{fd_, POLLOUT, 0}, {wake_fd_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) return false;
    if (fds[1].revents != 0) return false;
  }
  return true;
}

std::optional<std::string> ScriptedConn::read_frame(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  char chunk[65536];
  while (true) {
    if (buffer_.size() >= 4) {
      const std::size_t length =
          static_cast<unsigned char>(buffer_[0]) | static_cast<unsigned char>(buffer_[1]) << 8 |
          static_cast<std::size_t>(static_cast<unsigned char>(buffer_[2])) << 16;
      if (buffer_.size() >= 4 + length) {
        std::string payload = buffer_.substr(4, length);
        buffer_.erase(0, 4 + length);
        return payload;
      }
    }
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n > 0) {
      buffer_.append(chunk, static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0) return std::nullopt;
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return std::nullopt;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return std::nullopt;
    pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (::poll(fds, 2, static_cast<int>(left)) < 0 && errno != EINTR) return std::nullopt;
    if (fds[1].revents != 0) return std::nullopt;
  }
}

bool ScriptedConn::hold() {
  while (true) {
    pollfd fds[2] = {{fd_, POLLRDHUP, 0}, {wake_fd_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (fds[1].revents != 0) return false;
    if (fds[0].revents & (POLLRDHUP | POLLHUP | POLLERR)) return true;
  }
}

ScriptedUpstream::ScriptedUpstream(Script script) : script_(std::move(script)) {
  listen_fd_ = bound_socket(&port_, true);
  if (::listen(listen_fd_, 128) != 0) fail("listen");
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) fail("eventfd");
  acceptor_ = std::thread([this] {
    while (true) {
      pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {listen_fd_, POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0 && errno != EINTR) return;
      if (fds[0].revents != 0) return;
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) continue;
      ++accepted_;
      ++running_;
      const std::lock_guard lock(mutex_);
      threads_.emplace_back([this, fd] {
        ScriptedConn conn(fd, wake_fd_);
        try {
          script_(conn);
        } catch (...) {
        }
        ::close(fd);
        --running_;
      });
    }
  });
}

ScriptedUpstream::~ScriptedUpstream() {
  const std::uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(wake_fd_, &one, sizeof one);
  if (acceptor_.joinable()) acceptor_.join();
  for (auto& t : threads_) t.join();
  ::close(wake_fd_);
  ::close(listen_fd_);
}

std::string fake_greeting(std::uint32_t connection_id) {
  auto le = [](std::string* out, std::uint64_t v, int width) {
    for (int i = 0; i < width; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
  };
  // LONG_PASSWORD, CONNECT_WITH_DB, PROTOCOL_41, TRANSACTIONS, SECURE_CONNECTION,
  // MULTI_RESULTS, PLUGIN_AUTH.
  const std::uint32_t caps =
      1u | 8u | (1u << 9) | (1u << 13) | (1u << 15) | (1u << 17) | (1u << 19);
  std::string p;
  p.push_back('\x0a');
  p += "5.5.5-10.11.0-MariaDB-scripted";
  p.push_back('\0');
  le(&p, connection_id, 4);
  p += "abcdefgh";  // scramble, part 1
  p.push_back('\0');
  le(&p, caps & 0xFFFF, 2);
  p.push_back('\x21');  // utf8mb3_general_ci
  le(&p, 0x0002, 2);    // SERVER_STATUS_AUTOCOMMIT
  le(&p, caps >> 16, 2);
  p.push_back(static_cast<char>(21));
  p += std::string(10, '\0');
  p += "ijklmnopqrst";  // scramble, part 2
  p.push_back('\0');
  p += "mysql_native_password";
  p.push_back('\0');
  return p;
}

std::string fake_ok_payload() {
  return std::string("\x00\x00\x00\x02\x00\x00\x00", 7);
}

ClosedPort::ClosedPort() {
  fd_ = bound_socket(&port_, false);
}

ClosedPort::~ClosedPort() {
  ::close(fd_);
}

DroppingUpstream::DroppingUpstream() {
  listen_fd_ = bound_socket(&port_, true);
  if (::listen(listen_fd_, 0) != 0) fail("listen");
  // Queue connections that are never accepted until one stays pending: from
  // then on the accept queue is full and every SYN is dropped.
  for (int i = 0; i < 64; ++i) {
    const int fd = start_connect(port_);
    fillers_.push_back(fd);
    if (!connect_completes(fd, std::chrono::milliseconds(300))) {
      // Double-check with a probe of our own before trusting it.
      const int probe = start_connect(port_);
      const bool pending = !connect_completes(probe, std::chrono::milliseconds(300));
      ::close(probe);
      if (pending) return;
    }
  }
  for (int fd : fillers_) ::close(fd);
  ::close(listen_fd_);
  throw std::runtime_error("DroppingUpstream: the accept queue never filled up");
}

DroppingUpstream::~DroppingUpstream() {
  for (int fd : fillers_) ::close(fd);
  ::close(listen_fd_);
}

ScopedEnv::ScopedEnv(const std::vector<std::pair<std::string, std::string>>& vars) {
  for (const auto& [name, value] : vars) {
    const char* old = std::getenv(name.c_str());
    saved_.emplace_back(name, old != nullptr ? std::optional<std::string>(old) : std::nullopt);
    ::setenv(name.c_str(), value.c_str(), 1);
  }
}

ScopedEnv::~ScopedEnv() {
  for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) {
    if (it->second) {
      ::setenv(it->first.c_str(), it->second->c_str(), 1);
    } else {
      ::unsetenv(it->first.c_str());
    }
  }
}

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval) {
  const auto deadline = Clock::now() + timeout;
  while (!condition()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(interval);
  }
  return true;
}

double seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace sluice::test::fault
