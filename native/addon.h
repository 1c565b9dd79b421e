// SPDX-License-Identifier: Apache-2.0
// Per-environment state of the addon (one per Node environment: main thread or
// worker). Everything that holds a kernel handle registers here so the
// environment's cleanup hook can close it; see addon.cc.
#ifndef FERRY_NATIVE_ADDON_H
#define FERRY_NATIVE_ADDON_H

#include <napi.h>
#include <set>

namespace ferry {

// A native object that owns kernel handles (fds, libbpf objects).
struct Addon;
class Handle {
 public:
  virtual ~Handle() = default;
  // Releases the kernel handles; idempotent.
  virtual void Release() = 0;
  // The environment's state while it lives; nulled by its cleanup hook.
  Addon* owner = nullptr;
};

struct Addon {
  Napi::FunctionReference error_class;   // FerryError from src/errors.ts
  Napi::FunctionReference bpf_object_ctor;
  Napi::FunctionReference bpf_link_ctor;
  std::set<Handle*> handles;
  bool tearing_down = false;

  static Addon* Of(Napi::Env env) { return env.GetInstanceData<Addon>(); }
  void Track(Handle* h) {
    h->owner = this;
    handles.insert(h);
  }
  static void Untrack(Handle* h) {
    if (h->owner != nullptr && !h->owner->tearing_down) h->owner->handles.erase(h);
    h->owner = nullptr;
  }
};

// Module parts register their exports through these (one per .cc file).
void InitErrors(Napi::Env env, Napi::Object exports);
void InitBpfObject(Napi::Env env, Napi::Object exports);
void InitBpfLink(Napi::Env env, Napi::Object exports);
void InitBpfMap(Napi::Env env, Napi::Object exports);
void InitNetns(Napi::Env env, Napi::Object exports);
void InitBpffs(Napi::Env env, Napi::Object exports);
void InitListen(Napi::Env env, Napi::Object exports);
void InitUnixSocket(Napi::Env env, Napi::Object exports);
void InitFdPassing(Napi::Env env, Napi::Object exports);
void InitFdWatch(Napi::Env env, Napi::Object exports);

}  // namespace ferry

#endif
