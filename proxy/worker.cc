// One event-loop thread: its own listening sockets (SO_REUSEPORT), its sessions, no shared locks.
#include "proxy/worker.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "common/err_packet.h"
#include "proxy/log.h"
#include "proxy/session.h"

namespace sluice {
namespace {

constexpr int kBacklog = 4096;
constexpr int kAcceptBatch = 64;  // accepts per readiness event, for fairness
constexpr std::size_t kPoolMaxFree = 256;
constexpr std::uint64_t kResolveIntervalMs = 5000;
// A large packet's buffer is kept this long for the next large packet: long
// enough for a client's next statements (a SELECT and a DELETE between two
// blob INSERTs take over a second on a busy machine), short enough that RSS
// comes back soon after. Fresh pages cost far more than reused ones: each
// must be zeroed, and on a VM that hands free memory back to its host
// (free page reporting), faulted in by the host again.
constexpr std::uint64_t kSpareKeepMs = 5000;
constexpr std::uint64_t kSpareCheckMs = 50;
// Smaller buffers come from malloc's heap (M_MMAP_THRESHOLD is 1 MiB, see
// server.cc): freeing and allocating them again faults in nothing.
constexpr std::size_t kSpareMinBytes = 1 << 20;

// The read block every session's buffer starts with: the largest listener's
// net_buffer_length (at least a page), fixed at start. Each listener's own
// value caps its reads into it (Session::on_readable).
std::size_t read_block_size(const Config& config) {
  std::size_t block = 4096;
  for (const ListenerConfig& l : config.listeners) {
    block = std::max<std::size_t>(block, l.net_buffer_length);
  }
  return block;
}

std::string peer_text(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  char host[INET6_ADDRSTRLEN] = "?";
  std::uint16_t port = 0;
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    port = ntohs(a->sin_port);
    return std::string(host) + ":" + std::to_string(port);
  }
  const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
  ::inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
  port = ntohs(a->sin6_port);
  return "[" + std::string(host) + "]:" + std::to_string(port);
}

}  // namespace

Worker::Worker(std::size_t id, std::shared_ptr<const RuntimeConfig> config, MemoryBudget& budget,
               std::vector<ListenerShared>& shared, Syscalls& sys)
    : id_(id),
      config_(std::move(config)),
      budget_(budget),
      shared_(shared),
      sys_(sys),
      io_(sys, 10),
      stats_(config_->config.listeners.size()),
      pool_(read_block_size(config_->config), kPoolMaxFree),
      spare_(budget, kSpareMinBytes) {
  // Each of these takes a file descriptor. A failure (no fd left at start-up)
  // is reported by open_listeners(), and the worker never runs: libuv would
  // crash on a loop or handle that failed to initialise.
  if (const int rc = uv_loop_init(&loop_); rc != 0) {
    init_error_ = std::string("uv_loop_init: ") + uv_strerror(rc);
    return;
  }
  loop_ready_ = true;
  if (!poller_.error().empty() || !poller_.embed(uv_backend_fd(&loop_))) {
    init_error_ = poller_.error();
    return;
  }
  if (const int rc = uv_async_init(
          &loop_, &async_, [](uv_async_t* a) { static_cast<Worker*>(a->data)->on_async(); });
      rc != 0) {
    init_error_ = std::string("uv_async_init: ") + uv_strerror(rc);
    return;
  }
  async_.data = this;
  seed_upstreams();
  adopt_upstreams();
  uv_timer_init(&loop_, &resolve_timer_);
  resolve_timer_.data = this;
  uv_timer_start(
      &resolve_timer_, [](uv_timer_t* t) { static_cast<Worker*>(t->data)->resolve_names(); },
      kResolveIntervalMs, kResolveIntervalMs);
  // Only names need it; an idle worker with numeric upstreams never wakes.
  bool any_name = false;
  for (const auto& list : upstreams_) {
    for (const ResolvedAddress& a : list) any_name = any_name || !a.numeric;
  }
  if (!any_name) uv_timer_stop(&resolve_timer_);
  uv_unref(reinterpret_cast<uv_handle_t*>(&resolve_timer_));
  uv_timer_init(&loop_, &spare_timer_);
  spare_timer_.data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(&spare_timer_));
  timer_fd_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (timer_fd_ < 0) {
    init_error_ = std::string("timerfd_create: ") + std::strerror(errno);
    return;
  }
  uv_poll_init(&loop_, &timer_poll_, timer_fd_);
  timer_poll_.data = this;
  uv_poll_start(&timer_poll_, UV_READABLE,
                [](uv_poll_t* h, int, int) { static_cast<Worker*>(h->data)->on_deadlines(); });
  uv_unref(reinterpret_cast<uv_handle_t*>(&timer_poll_));
}

Worker::Deadlines::iterator Worker::schedule(Session* session, std::uint64_t due) {
  const auto it = deadlines_.emplace(due, session);
  if (it == deadlines_.begin()) arm_deadline_timer();
  return it;
}

void Worker::unschedule(Deadlines::iterator it) {
  // The timerfd stays set: if this was the earliest, it wakes the loop once
  // for nothing and is then set for the next one.
  deadlines_.erase(it);
}

void Worker::arm_deadline_timer() {
  if (deadlines_.empty()) return;
  const std::uint64_t due = deadlines_.begin()->first;
  if (timer_armed_for_ != 0 && timer_armed_for_ <= due) return;
  timer_armed_for_ = due;
  // Absolute CLOCK_MONOTONIC, as the worker's clock, one millisecond after
  // `due`: the clock in whole milliseconds has then reached it.
  const std::uint64_t ns = (due + 1) * 1'000'000ull;
  itimerspec when{};
  when.it_value.tv_sec = static_cast<time_t>(ns / 1'000'000'000ull);
  when.it_value.tv_nsec = static_cast<long>(ns % 1'000'000'000ull);
  ::timerfd_settime(timer_fd_, TFD_TIMER_ABSTIME, &when, nullptr);
}

void Worker::on_deadlines() {
  std::uint64_t expirations = 0;
  if (::read(timer_fd_, &expirations, sizeof expirations) < 0) {
    // EAGAIN: woken for nothing; the deadlines below are checked anyway.
  }
  timer_armed_for_ = 0;
  tick();
  const std::uint64_t now = now_ms();
  // Collected first: a session re-arming from its callback (even for a time
  // already past) is served on the next wakeup, never in this loop.
  due_now_.clear();
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    Session* session = deadlines_.begin()->second;
    deadlines_.erase(deadlines_.begin());
    session->forget_deadline();  // its entry is gone, whatever runs before its turn
    due_now_.push_back(session);
  }
  for (Session* session : due_now_) session->on_deadline();
  arm_deadline_timer();
}

void Worker::keep_spare(SpareBuffer::Block b) {
  spare_.keep(b);
  if (!spare_.held() || stopping_) return;
  spare_kept_at_ = now_ms();
  uv_wanted_ = true;  // the timer below is libuv's to run
  // Checked often while held: a packet waiting for memory in another worker
  // must not wait for the spare to go stale.
  uv_timer_start(
      &spare_timer_,
      [](uv_timer_t* t) {
        auto* w = static_cast<Worker*>(t->data);
        if (w->spare_.held() && !w->budget_.has_waiters() &&
            w->now_ms() - w->spare_kept_at_ < kSpareKeepMs) {
          return;
        }
        w->spare_.drop();
        uv_timer_stop(t);
      },
      kSpareCheckMs, kSpareCheckMs);
}

void Worker::adopt_upstreams() {
  upstreams_ = config_->upstreams;
}

// Looks every upstream name up again, off the loop (libuv's thread pool); a
// failed lookup keeps the last good address.
void Worker::resolve_names() {
  struct Lookup {
    uv_getaddrinfo_t req;
    Worker* worker;
    std::shared_ptr<const RuntimeConfig> config;  // the lookup's indexes refer to it
    std::size_t listener;
    std::size_t index;
  };
  for (std::size_t l = 0; l < upstreams_.size(); ++l) {
    for (std::size_t i = 0; i < upstreams_[l].size(); ++i) {
      const ResolvedAddress& a = upstreams_[l][i];
      if (a.numeric) continue;
      auto lookup = std::make_unique<Lookup>(Lookup{{}, this, config_, l, i});
      lookup->req.data = lookup.get();
      addrinfo hints{};
      hints.ai_family = AF_UNSPEC;
      hints.ai_socktype = SOCK_STREAM;
      const std::string port = std::to_string(a.where.port);
      const int rc = uv_getaddrinfo(
          &loop_, &lookup->req,
          [](uv_getaddrinfo_t* req, int status, addrinfo* res) {
            std::unique_ptr<Lookup> done(static_cast<Lookup*>(req->data));
            Worker* self = done->worker;
            // A reload in between replaced the table: this answer is stale.
            if (status == 0 && res != nullptr && self->config_ == done->config) {
              ResolvedAddress& target = self->upstreams_[done->listener][done->index];
              std::memcpy(&target.addr, res->ai_addr, res->ai_addrlen);
              target.len = res->ai_addrlen;
            }
            uv_freeaddrinfo(res);
          },
          a.where.host.c_str(), port.c_str(), &hints);
      if (rc == 0) lookup.release();  // owned by the request until its callback
    }
  }
}

void Worker::seed_upstreams() {
  for (std::size_t l = 0; l < config_->upstreams.size(); ++l) {
    for (const ResolvedAddress& u : config_->upstreams[l])
      stats_.listeners[l].seed_upstream(u.text);
  }
}

Worker::~Worker() {
  if (loop_ready_) {
    // A worker whose loop ran has closed every handle on its way out; one
    // that never ran (start-up failed after it was made) closes them here, so
    // that the loop frees what it allocated. The handles are members: their
    // close needs no callback.
    uv_walk(
        &loop_,
        [](uv_handle_t* h, void*) {
          if (!uv_is_closing(h)) uv_close(h, nullptr);
        },
        nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
  }
  for (auto& l : listeners_) {
    if (l->fd >= 0) ::close(l->fd);
  }
  if (timer_fd_ >= 0) ::close(timer_fd_);
}

bool Worker::open_listeners(const std::vector<std::uint16_t>& ports, std::string* error) {
  if (!init_error_.empty()) {
    *error = init_error_;
    return false;
  }
  const auto& listeners = config_->config.listeners;
  for (std::size_t i = 0; i < listeners.size(); ++i) {
    ResolvedAddress addr;
    HostPort where = listeners[i].listen;
    if (i < ports.size()) where.port = ports[i];
    if (!resolve_address(where, &addr, error)) return false;
    const int fd = ::socket(addr.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const int one = 1;
    // SO_REUSEPORT before bind: every worker binds the same port and the
    // kernel spreads new connections across them.
    if (fd < 0 || ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        ::bind(fd, reinterpret_cast<const sockaddr*>(&addr.addr), addr.len) != 0 ||
        ::listen(fd, kBacklog) != 0) {
      *error =
          "listeners[" + std::to_string(i) + "].listen " + addr.text + ": " + std::strerror(errno);
      if (fd >= 0) ::close(fd);
      return false;
    }
    auto l = std::make_unique<Listener>();
    l->worker = this;
    l->index = i;
    l->fd = fd;
    uv_poll_init_socket(&loop_, &l->poll, fd);
    l->poll.data = l.get();
    l->open = true;
    uv_poll_start(&l->poll, UV_READABLE, [](uv_poll_t* h, int, int) {
      auto* lis = static_cast<Listener*>(h->data);
      lis->worker->on_accept(*lis);
    });
    listeners_.push_back(std::move(l));
  }
  return true;
}

std::vector<std::uint16_t> Worker::bound_ports() const {
  std::vector<std::uint16_t> ports;
  for (const auto& l : listeners_) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ::getsockname(l->fd, reinterpret_cast<sockaddr*>(&ss), &len);
    ports.push_back(ntohs(ss.ss_family == AF_INET
                              ? reinterpret_cast<const sockaddr_in*>(&ss)->sin_port
                              : reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port));
  }
  return ports;
}

void Worker::start() {
  thread_ = std::thread([this] { run(); });
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::tick() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  now_ns_ = static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
            static_cast<std::uint64_t>(ts.tv_nsec);
}

// libuv's loop runs when it has something to do; in between, the sockets'
// events are delivered straight from this worker's own epoll set.
void Worker::run() {
  sys_.thread_started();
  for (;;) {
    tick();
    uv_run(&loop_, UV_RUN_NOWAIT);
    end_wakeup();
    if (!uv_loop_alive(&loop_)) break;
    serve_sockets();
  }
  if (on_exit_) on_exit_();
}

// Delivers socket events until libuv has work: its backend fd is ready (an
// async wake-up, a deadline, a new connection), one of its timers is due, or
// this thread changed its state.
void Worker::serve_sockets() {
  const int timeout = uv_backend_timeout(&loop_);  // -1: nothing timed
  if (timeout == 0) return;
  tick();
  const std::uint64_t uv_due = now_ms() + static_cast<std::uint64_t>(std::max(timeout, 0));
  uv_wanted_ = false;
  for (;;) {
    int wait_ms = -1;
    if (timeout > 0) wait_ms = uv_due > now_ms() ? static_cast<int>(uv_due - now_ms()) : 0;
    const int ready = poller_.wait(wait_ms);
    tick();
    const bool uv_ready = poller_.deliver(ready);
    end_wakeup();
    if (uv_ready || uv_wanted_ || (timeout > 0 && now_ms() >= uv_due)) return;
  }
}

void Worker::write_deferred() {
  // A write's outcome may let its session read again, and so owe more.
  while (!deferred_.empty()) {
    write_ops_.clear();
    for (Session* session : deferred_) session->collect_writes(write_ops_);
    deferred_.clear();
    if (write_ops_.empty()) return;
    sys_.writev_batch(write_ops_.data(), write_ops_.size());
    for (const WriteOp& op : write_ops_) static_cast<Session*>(op.owner)->on_batch_written(op);
  }
}

void Worker::free_closed_sessions() {
  for (Session* session : closed_) sessions_.erase(session);
  closed_.clear();
  maybe_stop();
}

void Worker::post_config(std::shared_ptr<const RuntimeConfig> config) {
  {
    std::lock_guard lock(inbox_mu_);
    pending_config_ = std::move(config);
  }
  uv_async_send(&async_);
}

void Worker::post_drain() {
  {
    std::lock_guard lock(inbox_mu_);
    pending_drain_ = true;
  }
  uv_async_send(&async_);
}

void Worker::post_force_close() {
  {
    std::lock_guard lock(inbox_mu_);
    pending_force_ = true;
  }
  uv_async_send(&async_);
}

void Worker::on_async() {
  std::shared_ptr<const RuntimeConfig> config;
  bool drain = false;
  bool force = false;
  {
    std::lock_guard lock(inbox_mu_);
    config = std::move(pending_config_);
    drain = pending_drain_;
    force = pending_force_;
    pending_drain_ = pending_force_ = false;
  }
  if (config) {
    // Every session switches to the new limits before the old config is
    // freed: a session compares the two (its wait_timeout), and this worker
    // may hold the old one's last reference.
    const std::shared_ptr<const RuntimeConfig> old = std::exchange(config_, std::move(config));
    seed_upstreams();
    adopt_upstreams();
    for (auto& [raw, session] : sessions_) raw->apply_config(*config_);
  }
  if (drain && !draining_) {
    draining_ = true;
    close_listeners();
    for (auto& [raw, session] : sessions_) raw->begin_drain();
  }
  if (force) {
    draining_ = true;
    close_listeners();
    for (auto& [raw, session] : sessions_) {
      // Still busy at shutdown_timeout: cut off, and counted as such.
      if (!raw->closed())
        stats_.listeners[raw->listener()].rejected[idx(RejectReason::kShutdown)].add();
      raw->close(CloseReason::kShutdown);
    }
  }
  maybe_stop();
}

void Worker::close_listeners() {
  for (auto& l : listeners_) {
    if (!l->open) continue;
    l->open = false;
    uv_close(reinterpret_cast<uv_handle_t*>(&l->poll), [](uv_handle_t* h) {
      auto* lis = static_cast<Listener*>(h->data);
      ::close(lis->fd);
      lis->fd = -1;
    });
  }
}

void Worker::maybe_stop() {
  if (!draining_ || stopping_ || !sessions_.empty()) return;
  stopping_ = true;
  uv_wanted_ = true;  // libuv's loop runs the closes below, then ends
  uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&resolve_timer_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&spare_timer_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_poll_), nullptr);
  spare_.drop();
}

void Worker::on_accept(Listener& l) {
  for (int i = 0; i < kAcceptBatch && l.open; ++i) {
    io_.set_retry_budget(config_->config.listeners[l.index].net_retry_count);
    const IoResult r = io_.accept(l.fd);
    ListenerStats& st = stats_.listeners[l.index];
    if (r.retries != 0) st.eintr_retries[idx(SysOp::kAccept)].add(r.retries);
    if (r.status == IoStatus::kWouldBlock) return;
    if (r.status != IoStatus::kOk) {
      st.io_errors[idx(SysOp::kAccept)].add();
      log_event(LogLevel::kWarn, "accept_failed",
                field("listener", config_->config.listeners[l.index].name),
                field("error", r.status == IoStatus::kExhausted ? "interrupted too often"
                                                                : std::strerror(r.error)));
      return;  // EMFILE and friends: try again on the next readiness event
    }
    admit(l, r.fd);
  }
}

void Worker::admit(Listener& l, int fd) {
  const ListenerConfig& cfg = config_->config.listeners[l.index];
  ListenerStats& st = stats_.listeners[l.index];
  st.connections_total.add();
  const std::uint32_t open = shared_[l.index].active.fetch_add(1, std::memory_order_relaxed);
  if (open >= cfg.max_connections) {
    shared_[l.index].active.fetch_sub(1, std::memory_order_relaxed);
    st.rejected[idx(RejectReason::kMaxConnections)].add();
    const std::string client = peer_text(fd);
    log_event(LogLevel::kWarn, "connection_rejected", field("listener", cfg.name),
              field("client", client), field("reason", "max_connections"));
    // The ERR takes the greeting's place (seq 0); no upstream is contacted.
    const ErrContext ctx{0, cfg.max_connections, Millis{0}, cfg.name};
    const auto err =
        encode_err_packet(config_->config.errors[ErrorKind::kTooManyConnections], 0, ctx);
    [[maybe_unused]] const ssize_t n = ::write(fd, err.data(), err.size());
    ::shutdown(fd, SHUT_WR);
    ::close(fd);
    return;
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  auto session = std::make_unique<Session>(*this, l.index, fd, peer_text(fd));
  Session* raw = session.get();
  sessions_.emplace(raw, std::move(session));
  raw->start();
}

// One atomic increment per new session (not per packet).
std::size_t Worker::next_upstream(std::size_t listener, std::size_t count) {
  return shared_[listener].round_robin.fetch_add(1, std::memory_order_relaxed) % count;
}

void Worker::on_session_closed(Session* session) {
  closed_.push_back(session);
}

}  // namespace sluice
