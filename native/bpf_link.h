// SPDX-License-Identifier: Apache-2.0
#ifndef FERRY_NATIVE_BPF_LINK_H
#define FERRY_NATIVE_BPF_LINK_H

#include <bpf/libbpf.h>
#include <napi.h>

#include "addon.h"

namespace ferry {

// A bpf_link: attached by BpfObject or opened from a pin. Closing it only
// detaches the program if no pin holds the link.
class BpfLink : public Napi::ObjectWrap<BpfLink>, public Handle {
 public:
  static Napi::Function Define(Napi::Env env);
  // Wraps @link (taking ownership) in a new JS BpfLink; nullptr + pending error on failure.
  static Napi::Value Wrap(Napi::Env env, bpf_link* link);
  explicit BpfLink(const Napi::CallbackInfo& info);
  ~BpfLink() override;
  void Release() override;

 private:
  static Napi::Value OpenPinned(const Napi::CallbackInfo& info);
  bool Live(Napi::Env env);
  Napi::Value Fd(const Napi::CallbackInfo& info);
  Napi::Value Pin(const Napi::CallbackInfo& info);
  Napi::Value Unpin(const Napi::CallbackInfo& info);
  Napi::Value Update(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Detach(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  bpf_link* link_ = nullptr;
};

}  // namespace ferry

#endif
