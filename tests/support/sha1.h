// SHA-1, only for computing mysql_native_password scrambles in the raw test client.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace sluice::test {

using Sha1Digest = std::array<std::uint8_t, 20>;

// FIPS 180-1 SHA-1 of `data` (not for anything security related: the test
// client needs it for one legacy authentication method).
Sha1Digest sha1(std::string_view data);

}  // namespace sluice::test
