// SPDX-License-Identifier: Apache-2.0
// BpfLink: pin, reopen from a pin, swap the program in place (BPF_LINK_UPDATE),
// read link info, detach. These make capture survive agent restarts hitlessly.
#include "bpf_link.h"

#include <bpf/bpf.h>

#include <cerrno>
#include <cstring>

#include "errors.h"
#include "util.h"

namespace ferry {

Napi::Function BpfLink::Define(Napi::Env env) {
  return DefineClass(env, "BpfLink", {
    StaticMethod<&BpfLink::OpenPinned>("openPinned"),
    InstanceAccessor<&BpfLink::Fd>("fd"),
    InstanceMethod<&BpfLink::Pin>("pin"),
    InstanceMethod<&BpfLink::Unpin>("unpin"),
    InstanceMethod<&BpfLink::Update>("update"),
    InstanceMethod<&BpfLink::Info>("info"),
    InstanceMethod<&BpfLink::Detach>("detach"),
    InstanceMethod<&BpfLink::Close>("close"),
  });
}

Napi::Value BpfLink::Wrap(Napi::Env env, bpf_link* link) {
  Napi::Object obj = Addon::Of(env)->bpf_link_ctor.New({Napi::External<bpf_link>::New(env, link)});
  if (obj.IsEmpty()) {
    bpf_link__destroy(link);
    return env.Undefined();
  }
  return obj;
}

// Only constructed from native code: new BpfLink(External<bpf_link>).
BpfLink::BpfLink(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpfLink>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) {
    ThrowError(info.Env(), kErrInvalidArg, "BpfLink is made by BpfObject.attach* or BpfLink.openPinned");
    return;
  }
  link_ = info[0].As<Napi::External<bpf_link>>().Data();
  Addon::Of(info.Env())->Track(this);
}

BpfLink::~BpfLink() {
  Release();
  Addon::Untrack(this);
}

// Closes our fd. The kernel detaches the program only when no pin (and no other
// fd) holds the link any more.
void BpfLink::Release() {
  if (link_ != nullptr) bpf_link__destroy(link_);
  link_ = nullptr;
}

bool BpfLink::Live(Napi::Env env) {
  if (link_ == nullptr) ThrowError(env, kErrInvalidArg, "bpf link is closed");
  return link_ != nullptr;
}

// BpfLink.openPinned(path): BpfLink
Napi::Value BpfLink::OpenPinned(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  bpf_link* link = bpf_link__open(path.c_str());
  if (link == nullptr) {
    ThrowError(env, kErrBpfAttach, "cannot open pinned bpf link " + path, errno);
    return env.Undefined();
  }
  return Wrap(env, link);
}

Napi::Value BpfLink::Fd(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), link_ != nullptr ? bpf_link__fd(link_) : -1);
}

// pin(path)
Napi::Value BpfLink::Pin(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!Live(env)) return env.Undefined();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int rc = bpf_link__pin(link_, path.c_str());
  if (rc != 0) ThrowError(env, kErrBpfAttach, "cannot pin bpf link at " + path, -rc);
  return env.Undefined();
}

// unpin(): removes the pin this link was pinned at or opened from
Napi::Value BpfLink::Unpin(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!Live(env)) return env.Undefined();
  if (bpf_link__pin_path(link_) == nullptr) return env.Undefined();
  int rc = bpf_link__unpin(link_);
  if (rc != 0 && rc != -ENOENT) ThrowError(env, kErrBpfAttach, "cannot unpin bpf link", -rc);
  return env.Undefined();
}

// update(progFd): BPF_LINK_UPDATE — the hook never runs without a program
Napi::Value BpfLink::Update(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!Live(env)) return env.Undefined();
  int rc = bpf_link_update(bpf_link__fd(link_), info[0].As<Napi::Number>().Int32Value(), nullptr);
  if (rc != 0) ThrowError(env, kErrBpfAttach, "cannot update bpf link program", -rc);
  return env.Undefined();
}

// info(): { id, progId, type, attachType, cgroupId?: bigint, netnsIno?: number }
Napi::Value BpfLink::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!Live(env)) return env.Undefined();
  bpf_link_info li;
  memset(&li, 0, sizeof(li));
  uint32_t len = sizeof(li);
  int rc = bpf_obj_get_info_by_fd(bpf_link__fd(link_), &li, &len);
  if (rc != 0) {
    ThrowError(env, kErrBpfAttach, "cannot read bpf link info", -rc);
    return env.Undefined();
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("id", li.id);
  out.Set("progId", li.prog_id);
  out.Set("type", li.type);
  if (li.type == BPF_LINK_TYPE_CGROUP) {
    out.Set("attachType", li.cgroup.attach_type);
    out.Set("cgroupId", BigU64(env, li.cgroup.cgroup_id));
  } else if (li.type == BPF_LINK_TYPE_NETNS) {
    out.Set("attachType", li.netns.attach_type);
    out.Set("netnsIno", li.netns.netns_ino);
  }
  return out;
}

// detach(): BPF_LINK_DETACH — unhooks the program even while pins remain
Napi::Value BpfLink::Detach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!Live(env)) return env.Undefined();
  int rc = bpf_link_detach(bpf_link__fd(link_));
  if (rc != 0) ThrowError(env, kErrBpfAttach, "cannot detach bpf link", -rc);
  return env.Undefined();
}

Napi::Value BpfLink::Close(const Napi::CallbackInfo& info) {
  Release();
  Addon::Untrack(this);
  return info.Env().Undefined();
}

void InitBpfLink(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = BpfLink::Define(env);
  Addon::Of(env)->bpf_link_ctor = Napi::Persistent(ctor);
  exports.Set("BpfLink", ctor);
}

}  // namespace ferry
