// SPDX-License-Identifier: Apache-2.0
// ferry_native: the few things Node cannot do itself — libbpf object/link/map
// handling, sockets inside other network namespaces, listeners with kernel
// options Node cannot set (a socket filter, TCP_DEFER_ACCEPT), and passing fds to
// another process over a unix socket (the agent's handoff). Thin by design: the
// TypeScript facade in src/native/ validates arguments; everything here is
// positional and returns file descriptors or plain values.
#include <napi.h>

#include "addon.h"
#include "errors.h"

namespace ferry {

namespace {

// Closes every live handle when the environment goes away (process exit or a
// worker's end), so no fd outlives its owner by accident.
void Cleanup(Addon* addon) {
  addon->tearing_down = true;
  for (Handle* h : addon->handles) {
    h->Release();
    h->owner = nullptr;
  }
  addon->handles.clear();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* addon = new Addon();
  env.SetInstanceData<Addon>(addon);
  env.AddCleanupHook(Cleanup, addon);
  LibbpfLog::Install();
  InitErrors(env, exports);
  InitBpfObject(env, exports);
  InitBpfLink(env, exports);
  InitBpfMap(env, exports);
  InitNetns(env, exports);
  InitBpffs(env, exports);
  InitListen(env, exports);
  InitUnixSocket(env, exports);
  InitFdPassing(env, exports);
  InitFdWatch(env, exports);
  return exports;
}

}  // namespace

}  // namespace ferry

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return ferry::Init(env, exports); }

NODE_API_MODULE(ferry_native, InitModule)
