// SPDX-License-Identifier: Apache-2.0
// File descriptors passed between processes over a connected unix socket (SCM_RIGHTS):
// how a new agent takes over the old one's listening sockets (src/handoff/). One call
// sends one message with at most SCM_MAX_FD fds; the receiver gets them close-on-exec
// (MSG_CMSG_CLOEXEC) and never keeps part of a message: if the kernel had to cut the
// control data (MSG_CTRUNC) or the bytes (MSG_TRUNC), the fds that did arrive are
// closed and the call throws. Non-blocking: the caller waits with FdWatch.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "addon.h"
#include "errors.h"
#include "util.h"

namespace ferry {

namespace {

// The kernel's limit of fds in one SCM_RIGHTS message (include/net/scm.h).
constexpr int kScmMaxFd = 253;

// sendFds(fd, payload, fds): number — bytes sent (a SOCK_SEQPACKET message goes whole or not at all)
Napi::Value Send(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  Napi::Buffer<uint8_t> payload = info[1].As<Napi::Buffer<uint8_t>>();
  Napi::Array list = info[2].As<Napi::Array>();
  uint32_t n = list.Length();
  if (n > kScmMaxFd) {
    ThrowError(env, kErrInvalidArg, "at most " + std::to_string(kScmMaxFd) + " fds per message, got " + std::to_string(n));
    return env.Undefined();
  }
  std::vector<int> fds(n);
  for (uint32_t i = 0; i < n; i++) fds[i] = list.Get(i).As<Napi::Number>().Int32Value();
  iovec iov = {payload.Data(), payload.Length()};
  msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control(n > 0 ? CMSG_SPACE(sizeof(int) * n) : 0);
  if (n > 0) {
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * n);
    memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * n);
  }
  ssize_t sent;
  do sent = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT); while (sent < 0 && errno == EINTR);
  if (sent < 0) {
    ThrowError(env, kErrNative, "cannot send " + std::to_string(n) + " fds over a unix socket", errno);
    return env.Undefined();
  }
  return Napi::Number::New(env, static_cast<double>(sent));
}

// recvFds(fd, maxBytes, maxFds): { payload, fds } | null
//   null: nothing to read now (EAGAIN); an empty payload with no fds: the peer closed.
Napi::Value Recv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  size_t max_bytes = info[1].As<Napi::Number>().Uint32Value();
  int max_fds = info[2].As<Napi::Number>().Int32Value();
  std::vector<uint8_t> data(max_bytes > 0 ? max_bytes : 1);
  std::vector<char> control(CMSG_SPACE(sizeof(int) * (max_fds > 0 ? max_fds : 1)));
  iovec iov = {data.data(), max_bytes};
  msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  ssize_t got;
  do got = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT); while (got < 0 && errno == EINTR);
  if (got < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return env.Null();
    ThrowError(env, kErrNative, "cannot receive over a unix socket", errno);
    return env.Undefined();
  }
  // Every fd that arrived is ours now, whatever happens next.
  std::vector<int> fds;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const int* p = reinterpret_cast<const int*>(CMSG_DATA(c));
    for (size_t i = 0; i < count; i++) {
      int received;
      memcpy(&received, p + i, sizeof(int));
      fds.push_back(received);
    }
  }
  if ((msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) != 0 || static_cast<int>(fds.size()) > max_fds) {
    for (int f : fds) close(f);
    std::string why = (msg.msg_flags & MSG_TRUNC) != 0
        ? "a message longer than " + std::to_string(max_bytes) + " bytes"
        : "more than " + std::to_string(max_fds) + " fds in one message";
    ThrowError(env, kErrNative, "truncated unix socket message: " + why + " (its fds were closed)", EMSGSIZE);
    return env.Undefined();
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("payload", Napi::Buffer<uint8_t>::Copy(env, data.data(), static_cast<size_t>(got)));
  Napi::Array arr = Napi::Array::New(env, fds.size());
  for (size_t i = 0; i < fds.size(); i++) arr.Set(static_cast<uint32_t>(i), Napi::Number::New(env, fds[i]));
  out.Set("fds", arr);
  return out;
}

// dupFd(fd): number — a close-on-exec duplicate, the caller's to close: it keeps the
// open file alive while a message carrying it waits to be sent, whatever its owner
// does with the original meanwhile.
Napi::Value Dup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = fcntl(info[0].As<Napi::Number>().Int32Value(), F_DUPFD_CLOEXEC, 0);
  if (fd < 0) {
    ThrowError(env, kErrNative, "cannot duplicate an fd", errno);
    return env.Undefined();
  }
  return Napi::Number::New(env, fd);
}

}  // namespace

void InitFdPassing(Napi::Env env, Napi::Object exports) {
  exports.Set("sendFds", Napi::Function::New(env, Send, "sendFds"));
  exports.Set("recvFds", Napi::Function::New(env, Recv, "recvFds"));
  exports.Set("dupFd", Napi::Function::New(env, Dup, "dupFd"));
  exports.Set("SCM_MAX_FD", Napi::Number::New(env, kScmMaxFd));
}

}  // namespace ferry
