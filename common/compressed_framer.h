// Incremental parser of the compressed protocol: outer 7-byte frames, and the MySQL packets inside
// them.
#pragma once

#include <zlib.h>

#include <array>
#include <cstddef>
#include <cstdint>

#include "common/framer.h"

namespace sluice {

// The compressed protocol wraps the ordinary packet stream in frames of
// [3-byte compressed length][seq][3-byte uncompressed length] + payload,
// where an uncompressed length of 0 means the payload is stored as is. Inner
// packets may span frames, and a frame may hold several of them.
//
// This walks both layers. It inflates each frame's payload through a small
// scratch buffer only to see the inner headers and the first bytes of each
// inner packet; the caller's buffer keeps the compressed bytes, which are what
// gets forwarded. Like Framer it never throws and never over-reads.
class CompressedFramer {
 public:
  static constexpr std::size_t kOuterHeader = 7;
  static constexpr std::size_t kPrefix = 64;  // bytes of each inner packet kept for the tracker

  struct Event {
    enum class Kind : std::uint8_t {
      kNeedMore,     // input consumed (maybe none); call again with more
      kOuterHeader,  // a frame header completed
      kOuterEnd,     // a frame (header + payload) completed
      kInner,        // an inner frame event: see `inner`
      kError,        // corrupt compressed data: the stream cannot be followed
    };
    Kind kind = Kind::kNeedMore;
    std::size_t consumed = 0;         // bytes of the caller's input consumed
    std::uint32_t comp_length = 0;    // kOuterHeader
    std::uint32_t uncomp_length = 0;  // kOuterHeader
    std::uint8_t comp_seq = 0;        // kOuterHeader
    FrameEvent inner;                 // kInner: kHeader or kPacketEnd of an inner packet
  };

  CompressedFramer();
  ~CompressedFramer();
  CompressedFramer(const CompressedFramer&) = delete;
  CompressedFramer& operator=(const CompressedFramer&) = delete;

  Event next(const std::uint8_t* data, std::size_t len);

  // Inflated bytes or a frame end are still to be reported: call next() again
  // even with no new input.
  bool has_pending() const {
    return scratch_pos_ < scratch_len_ || inner_.end_pending() || draining_ ||
           (frame_open_ && outer_left_ == 0);
  }
  // The inner stream is between packets (a frame ending here may be forwarded).
  bool inner_at_boundary() const { return inner_.at_boundary(); }
  // Between frames: no outer header or payload byte is pending.
  bool outer_at_boundary() const { return header_have_ == 0 && outer_left_ == 0 && !draining_; }
  // Compressed payload bytes of the current frame not yet consumed.
  std::uint32_t outer_left() const { return outer_left_; }
  std::size_t header_have() const { return header_have_; }
  // The first bytes of the latest inner packet (valid at its kPacketEnd).
  const std::uint8_t* prefix() const { return prefix_.data(); }
  std::size_t prefix_length() const { return prefix_len_; }
  const Framer& inner() const { return inner_; }

 private:
  Event step_scratch();
  Event step_payload(const std::uint8_t* data, std::size_t len);
  Event step_header(const std::uint8_t* data, std::size_t len);
  Event finish_frame();

  std::array<std::uint8_t, kOuterHeader> header_{};
  std::size_t header_have_ = 0;
  std::uint32_t outer_left_ = 0;   // compressed bytes still to consume
  std::uint32_t uncomp_left_ = 0;  // inflated bytes still expected for this frame
  bool compressed_ = false;        // this frame's payload is deflated
  bool draining_ = false;          // input done, inflate may still have output
  bool stream_ended_ = false;      // this frame's deflate stream has ended
  bool frame_open_ = false;        // a header was read and kOuterEnd is owed
  z_stream z_{};
  bool z_ready_ = false;
  std::array<std::uint8_t, 16384> scratch_{};
  std::size_t scratch_pos_ = 0;
  std::size_t scratch_len_ = 0;
  Framer inner_;
  std::array<std::uint8_t, kPrefix> prefix_{};
  std::size_t prefix_len_ = 0;
};

}  // namespace sluice
