// Incremental MySQL frame parser: finds frame headers and logical-packet ends in a byte stream.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/wire.h"

namespace sluice {

// What the framer reports. The framer never looks at payload bytes and never
// copies: it only walks headers, so the caller's buffer holds the bytes and
// the framer's offsets point into it.
struct FrameEvent {
  enum class Kind : std::uint8_t {
    kNeedMore,   // nothing to report yet: call again with the rest (or more) input
    kHeader,     // a frame header was completed (the 4 bytes are consumed)
    kPacketEnd,  // the last frame of a logical packet was completed
    kPacket,     // next_packet only: a whole one-frame packet, header and payload
  };
  Kind kind = Kind::kNeedMore;
  std::size_t consumed = 0;        // bytes of the input consumed by this step
  std::uint32_t frame_length = 0;  // kHeader, kPacket: this frame's payload length
  std::uint8_t seq = 0;            // kHeader, kPacket: this frame's sequence id
  bool first_frame = false;        // kHeader: starts a new logical packet (kPacket: always)
  // kHeader: logical payload of this packet including this frame;
  // kPacketEnd, kPacket: the whole logical payload.
  std::uint64_t logical_length = 0;
};

// State machine over headers. Invariant: the caller feeds every byte of the
// stream exactly once, in order, in any split; `next` returns at each event,
// and also (as kNeedMore) where a 0xFFFFFF frame's payload ends, so a caller
// loops until all of its input is consumed.
// A zero-length final frame yields kHeader then (with consumed 0) kPacketEnd.
class Framer {
 public:
  // Consumes bytes from [data, data+len) up to and including the next event.
  FrameEvent next(const std::uint8_t* data, std::size_t len) {
    FrameEvent ev;
    if (end_pending_) {
      end_pending_ = false;
      ev.kind = FrameEvent::Kind::kPacketEnd;
      ev.logical_length = logical_;
      logical_ = 0;
      return ev;
    }
    if (payload_left_ > 0) {
      const std::size_t take = len < payload_left_ ? len : static_cast<std::size_t>(payload_left_);
      payload_left_ -= static_cast<std::uint32_t>(take);
      ev.consumed = take;
      if (payload_left_ == 0 && !continued_) {
        ev.kind = FrameEvent::Kind::kPacketEnd;
        ev.logical_length = logical_;
        logical_ = 0;
      }
      return ev;
    }
    const std::uint8_t* header = data;
    if (header_have_ == 0 && len >= wire::kHeaderSize) {
      ev.consumed = wire::kHeaderSize;  // the usual case: the whole header is here
    } else {
      while (ev.consumed < len && header_have_ < wire::kHeaderSize) {
        header_[header_have_++] = data[ev.consumed++];
      }
      if (header_have_ < wire::kHeaderSize) return ev;
      header = header_;
    }
    header_have_ = 0;
    const std::uint32_t length = wire::le24(header);
    ev.kind = FrameEvent::Kind::kHeader;
    ev.frame_length = length;
    ev.seq = header[3];
    ev.first_frame = !continued_;
    logical_ += length;
    ev.logical_length = logical_;
    continued_ = length == wire::kMaxFrame;
    payload_left_ = length;
    if (length == 0) end_pending_ = true;  // an empty final frame ends the packet now
    return ev;
  }

  // As next(), but where a whole packet of one frame starts at `data` (the
  // usual case: a query, a row, an OK), reports it in one step as kPacket,
  // which stands for that packet's kHeader and kPacketEnd together. The state
  // stays between packets.
  FrameEvent next_packet(const std::uint8_t* data, std::size_t len) {
    if (len >= wire::kHeaderSize && at_boundary()) {
      const std::uint32_t length = wire::le24(data);
      if (length < wire::kMaxFrame && len - wire::kHeaderSize >= length) {
        FrameEvent ev;
        ev.kind = FrameEvent::Kind::kPacket;
        ev.consumed = wire::kHeaderSize + length;
        ev.frame_length = length;
        ev.seq = data[3];
        ev.first_frame = true;
        ev.logical_length = length;
        return ev;
      }
    }
    return next(data, len);
  }

  // True between packets: no header byte or payload byte of a packet is pending.
  bool at_boundary() const {
    return header_have_ == 0 && payload_left_ == 0 && !continued_ && !end_pending_;
  }
  // Payload bytes of the current frame not yet consumed.
  std::uint64_t payload_left() const { return payload_left_; }
  // Header bytes of the next frame already consumed (0..3).
  std::size_t header_have() const { return header_have_; }
  // A zero-length final frame was read and its kPacketEnd is still owed: the
  // next call reports it, with or without input.
  bool end_pending() const { return end_pending_; }
  // The frame being read is 0xFFFFFF long, so another frame follows it.
  bool continued() const { return continued_; }
  // Logical payload of the current packet counted so far.
  std::uint64_t logical_so_far() const { return logical_; }

 private:
  std::uint64_t logical_ = 0;
  std::uint32_t payload_left_ = 0;  // a frame's payload is at most 0xFFFFFF
  std::uint8_t header_[wire::kHeaderSize] = {};
  std::uint8_t header_have_ = 0;
  bool continued_ = false;    // the frame being read is 0xFFFFFF long: more follow
  bool end_pending_ = false;  // a zero-length final frame awaits its kPacketEnd
};

}  // namespace sluice
