// SPDX-License-Identifier: Apache-2.0
// Small helpers shared by the addon's files.
#ifndef FERRY_NATIVE_UTIL_H
#define FERRY_NATIVE_UTIL_H

#include <napi.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace ferry {

// Closes an fd at scope exit unless released; keeps error paths short.
class ScopedFd {
 public:
  explicit ScopedFd(int fd = -1) : fd_(fd) {}
  ~ScopedFd() { if (fd_ >= 0) close(fd_); }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }
  int release() { int fd = fd_; fd_ = -1; return fd; }
  void reset(int fd) { if (fd_ >= 0) close(fd_); fd_ = fd; }
 private:
  int fd_;
};

inline Napi::Value BigU64(Napi::Env env, uint64_t v) { return Napi::BigInt::New(env, v); }

// The outcome of a sequence of system calls: 0 or errno, and which call failed.
struct Result {
  int err = 0;
  const char* what = "";
  bool Fail(const char* call) {
    err = errno;
    what = call;
    return false;
  }
};

// setsockopt of an int; on failure records errno and `what` in r.
inline bool SetInt(int fd, int level, int opt, int value, Result* r, const char* what) {
  return setsockopt(fd, level, opt, &value, sizeof(value)) == 0 || r->Fail(what);
}

}  // namespace ferry

#endif
