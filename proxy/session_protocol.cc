// Session's protocol policy: sequence checks, packet limits, handshake phases, command tracking.
#include <cstring>

#include "common/command.h"
#include "common/err_packet.h"
#include "common/handshake.h"
#include "proxy/log.h"
#include "proxy/session.h"
#include "proxy/worker.h"

namespace sluice {
namespace {

// The PROXY protocol v2 signature; v1 starts with "PROXY " and ends at CRLF
// within 107 bytes. mariadbd accepts either from proxy_protocol_networks.
constexpr std::uint8_t kProxyV2Sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                          0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr std::size_t kProxyV1Max = 107;

struct ProxyHeader {
  enum class Kind : std::uint8_t { kNone, kIncomplete, kMalformed, kComplete };
  Kind kind;
  std::size_t length = 0;
};

// Whether the client's first bytes are a PROXY protocol header, and how long.
ProxyHeader proxy_header(const std::uint8_t* d, std::size_t n) {
  using K = ProxyHeader::Kind;
  static constexpr char kV1[] = "PROXY ";
  if (n == 0) return {K::kIncomplete};
  if (std::memcmp(d, kV1, std::min<std::size_t>(n, 6)) == 0) {
    for (std::size_t i = 1; i < std::min(n, kProxyV1Max); ++i) {
      if (d[i - 1] == '\r' && d[i] == '\n') return {K::kComplete, i + 1};
    }
    return n >= kProxyV1Max ? ProxyHeader{K::kMalformed} : ProxyHeader{K::kIncomplete};
  }
  if (std::memcmp(d, kProxyV2Sig, std::min(n, sizeof kProxyV2Sig)) != 0) return {K::kNone};
  if (n < 16) return {K::kIncomplete};
  const std::size_t addresses = (static_cast<std::size_t>(d[14]) << 8) | d[15];
  // Version 2, command LOCAL or PROXY, and room for the family's addresses,
  // as mariadbd checks; anything else is for the server to refuse.
  const std::uint8_t family = d[13] >> 4;
  const std::size_t needed = family == 1 ? 12 : family == 2 ? 36 : family == 3 ? 216 : 0;
  if ((d[12] != 0x20 && d[12] != 0x21) || (d[12] == 0x21 && addresses < needed)) {
    return {K::kMalformed};
  }
  const std::size_t total = 16 + addresses;
  return n >= total ? ProxyHeader{K::kComplete, total} : ProxyHeader{K::kIncomplete};
}

}  // namespace

// The client's first bytes may be a PROXY protocol header (v1 or v2), sent
// before the greeting by proxies or after it, with the HandshakeResponse, by
// libmariadb. It goes upstream untouched (mariadbd reads it when sluice is in
// its proxy_protocol_networks) and framing starts after it. A malformed one is
// passed on as is, so the client gets the server's own verdict. Any other
// bytes before the greeting are not a MySQL client: ERR and close.
bool Session::scan_client_start(Pipe& p) {
  using K = ProxyHeader::Kind;
  const std::size_t start = p.buf.complete();
  const ProxyHeader h = proxy_header(p.buf.data() + start, p.buf.partial());
  if (h.kind == K::kIncomplete) {
    // Hold until it is whole; until then these bytes are a started packet
    // (a HandshakeResponse of 80 bytes starts with 'P' too) and the read
    // deadline runs as for any other.
    if (p.read_deadline == 0) {
      p.read_deadline = after(cfg_->net_read_timeout);
    }
    return true;
  }
  client_started_ = true;
  p.read_deadline = 0;  // what follows the header (if anything) is framed afresh
  if (h.kind == K::kMalformed) {
    go_opaque(c2s_);
    take_raw(p);
    return true;
  }
  if (h.kind == K::kComplete) {
    proxy_header_len_ = static_cast<std::uint32_t>(start + h.length);
    p.buf.set_complete(start + h.length);
    p.bytes += h.length;
    stats_.bytes[idx(p.dir)].add(h.length);
  }
  if (phase_ < Phase::kAwaitHello) {
    if (p.buf.partial() > 0) {
      const ErrContext ctx{0, 0, Millis{0}, cfg_->name};
      send_error_and_close(CloseReason::kBadHandshake, ErrorKind::kBadHandshake, 0, ctx);
      return false;
    }
    pre_greeting_done_ = true;  // the handshake must wait for the greeting
    return true;
  }
  scan(p, p.buf.complete());
  return !closed();
}

bool Session::on_header(Pipe& p, const FrameEvent& ev) {
  p.last_seq = ev.seq;
  if (ev.first_frame) p.packet_first_seq = ev.seq;
  if (&p == &c2s_ && phase_ == Phase::kAwaitHello && ev.first_frame && ev.seq != 1) {
    // The first client packet answers the greeting (seq 0) with seq 1; an
    // HTTP request or random bytes fail here, before anything is forwarded.
    const ErrContext ctx{0, 0, Millis{0}, cfg_->name};
    send_error_and_close(CloseReason::kBadHandshake, ErrorKind::kBadHandshake,
                         static_cast<std::uint8_t>(ev.seq + 1), ctx);
    return false;
  }
  if (!check_sequence(p, ev) || !check_limits(p, ev)) return false;
  if (ev.first_frame) p.stream_eligible = may_stream(p, ev);
  return true;
}

bool Session::check_sequence(Pipe& p, const FrameEvent& ev) {
  const bool client = &p == &c2s_;
  // In the command phase a client packet opens a new exchange, at seq 0,
  // unless the server asked it for data (LOCAL INFILE, COM_CHANGE_USER auth).
  const bool new_command = client && ev.first_frame && phase_ == Phase::kCommand &&
                           !tracker_.awaiting_client() && !tracker_.lost();
  if (client && pipelined(ev)) [[unlikely]] {
    // Its frames count from 0 on their own; the exchange under way keeps its ids.
    const std::uint8_t own = ev.first_frame ? 0 : pipelined_next_;
    if (ev.seq != own && cfg_->sequence_check != SequenceCheck::kOff && !out_of_order(p, ev, own)) {
      return false;
    }
    pipelined_next_ = static_cast<std::uint8_t>(ev.seq + 1);
    return true;
  }
  const std::uint8_t expected = new_command ? 0 : next_seq_;
  // After a client frame counted out of order, the server's answer (mysqld's
  // ERR 1156, at a sequence id of its own) is part of the same event.
  const bool answer_to_error = &p == &s2c_ && server_resyncs_;
  if (&p == &s2c_) server_resyncs_ = false;
  if (ev.seq != expected && cfg_->sequence_check != SequenceCheck::kOff && !answer_to_error &&
      !out_of_order(p, ev, expected)) {
    return false;
  }
  next_seq_ = static_cast<std::uint8_t>(ev.seq + 1);
  if (client) client_expects_ = next_seq_;
  return true;
}

// Whether the client frame `ev` belongs to a command sent while earlier
// responses are still to come (pipelining): decided at its first frame.
bool Session::pipelined(const FrameEvent& ev) {
  if (ev.first_frame) {
    client_pipelining_ = phase_ == Phase::kCommand && !tracker_.idle() &&
                         !tracker_.awaiting_client() && !tracker_.lost();
  }
  return client_pipelining_;
}

// Kept out of check_sequence, which runs for every frame, so that stays small
// enough to inline. Returns false when the session closes.
bool Session::out_of_order(Pipe& p, const FrameEvent& ev, std::uint8_t expected) {
  stats_.sequence_errors.add();
  // mysqld answers the bad frame with an ERR at an id of its own: exempt
  // that answer, which for a pipelined frame comes after the responses to
  // the commands before it.
  if (&p == &c2s_) {
    if (client_pipelining_) {
      resync_after_ = static_cast<std::uint8_t>(tracker_.outstanding());
    } else {
      server_resyncs_ = true;
    }
  }
  if (cfg_->sequence_check != SequenceCheck::kEnforce) return true;
  log_event(LogLevel::kWarn, "sequence_error", field("listener", cfg_->name),
            field("client", client_addr_), number("expected", std::uint64_t{expected}),
            number("got", std::uint64_t{ev.seq}),
            field("direction", std::string(kDirectionNames[idx(p.dir)])));
  const ErrContext ctx{0, 0, Millis{0}, cfg_->name};
  if (&p == &c2s_) {
    // A pipelining client gets the answers to the commands before it first,
    // as from mysqld, which reads the bad frame only after them.
    refuse_client(CloseReason::kOutOfOrder, ErrorKind::kOutOfOrder,
                  static_cast<std::uint8_t>(ev.seq + 1), ctx);
  } else {
    send_error_and_close(CloseReason::kOutOfOrder, ErrorKind::kOutOfOrder, ev.seq, ctx);
  }
  return false;
}

bool Session::check_limits(Pipe& p, const FrameEvent& ev) {
  // A packet being discarded was refused at its crossing frame: its later
  // frames are thrown away with it, not refused (and logged) again.
  if (p.discarding) return true;
  const std::uint64_t limit = &p == &c2s_ ? cfg_->max_allowed_packet : cfg_->max_server_packet;
  if (limit != 0 && ev.logical_length >= limit) return oversized(p, ev, limit);
  // A packet whose payload alone reaches memory_limit can never be held whole.
  const std::uint64_t memory = worker_.budget().limit();
  if (ev.logical_length >= memory) return exceeds_memory(p, ev, memory);
  return true;
}

bool Session::exceeds_memory(Pipe& p, const FrameEvent& ev, std::uint64_t memory) {
  log_event(LogLevel::kWarn, "packet_exceeds_memory_limit", field("listener", cfg_->name),
            field("client", client_addr_), field("user", user_),
            field("direction", std::string(kDirectionNames[idx(p.dir)])),
            number("size", ev.logical_length), number("memory_limit", memory));
  stats_.memory_refusals[idx(p.dir)].add();
  const ErrContext ctx{ev.logical_length, memory, Millis{0}, cfg_->name};
  if (&p == &c2s_) {
    refuse_client(CloseReason::kOutOfMemory, ErrorKind::kOutOfMemory,
                  static_cast<std::uint8_t>(ev.seq + 1), ctx);
  } else {
    send_error_and_close(CloseReason::kOutOfMemory, ErrorKind::kOutOfMemory, p.packet_first_seq,
                         ctx);
  }
  return false;
}

// `reject` applies only where the ERR cannot overtake or confuse anything: a
// new command (seq 0, command phase) with no response outstanding. Anything
// else (handshake, LOCAL INFILE data, COM_STMT_SEND_LONG_DATA, the server's
// packets) closes, as mysqld does.
bool Session::oversized(Pipe& p, const FrameEvent& ev, std::uint64_t limit) {
  const ErrContext ctx{ev.logical_length, limit, Millis{0}, cfg_->name};
  const bool client = &p == &c2s_;
  // In a compressed session the packet must start its compressed frame (no
  // earlier packet held with it); whether it also ends its last one is seen
  // there (see discard_inner).
  const bool can_reject = client && cfg_->on_oversized == OnOversized::kReject &&
                          phase_ == Phase::kCommand && p.packet_first_seq == 0 && tracker_.idle() &&
                          !tracker_.lost() && s2c_.buf.empty() &&
                          to_client_sent_ == to_client_.size() && p.held_packets == 0;
  if (can_reject) {
    // Logged once its command byte says whether it is rejected (see
    // on_discarded_byte).
    p.discarding = true;
    p.crossing_seq = ev.seq;
    p.crossing_length = ev.logical_length;
    idle_deadline_ = 0;  // a command is arriving, if only to be thrown away
    // A compressed packet's command byte is known at its end (discard_inner).
    if (compressed_) return true;
    // The first frame's command byte may already be here (limit above 16 MiB).
    const std::size_t first = p.buf.complete() + wire::kHeaderSize;
    p.first_payload_seen = false;
    if (ev.logical_length > ev.frame_length && first < p.buf.received()) {
      on_discarded_byte(p, p.buf.data()[first]);
      return !closed();
    }
    return true;
  }
  log_oversized(p, ev.logical_length, limit, OversizeAction::kClose);
  stats_.oversized[idx(p.dir)][idx(OversizeAction::kClose)].add();
  if (client) {
    refuse_client(CloseReason::kPacketTooLarge, ErrorKind::kPacketTooLarge,
                  static_cast<std::uint8_t>(ev.seq + 1), ctx);
  } else {
    // The client never sees the packet: the ERR takes its place and its id.
    send_error_and_close(CloseReason::kServerPacketTooLarge, ErrorKind::kPacketTooLarge,
                         p.packet_first_seq, ctx);
  }
  return false;
}

// A refused client packet ends the session, as in mysqld, which refuses it
// only when it reads it: after answering every command sent before it. So
// while a response is outstanding, the ERR must not overtake it (the client
// would lose that response and take the ERR for its answer): the refused
// packet and whatever follows are thrown away as they arrive, the commands
// before it still reach the server, its response still reaches the client,
// and only then come the ERR and the close. The event was logged and counted
// when the packet was refused; timeouts keep watching both directions.
void Session::refuse_client(CloseReason reason, ErrorKind kind, std::uint8_t seq,
                            const ErrContext& ctx) {
  // In a compressed session, a command in the same compressed frame as the
  // refused packet was counted but cannot leave without part of it: its
  // response would never come, so there is nothing to wait for.
  const bool unsent_command = compressed_ && c2s_.held_packets > 0;
  if (!response_outstanding() || unsent_command) {
    return send_error_and_close(reason, kind, seq, ctx);
  }
  refusal_ = Refusal{reason, kind, seq, ctx.size, ctx.limit};
  reason_ = reason;  // whatever ends the session now, it was this
  // The refused packet's bytes go now (earlier frames held whole included);
  // the whole packets before it stay, to be forwarded.
  c2s_.buf.drop_partial();
  c2s_.read_deadline = 0;
  c2s_.discarding = false;
  c2s_.discarded_length = 0;
  c2s_.turn_wait = false;
  worker_.budget().cancel(&c2s_.ticket);
  if (c2s_.holds_large_turn) {
    worker_.budget().release_large_turn(&c2s_);
    c2s_.holds_large_turn = false;
  }
}

// The server still owes the client a response it will send without hearing
// from the client again. (A server that asks for LOCAL INFILE data or more
// auth data waits for the client instead: mysqld would read the refused
// packet there.)
bool Session::response_outstanding() const {
  return phase_ == Phase::kCommand && !tracker_.idle() && !tracker_.lost() &&
         !tracker_.awaiting_client();
}

// The responses the refused packet was waiting for have all been read (or
// can no longer be followed): they go out first, then the ERR, as before.
void Session::finish_refusal() {
  const Refusal r = *refusal_;
  refusal_.reset();
  const ErrContext ctx{r.size, r.limit, Millis{0}, cfg_->name};
  send_error_and_close(r.reason, r.kind, r.seq, ctx);
}

void Session::on_discarded_byte(Pipe& p, std::uint8_t first) {
  p.first_payload_seen = true;
  // The length that crossed (a whole packet read at once leaves the framer
  // between packets, at 0).
  const std::uint64_t size = p.crossing_length;
  if (first != kComStmtSendLongData) {
    return log_oversized(p, size, cfg_->max_allowed_packet, OversizeAction::kReject);
  }
  // Long data has no response: an ERR would answer the next command instead.
  reject_falls_back(p);
}

// A packet being discarded for `reject` closes after all, as `close` would
// have at its crossing frame: logged and counted as a close, the ERR one
// past that frame.
void Session::reject_falls_back(Pipe& p) {
  const std::uint64_t size = p.crossing_length;
  log_oversized(p, size, cfg_->max_allowed_packet, OversizeAction::kClose);
  stats_.oversized[idx(p.dir)][idx(OversizeAction::kClose)].add();
  const ErrContext ctx{size, cfg_->max_allowed_packet, Millis{0}, cfg_->name};
  send_error_and_close(CloseReason::kPacketTooLarge, ErrorKind::kPacketTooLarge,
                       static_cast<std::uint8_t>(p.crossing_seq + 1), ctx);
}

void Session::log_oversized(const Pipe& p, std::uint64_t size, std::uint64_t limit,
                            OversizeAction action) {
  log_event(LogLevel::kWarn, "oversized_packet", field("listener", cfg_->name),
            field("client", client_addr_), field("user", user_),
            field("direction", std::string(kDirectionNames[idx(p.dir)])), number("size", size),
            number("limit", limit),
            field("action", std::string(kOversizeActionNames[idx(action)])));
}

void Session::finish_reject(Pipe& p, std::uint64_t size) {
  p.discarding = false;
  p.discarded_length = 0;
  stats_.oversized[idx(p.dir)][idx(OversizeAction::kReject)].add();
  const ErrContext ctx{size, cfg_->max_allowed_packet, Millis{0}, cfg_->name};
  // Sent after the whole packet was discarded, one past its last frame.
  const std::uint8_t last = p.cframer ? p.inner_seq : p.last_seq;
  to_client_ = error_packet(ErrorKind::kPacketTooLarge, static_cast<std::uint8_t>(last + 1), ctx);
  to_client_sent_ = 0;
  client_expects_ = 0;
  // Answered: the client's turn, as after any response.
  idle_deadline_ = after(cfg_->wait_timeout);
  flush(s2c_);
}

void Session::count_packet(Pipe& p, std::size_t wire_bytes, std::uint64_t length) {
  const std::size_t d = idx(p.dir);
  p.packets += 1;
  p.bytes += wire_bytes;
  stats_.packets[d].add();
  stats_.bytes[d].add(wire_bytes);
  stats_.packet_size[d].observe(length);
}

void Session::on_packet(Pipe& p, std::size_t start, std::size_t end, std::uint64_t length) {
  const std::size_t wire_bytes = end - start;
  const std::uint8_t* payload = p.buf.data() + start + wire::kHeaderSize;
  const std::size_t avail = std::min<std::size_t>(wire_bytes - wire::kHeaderSize, wire::kMaxFrame);
  if (&p == &c2s_) {
    on_client_packet(payload, avail, length, p.packet_first_seq);
    // A packet that ended the session (a malformed HandshakeResponse) is
    // never forwarded, so it is not counted as forwarded either.
    if (!closed()) count_packet(p, wire_bytes, length);
  } else {
    count_packet(p, wire_bytes, length);
    client_expects_ = static_cast<std::uint8_t>(p.last_seq + 1);
    on_server_packet(payload, avail, length);
  }
}

void Session::on_client_packet(const std::uint8_t* payload, std::size_t avail, std::uint64_t length,
                               std::uint8_t seq) {
  const std::span<const std::uint8_t> bytes(payload, avail);
  switch (phase_) {
    case Phase::kAwaitHello: {
      const auto hello = parse_client_hello(bytes);
      if (!hello) {
        const ErrContext ctx{0, 0, Millis{0}, cfg_->name};
        return send_error_and_close(CloseReason::kBadHandshake, ErrorKind::kBadHandshake,
                                    static_cast<std::uint8_t>(seq + 1), ctx);
      }
      if (hello->ssl_request) {
        stats_.tls_sessions[idx(TlsMode::kPassthrough)].add();
        // handshake_timeout goes on running, over the TLS records.
        tls_watch_ = std::make_unique<TlsWatch>();
        return go_opaque(c2s_);
      }
      user_ = hello->user;
      database_ = hello->database;
      const std::uint64_t caps = hello->capabilities & server_caps_;
      zstd_requested_ = (caps & wire::kClientZstdCompression) != 0;
      compress_requested_ = !zstd_requested_ && (caps & wire::kClientCompress) != 0;
      tracker_.set_capabilities(caps);
      phase_ = Phase::kAuth;
      auth_waiting_client_ = false;
      return;
    }
    case Phase::kAuth:
      auth_waiting_client_ = false;
      return;
    case Phase::kCommand:
      break;
    default:
      return;
  }
  (void)seq;
  const auto prefix = bytes.first(std::min<std::size_t>(avail, kTrackedPrefix));
  // LOCAL INFILE data and COM_CHANGE_USER auth answers are not commands, even
  // when their sequence id wraps to 0: the tracker knows what the server asked.
  if (tracker_.awaiting_client()) return on_tracker_step(tracker_.on_client_packet(prefix, length));
  // mysqld reads an empty command packet as COM_SLEEP (and answers an ERR):
  // so do the tracker and both command metrics.
  const std::uint8_t command = avail > 0 ? payload[0] : kComSleep;
  stats_.commands[command_index(command)].add();
  if (command == kComQuit) quit_sent_ = true;
  idle_deadline_ = 0;
  // The tag is the send time: the packet leaves in this same loop turn. The
  // response starts one past the command's last frame.
  const std::uint8_t last = compressed_ ? c2s_.inner_seq : c2s_.last_seq;
  const auto reply = static_cast<std::uint8_t>(last + 1);
  const ResponseTracker::Step step = tracker_.on_command(prefix, length, worker_.now_ns(), reply);
  on_tracker_step(step);
  // Pipelined, but the responses before it ended while it arrived: its own
  // is next, and starts one past its last frame. (A command without a
  // response completes at once and leaves the ids alone.)
  if (client_pipelining_ && step == ResponseTracker::Step::kContinue &&
      tracker_.outstanding() == 1) {
    next_seq_ = client_expects_ = reply;
  }
}

void Session::on_tracker_step(ResponseTracker::Step step) {
  if (step == ResponseTracker::Step::kComplete) return command_completed();
  if (step == ResponseTracker::Step::kUnexpected && !tracker_lost_counted_) {
    // It stops timing this session rather than guess; said once.
    tracker_lost_counted_ = true;
    stats_.tracker_lost.add();
    log_event(LogLevel::kDebug, "response_tracking_lost", field("listener", cfg_->name),
              field("client", client_addr_));
  }
}

void Session::on_server_packet(const std::uint8_t* payload, std::size_t avail,
                               std::uint64_t length) {
  const std::span<const std::uint8_t> bytes(payload, avail);
  switch (phase_) {
    case Phase::kAwaitGreeting: {
      greeting_seen_ = true;
      connect_deadline_ = 0;  // the attempt succeeded (see on_connected)
      if (avail > 0 && payload[0] == wire::kErrHeader) {
        phase_ = Phase::kAuth;  // refused by the server; it closes next
        return;
      }
      const auto greeting = parse_server_greeting(bytes);
      if (!greeting) {
        const ErrContext ctx{0, 0, Millis{0}, cfg_->name};
        return send_error_and_close(CloseReason::kReadError, ErrorKind::kReadError, 0, ctx);
      }
      connection_id_ = greeting->connection_id;
      server_caps_ = greeting->capabilities;
      phase_ = Phase::kAwaitHello;
      return;
    }
    case Phase::kAuth:
      switch (classify_auth_reply(bytes)) {
        case AuthReply::kOk:
          handshake_deadline_ = 0;
          if (zstd_requested_) {
            stats_.compressed_sessions.add();
            return go_opaque(s2c_);
          }
          phase_ = Phase::kCommand;
          if (compress_requested_) go_compressed();
          idle_deadline_ = after(cfg_->wait_timeout);
          if (draining_) close_when_flushed_ = true;
          return;
        case AuthReply::kSwitch:
        case AuthReply::kMoreData:
          auth_waiting_client_ = true;
          return;
        default:
          return;  // ERR: the server closes the connection itself
      }
    case Phase::kCommand:
      break;
    default:
      return;
  }
  if (tracker_.lost()) return;
  const ResponseTracker::Step step =
      tracker_.on_server_packet(bytes.first(std::min<std::size_t>(avail, kTrackedPrefix)), length);
  on_tracker_step(step);
  // Pipelined commands: the next response's ids start over, one past its own
  // command's last frame.
  if (step == ResponseTracker::Step::kComplete && !tracker_.idle()) [[unlikely]] {
    next_seq_ = client_expects_ = tracker_.reply_seq();
    if (resync_after_ != 0 && --resync_after_ == 0) server_resyncs_ = true;
  }
}

void Session::command_completed() {
  const ResponseTracker::Completion& done = tracker_.last_completion();
  stats_.command_duration[command_index(done.command)].observe(
      kDurationBuckets, static_cast<double>(worker_.now_ns() - done.tag) / 1e9);
  if (!tracker_.idle()) return;  // pipelined commands are still outstanding
  idle_deadline_ = after(cfg_->wait_timeout);
}

// From here on the session's bytes are TLS records (or zstd frames): they
// pass through as they come, counted but not framed.
void Session::go_opaque(Pipe& from) {
  phase_ = Phase::kOpaque;
  if (!tls_watch_) handshake_deadline_ = 0;
  idle_deadline_ = after(cfg_->wait_timeout);
  for (Pipe* p : {&c2s_, &s2c_}) {
    p->read_deadline = 0;
    if (p != &from) take_raw(*p);
  }
}

// Everything `p` holds beyond its whole packets is now raw bytes to forward.
void Session::take_raw(Pipe& p) {
  const std::size_t raw = p.buf.received() - p.buf.complete();
  if (tls_watch_) watch_tls(p, {p.buf.data() + p.buf.complete(), raw});
  p.bytes += raw;
  stats_.bytes[idx(p.dir)].add(raw);
  p.buf.set_complete(p.buf.received());
}

// The TLS handshake is over, for handshake_timeout, when the server answers
// the client's first application_data record: with TLS 1.2 that record is
// the login (HandshakeResponse) and the answer its reply; with TLS 1.3 the
// client's Finished already is one, and the answer ends the TLS handshake
// (the login inside it cannot be seen: the server's connect_timeout bounds
// it). Bytes that are not TLS records keep the deadline: the server will
// close, or handshake_timeout will.
void Session::watch_tls(const Pipe& p, std::span<const std::uint8_t> bytes) {
  TlsWatch& w = *tls_watch_;
  if (&p == &c2s_) {
    if (w.client.feed(bytes) > 0) w.client_sent_data = true;
    return;
  }
  if (w.server.feed(bytes) > 0 && w.client_sent_data) {
    handshake_deadline_ = 0;
    tls_watch_.reset();
  }
}

}  // namespace sluice

namespace sluice {

// Compression starts after the OK that ends authentication: both directions
// switch to compressed frames at once (the client sends nothing before it
// has read that OK).
void Session::go_compressed() {
  compressed_ = true;
  stats_.compressed_sessions.add();
  c2s_.cframer = std::make_unique<CompressedFramer>(worker_.inflate_workspace());
  s2c_.cframer = std::make_unique<CompressedFramer>(worker_.inflate_workspace());
  comp_client_expects_ = 0;
}

// Frames are the unit that moves. Client frames are held until the inner
// stream is between packets, so the server never gets part of a packet; a
// client's packet limit is decided at its inner header, before any frame of
// it leaves. Server frames move as soon as they are whole: a result set may
// stream through frames that never end on a row boundary.
void Session::scan_compressed(Pipe& p, std::size_t from) {
  using Kind = CompressedFramer::Event::Kind;
  const bool client = &p == &c2s_;
  std::size_t pos = from;
  for (;;) {
    const std::size_t end = p.buf.received();
    // A command waits for room in the tracker (see release_held_commands) by
    // whole frames, as frames are what is forwarded: a frame that alone
    // carries more commands than there is room for still loses track.
    if (client && pos < end && p.cframer->outer_at_boundary() && p.cframer->inner_at_boundary() &&
        hold_commands(p, pos)) [[unlikely]] {
      return track_read_deadline(p);
    }
    const auto ev = p.cframer->next(p.buf.data() + pos, end - pos);
    pos += ev.consumed;
    switch (ev.kind) {
      case Kind::kOuterHeader:
        if (client) comp_client_expects_ = static_cast<std::uint8_t>(ev.comp_seq + 1);
        p.last_seq = ev.comp_seq;
        break;
      case Kind::kInner:
        if (p.discarding) [[unlikely]] {
          if (!discard_inner(p, ev.inner)) return;
          break;
        }
        if (ev.inner.kind == FrameEvent::Kind::kHeader) {
          p.inner_seq = ev.inner.seq;
          if (client && !pipelined(ev.inner)) {
            client_expects_ = static_cast<std::uint8_t>(ev.inner.seq + 1);
          }
          if (ev.inner.first_frame) p.packet_first_seq = ev.inner.seq;
          if (!check_limits(p, ev.inner)) return;
          if (p.discarding) [[unlikely]] {
            // To be rejected: what is held of it goes now, the rest as it comes.
            p.buf.erase_partial(pos);
            pos = p.buf.complete();
          }
        } else {
          if (!client) client_expects_ = static_cast<std::uint8_t>(p.inner_seq + 1);
          if (client) ++p.held_packets;
          on_inner_packet(p, ev.inner.logical_length);
          if (closed()) return;
        }
        break;
      case Kind::kOuterEnd:
        if (p.discarding) [[unlikely]] {
          p.buf.erase_partial(pos);  // the discarded frame goes; what follows stays
          pos = p.buf.complete();
          if (p.discarded_length != 0) {
            log_oversized(p, p.crossing_length, cfg_->max_allowed_packet, OversizeAction::kReject);
            finish_reject(p, p.discarded_length);
            if (closed()) return;
          }
          break;
        }
        // A server packet of several inner frames (16 MiB or more) that a
        // limit may still refuse at a later one is held until it ends, so
        // the ERR can take its place whole (the frame holding its start may
        // also hold rows before it: they go or are dropped with it).
        if (client ? p.cframer->inner_at_boundary()
                   : p.cframer->inner().logical_so_far() < wire::kMaxFrame ||
                         !server_packets_refusable()) {
          if (!client) comp_client_expects_ = static_cast<std::uint8_t>(p.last_seq + 1);
          const std::size_t bytes = pos - p.buf.complete();
          p.bytes += bytes;
          stats_.bytes[idx(p.dir)].add(bytes);
          p.buf.set_complete(pos);
          p.held_packets = 0;
        }
        break;
      case Kind::kError: {
        // A client frame that cannot be inflated between commands starts
        // one that showed the tracker nothing: its answer would have come at 1.
        const bool new_command = client && tracker_.idle() && p.cframer->inner_at_boundary();
        const ErrContext ctx{0, 0, Millis{0}, cfg_->name};
        return send_error_and_close(CloseReason::kReadError, ErrorKind::kReadError,
                                    new_command ? std::uint8_t{1} : client_expects_, ctx);
      }
      case Kind::kNeedMore:
        if (pos == end && !p.cframer->has_pending()) {
          if (p.discarding) p.buf.drop_partial();  // never hold more than one read of it
          return track_read_deadline(p);
        }
        break;
    }
  }
}

// An inner event of a packet being rejected in a compressed session. The
// reject stands only if the packet ends with its compressed frame: another
// packet after it in that frame (a client that does not flush per command)
// is lost with it, and COM_STMT_SEND_LONG_DATA has no response an ERR could
// stand for; both close instead. Returns false when the session closed.
bool Session::discard_inner(Pipe& p, const FrameEvent& ev) {
  if (p.discarded_length == 0) {
    if (ev.kind == FrameEvent::Kind::kHeader) {
      p.inner_seq = ev.seq;  // a later frame of the discarded packet
      return true;
    }
    p.discarded_length = ev.logical_length;
    const bool long_data =
        p.cframer->prefix_length() > 0 && p.cframer->prefix()[0] == kComStmtSendLongData;
    if (!long_data) return true;
  }
  reject_falls_back(p);
  return false;
}

bool Session::framing_at_boundary(const Pipe& p) const {
  if (p.cframer) return p.cframer->outer_at_boundary() && p.cframer->inner_at_boundary();
  return p.framer.at_boundary();
}

// A whole inner packet of a compressed session: counted, and shown to the
// tracker by its first bytes.
void Session::on_inner_packet(Pipe& p, std::uint64_t length) {
  const std::size_t d = idx(p.dir);
  p.packets += 1;
  stats_.packets[d].add();
  stats_.packet_size[d].observe(length);
  const std::uint8_t* prefix = p.cframer->prefix();
  const std::size_t avail = p.cframer->prefix_length();
  if (&p == &c2s_) {
    on_client_packet(prefix, avail, length, p.packet_first_seq);
  } else {
    on_server_packet(prefix, avail, length);
  }
}

// An ERR for the client, in a stored (uncompressed) frame when the session is compressed.
std::vector<std::uint8_t> Session::error_packet(ErrorKind kind, std::uint8_t seq,
                                                const ErrContext& ctx) {
  std::vector<std::uint8_t> err = encode_err_packet((*errors_)[kind], seq, ctx);
  if (!compressed_) return err;
  std::vector<std::uint8_t> framed(CompressedFramer::kOuterHeader, 0);
  wire::put_le24(framed.data(), static_cast<std::uint32_t>(err.size()));
  framed[3] = comp_client_expects_;
  framed.insert(framed.end(), err.begin(), err.end());
  return framed;
}

}  // namespace sluice
