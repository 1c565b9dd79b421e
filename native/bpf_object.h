// SPDX-License-Identifier: Apache-2.0
#ifndef FERRY_NATIVE_BPF_OBJECT_H
#define FERRY_NATIVE_BPF_OBJECT_H

#include <bpf/libbpf.h>
#include <napi.h>

#include "addon.h"

namespace ferry {

// One opened and loaded eBPF object file (libbpf struct bpf_object).
class BpfObject : public Napi::ObjectWrap<BpfObject>, public Handle {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit BpfObject(const Napi::CallbackInfo& info);
  ~BpfObject() override;
  void Release() override;

 private:
  bool Open(Napi::Env env, const std::string& path, const std::string& pin_root, Napi::Object rodata);
  bool SetRodata(Napi::Env env, Napi::Object rodata);
  bpf_program* Program(Napi::Env env, const Napi::Value& name);

  Napi::Value Programs(const Napi::CallbackInfo& info);
  Napi::Value ProgFd(const Napi::CallbackInfo& info);
  Napi::Value MapFd(const Napi::CallbackInfo& info);
  Napi::Value AttachCgroup(const Napi::CallbackInfo& info);
  Napi::Value AttachNetns(const Napi::CallbackInfo& info);
  Napi::Value AttachSkMsg(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  bpf_object* obj_ = nullptr;
  std::string path_;
};

}  // namespace ferry

#endif
