// One worker's epoll set for its sockets, with the worker's libuv loop embedded as one more fd.
#include "proxy/poller.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

namespace sluice {
namespace {

// The embedded loop's events carry this slot; dropped ones carry nullptr.
PollSlot embedded_marker;

}  // namespace

Poller::Poller() {
  epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) error_ = std::string("epoll_create1: ") + std::strerror(errno);
}

Poller::~Poller() {
  if (epfd_ >= 0) ::close(epfd_);
}

bool Poller::embed(int fd) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = &embedded_marker;
  if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0) return true;
  error_ = std::string("epoll_ctl: ") + std::strerror(errno);
  return false;
}

void Poller::watch(PollSlot& slot, std::uint32_t interest) {
  if (interest == slot.interest) return;
  epoll_event ev{};
  ev.events = interest;
  ev.data.ptr = &slot;
  // Out of the set rather than registered for nothing: a level-triggered
  // EPOLLHUP or EPOLLERR is reported whatever the interest, and would wake
  // the loop again and again for a socket nobody is reading.
  const int op = interest == 0 ? EPOLL_CTL_DEL : slot.interest == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
  // It cannot fail for an open socket of ours; if it did, the socket would
  // simply not be woken for, and the session's deadlines would end it.
  [[maybe_unused]] const int rc = ::epoll_ctl(epfd_, op, slot.fd, &ev);
  slot.interest = interest;
}

void Poller::forget(PollSlot& slot) {
  if (slot.interest != 0) {
    epoll_event ev{};
    ::epoll_ctl(epfd_, EPOLL_CTL_DEL, slot.fd, &ev);
    slot.interest = 0;
  }
  for (int i = delivering_ + 1; i < ready_; ++i) {
    if (events_[i].data.ptr == &slot) events_[i].data.ptr = nullptr;
  }
}

int Poller::wait(int timeout_ms) {
  // The raw system call: libc's epoll_wait is a thread cancellation point,
  // which brackets it with two atomic read-modify-writes; no thread of
  // sluice is ever cancelled.
  const long n =
      ::syscall(SYS_epoll_pwait, epfd_, events_.data(), kMaxEvents, timeout_ms, nullptr, _NSIG / 8);
  return n > 0 ? static_cast<int>(n) : 0;  // EINTR: the caller looks again
}

bool Poller::deliver(int ready) {
  ready_ = ready;
  bool embedded_ready = false;
  for (delivering_ = 0; delivering_ < ready_; ++delivering_) {
    const epoll_event& ev = events_[delivering_];
    auto* slot = static_cast<PollSlot*>(ev.data.ptr);
    if (slot == &embedded_marker) {
      embedded_ready = true;
    } else if (slot != nullptr) {
      slot->on_events(*slot, ev.events);
    }
  }
  ready_ = delivering_ = 0;
  return embedded_ready;
}

}  // namespace sluice
