// One proxied client connection: lifecycle, poll interest, deadlines, and the one teardown path.
#include "proxy/session.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

#include "common/err_packet.h"
#include "proxy/log.h"
#include "proxy/worker.h"

namespace sluice {
namespace {

// How long a closing session keeps reading (and discarding) what the client
// still sends, so the client reads our ERR instead of a connection reset.
constexpr std::uint64_t kLingerMs = 2000;
// How often a read paused by memory_limit asks the budget again.
constexpr std::uint64_t kMemoryRetryMs = 5;

constexpr std::string_view kReasonNames[] = {"client_quit",      "client_closed",
                                             "server_closed",    "upstream_unavailable",
                                             "connect_timeout",  "handshake_timeout",
                                             "read_timeout",     "write_timeout",
                                             "idle_timeout",     "read_error",
                                             "write_error",      "client_write_error",
                                             "packet_too_large", "server_packet_too_large",
                                             "out_of_memory",    "out_of_order",
                                             "bad_handshake",    "shutdown"};

// A peer that stopped reading would keep a plain close()'s queued bytes in
// the kernel until it gives up; a reset frees them at once.
void close_fd(int fd, bool reset) {
  if (reset) {
    const linger abort{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
  }
  ::close(fd);
}

// An error or hang-up is handed to whatever the socket waits for (an error
// to both, as libuv does): the system calls then report it, after any data
// still readable.
std::uint32_t with_failure(const PollSlot& slot, std::uint32_t events) {
  if (events & EPOLLERR) return events | EPOLLIN | EPOLLOUT;
  if (events & EPOLLHUP) return events | slot.interest;
  return events;
}

}  // namespace

static_assert(std::size(kReasonNames) == static_cast<std::size_t>(CloseReason::kShutdown) + 1,
              "one name per close reason");

std::string_view close_reason_name(CloseReason r) {
  return kReasonNames[static_cast<std::size_t>(r)];
}

Session::Session(Worker& worker, std::size_t listener, int client_fd, std::string client_addr)
    : worker_(worker),
      listener_(listener),
      cfg_(&worker.runtime().config.listeners[listener]),
      errors_(&worker.runtime().config.errors),
      stats_(worker.stats().listeners[listener]),
      io_(worker.sys(), cfg_->net_retry_count),
      client_fd_(client_fd),
      client_addr_(std::move(client_addr)) {}

Session::~Session() = default;

std::uint64_t Session::now() const {
  return worker_.now_ms();
}

void Session::start() {
  client_slot_ = {&Session::on_client_events, this, client_fd_, 0};
  server_slot_ = {&Session::on_server_events, this, -1, 0};
  deadline_ = worker_.no_deadline();
  started_ms_ = now();
  handshake_deadline_ = started_ms_ + static_cast<std::uint64_t>(cfg_->handshake_timeout.count());
  stats_.connections_active.add(1);
  counted_active_ = true;
  connect_next_upstream();
  if (closed()) return;
  update_poll();
  arm_timer();
}

bool Session::reading_allowed(const Pipe& p) const {
  if (p.eof || p.blocked || p.ticket != 0 || p.turn_wait) return false;
  if (&p == &c2s_) {
    // Before the greeting the client may only send a PROXY header.
    if (phase_ == Phase::kConnecting || phase_ == Phase::kAwaitGreeting) {
      return !pre_greeting_done_;
    }
    return held_commands_ == 0;
  }
  return phase_ != Phase::kConnecting;
}

// Recomputes what each socket waits for; the poller makes a system call
// only when that changed: no epoll_ctl churn on the per-packet path.
void Session::update_poll() {
  if (phase_ == Phase::kClosed) return;
  std::uint32_t client = 0;
  std::uint32_t server = 0;
  if (phase_ == Phase::kLinger) {
    if (!c2s_.eof) client = EPOLLIN;
    if (owes_client()) client |= EPOLLOUT;
  } else {
    if (reading_allowed(c2s_)) {
      client |= EPOLLIN;
    } else if (held_commands_ != 0 && !c2s_.eof && !client_done_) {
      client |= EPOLLRDHUP;  // see client_done_while_holding
    }
    if (s2c_.write_deadline != 0) client |= EPOLLOUT;
    if (phase_ == Phase::kConnecting) {
      server = EPOLLOUT;
    } else {
      if (reading_allowed(s2c_)) server |= EPOLLIN;
      if (c2s_.write_deadline != 0) server |= EPOLLOUT;
    }
  }
  Poller& poller = worker_.poller();
  poller.watch(client_slot_, client);
  if (server_fd_ >= 0) poller.watch(server_slot_, server);
}

void Session::on_client_events(PollSlot& slot, std::uint32_t events) {
  auto* s = static_cast<Session*>(slot.owner);
  if ((events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && s->held_commands_ != 0 && !s->client_done_ &&
      !s->closed()) [[unlikely]] {
    s->client_done_while_holding();
    if (s->closed()) return;
    events |= EPOLLIN;  // what the client sent last, then its EOF
  }
  events = with_failure(slot, events);
  if (events & EPOLLOUT) s->on_writable(s->s2c_);
  if (!(events & EPOLLIN) || s->phase_ == Phase::kClosed) return;
  if (s->phase_ == Phase::kLinger) {
    s->on_linger_readable();
  } else if (s->refusal_) [[unlikely]] {
    s->on_refused_readable();
  } else {
    s->on_readable(s->c2s_);
  }
}

void Session::on_server_events(PollSlot& slot, std::uint32_t events) {
  auto* s = static_cast<Session*>(slot.owner);
  if (s->closed()) return;
  events = with_failure(slot, events);
  if (s->phase_ == Phase::kConnecting) {
    if (events & EPOLLOUT) s->on_connect_ready();
    return;
  }
  if (events & EPOLLOUT) s->on_writable(s->c2s_);
  if ((events & EPOLLIN) && !s->closed()) s->on_readable(s->s2c_);
}

void Session::arm_timer() {
  if (phase_ == Phase::kClosed) return;
  // 0 means "not set": minus one wraps it to the largest value, which never
  // wins the minimum, and plus one at the end wraps "none" back to 0.
  std::uint64_t earliest =
      std::min({connect_deadline_ - 1, handshake_deadline_ - 1, idle_deadline_ - 1,
                linger_deadline_ - 1, c2s_.write_deadline - 1, s2c_.write_deadline - 1});
  for (const Pipe* p : {&c2s_, &s2c_}) {
    // Paused time does not count towards the read deadline.
    if (p->paused_at == 0) earliest = std::min(earliest, p->read_deadline - 1);
    if (p->ticket != 0 || p->turn_wait) [[unlikely]] {
      earliest = std::min(earliest, now() + kMemoryRetryMs - 1);
    }
  }
  const std::uint64_t due = earliest + 1;
  // Lazy: a timer that fires earlier than needed, or when nothing is due any
  // more, just re-arms (or not), so pushing a deadline later or clearing it
  // (every command does both) costs nothing.
  if (due == 0 || (timer_due_ != 0 && timer_due_ <= due)) return;
  cancel_timer();
  timer_due_ = due;
  deadline_ = worker_.schedule(this, due);
}

void Session::cancel_timer() {
  if (timer_due_ == 0) return;
  worker_.unschedule(deadline_);
  deadline_ = worker_.no_deadline();
  timer_due_ = 0;
}

void Session::forget_deadline() {
  timer_due_ = 0;
  deadline_ = worker_.no_deadline();
}

void Session::on_deadline() {
  if (phase_ == Phase::kClosed) return;
  on_timer();
}

void Session::on_timer() {
  const std::uint64_t t = now();
  auto expired = [t](std::uint64_t d) { return d != 0 && d <= t; };
  const ErrContext ctx{0, 0, Millis{0}, cfg_->name};
  if (expired(linger_deadline_)) {
    // What is owed to the client (the server's last packets, the ERR) still
    // reaches it, however slowly it reads, after its FIN and in the linger
    // alike: a client that stopped reading is net_write_timeout's to cut
    // (below). The deadline waits on.
    if (!owes_client()) return finish_close();
    linger_deadline_ = after(phase_ == Phase::kLinger ? linger_wait() : cfg_->net_read_timeout);
  }
  if (expired(connect_deadline_)) {
    connect_deadline_ = 0;
    // A greeting that has begun to arrive is the read timeouts' to watch.
    if (phase_ == Phase::kConnecting || s2c_.buf.received() == 0) {
      stats_.timeouts[idx(TimeoutKind::kConnect)].add();
      connect_failed(phase_ == Phase::kConnecting ? "connect timeout"
                                                  : "no greeting within connect_timeout");
      if (closed()) return;
    }
  }
  if (expired(handshake_deadline_) && (phase_ < Phase::kCommand || phase_ == Phase::kOpaque)) {
    stats_.timeouts[idx(TimeoutKind::kHandshake)].add();
    // Inside TLS no plaintext ERR can be read.
    if (phase_ == Phase::kOpaque) return close(CloseReason::kHandshakeTimeout);
    ErrContext c = ctx;
    c.timeout = cfg_->handshake_timeout;
    const bool client_waits = phase_ == Phase::kConnecting || phase_ == Phase::kAwaitGreeting ||
                              (phase_ == Phase::kAuth && !auth_waiting_client_);
    if (!client_waits) return close(CloseReason::kHandshakeTimeout);
    const std::uint8_t seq = phase_ == Phase::kAuth ? client_expects_ : 0;
    return send_error_and_close(CloseReason::kHandshakeTimeout, ErrorKind::kReadTimeout, seq, c);
  }
  for (Pipe* p : {&c2s_, &s2c_}) {
    if ((p->ticket != 0 || p->turn_wait) && ensure_room(*p)) {
      // The memory wait is over; the packet's read deadline resumes.
      resume(*p);
    }
    if (p->paused_at == 0 && expired(p->read_deadline)) {
      stats_.timeouts[idx(TimeoutKind::kRead)].add();
      ErrContext c = ctx;
      c.timeout = cfg_->net_read_timeout;
      std::uint8_t seq = client_expects_;
      if (p == &c2s_) {
        // One past the stalled frame's seq. A frame whose header has not
        // arrived whole carries the seq it would have had: 0 for a new
        // command, else the next one in the exchange.
        const bool in_payload = c2s_.framer.payload_left() > 0;
        const bool new_command = phase_ == Phase::kCommand && c2s_.framer.logical_so_far() == 0;
        const std::uint8_t stalled = in_payload ? c2s_.last_seq : new_command ? 0 : next_seq_;
        seq = static_cast<std::uint8_t>(stalled + 1);
      }
      return send_error_and_close(CloseReason::kReadTimeout, ErrorKind::kReadTimeout, seq, c);
    }
  }
  if (expired(c2s_.write_deadline)) {
    // The server stopped reading: the client can still be told.
    stats_.timeouts[idx(TimeoutKind::kWrite)].add();
    reset_server_ = true;
    ErrContext c = ctx;
    c.timeout = cfg_->net_write_timeout;
    return send_error_and_close(CloseReason::kWriteTimeout, ErrorKind::kWriteTimeout,
                                client_expects_, c);
  }
  if (expired(s2c_.write_deadline)) {
    // The client stopped reading: no ERR can reach it.
    stats_.timeouts[idx(TimeoutKind::kWrite)].add();
    reset_client_ = true;
    return close(CloseReason::kWriteTimeout);
  }
  if (expired(idle_deadline_)) {
    idle_deadline_ = 0;
    if (phase_ == Phase::kOpaque) {
      stats_.timeouts[idx(TimeoutKind::kIdle)].add();
      return close(CloseReason::kIdleTimeout);
    }
    // A session whose responses can no longer be followed is idle when
    // nothing has moved either way for wait_timeout.
    const bool quiet = tracker_.lost() && phase_ == Phase::kCommand && c2s_.buf.empty() &&
                       s2c_.buf.empty() && framing_at_boundary(c2s_) && framing_at_boundary(s2c_);
    if (idle_between_commands() || quiet) {
      stats_.timeouts[idx(TimeoutKind::kIdle)].add();
      ErrContext c = ctx;
      c.timeout = cfg_->wait_timeout;
      return send_error_and_close(CloseReason::kIdleTimeout, ErrorKind::kIdleTimeout, 0, c);
    }
  }
  update_poll();
  arm_timer();
}

bool Session::idle_between_commands() const {
  return phase_ == Phase::kCommand && tracker_.idle() && !tracker_.lost() && c2s_.buf.empty() &&
         s2c_.buf.empty() && framing_at_boundary(c2s_) && framing_at_boundary(s2c_);
}

// Reading `p` was paused by sluice itself (memory_limit, or a destination
// that does not drain): that time does not count towards net_read_timeout.
void Session::resume(Pipe& p) {
  if (p.paused_at == 0) return;
  if (p.read_deadline != 0) p.read_deadline += now() - p.paused_at;
  p.paused_at = 0;
}

void Session::count_io(SysOp op, const IoResult& r) {
  if (r.retries != 0) stats_.eintr_retries[idx(op)].add(r.retries);
  if (r.status == IoStatus::kError || r.status == IoStatus::kExhausted) {
    stats_.io_errors[idx(op)].add();
  }
}

void Session::apply_config(const RuntimeConfig& rc) {
  const std::uint64_t old_wait = static_cast<std::uint64_t>(cfg_->wait_timeout.count());
  cfg_ = &rc.config.listeners[listener_];
  errors_ = &rc.config.errors;
  io_.set_retry_budget(cfg_->net_retry_count);
  // A session idle now has no next packet to take a new wait_timeout from:
  // its idleness counts from its last exchange under the new value at once
  // (a DBA lowering it from 8h expects the idle sessions to go).
  const std::uint64_t new_wait = static_cast<std::uint64_t>(cfg_->wait_timeout.count());
  if (idle_deadline_ != 0 && new_wait != old_wait) {
    const std::uint64_t idle_since = idle_deadline_ - old_wait;
    idle_deadline_ = std::max<std::uint64_t>(idle_since + new_wait, 1);
    arm_timer();
  }
}

void Session::begin_drain() {
  draining_ = true;
  if (closed()) return;
  if (idle_between_commands()) return close(CloseReason::kShutdown);
  close_when_flushed_ = true;
}

void Session::send_error_and_close(CloseReason reason, ErrorKind kind, std::uint8_t seq,
                                   const ErrContext& ctx) {
  if (closed()) return;
  reason_ = reason;
  // Inside TLS the client could not read a plaintext ERR, nor in the middle
  // of a packet streaming to it: it just sees the close, as if from the server.
  to_client_ = phase_ == Phase::kOpaque || s2c_.streaming ? std::vector<std::uint8_t>{}
                                                          : error_packet(kind, seq, ctx);
  to_client_sent_ = 0;
  enter_linger();
}

void Session::close(CloseReason reason) {
  if (phase_ == Phase::kClosed) return;
  // A lingering session was logged with its reason when it began to close;
  // whatever cuts it now (net_write_timeout, shutdown_timeout) just ends it.
  if (phase_ != Phase::kLinger) reason_ = reason;
  finish_close();
}

// The upstream goes at once; the client side stays open just long enough to
// take the whole packets already owed to it and the ERR, then a FIN.
void Session::enter_linger() {
  // Logged now, when it happens, not when the client has read the ERR (up to
  // the linger's end); nothing left to count changes meanwhile.
  log_close();
  leave_active();  // closing: no longer an open session, whatever the client still reads
  close_server_side();
  release_slot();
  c2s_.buf.drop_partial();
  release_memory(c2s_);
  s2c_.buf.drop_partial();
  phase_ = Phase::kLinger;
  connect_deadline_ = handshake_deadline_ = idle_deadline_ = 0;
  c2s_.read_deadline = s2c_.read_deadline = c2s_.write_deadline = 0;
  worker_.budget().cancel(&c2s_.ticket);
  worker_.budget().cancel(&s2c_.ticket);
  linger_deadline_ = after(linger_wait());
  on_writable(s2c_);
  if (phase_ == Phase::kClosed) return;
  update_poll();
  arm_timer();
}

// How long a closing session waits for its client's FIN once it has been
// sent everything owed to it (and before then, how often it looks).
Millis Session::linger_wait() const {
  return std::min(Millis{kLingerMs}, cfg_->net_write_timeout);
}

bool Session::owes_client() const {
  return s2c_.buf.pending() > 0 || to_client_sent_ < to_client_.size();
}

void Session::on_linger_readable() {
  const IoResult r = discard_client_input();
  if (r.status == IoStatus::kOk || r.status == IoStatus::kWouldBlock) return;
  if (r.status == IoStatus::kEof && owes_client()) {
    // A FIN says only that the client sends no more: it may still read what
    // is owed to it (a half-closed client does), and gets it before the close.
    c2s_.eof = true;
    return update_poll();
  }
  finish_close();  // EOF or error: the client has what it will get
}

// After a refused client packet, while the server still answers the commands
// before it: what the client sends is read and thrown away, so a client
// still writing can get to reading that answer.
void Session::on_refused_readable() {
  const IoResult r = discard_client_input();
  switch (r.status) {
    case IoStatus::kOk:
    case IoStatus::kWouldBlock:
    case IoStatus::kInProgress:
      return;
    case IoStatus::kEof:
      // It may still read: the answer and the ERR are still sent.
      c2s_.eof = true;
      update_poll();
      return;
    default:
      // A reset (or EINTR past net_retry_count): the client cannot be
      // followed any further, so the session ends here, as refused.
      close(reason_);
  }
}

// One read of the client's bytes into a sink: never more than this held.
IoResult Session::discard_client_input() {
  std::uint8_t sink[16384];
  iovec iov{sink, sizeof sink};
  const IoResult r = io_.read(client_fd_, &iov, 1);
  count_io(SysOp::kRead, r);
  return r;
}

void Session::close_server_side() {
  if (server_fd_ < 0) return;
  worker_.poller().forget(server_slot_);
  close_fd(server_fd_, reset_server_);
  server_fd_ = server_slot_.fd = -1;
}

void Session::release_memory(Pipe& p) {
  p.buf.reset();
  if (p.reserved != 0) worker_.budget().release(p.reserved);
  p.reserved = 0;
  if (p.holds_large_turn) worker_.budget().release_large_turn(&p);
  p.holds_large_turn = false;
}

void Session::finish_close() {
  if (phase_ == Phase::kClosed) return;
  phase_ = Phase::kClosed;
  log_close();
  close_server_side();
  for (Pipe* p : {&c2s_, &s2c_}) {
    worker_.budget().cancel(&p->ticket);
    release_memory(*p);
  }
  leave_active();
  release_slot();
  cancel_timer();
  worker_.poller().forget(client_slot_);
  close_fd(client_fd_, reset_client_);
  client_fd_ = client_slot_.fd = -1;
  worker_.on_session_closed(this);
}

void Session::leave_active() {
  if (!counted_active_) return;
  counted_active_ = false;
  stats_.connections_active.add(-1);
}

// The max_connections slot is held while the upstream connection is (after
// the client's FIN too, as mysqld holds the thread until it reads the EOF)
// and freed with it: a closing session that lingers for its client to read
// the last bytes (after COM_QUIT, say) no longer holds one, as mysqld frees
// the thread on COM_QUIT.
void Session::release_slot() {
  if (!holds_slot_) return;
  holds_slot_ = false;
  worker_.shared(listener_).active.fetch_sub(1, std::memory_order_relaxed);
}

void Session::log_close() {
  if (close_logged_) return;
  close_logged_ = true;
  log_event(LogLevel::kInfo, "session_close", field("listener", cfg_->name),
            field("client", client_addr_), field("user", user_), field("database", database_),
            field("upstream", upstream_addr_),
            number("server_thread", std::uint64_t{connection_id_}),
            number("duration_s", static_cast<double>(now() - started_ms_) / 1000.0),
            number("c2s_bytes", c2s_.bytes), number("c2s_packets", c2s_.packets),
            number("s2c_bytes", s2c_.bytes), number("s2c_packets", s2c_.packets),
            field("reason", std::string(close_reason_name(reason_))));
}

}  // namespace sluice
