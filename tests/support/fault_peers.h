// Misbehaving peers for timeout and failover tests: upstreams that never greet, hang up,
// refuse or drop connections, and small helpers (waiting on a condition, scoped env vars).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace sluice::test::fault {

// A TCP listener on 127.0.0.1 (kernel-chosen port) run by a background thread
// that accepts every connection and then either
//   kBlackHole:   holds it open and never sends a byte (what it receives is
//                 discarded); it is closed once the peer closes, or at the end;
//   kAcceptClose: closes it at once (an upstream that accepts, then hangs up
//                 before any greeting).
class FakeUpstream {
 public:
  enum class Mode { kBlackHole, kAcceptClose };
  explicit FakeUpstream(Mode mode);
  ~FakeUpstream();
  FakeUpstream(const FakeUpstream&) = delete;
  FakeUpstream& operator=(const FakeUpstream&) = delete;

  int port() const { return port_; }
  // Connections accepted so far, and how many are still held open (black hole).
  int accepted() const { return accepted_.load(); }
  int open_now() const { return open_.load(); }

 private:
  void run();

  Mode mode_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;  // eventfd that stops the thread
  int port_ = 0;
  std::atomic<int> accepted_{0};
  std::atomic<int> open_{0};
  std::thread thread_;
};

// One connection of a ScriptedUpstream, as its script sees it.
class ScriptedConn {
 public:
  ScriptedConn(int fd, int wake_fd) : fd_(fd), wake_fd_(wake_fd) {}
  int fd() const { return fd_; }
  // Writes all of `bytes`; false when the peer is gone or the upstream stops.
  bool send(std::string_view bytes);
  // Reads one frame and returns its payload; nullopt on close, error or timeout.
  std::optional<std::string> read_frame(
      std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // Neither reads nor writes any more: waits until the peer closes (true) or
  // the upstream is destroyed (false).
  bool hold();

 private:
  int fd_;
  int wake_fd_;
  std::string buffer_;
};

// A fake MySQL server on 127.0.0.1 (kernel-chosen port): each accepted
// connection runs `script` on its own thread. For peers a real server cannot
// be made to be: one that stalls mid-packet, or stops reading.
class ScriptedUpstream {
 public:
  using Script = std::function<void(ScriptedConn&)>;
  explicit ScriptedUpstream(Script script);
  ~ScriptedUpstream();
  ScriptedUpstream(const ScriptedUpstream&) = delete;
  ScriptedUpstream& operator=(const ScriptedUpstream&) = delete;

  int port() const { return port_; }
  int accepted() const { return accepted_.load(); }
  // Scripts still running (a held connection counts until its peer closes).
  int running() const { return running_.load(); }

 private:
  Script script_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;
  int port_ = 0;
  std::atomic<int> accepted_{0};
  std::atomic<int> running_{0};
  std::mutex mutex_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

// A protocol-10 greeting payload (MariaDB-like, mysql_native_password) for
// scripts, and the OK that ends a login.
std::string fake_greeting(std::uint32_t connection_id);
std::string fake_ok_payload();

// A port on 127.0.0.1 that refuses connections at once (RST): a socket bound
// to it that never listens, so nobody else can take the port meanwhile.
class ClosedPort {
 public:
  ClosedPort();
  ~ClosedPort();
  ClosedPort(const ClosedPort&) = delete;
  ClosedPort& operator=(const ClosedPort&) = delete;
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// A listener whose accept queue is full (listen backlog 0, filled with
// connections that are never accepted): the kernel drops further SYNs, so a
// connect to it neither succeeds nor fails, like an unroutable host. Only
// loopback is involved. The constructor checks that a probe connect really
// stays pending and throws otherwise.
class DroppingUpstream {
 public:
  DroppingUpstream();
  ~DroppingUpstream();
  DroppingUpstream(const DroppingUpstream&) = delete;
  DroppingUpstream& operator=(const DroppingUpstream&) = delete;
  int port() const { return port_; }

 private:
  int listen_fd_ = -1;
  int port_ = 0;
  std::vector<int> fillers_;
};

// Sets environment variables for the lifetime of the object (e.g. LD_PRELOAD
// for a child spawned meanwhile), restoring the previous values afterwards.
class ScopedEnv {
 public:
  explicit ScopedEnv(const std::vector<std::pair<std::string, std::string>>& vars);
  ~ScopedEnv();
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

// Polls `condition` every `interval` until it holds (true) or `timeout` passes (false).
bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval = std::chrono::milliseconds(20));

// Seconds as a double, for messages.
double seconds(std::chrono::steady_clock::duration d);

}  // namespace sluice::test::fault
