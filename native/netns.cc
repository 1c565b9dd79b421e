// SPDX-License-Identifier: Apache-2.0
// Sockets inside other network namespaces. Node has no setns(): the calling
// thread enters the namespace, makes the socket, and returns to the namespace it
// came from before anything else runs on it. Sockets keep the namespace they
// were created in, so the returned fds are ordinary fds for libuv.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "addon.h"
#include "errors.h"
#include "sockaddr.h"
#include "util.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace ferry {

namespace {

// The calling thread's own network namespace, opened once per thread and kept (closed
// when the thread exits). A thread is only ever away from it inside InNetns, which
// always returns, so the fd opened on first use stays right. Opening
// /proc/thread-self/ns/net per call was an openat and a close on every new connection
// (benchmarks/notes-newconn.md). Returns -1 with errno set if it cannot be opened (tried
// again on the next call).
int OwnNetnsFd() {
  thread_local ScopedFd own;
  if (own.get() < 0) own.reset(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  return own.get();
}

// Runs @fn in the namespace @ns_fd on this thread, then always restores the
// thread's own namespace. A thread that cannot go back would run JavaScript in a
// pod's namespace: that is unrecoverable, so it aborts.
template <typename Fn>
bool InNetns(int ns_fd, Result* r, Fn fn) {
  int own = OwnNetnsFd();
  if (own < 0) return r->Fail("open /proc/thread-self/ns/net");
  if (setns(ns_fd, CLONE_NEWNET) != 0) return r->Fail("setns");
  bool ok = fn();
  if (setns(own, CLONE_NEWNET) != 0) {
    fprintf(stderr, "ferry_native: cannot return to own network namespace: %s\n", strerror(errno));
    abort();
  }
  return ok;
}

int Family(const Napi::Value& v) { return v.As<Napi::Number>().Int32Value() == 6 ? AF_INET6 : AF_INET; }

Napi::Value Throw(Napi::Env env, const std::string& context, const Result& r) {
  ThrowError(env, kErrNetns, context + " (" + r.what + ")", r.err);
  return env.Undefined();
}

// netnsOpen(path): number — an fd of a network namespace file
Napi::Value Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  ScopedFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    ThrowError(env, kErrNetns, "cannot open network namespace " + path, errno);
    return env.Undefined();
  }
  int type = ioctl(fd.get(), NS_GET_NSTYPE);
  if (type != CLONE_NEWNET) {
    ThrowError(env, kErrNetns, path + " is not a network namespace", type < 0 ? errno : EINVAL);
    return env.Undefined();
  }
  return Napi::Number::New(env, fd.release());
}

bool CookieOf(int fd, uint64_t* cookie, Result* r) {
  socklen_t len = sizeof(*cookie);
  if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, cookie, &len) != 0) return r->Fail("getsockopt SO_NETNS_COOKIE");
  return true;
}

// netnsCookie(nsFd): bigint — what bpf_get_netns_cookie() returns in that namespace
Napi::Value Cookie(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Result r;
  int fd = -1;
  bool ok = InNetns(info[0].As<Napi::Number>().Int32Value(), &r, [&] {
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    return fd >= 0 || r.Fail("socket");
  });
  ScopedFd sock(fd);
  uint64_t cookie = 0;
  if (!ok || !CookieOf(sock.get(), &cookie, &r)) return Throw(env, "cannot read a network namespace's cookie", r);
  return BigU64(env, cookie);
}

// socketNetnsCookie(fd): bigint
Napi::Value SocketCookie(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Result r;
  uint64_t cookie = 0;
  if (!CookieOf(info[0].As<Napi::Number>().Int32Value(), &cookie, &r)) return Throw(env, "cannot read a socket's netns cookie", r);
  return BigU64(env, cookie);
}

// socketPort(fd): number — the local port a socket is bound to (getsockname).
Napi::Value SocketPort(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Result r;
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (getsockname(info[0].As<Napi::Number>().Int32Value(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    r.Fail("getsockname");
    return Throw(env, "cannot read a socket's address", r);
  }
  uint16_t port = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port) : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  return Napi::Number::New(env, port);
}

// netnsListen(nsFd, family, address, port, backlog, reusePort): number
Napi::Value Listen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int family = Family(info[1]);
  std::string address = info[2].As<Napi::String>().Utf8Value();
  uint16_t port = static_cast<uint16_t>(info[3].As<Napi::Number>().Uint32Value());
  int backlog = info[4].As<Napi::Number>().Int32Value();
  bool reuse_port = info[5].ToBoolean().Value();
  sockaddr_storage ss;
  socklen_t len;
  if (!ParseAddressOrThrow(env, family, address, port, &ss, &len)) return env.Undefined();
  Result r;
  int fd = -1;
  bool entered = false;
  bool ok = InNetns(info[0].As<Napi::Number>().Int32Value(), &r, [&] {
    entered = true;
    fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return r.Fail("socket");
    return SetInt(fd, SOL_SOCKET, SO_REUSEADDR, 1, &r, "SO_REUSEADDR") &&
           (!reuse_port || SetInt(fd, SOL_SOCKET, SO_REUSEPORT, 1, &r, "SO_REUSEPORT")) &&
           (family != AF_INET6 || SetInt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1, &r, "IPV6_V6ONLY")) &&
           (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0 || r.Fail("bind")) &&
           (listen(fd, backlog) == 0 || r.Fail("listen"));
  });
  ScopedFd sock(fd);
  if (!ok) {
    // Not getting into the namespace is the namespace's failure; a call inside it, the listener's.
    ThrowError(env, entered ? kErrListen : kErrNetns, "cannot listen on " + address + ":" + std::to_string(port) + " in a network namespace (" + r.what + ")", r.err);
    return env.Undefined();
  }
  return Napi::Number::New(env, sock.release());
}

// netnsSocket(nsFd, family): number — unconnected, non-blocking TCP socket
Napi::Value Socket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int family = Family(info[1]);
  Result r;
  int fd = -1;
  bool ok = InNetns(info[0].As<Napi::Number>().Int32Value(), &r, [&] {
    fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    return fd >= 0 || r.Fail("socket");
  });
  if (!ok) return Throw(env, "cannot create a socket in a network namespace", r);
  return Napi::Number::New(env, fd);
}

}  // namespace

void InitNetns(Napi::Env env, Napi::Object exports) {
  exports.Set("netnsOpen", Napi::Function::New(env, Open, "netnsOpen"));
  exports.Set("netnsCookie", Napi::Function::New(env, Cookie, "netnsCookie"));
  exports.Set("netnsListen", Napi::Function::New(env, Listen, "netnsListen"));
  exports.Set("netnsSocket", Napi::Function::New(env, Socket, "netnsSocket"));
  exports.Set("socketPort", Napi::Function::New(env, SocketPort, "socketPort"));
  exports.Set("socketNetnsCookie", Napi::Function::New(env, SocketCookie, "socketNetnsCookie"));
}

}  // namespace ferry
