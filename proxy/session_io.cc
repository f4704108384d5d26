// Session's forward path: read into the pipe's buffer, frame it, write whole packets with writev.
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include <algorithm>

#include "common/err_packet.h"
#include "proxy/log.h"
#include "proxy/session.h"
#include "proxy/worker.h"

namespace sluice {
namespace {

constexpr std::size_t kCheapCompact = 64 << 10;

// mysqld never sends a packet of max_allowed_packet (at most 1 GiB) or more,
// so with a memory_limit of at least that no packet from a real server can
// need the out_of_memory refusal, which only a packet not yet forwarded can get.
constexpr std::uint64_t kNoServerPacketReaches = 1ull << 30;

}  // namespace

int Session::src_fd(const Pipe& p) const {
  return &p == &c2s_ ? client_fd_ : server_fd_;
}
int Session::dst_fd(const Pipe& p) const {
  return &p == &c2s_ ? server_fd_ : client_fd_;
}

// Optimistic: write in this wakeup, and wait for writability only after
// EAGAIN. While a write deadline runs the destination was full at the last
// try and its EPOLLOUT will come: writing now would only return EAGAIN
// again (a large row arriving faster than the client reads it did so on
// every read). In a wakeup of several events the write is deferred to its
// end, where every session's go out together (Worker::defer_write).
inline void Session::send_or_defer(Pipe& p) {
  if (p.write_deadline != 0) return;
  if (worker_.poller().busy_wakeup() && owes(p)) {
    if (!c2s_.write_deferred && !s2c_.write_deferred) worker_.defer_write(this);
    p.write_deferred = true;
  } else {
    flush(p);
  }
}

void Session::on_readable(Pipe& p) {
  if (!reading_allowed(p)) return update_poll();
  if (!ensure_room(p)) {
    update_poll();
    return arm_timer();
  }
  const auto tail = p.buf.tail();
  iovec iov{tail.data(), tail.size()};
  // net_buffer_length is the listener's read size (the block may be a larger
  // listener's): so at most that much of an oversized packet is ever held, one
  // read, dropped once framed. A buffer grown for a large packet reads all
  // that is there.
  if (p.buf.capacity() <= worker_.pool().block_size() || p.discarding) {
    iov.iov_len = std::min<std::size_t>(iov.iov_len, cfg_->net_buffer_length);
  }
  const IoResult r = io_.read(src_fd(p), &iov, 1);
  count_io(SysOp::kRead, r);
  switch (r.status) {
    case IoStatus::kOk:
      break;
    case IoStatus::kWouldBlock:
    case IoStatus::kInProgress:
      return;
    case IoStatus::kEof:
      return on_source_eof(p);
    case IoStatus::kError:
      // A server that resets the connection right after its last packet (as
      // mysqld does after ERR 1156) closed it: the client has the last word.
      if (&p == &s2c_ && r.error == ECONNRESET) return on_source_eof(p);
      [[fallthrough]];
    case IoStatus::kExhausted: {
      const ErrContext ctx{0, 0, Millis{0}, cfg_->name};
      return send_error_and_close(CloseReason::kReadError, ErrorKind::kReadError, client_expects_,
                                  ctx);
    }
  }
  const std::size_t from = p.buf.received();
  p.buf.on_received(r.bytes);
  // Half-closed: the server still answering keeps the session (see on_source_eof).
  if (c2s_.eof && &p == &s2c_ && phase_ != Phase::kLinger) {
    linger_deadline_ = after(cfg_->net_read_timeout);
  }
  if (phase_ == Phase::kOpaque) {
    if (tls_watch_) [[unlikely]] {
      watch_tls(p, {p.buf.data() + from, r.bytes});
    }
    p.buf.set_complete(p.buf.received());
    p.bytes += r.bytes;
    stats_.bytes[idx(p.dir)].add(r.bytes);
    untracked_traffic(p);
  } else if (&p == &c2s_ && !client_started_) {
    if (!scan_client_start(p)) return;
  } else {
    scan(p, from);
    if (closed()) return;
    if (held_commands_ != 0 && &p == &s2c_ && !commands_must_wait()) [[unlikely]] {
      release_held_commands();
      if (closed()) return;
    }
    // A refused client packet waits for the responses before it (see
    // refuse_client); the last of them may have come in this read.
    if (refusal_ && !response_outstanding()) [[unlikely]] {
      return finish_refusal();
    }
    if (tracker_.lost()) untracked_traffic(p);
  }
  send_or_defer(p);
  if (closed()) return;
  update_poll();
  arm_timer();
}

// The tracker follows at most 64 outstanding responses; a client pipelining
// more waits (as it would on a server that stops reading) rather than have
// the session lose track, which would end `reject`, drain at once and
// command timing for the rest of the session.
bool Session::commands_must_wait() const {
  return tracker_.full() && !tracker_.awaiting_client() && !client_done_;
}

// Holds the client's bytes from `pos` on, unframed, while a command must wait
// for room in the tracker; true when it did. Callers check that `pos` is
// where a client packet may start.
bool Session::hold_commands(const Pipe& p, std::size_t pos) {
  if (&p != &c2s_ || !commands_must_wait()) return false;
  held_commands_ = p.buf.received() - pos;
  return true;
}

// A response completed: the commands held back go on (until the queue is
// full again), and the client is read again once none is left.
void Session::release_held_commands() {
  const std::size_t from = c2s_.buf.received() - held_commands_;
  held_commands_ = 0;
  scan(c2s_, from);
  if (closed()) return;
  if (tracker_.lost()) untracked_traffic(c2s_);
  send_or_defer(c2s_);
}

// While commands are held the client is not read, so only its FIN or reset
// (EPOLLRDHUP, EPOLLHUP) says it has gone. The responses that would make room
// may never come (mysqld answers only the first command of a compressed frame
// that carries several), and the session would outlive its client, holding
// its upstream connection and max_connections slot. So the held commands go
// on untracked, then the client's EOF, as on a direct connection, where the
// server reads them all and then the EOF.
void Session::client_done_while_holding() {
  client_done_ = true;
  release_held_commands();
}

// Where commands cannot be followed (TLS, compressed zstd, lost tracking),
// whoever spoke last tells whether the session is idle: after the client's
// bytes a request is in flight (a long query must not be cut by
// wait_timeout, as mysqld does not cut it); after the server's, the client's
// turn has come and wait_timeout runs. (A client that goes silent mid-request
// is the server's to time out, with its own net_read_timeout.)
void Session::untracked_traffic(const Pipe& p) {
  idle_deadline_ = &p == &c2s_ ? 0 : after(cfg_->wait_timeout);
}

// Whether a flush of `p` now would write something.
bool Session::owes(Pipe& p) {
  iovec iov[2];
  return owed(p, iov) > 0;
}

void Session::collect_writes(std::vector<WriteOp>& ops) {
  for (Pipe* p : {&c2s_, &s2c_}) {
    if (!p->write_deferred) continue;
    p->write_deferred = false;
    // Closed meanwhile, or written by another path (an ERR of its own, a
    // FIN): nothing is owed any more.
    if (closed()) continue;
    WriteOp op;
    op.count = owed(*p, op.iov);
    if (op.count <= 0) continue;
    op.fd = dst_fd(*p);
    op.owner = this;
    op.tag = p == &c2s_ ? 0 : 1;
    ops.push_back(op);
  }
}

void Session::on_batch_written(const WriteOp& op) {
  if (closed()) return;  // an earlier write of the batch closed it
  Pipe& p = op.tag == 0 ? c2s_ : s2c_;
  const bool was_blocked = p.blocked;
  on_written(p, io_.finish(op));
  // The read that deferred the write set the poll interest and the timer;
  // only a write left unfinished (EPOLLOUT, a write deadline) or a source
  // unblocked by it changes them.
  if (closed() || (p.write_deadline == 0 && p.blocked == was_blocked)) return;
  update_poll();
  arm_timer();
}

// Makes room to read more of `p`. The partial packet's known length decides
// the size: a large packet gets a buffer of its exact size, reserved in the
// memory budget first. Returns false when reading must pause.
bool Session::ensure_room(Pipe& p) {
  BufferPool& pool = worker_.pool();
  if (!p.buf.allocated()) {
    if (!reserve_memory(p, pool.block_size())) return false;
    std::uint8_t* block = pool.acquire();
    if (block == nullptr) return allocation_failed(p, pool.block_size());
    p.buf.adopt(block, pool.block_size());
  }
  // Bytes the current packet still needs beyond complete(): what is held,
  // the rest of the current frame, and the next header if it is continued.
  std::size_t want = p.buf.partial() + 1;
  if (p.cframer && !p.discarding) {
    // A compressed frame is held whole: its header gives its size.
    const std::uint32_t left = p.cframer->outer_left();
    want = p.buf.partial() + (left > 0 ? left + CompressedFramer::kOuterHeader
                                       : CompressedFramer::kOuterHeader - p.cframer->header_have());
  } else if (phase_ != Phase::kOpaque && !p.discarding) {
    const std::uint64_t left = p.framer.payload_left();
    const std::uint64_t more = left > 0 ? left + (p.framer.continued() ? wire::kHeaderSize : 0)
                                        : wire::kHeaderSize - p.framer.header_have();
    want = p.buf.partial() + static_cast<std::size_t>(more);
    if (p.stream_eligible) want = std::min(want, kStreamChunk);
    // Before the login ends, a client's length prefix is not trusted with
    // memory: its buffer grows with the bytes that actually came (at most
    // doubling), so four bytes announcing 16 MiB reserve nothing, and peers
    // that never log in cannot fill memory_limit for everyone else.
    if (unproven(p)) want = std::min(want, std::max(2 * p.buf.partial(), pool.block_size()));
  }
  if (p.buf.tail().empty() || p.buf.capacity() - p.buf.complete() < want) {
    // Moving unsent whole packets down to make room is cheap when they are
    // small; when they are large (a 64 MiB row still going out to the
    // client as the next packet arrives), waiting for them to drain is
    // cheaper than copying them.
    if (p.buf.pending() == 0 || p.buf.received() - p.buf.sent() <= kCheapCompact) p.buf.compact();
  }
  const std::size_t room = p.buf.capacity() - p.buf.complete();
  // A streaming packet never grows the buffer past its chunk: when the
  // client reads slower than the server sends, reading waits for it.
  const bool capped = p.stream_eligible && p.buf.capacity() >= kStreamChunk;
  if (want > room && want > pool.block_size() && !capped) {
    // A packet larger than the block: grow to hold it whole.
    // (An unproven packet grows by what came, never past what arrived
    // twice over, and handshake_timeout ends its waits: it needs no turn.)
    if (p.framer.continued() && !p.holds_large_turn && !p.stream_eligible && !unproven(p)) {
      if (!worker_.budget().acquire_large_turn(&p, large_claim(p)) && !take_turn_from_other(p)) {
        if (!p.turn_wait) worker_.budget().note_wait();
        p.turn_wait = true;
        if (p.paused_at == 0) p.paused_at = now();
        return false;
      }
      p.turn_wait = false;
      p.holds_large_turn = true;
    }
    const std::size_t capacity = p.buf.complete() + want;
    SpareBuffer& spare = worker_.spare();
    if (spare.held() && p.buf.capacity() == pool.block_size() &&
        spare.capacity() >= p.buf.received() - p.buf.sent()) {
      // Reuse the last large packet's pages; its reservation comes along
      // and the pool block's goes.
      const SpareBuffer::Block b = spare.take();
      pool.release(p.buf.replace_block(b.memory));
      worker_.budget().release(pool.block_size());
      p.reserved = p.reserved - pool.block_size() + b.reserved;
    }
    if (capacity > p.buf.capacity() && !reserve_memory(p, capacity - p.buf.capacity())) {
      return false;
    }
    // A packet of several frames may grow to its claim: address space for
    // that much from the start, so its buffer never moves.
    const std::uint64_t claim = large_claim(p);
    const std::size_t expected =
        p.framer.continued()
            ? p.buf.complete() + claim + wire::kHeaderSize * (claim / wire::kMaxFrame + 2)
            : 0;
    if (!p.buf.grow(capacity, expected)) return allocation_failed(p, capacity);
  }
  if (p.buf.tail().empty()) {
    // Whole packets fill the buffer: wait for the destination. A stalled
    // destination is the write timeout's business, not the read timeout's.
    p.blocked = true;
    if (p.paused_at == 0) p.paused_at = now();
    return false;
  }
  return true;
}

// The turn a large packet needs may be held by this session's other
// direction for a whole packet that is only waiting to drain, and cannot: a
// client's large packet pipelined behind a query whose large row the server
// is still sending reaches the server only after the server has sent that
// row, which must be read first. A whole packet grows no more, so it hands
// its turn over (its memory stays reserved until it has drained).
bool Session::take_turn_from_other(Pipe& p) {
  Pipe& other = &p == &c2s_ ? s2c_ : c2s_;
  if (!other.holds_large_turn || !other.framer.at_boundary()) return false;
  worker_.budget().release_large_turn(&other);
  other.holds_large_turn = false;
  return worker_.budget().acquire_large_turn(&p, large_claim(p));
}

// The system refused a buffer of `bytes` for `p` (malloc or mmap failed: an
// address-space limit, or overcommit refused), which memory_limit should make
// rare: the client gets out_of_memory, as for a packet that can never fit,
// and the session closes; the others go on.
bool Session::allocation_failed(Pipe& p, std::size_t bytes) {
  log_event(LogLevel::kWarn, "allocation_failed", field("listener", cfg_->name),
            field("client", client_addr_), field("user", user_),
            field("direction", std::string(kDirectionNames[idx(p.dir)])), number("bytes", bytes));
  stats_.allocation_failures[idx(p.dir)].add();
  const ErrContext ctx{0, 0, Millis{0}, cfg_->name};
  send_error_and_close(CloseReason::kOutOfMemory, ErrorKind::kOutOfMemory, client_expects_, ctx);
  return false;
}

// A client packet read before the login ends: its length prefix may be a
// peer's bluff, so its memory follows the bytes received, not the prefix.
bool Session::unproven(const Pipe& p) const {
  return &p == &c2s_ && phase_ < Phase::kCommand;
}

// The most a multi-frame packet read by `p` can grow to before it is refused.
std::uint64_t Session::large_claim(const Pipe& p) const {
  const std::uint64_t memory = worker_.budget().limit();
  const std::uint64_t limit = &p == &c2s_ ? cfg_->max_allowed_packet : cfg_->max_server_packet;
  return limit == 0 ? memory : std::min(limit, memory);
}

bool Session::reserve_memory(Pipe& p, std::uint64_t bytes) {
  MemoryBudget& budget = worker_.budget();
  if (worker_.spare().held() && !budget.fits(bytes)) {
    worker_.spare().drop();  // a kept buffer must never make a packet wait
  }
  if (!budget.reserve(bytes, &p.ticket)) {
    if (p.paused_at == 0) p.paused_at = now();
    return false;
  }
  p.reserved += bytes;
  return true;
}

void Session::scan(Pipe& p, std::size_t from) {
  if (p.cframer) return scan_compressed(p, from);
  std::uint8_t* data = p.buf.data();
  std::size_t pos = from;
  if (p.discarding && !p.first_payload_seen && pos < p.buf.received()) {
    on_discarded_byte(p, data[pos]);
    if (closed()) return;
  }
  // Where a client packet may start, here and after each one, a command may
  // have to wait for room in the tracker.
  if (p.framer.at_boundary() && hold_commands(p, pos)) [[unlikely]]
    return;
  for (;;) {
    const std::size_t end = p.buf.received();
    // A whole packet comes in one step (kPacket: its header, then its end).
    const FrameEvent ev = p.framer.next_packet(data + pos, end - pos);
    pos += ev.consumed;
    const bool whole = ev.kind == FrameEvent::Kind::kPacket;
    if (ev.kind == FrameEvent::Kind::kNeedMore) {
      if (pos == end) break;
      continue;  // a 0xFFFFFF frame's payload ended: its next header follows
    }
    if (ev.kind == FrameEvent::Kind::kHeader || whole) {
      if (!on_header(p, ev)) return;
      const std::size_t payload = whole ? pos - ev.frame_length : pos;
      if (p.discarding && !p.first_payload_seen && payload < end &&
          (!whole || ev.frame_length > 0)) {
        on_discarded_byte(p, data[payload]);
        if (closed()) return;
      }
    }
    if (ev.kind == FrameEvent::Kind::kPacketEnd || whole) {
      if (p.discarding) {
        p.buf.erase_partial(pos);  // the discarded packet's bytes go; what follows stays
        pos = p.buf.complete();
        finish_reject(p, ev.logical_length);
      } else if (p.streaming) {
        end_stream(p, pos, ev.logical_length);
      } else {
        const std::size_t start = p.buf.complete();
        p.buf.set_complete(pos);
        p.stream_eligible = false;
        on_packet(p, start, pos, ev.logical_length);
      }
      if (closed()) return;
      if (phase_ == Phase::kOpaque) return take_raw(p);  // TLS starts right after this packet
      if (p.cframer) return scan_compressed(p, pos);     // compression starts after this packet
      if (pos == p.buf.received() && p.framer.at_boundary()) break;  // nothing more to frame
      if (hold_commands(p, pos)) [[unlikely]]
        break;
    }
  }
  if (p.discarding) {
    p.buf.drop_partial();  // never hold more than one read of it
  } else if (p.stream_eligible) {
    stream_partial(p);
  }
  track_read_deadline(p);
}

// Server packets stream to the client when nothing can refuse them any more:
// a packet of one frame, whose header gave its whole length to the limits
// already, or any packet when there is no max_server_packet and a
// memory_limit no real server packet reaches. Holding a 64 MiB row whole
// would cost its full transfer time before the first byte leaves, and its
// size in memory; streamed, it costs a chunk, and a row cannot wait for
// memory that a client packet pipelined behind its query holds (the server
// reads that packet only after sending the row). Only large packets stream,
// and only once a chunk of one is here, so a server that stalls early in a
// packet still lets sluice send the client an ERR. (The upstream, by
// contract, never gets part of a packet: client packets are always held
// whole.)
bool Session::may_stream(const Pipe& p, const FrameEvent& ev) const {
  return &p == &s2c_ && ev.frame_length >= kStreamChunk && phase_ == Phase::kCommand &&
         (ev.frame_length < wire::kMaxFrame || !server_packets_refusable());
}

// Whether max_server_packet or memory_limit may refuse a packet from a real server.
bool Session::server_packets_refusable() const {
  return cfg_->max_server_packet != 0 || worker_.budget().limit() < kNoServerPacketReaches;
}

// Everything held of the streaming packet goes out with the next flush.
void Session::stream_partial(Pipe& p) {
  const std::size_t held = p.buf.partial();
  if (!p.streaming) {
    if (held < kStreamChunk) return;
    stream_prefix_len_ = std::min(held - wire::kHeaderSize, kTrackedPrefix);
    std::memcpy(stream_prefix_.data(), p.buf.data() + p.buf.complete() + wire::kHeaderSize,
                stream_prefix_len_);
    p.streaming = true;
  }
  p.bytes += held;
  stats_.bytes[idx(p.dir)].add(held);
  p.buf.set_complete(p.buf.received());
}

// The streaming packet ended at `end`: counted whole, and shown to the
// tracker by the first bytes it kept.
void Session::end_stream(Pipe& p, std::size_t end, std::uint64_t length) {
  const std::size_t rest = end - p.buf.complete();
  p.buf.set_complete(end);
  p.streaming = p.stream_eligible = false;
  count_packet(p, rest, length);
  client_expects_ = static_cast<std::uint8_t>(p.last_seq + 1);
  on_server_packet(stream_prefix_.data(), stream_prefix_len_, length);
}

// A started packet must complete within net_read_timeout: the deadline is
// set when a read ends mid-packet and cleared when one ends between packets.
void Session::track_read_deadline(Pipe& p) {
  if (framing_at_boundary(p)) {
    p.read_deadline = 0;
  } else if (p.read_deadline == 0) {
    p.read_deadline = after(cfg_->net_read_timeout);
  }
}

void Session::on_writable(Pipe& p) {
  if (&p == &c2s_ && phase_ == Phase::kConnecting) return;
  flush(p);
  if (closed() && phase_ != Phase::kLinger) return;
  if (phase_ == Phase::kClosed) return;
  update_poll();
  arm_timer();
}

// Writes every whole packet `p` holds (and, towards the client, sluice's own
// ERR after them) in one writev, straight from the read buffer.
void Session::flush(Pipe& p) {
  iovec iov[2];
  const int n = owed(p, iov);
  if (n < 0) return;
  if (n == 0) return after_drain(p);
  on_written(p, io_.write(dst_fd(p), iov, n));
}

// What `p` owes its destination, as iovecs: 0 when nothing, -1 when the
// destination is not there yet (the upstream is still connecting).
int Session::owed(Pipe& p, iovec* iov) {
  const bool to_client = &p == &s2c_;
  if (!to_client && (phase_ == Phase::kConnecting || server_fd_ < 0)) return -1;
  int n = 0;
  if (p.buf.pending() > 0) iov[n++] = {p.buf.data() + p.buf.sent(), p.buf.pending()};
  const std::size_t extra = to_client ? to_client_.size() - to_client_sent_ : 0;
  if (extra > 0) iov[n++] = {to_client_.data() + to_client_sent_, extra};
  return n;
}

// The outcome of writing what `p` owed.
void Session::on_written(Pipe& p, const IoResult& r) {
  const bool to_client = &p == &s2c_;
  count_io(SysOp::kWrite, r);
  if (r.status == IoStatus::kError || r.status == IoStatus::kExhausted) {
    if (to_client) {
      reset_client_ = true;
      // After the client's FIN a failed write only confirms it has gone.
      return close(c2s_.eof ? reason_ : CloseReason::kClientWriteError);
    }
    const ErrContext ctx{0, 0, Millis{0}, cfg_->name};
    return send_error_and_close(CloseReason::kWriteError, ErrorKind::kWriteError, client_expects_,
                                ctx);
  }
  std::size_t done = r.status == IoStatus::kOk ? r.bytes : 0;
  const std::size_t from_buf = std::min(done, p.buf.pending());
  if (from_buf > 0) p.buf.on_sent(from_buf);
  to_client_sent_ += done - from_buf;
  const bool drained = p.buf.pending() == 0 && (!to_client || to_client_sent_ == to_client_.size());
  const std::uint64_t timeout = static_cast<std::uint64_t>(cfg_->net_write_timeout.count());
  if (!drained) {
    // A deadline per stall: progress restarts it, as mysqld's per-write timeout does.
    if (done > 0 || p.write_deadline == 0) p.write_deadline = now() + timeout;
    return;
  }
  p.write_deadline = 0;
  after_drain(p);
}

// Everything owed to the destination went out.
void Session::after_drain(Pipe& p) {
  if (p.blocked) {
    p.blocked = false;
    if (p.ticket == 0 && !p.turn_wait) resume(p);
  }
  // A client that hung up after a refused packet: the server is still
  // answering the commands before it, and hears of the client after that.
  if (&p == &c2s_ && p.eof && !server_shut_ && server_fd_ >= 0 && !refusal_) {
    server_shut_ = true;
    ::shutdown(server_fd_, SHUT_WR);
  }
  // (Before the greeting, the PROXY header just sent stays in its block: a
  // failover sends it again; see connect_failed.)
  if (p.buf.empty() && p.buf.allocated() && !p.streaming && phase_ != Phase::kAwaitGreeting) {
    // Idle sessions hold no buffer: the block goes back to the pool (or, after
    // a large packet, is freed), and its reservation with it.
    if (!p.buf.give_back(worker_.pool())) {
      // A large packet's buffer: kept (with its reservation) for the next one.
      worker_.keep_spare({p.buf.detach(), p.reserved});
      p.reserved = 0;
    }
    if (p.reserved != 0) worker_.budget().release(p.reserved);
    p.reserved = 0;
    // A packet being discarded grows no more: its turn goes at once, not
    // when its last byte has been thrown away.
    if (p.holds_large_turn && (p.framer.at_boundary() || p.discarding)) {
      worker_.budget().release_large_turn(&p);
      p.holds_large_turn = false;
    }
  }
  if (phase_ == Phase::kLinger && &p == &s2c_) {
    // The ERR is out: say FIN, and read until the client closes or the linger
    // ends; a client that has closed its side already has everything.
    ::shutdown(client_fd_, SHUT_WR);
    if (c2s_.eof) finish_close();
    return;
  }
  if (close_when_flushed_ && idle_between_commands()) close(CloseReason::kShutdown);
}

void Session::on_source_eof(Pipe& p) {
  p.eof = true;
  const ErrContext ctx{0, 0, Millis{0}, cfg_->name};
  if (&p == &c2s_) {
    // A packet the client did not finish is never forwarded; a PROXY header
    // it did not finish is (the server then counts the failed connect
    // against the address it claimed, not against sluice's).
    if (client_started_) {
      c2s_.buf.drop_partial();
    } else {
      c2s_.buf.set_complete(c2s_.buf.received());
    }
    reason_ = quit_sent_ ? CloseReason::kClientQuit : CloseReason::kClientClosed;
    if (phase_ == Phase::kConnecting || server_fd_ < 0) return finish_close();
    // Half-close, as a direct connection would: the server gets the FIN after
    // the last whole packet and has the last word. mysqld finishes with a
    // client (counts a failed handshake against max_connect_errors, ends the
    // thread) only when it has read that EOF, sometimes after a slow reverse
    // DNS lookup; closing under it at once would let the client's next
    // connection overtake that. The server has net_read_timeout to close.
    connect_deadline_ = handshake_deadline_ = idle_deadline_ = 0;
    c2s_.read_deadline = 0;
    linger_deadline_ = after(cfg_->net_read_timeout);
    leave_active();  // closing, as in the linger: no longer an open session
    flush(c2s_);     // after_drain() sends the FIN once everything is out
    if (closed()) return;
    update_poll();
    return arm_timer();
  }
  if (c2s_.eof && !refusal_) {
    // The server answered the client's FIN with its own: pass on its last
    // whole packets (if the client still reads), then close.
    s2c_.buf.drop_partial();
    to_client_.clear();
    to_client_sent_ = 0;
    return enter_linger();
  }
  if (phase_ == Phase::kAwaitGreeting && !greeting_seen_ && s2c_.buf.received() == 0) {
    return connect_failed("closed before the greeting");  // counts as a failed attempt
  }
  const bool mid_response = !framing_at_boundary(s2c_) ||
                            (phase_ == Phase::kCommand && !tracker_.idle() && !tracker_.lost());
  s2c_.buf.drop_partial();
  if (mid_response) {
    return send_error_and_close(CloseReason::kServerClosed, ErrorKind::kReadError, client_expects_,
                                ctx);
  }
  // The server said its last word (an ERR, or nothing): pass it on, then close.
  to_client_.clear();
  to_client_sent_ = 0;
  reason_ = quit_sent_ ? CloseReason::kClientQuit : CloseReason::kServerClosed;
  enter_linger();
}

}  // namespace sluice
