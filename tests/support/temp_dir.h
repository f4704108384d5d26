// A directory that lives as long as one object: datadirs, configs, logs, certificates.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace sluice::test {

// Created with mkdtemp under /tmp (short paths, because a Unix socket path must
// fit in 108 bytes) and removed recursively by the destructor. Setting
// SLUICE_TEST_KEEP=1 in the environment keeps every directory for post-mortems.
class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "sluice-test");
  ~TempDir();
  TempDir(TempDir&& other) noexcept;
  TempDir& operator=(TempDir&& other) noexcept;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }
  std::filesystem::path operator/(std::string_view name) const { return path_ / name; }

 private:
  void remove();

  std::filesystem::path path_;
};

// Writes `contents` to `path`, replacing it; throws on failure.
void write_file(const std::filesystem::path& path, std::string_view contents);
// The whole file, or "" when it cannot be read.
std::string read_file(const std::filesystem::path& path);
// The last `lines` lines of `text`.
std::string tail_lines(const std::string& text, int lines);

}  // namespace sluice::test
