// Session's upstream side: connect attempts in round-robin order with failover and connect_timeout.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "common/err_packet.h"
#include "proxy/log.h"
#include "proxy/session.h"
#include "proxy/worker.h"

namespace sluice {

void Session::connect_next_upstream() {
  const std::size_t count = worker_.upstream_count(listener_);
  if (attempts_ >= count) {
    // Logged once, by the session_close line (reason=upstream_unavailable);
    // each failed attempt already logged its upstream and error.
    stats_.rejected[idx(RejectReason::kUpstreamUnavailable)].add();
    const ErrContext ctx{0, 0, cfg_->connect_timeout, cfg_->name};
    return send_error_and_close(CloseReason::kUpstreamUnavailable, ErrorKind::kUpstreamUnavailable,
                                0, ctx);
  }
  // A new session starts at the next upstream in round-robin order; a
  // failover walks on from there in list order.
  upstream_index_ =
      attempts_ == 0 ? worker_.next_upstream(listener_, count) : (upstream_index_ + 1) % count;
  ++attempts_;
  const ResolvedAddress& target = worker_.upstream(listener_, upstream_index_);
  upstream_addr_ = target.text;
  phase_ = Phase::kConnecting;
  if (target.len == 0) return connect_failed("name not resolved");

  server_fd_ = ::socket(target.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (server_fd_ < 0) return connect_failed(std::strerror(errno));
  server_slot_.fd = server_fd_;
  const int one = 1;
  ::setsockopt(server_fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  connect_started_ns_ = uv_hrtime();
  const IoResult r =
      io_.connect(server_fd_, reinterpret_cast<const sockaddr*>(&target.addr), target.len);
  count_io(SysOp::kConnect, r);
  if (r.status == IoStatus::kError || r.status == IoStatus::kExhausted) {
    return connect_failed(r.status == IoStatus::kExhausted ? "connect interrupted too often"
                                                           : std::strerror(r.error));
  }
  if (r.status == IoStatus::kOk) return on_connected();
  connect_deadline_ = after(cfg_->connect_timeout);
  update_poll();
  arm_timer();
}

void Session::on_connect_ready() {
  int error = 0;
  socklen_t len = sizeof error;
  if (::getsockopt(server_fd_, SOL_SOCKET, SO_ERROR, &error, &len) != 0) error = errno;
  if (error != 0) return connect_failed(std::strerror(error));
  on_connected();
}

void Session::on_connected() {
  // While another upstream is left to try, the attempt ends when the
  // server greets: one that accepts and stays silent (hung, or a dead
  // backend behind a load balancer) is a failed attempt at connect_timeout,
  // as one that accepts and hangs up is. The last one left may take until
  // handshake_timeout, as a slow server (a reverse DNS lookup before its
  // greeting) would on a direct connection.
  if (attempts_ >= worker_.upstream_count(listener_)) {
    connect_deadline_ = 0;
  } else if (connect_deadline_ == 0) {
    connect_deadline_ = after(cfg_->connect_timeout);
  }
  const double seconds = static_cast<double>(uv_hrtime() - connect_started_ns_) / 1e9;
  stats_.upstream_connect.observe(kConnectBuckets, seconds);
  phase_ = Phase::kAwaitGreeting;
  flush(c2s_);  // a PROXY header the client sent first goes ahead of everything
  if (closed()) return;
  update_poll();
  arm_timer();
}

void Session::connect_failed(const std::string& why) {
  stats_.count_connect_error(upstream_addr_);
  log_event(LogLevel::kWarn, "upstream_connect_failed", field("listener", cfg_->name),
            field("upstream", upstream_addr_), field("error", why));
  connect_deadline_ = 0;
  close_server_side();
  // A PROXY header that went to this upstream goes to the next one too: its
  // bytes are still at the front of the client's block (see after_drain),
  // which nothing has been read into since.
  if (proxy_header_len_ != 0 && c2s_.buf.allocated() && c2s_.buf.empty()) {
    c2s_.buf.on_received(proxy_header_len_);
    c2s_.buf.set_complete(proxy_header_len_);
  }
  s2c_.eof = false;  // the next upstream starts a fresh server stream
  server_shut_ = false;
  connect_next_upstream();
}

}  // namespace sluice
