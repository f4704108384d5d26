// One worker's epoll set for its sockets, with the worker's libuv loop embedded as one more fd.
#pragma once

#include <sys/epoll.h>

#include <array>
#include <cstdint>
#include <string>

namespace sluice {

// One socket's registration: the fd, what it waits for, and where its
// readiness goes. It lives inside its owner (a session), so the wakeup that
// delivers an event lands on memory the owner touches anyway.
struct PollSlot {
  using Callback = void (*)(PollSlot& slot, std::uint32_t events);
  Callback on_events = nullptr;
  void* owner = nullptr;
  int fd = -1;
  std::uint32_t interest = 0;  // EPOLLIN | EPOLLOUT registered now; 0 = not in the set
};

// Sockets are watched level-triggered, as libuv's uv_poll watches them: an
// event repeats until the owner reads, writes or stops waiting, so a read or
// write that stopped early (EAGAIN injected by a test, a buffer that filled)
// never loses readiness. The difference from uv_poll is the cost of a wakeup:
// libuv's loop runs its timer, idle, prepare, check and closing phases and
// libc's cancellable epoll_wait (two atomics) on every iteration, about 1,000
// instructions per point select; here a wakeup is one epoll_wait and a call
// per ready socket. libuv keeps everything else (async wake-ups, timers, the
// deadline timerfd, name lookups): its backend fd sits in this set, and the
// worker runs libuv's loop only when that fd is ready or a libuv timer is due.
class Poller {
 public:
  Poller();
  ~Poller();
  Poller(const Poller&) = delete;
  Poller& operator=(const Poller&) = delete;

  // Empty when the epoll set exists; else what failed.
  const std::string& error() const { return error_; }
  // Adds `fd` (libuv's backend fd) as the embedded loop: wait() reports it.
  bool embed(int fd);
  // Sets what `slot` waits for (EPOLLIN and/or EPOLLOUT; 0 takes it out of
  // the set). Only a change costs a system call.
  [[gnu::hot]] void watch(PollSlot& slot, std::uint32_t interest);
  // `slot`'s fd is about to be closed or replaced: it leaves the set, and
  // events of this wakeup not yet delivered to it are dropped (the fd number
  // may be reused within the same wakeup).
  void forget(PollSlot& slot);
  // Waits up to `timeout_ms` (-1: no limit); returns how many events are
  // ready (0 after a timeout or a signal).
  [[gnu::hot]] int wait(int timeout_ms);
  // Delivers the `ready` events of the last wait() to their slots. True when
  // the embedded loop's fd was among them.
  [[gnu::hot]] bool deliver(int ready);
  // True while delivering a wakeup of several events (whose writes are worth
  // batching); false for a lone event, and outside deliver().
  bool busy_wakeup() const { return ready_ > 1; }

 private:
  static constexpr int kMaxEvents = 256;
  int epfd_ = -1;
  std::string error_;
  // The wakeup being delivered: forget() scans its undelivered tail.
  std::array<epoll_event, kMaxEvents> events_{};
  int delivering_ = 0;  // index of the event being delivered
  int ready_ = 0;       // events in this wakeup
};

}  // namespace sluice
