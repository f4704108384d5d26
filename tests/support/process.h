// Child processes for tests: spawn, signal, wait with a timeout, run to completion with capture.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace sluice::test {

// How a child ended.
struct ExitStatus {
  bool exited = false;  // true: exit() with `code`; false: killed by `signal`
  int code = -1;
  int signal = 0;

  bool success() const { return exited && code == 0; }
  std::string describe() const;  // "exit 0", "signal 9 (Killed)"
};

struct SpawnOptions {
  std::vector<std::string> env;  // "NAME=value" entries added to (or replacing in) our environment
  std::string stdout_path;       // file to append stdout to; empty means /dev/null
  std::string stderr_path;       // file to append stderr to; empty means /dev/null
  std::string cwd;               // working directory; empty means ours
};

// A running child. The program is looked up in PATH like execvp. The child is
// given PR_SET_PDEATHSIG=SIGKILL, so it dies with the test process even when
// that crashes (spawn from the main thread: the signal follows the spawning
// thread). The destructor kills (SIGKILL) and reaps a child still running, so a
// failing assertion never leaves a server behind.
class ChildProcess {
 public:
  ChildProcess() = default;
  // Throws std::runtime_error when the program cannot be executed.
  explicit ChildProcess(const std::vector<std::string>& argv, const SpawnOptions& options = {});
  ~ChildProcess();
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // False once the child has exited (and been reaped by this object).
  bool running();
  // The exit status, once reaped.
  const std::optional<ExitStatus>& exit_status() const { return status_; }
  void send_signal(int signal_number) const;
  // Waits up to `timeout` for the child to exit; nullopt if it is still running.
  std::optional<ExitStatus> wait_exit(std::chrono::milliseconds timeout);
  // SIGTERM, then SIGKILL when it has not exited after `grace`.
  ExitStatus terminate(std::chrono::milliseconds grace);
  // SIGKILL and reap.
  ExitStatus kill();

 private:
  bool try_reap(bool block);

  pid_t pid_ = -1;
  std::optional<ExitStatus> status_;
};

struct RunOptions {
  std::string stdin_data;        // written to the child's stdin, which is then closed
  std::vector<std::string> env;  // as SpawnOptions::env
  std::string cwd;
};

struct ProcessResult {
  ExitStatus status;
  bool timed_out = false;  // the child was killed because it ran past the timeout
  std::string out;
  std::string err;
};

// Runs `argv` to completion, capturing stdout and stderr. A child still running
// at `timeout` is killed with SIGKILL and reported with timed_out.
ProcessResult run_process(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                          const RunOptions& options = {});

// argv joined with spaces, single-quoting what needs it; for messages.
std::string shell_quote(const std::vector<std::string>& argv);

}  // namespace sluice::test
