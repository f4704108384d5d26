// Child processes for tests: spawn, signal, wait with a timeout, run to completion with capture.
#include "tests/support/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace sluice::test {
namespace {

using Clock = std::chrono::steady_clock;

// The environment for the child: ours, with `extra` entries added or replaced.
std::vector<std::string> merged_environment(const std::vector<std::string>& extra) {
  std::map<std::string, std::string> by_name;
  std::vector<std::string> order;
  auto put = [&](const std::string& entry) {
    const std::string name = entry.substr(0, entry.find('='));
    if (by_name.count(name) == 0) order.push_back(name);
    by_name[name] = entry;
  };
  for (char** e = environ; *e != nullptr; ++e) put(*e);
  for (const auto& entry : extra) put(entry);
  std::vector<std::string> result;
  for (const auto& name : order) result.push_back(by_name[name]);
  return result;
}

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> result;
  for (auto& s : strings) result.push_back(s.data());
  result.push_back(nullptr);
  return result;
}

// Forks and execs; the child's fds 0/1/2 become `fds` (-1: /dev/null). Everything
// the child needs is prepared before fork, because only async-signal-safe calls
// are allowed between fork and exec in a threaded program. An exec failure comes
// back through a close-on-exec pipe.
pid_t spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env,
            const std::string& cwd, const int fds[3]) {
  if (argv.empty()) throw std::invalid_argument("spawn: empty argv");
  std::vector<std::string> args = argv;
  std::vector<std::string> environment = merged_environment(env);
  std::vector<char*> c_args = c_strings(args);
  std::vector<char*> c_env = c_strings(environment);
  const char* dir = cwd.empty() ? nullptr : cwd.c_str();

  int error_pipe[2];
  if (::pipe2(error_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(error_pipe[0]);
    ::close(error_pipe[1]);
    throw std::runtime_error(std::string("fork failed: ") + std::strerror(errno));
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the parent died before prctl took effect
    // Undo signal state a test runner may have changed, so servers behave normally.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    const int null_fd = ::open("/dev/null", O_RDWR);
    for (int target = 0; target < 3; ++target) {
      const int source = fds[target] >= 0 ? fds[target] : null_fd;
      ::dup2(source, target);
    }
    if (dir != nullptr && ::chdir(dir) != 0) {
      const int err = errno;
      (void)!::write(error_pipe[1], &err, sizeof err);
      ::_exit(127);
    }
    ::execvpe(c_args[0], c_args.data(), c_env.data());
    const int err = errno;
    (void)!::write(error_pipe[1], &err, sizeof err);
    ::_exit(127);
  }
  ::close(error_pipe[1]);
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(error_pipe[0], &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  ::close(error_pipe[0]);
  if (n == static_cast<ssize_t>(sizeof child_errno)) {
    int ignored;
    ::waitpid(pid, &ignored, 0);
    throw std::runtime_error("cannot run " + argv[0] + ": " + std::strerror(child_errno));
  }
  return pid;
}

ExitStatus decode(int wait_status) {
  ExitStatus status;
  if (WIFEXITED(wait_status)) {
    status.exited = true;
    status.code = WEXITSTATUS(wait_status);
  } else if (WIFSIGNALED(wait_status)) {
    status.signal = WTERMSIG(wait_status);
  }
  return status;
}

int open_output(const std::string& path) {
  if (path.empty()) return -1;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
  return fd;
}

}  // namespace

std::string ExitStatus::describe() const {
  if (exited) return "exit " + std::to_string(code);
  if (signal != 0) return "signal " + std::to_string(signal) + " (" + ::strsignal(signal) + ")";
  return "not exited";
}

ChildProcess::ChildProcess(const std::vector<std::string>& argv, const SpawnOptions& options) {
  const int out = open_output(options.stdout_path);
  int err = -1;
  try {
    err = options.stderr_path == options.stdout_path ? out : open_output(options.stderr_path);
    const int fds[3] = {-1, out, err};
    pid_ = spawn(argv, options.env, options.cwd, fds);
  } catch (...) {
    if (out >= 0) ::close(out);
    if (err >= 0 && err != out) ::close(err);
    throw;
  }
  if (out >= 0) ::close(out);
  if (err >= 0 && err != out) ::close(err);
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !status_) kill();
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(other.pid_), status_(std::move(other.status_)) {
  other.pid_ = -1;
}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    if (pid_ > 0 && !status_) kill();
    pid_ = other.pid_;
    status_ = std::move(other.status_);
    other.pid_ = -1;
  }
  return *this;
}

bool ChildProcess::try_reap(bool block) {
  if (pid_ <= 0 || status_) return true;
  int wait_status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &wait_status, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) {
    status_ = decode(wait_status);
    return true;
  }
  if (r < 0) {  // ECHILD: somebody else reaped it; report what we can
    status_ = ExitStatus{};
    return true;
  }
  return false;
}

bool ChildProcess::running() {
  return pid_ > 0 && !try_reap(false);
}

void ChildProcess::send_signal(int signal_number) const {
  if (pid_ > 0 && !status_) ::kill(pid_, signal_number);
}

std::optional<ExitStatus> ChildProcess::wait_exit(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  auto pause = std::chrono::milliseconds(1);
  while (!try_reap(false)) {
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(20));
  }
  return status_;
}

ExitStatus ChildProcess::terminate(std::chrono::milliseconds grace) {
  send_signal(SIGTERM);
  if (auto status = wait_exit(grace)) return *status;
  return kill();
}

ExitStatus ChildProcess::kill() {
  send_signal(SIGKILL);
  try_reap(true);
  return status_.value_or(ExitStatus{});
}

ProcessResult run_process(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                          const RunOptions& options) {
  int in_pipe[2];
  int out_pipe[2];
  int err_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  const int child_fds[3] = {in_pipe[0], out_pipe[1], err_pipe[1]};
  pid_t pid;
  try {
    pid = spawn(argv, options.env, options.cwd, child_fds);
  } catch (...) {
    for (int fd : {in_pipe[0], in_pipe[1], out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) {
      ::close(fd);
    }
    throw;
  }
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);

  ProcessResult result;
  const auto deadline = Clock::now() + timeout;
  int in_fd = in_pipe[1];
  ::fcntl(in_fd, F_SETFL, O_NONBLOCK);
  std::size_t written = 0;
  if (options.stdin_data.empty()) {
    ::close(in_fd);
    in_fd = -1;
  }
  int out_fd = out_pipe[0];
  int err_fd = err_pipe[0];
  char buffer[65536];
  while (out_fd >= 0 || err_fd >= 0 || in_fd >= 0) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      result.timed_out = true;
      break;
    }
    pollfd fds[3] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}, {in_fd, POLLOUT, 0}};
    const int ready = ::poll(fds, 3, static_cast<int>(std::min<long long>(left, 1000)));
    if (ready < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      int& fd = i == 0 ? out_fd : err_fd;
      std::string& sink = i == 0 ? result.out : result.err;
      if (fd >= 0 && (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
        const ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n > 0) {
          sink.append(buffer, static_cast<std::size_t>(n));
        } else if (n == 0 || errno != EINTR) {
          ::close(fd);
          fd = -1;
        }
      }
    }
    if (in_fd >= 0 && (fds[2].revents & (POLLOUT | POLLERR | POLLHUP)) != 0) {
      const ssize_t n =
          ::write(in_fd, options.stdin_data.data() + written, options.stdin_data.size() - written);
      if (n > 0) written += static_cast<std::size_t>(n);
      if (written == options.stdin_data.size() || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        ::close(in_fd);
        in_fd = -1;
      }
    }
  }
  for (int fd : {in_fd, out_fd, err_fd}) {
    if (fd >= 0) ::close(fd);
  }

  int wait_status = 0;
  while (true) {
    const pid_t r = ::waitpid(pid, &wait_status, WNOHANG);
    if (r == pid || (r < 0 && errno != EINTR)) break;
    if (result.timed_out || Clock::now() >= deadline) {
      result.timed_out = true;
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &wait_status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  result.status = decode(wait_status);
  return result;
}

std::string shell_quote(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& arg : argv) {
    if (!out.empty()) out += ' ';
    const bool plain = !arg.empty() && arg.find_first_not_of(
                                           "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                           "0123456789-_=./:,@+%") == std::string::npos;
    if (plain) {
      out += arg;
      continue;
    }
    out += '\'';
    for (char c : arg) {
      if (c == '\'') {
        out += "'\\''";
      } else {
        out += c;
      }
    }
    out += '\'';
  }
  return out;
}

}  // namespace sluice::test
