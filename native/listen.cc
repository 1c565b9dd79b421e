// SPDX-License-Identifier: Apache-2.0
// Listening TCP sockets in the calling thread's own network namespace, with the kernel
// options Node cannot set: a BPF socket filter (SO_ATTACH_BPF), TCP_DEFER_ACCEPT and
// SO_REUSEPORT (one listener per data-path worker on one port). All are in place before
// listen(), so no connection is queued without them. The fd
// goes to Node (net.Server.listen({ fd })); I/O stays in libuv.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <string>

#include "addon.h"
#include "errors.h"
#include "sockaddr.h"
#include "util.h"

namespace ferry {

namespace {

// tcpListen(family, address, port, backlog, dualStack, deferAcceptSeconds, filterProgFd, reusePort): number
//   dualStack           IPv6 only: IPV6_V6ONLY off, so IPv4 clients arrive v4-mapped
//   deferAcceptSeconds  0: none
//   filterProgFd        a loaded BPF_PROG_TYPE_SOCKET_FILTER program, or -1
//   reusePort           SO_REUSEPORT: several listeners may bind the same address
Napi::Value Listen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int family = info[0].As<Napi::Number>().Int32Value() == 6 ? AF_INET6 : AF_INET;
  std::string address = info[1].As<Napi::String>().Utf8Value();
  uint16_t port = static_cast<uint16_t>(info[2].As<Napi::Number>().Uint32Value());
  int backlog = info[3].As<Napi::Number>().Int32Value();
  bool dual_stack = info[4].ToBoolean().Value();
  int defer_s = info[5].As<Napi::Number>().Int32Value();
  int prog_fd = info[6].As<Napi::Number>().Int32Value();
  bool reuse_port = info[7].ToBoolean().Value();
  std::string where = address + ":" + std::to_string(port);
  sockaddr_storage ss;
  socklen_t len;
  if (!ParseAddressOrThrow(env, family, address, port, &ss, &len)) return env.Undefined();
  Result r;
  ScopedFd fd(socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  bool ok = (fd.get() >= 0 || r.Fail("socket")) &&
            SetInt(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1, &r, "SO_REUSEADDR") &&
            (!reuse_port || SetInt(fd.get(), SOL_SOCKET, SO_REUSEPORT, 1, &r, "SO_REUSEPORT")) &&
            (family != AF_INET6 || SetInt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, dual_stack ? 0 : 1, &r, "IPV6_V6ONLY")) &&
            (defer_s <= 0 || SetInt(fd.get(), IPPROTO_TCP, TCP_DEFER_ACCEPT, defer_s, &r, "TCP_DEFER_ACCEPT")) &&
            (prog_fd < 0 || SetInt(fd.get(), SOL_SOCKET, SO_ATTACH_BPF, prog_fd, &r, "SO_ATTACH_BPF")) &&
            (bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) == 0 || r.Fail("bind")) &&
            (listen(fd.get(), backlog) == 0 || r.Fail("listen"));
  if (!ok) {
    const char* code = r.what == std::string("SO_ATTACH_BPF") ? kErrBpfAttach : kErrListen;
    ThrowError(env, code, "cannot listen on " + where + " (" + r.what + ")", r.err);
    return env.Undefined();
  }
  return Napi::Number::New(env, fd.release());
}

// attachSocketFilter(fd, progFd): replaces the socket filter of a socket made elsewhere
// (a listener handed over by the agent before us carries that agent's program and maps).
Napi::Value AttachFilter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Result r;
  if (!SetInt(info[0].As<Napi::Number>().Int32Value(), SOL_SOCKET, SO_ATTACH_BPF, info[1].As<Napi::Number>().Int32Value(), &r, "SO_ATTACH_BPF")) {
    ThrowError(env, kErrBpfAttach, "cannot attach the socket filter to a listener", r.err);
    return env.Undefined();
  }
  return env.Undefined();
}

}  // namespace

void InitListen(Napi::Env env, Napi::Object exports) {
  exports.Set("tcpListen", Napi::Function::New(env, Listen, "tcpListen"));
  exports.Set("attachSocketFilter", Napi::Function::New(env, AttachFilter, "attachSocketFilter"));
}

}  // namespace ferry
