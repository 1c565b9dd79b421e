// SPDX-License-Identifier: Apache-2.0
// Unix-domain sockets Node cannot make or inspect itself: a listening socket whose fd
// the agent can hand to another process (Node's own pipe servers hide theirs), a
// SOCK_SEQPACKET socket (Node has none), a non-blocking accept and connect for those,
// and the peer's credentials (SO_PEERCRED). Everything is non-blocking; readiness
// comes from FdWatch (native/fd_watch.cc), so I/O stays in libuv's loop.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "addon.h"
#include "errors.h"
#include "util.h"

namespace ferry {

namespace {

int SocketType(const Napi::Value& seqpacket) { return seqpacket.ToBoolean().Value() ? SOCK_SEQPACKET : SOCK_STREAM; }

// Fills @addr for @path; false if the path does not fit sun_path (with its NUL).
bool UnixAddress(const std::string& path, sockaddr_un* addr) {
  memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr->sun_path)) return false;
  memcpy(addr->sun_path, path.data(), path.size());
  return true;
}

bool AddressOrThrow(Napi::Env env, const std::string& path, sockaddr_un* addr) {
  if (UnixAddress(path, addr)) return true;
  ThrowError(env, kErrInvalidArg, "unix socket path must be 1 to " + std::to_string(sizeof(addr->sun_path) - 1) + " bytes: " + path);
  return false;
}

// unixListen(path, seqpacket, backlog, mode): number
//   The file is made by bind() and given @mode before listen(): nobody can connect
//   while its mode is still the umask's. The caller removes a stale file first.
Napi::Value Listen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int type = SocketType(info[1]);
  int backlog = info[2].As<Napi::Number>().Int32Value();
  mode_t mode = static_cast<mode_t>(info[3].As<Napi::Number>().Uint32Value());
  sockaddr_un addr;
  if (!AddressOrThrow(env, path, &addr)) return env.Undefined();
  Result r;
  ScopedFd fd(socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0 || bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    r.Fail(fd.get() < 0 ? "socket" : "bind");
  } else if (chmod(path.c_str(), mode) != 0 || listen(fd.get(), backlog) != 0) {
    r.Fail("chmod/listen");
    unlink(path.c_str());
  }
  if (r.err != 0) {
    ThrowError(env, kErrNative, "cannot listen on unix socket " + path + " (" + r.what + ")", r.err);
    return env.Undefined();
  }
  return Napi::Number::New(env, fd.release());
}

// unixConnect(path, seqpacket): number — connected, non-blocking, close-on-exec.
// A unix connect completes at once or fails (ENOENT, ECONNREFUSED; EAGAIN when the
// listener's backlog is full).
Napi::Value Connect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  sockaddr_un addr;
  if (!AddressOrThrow(env, path, &addr)) return env.Undefined();
  ScopedFd fd(socket(AF_UNIX, SocketType(info[1]) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0 || connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ThrowError(env, kErrNative, "cannot connect to unix socket " + path, errno);
    return env.Undefined();
  }
  return Napi::Number::New(env, fd.release());
}

// unixAccept(fd): number — the accepted connection (non-blocking, close-on-exec), or -1
// when none is waiting.
Napi::Value Accept(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int lfd = info[0].As<Napi::Number>().Int32Value();
  for (;;) {
    int fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) return Napi::Number::New(env, fd);
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Napi::Number::New(env, -1);
    ThrowError(env, kErrNative, "cannot accept on a unix socket", errno);
    return env.Undefined();
  }
}

// peerCredentials(fd): { pid, uid, gid } — of the process that connected (SO_PEERCRED,
// as the kernel recorded them at connect(); a later setuid does not change them).
Napi::Value PeerCredentials(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ucred cred;
  socklen_t len = sizeof(cred);
  if (getsockopt(info[0].As<Napi::Number>().Int32Value(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    ThrowError(env, kErrNative, "cannot read a unix peer's credentials (SO_PEERCRED)", errno);
    return env.Undefined();
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("pid", Napi::Number::New(env, cred.pid));
  out.Set("uid", Napi::Number::New(env, cred.uid));
  out.Set("gid", Napi::Number::New(env, cred.gid));
  return out;
}

}  // namespace

void InitUnixSocket(Napi::Env env, Napi::Object exports) {
  exports.Set("unixListen", Napi::Function::New(env, Listen, "unixListen"));
  exports.Set("unixConnect", Napi::Function::New(env, Connect, "unixConnect"));
  exports.Set("unixAccept", Napi::Function::New(env, Accept, "unixAccept"));
  exports.Set("peerCredentials", Napi::Function::New(env, PeerCredentials, "peerCredentials"));
}

}  // namespace ferry
