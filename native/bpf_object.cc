// SPDX-License-Identifier: Apache-2.0
// BpfObject: open + load an eBPF object with a pin root (maps pinned by name are
// reused) and load-time settings written into its .rodata; attach its programs.
#include "bpf_object.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "bpf_link.h"
#include "errors.h"
#include "util.h"

namespace ferry {

namespace {

// Blocks every signal on this thread while it lives. The verifier gives up with EAGAIN
// when a signal is pending on the loading thread; libbpf retries only a few times, so a
// steady signal source (V8's CPU profiler sends SIGPROF every millisecond) makes a large
// program's load fail. Signals that arrive meanwhile are delivered at the end.
class SignalsBlocked {
 public:
  SignalsBlocked() {
    sigset_t all;
    sigfillset(&all);
    blocked_ = pthread_sigmask(SIG_BLOCK, &all, &saved_) == 0;
  }
  ~SignalsBlocked() {
    if (blocked_) pthread_sigmask(SIG_SETMASK, &saved_, nullptr);
  }
  SignalsBlocked(const SignalsBlocked&) = delete;
  SignalsBlocked& operator=(const SignalsBlocked&) = delete;

 private:
  sigset_t saved_;
  bool blocked_ = false;
};


bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bpf_map* RodataMap(bpf_object* obj) {
  bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    if (bpf_map__is_internal(map) && EndsWith(bpf_map__name(map), ".rodata")) return map;
  }
  return nullptr;
}

}  // namespace

Napi::Function BpfObject::Define(Napi::Env env) {
  return DefineClass(env, "BpfObject", {
    InstanceMethod<&BpfObject::Programs>("programs"),
    InstanceMethod<&BpfObject::ProgFd>("progFd"),
    InstanceMethod<&BpfObject::MapFd>("mapFd"),
    InstanceMethod<&BpfObject::AttachCgroup>("attachCgroup"),
    InstanceMethod<&BpfObject::AttachNetns>("attachNetns"),
    InstanceMethod<&BpfObject::AttachSkMsg>("attachSkMsg"),
    InstanceMethod<&BpfObject::Close>("close"),
  });
}

// new BpfObject(path, pinRoot, rodata: { [name]: number })
BpfObject::BpfObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpfObject>(info) {
  Napi::Env env = info.Env();
  path_ = info[0].As<Napi::String>().Utf8Value();
  if (!Open(env, path_, info[1].As<Napi::String>().Utf8Value(), info[2].As<Napi::Object>())) return;
  Addon::Of(env)->Track(this);
}

BpfObject::~BpfObject() {
  Release();
  Addon::Untrack(this);
}

void BpfObject::Release() {
  if (obj_ != nullptr) bpf_object__close(obj_);
  obj_ = nullptr;
}

bool BpfObject::Open(Napi::Env env, const std::string& path, const std::string& pin_root, Napi::Object rodata) {
  bpf_object_open_opts opts;
  memset(&opts, 0, sizeof(opts));
  opts.sz = sizeof(opts);
  // No pin root: the object pins nothing (its maps live as long as their fds).
  opts.pin_root_path = pin_root.empty() ? nullptr : pin_root.c_str();
  LibbpfLog::Start();
  obj_ = bpf_object__open_file(path.c_str(), &opts);
  if (obj_ == nullptr) {
    int err = errno;
    ThrowError(env, kErrBpfLoad, "cannot open eBPF object " + path + "\n" + LibbpfLog::Take(), err);
    return false;
  }
  if (!SetRodata(env, rodata)) {
    LibbpfLog::Take();
    Release();
    return false;
  }
  int rc;
  {
    SignalsBlocked quiet;
    rc = bpf_object__load(obj_);
  }
  std::string log = LibbpfLog::Take();
  if (rc != 0) {
    ThrowError(env, kErrBpfLoad, "cannot load eBPF object " + path + "\n" + log, -rc);
    Release();
    return false;
  }
  return true;
}

// Writes each setting into the variable of that name in the object's .rodata,
// found through BTF, before load freezes it.
bool BpfObject::SetRodata(Napi::Env env, Napi::Object rodata) {
  Napi::Array names = rodata.GetPropertyNames();
  if (names.Length() == 0) return true;
  bpf_map* map = RodataMap(obj_);
  btf* btf = bpf_object__btf(obj_);
  int sec_id = btf != nullptr ? btf__find_by_name_kind(btf, ".rodata", BTF_KIND_DATASEC) : -1;
  if (map == nullptr || sec_id < 0) {
    ThrowError(env, kErrBpfLoad, path_ + " has no .rodata with BTF for load-time settings");
    return false;
  }
  size_t size = 0;
  const void* initial = bpf_map__initial_value(map, &size);
  std::vector<uint8_t> data(static_cast<const uint8_t*>(initial), static_cast<const uint8_t*>(initial) + size);
  const btf_type* sec = btf__type_by_id(btf, sec_id);
  for (uint32_t i = 0; i < names.Length(); i++) {
    std::string name = names.Get(i).As<Napi::String>().Utf8Value();
    uint64_t value = static_cast<uint64_t>(rodata.Get(name).As<Napi::Number>().Int64Value());
    const btf_var_secinfo* vsi = btf_var_secinfos(sec);
    bool found = false;
    for (uint16_t j = 0; j < btf_vlen(sec); j++, vsi++) {
      const btf_type* var = btf__type_by_id(btf, vsi->type);
      if (name != btf__name_by_offset(btf, var->name_off)) continue;
      if (vsi->size > sizeof(value) || vsi->offset + vsi->size > data.size() ||
          (vsi->size < sizeof(value) && (value >> (8 * vsi->size)) != 0)) {
        ThrowError(env, kErrInvalidArg, "load-time setting " + name + " does not fit its variable in " + path_);
        return false;
      }
      memcpy(data.data() + vsi->offset, &value, vsi->size);  // little endian: low bytes first
      found = true;
    }
    if (!found) {
      ThrowError(env, kErrBpfLoad, path_ + " has no load-time setting named " + name);
      return false;
    }
  }
  int rc = bpf_map__set_initial_value(map, data.data(), data.size());
  if (rc != 0) {
    ThrowError(env, kErrBpfLoad, "cannot set load-time settings of " + path_, -rc);
    return false;
  }
  return true;
}

bpf_program* BpfObject::Program(Napi::Env env, const Napi::Value& name) {
  if (obj_ == nullptr) {
    ThrowError(env, kErrInvalidArg, "eBPF object " + path_ + " is closed");
    return nullptr;
  }
  std::string n = name.As<Napi::String>().Utf8Value();
  bpf_program* prog = bpf_object__find_program_by_name(obj_, n.c_str());
  if (prog == nullptr) ThrowError(env, kErrInvalidArg, "no program " + n + " in " + path_);
  return prog;
}

// programs(): Array<{ name, section, fd }>
Napi::Value BpfObject::Programs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array out = Napi::Array::New(env);
  if (obj_ == nullptr) return out;
  bpf_program* prog;
  uint32_t i = 0;
  bpf_object__for_each_program(prog, obj_) {
    Napi::Object p = Napi::Object::New(env);
    p.Set("name", bpf_program__name(prog));
    p.Set("section", bpf_program__section_name(prog));
    p.Set("fd", bpf_program__fd(prog));
    out.Set(i++, p);
  }
  return out;
}

// progFd(name): number — borrowed, valid until close()
Napi::Value BpfObject::ProgFd(const Napi::CallbackInfo& info) {
  bpf_program* prog = Program(info.Env(), info[0]);
  if (prog == nullptr) return info.Env().Undefined();
  return Napi::Number::New(info.Env(), bpf_program__fd(prog));
}

// mapFd(name): number — a new fd (dup) the caller owns and closes
Napi::Value BpfObject::MapFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (obj_ == nullptr) {
    ThrowError(env, kErrInvalidArg, "eBPF object " + path_ + " is closed");
    return env.Undefined();
  }
  std::string name = info[0].As<Napi::String>().Utf8Value();
  int fd = bpf_object__find_map_fd_by_name(obj_, name.c_str());
  if (fd < 0) {
    ThrowError(env, kErrInvalidArg, "no map " + name + " in " + path_);
    return env.Undefined();
  }
  int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) {
    ThrowError(env, kErrNative, "cannot duplicate the fd of map " + name, errno);
    return env.Undefined();
  }
  return Napi::Number::New(env, dup);
}

// attachCgroup(progName, cgroup: string | number): BpfLink
Napi::Value BpfObject::AttachCgroup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_program* prog = Program(env, info[0]);
  if (prog == nullptr) return env.Undefined();
  bool by_path = info[1].IsString();
  std::string path = by_path ? info[1].As<Napi::String>().Utf8Value() : "";
  ScopedFd owned(by_path ? open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1);
  if (by_path && owned.get() < 0) {
    ThrowError(env, "FERRY_ERR_CGROUP", "cannot open cgroup " + path, errno);
    return env.Undefined();
  }
  int cg_fd = by_path ? owned.get() : info[1].As<Napi::Number>().Int32Value();
  LibbpfLog::Start();
  bpf_link* link = bpf_program__attach_cgroup(prog, cg_fd);
  int err = errno;
  std::string log = LibbpfLog::Take();
  if (link == nullptr) {
    ThrowError(env, kErrBpfAttach, "cannot attach " + std::string(bpf_program__name(prog)) + " to a cgroup\n" + log, err);
    return env.Undefined();
  }
  return BpfLink::Wrap(env, link);
}

// attachNetns(progName, netnsFd): BpfLink
Napi::Value BpfObject::AttachNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_program* prog = Program(env, info[0]);
  if (prog == nullptr) return env.Undefined();
  LibbpfLog::Start();
  bpf_link* link = bpf_program__attach_netns(prog, info[1].As<Napi::Number>().Int32Value());
  int err = errno;
  std::string log = LibbpfLog::Take();
  if (link == nullptr) {
    ThrowError(env, kErrBpfAttach, "cannot attach " + std::string(bpf_program__name(prog)) + " to a netns\n" + log, err);
    return env.Undefined();
  }
  return BpfLink::Wrap(env, link);
}

// attachSkMsg(progName, mapFd, pinPath): BpfLink — an sk_msg verdict program on a
// sockmap/sockhash as a link (kernel 6.10+), pinned at pinPath. libbpf 1.1 has no
// attach function for it, so the link is made with bpf_link_create, pinned, and
// reopened from the pin to get libbpf's handle like every other link.
Napi::Value BpfObject::AttachSkMsg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_program* prog = Program(env, info[0]);
  if (prog == nullptr) return env.Undefined();
  int map_fd = info[1].As<Napi::Number>().Int32Value();
  std::string pin = info[2].As<Napi::String>().Utf8Value();
  std::string name = bpf_program__name(prog);
  ScopedFd link_fd(bpf_link_create(bpf_program__fd(prog), map_fd, BPF_SK_MSG_VERDICT, nullptr));
  if (link_fd.get() < 0) {
    ThrowError(env, kErrBpfAttach, "cannot attach " + name + " to a sockmap", -link_fd.get());
    return env.Undefined();
  }
  if (bpf_obj_pin(link_fd.get(), pin.c_str()) != 0) {
    ThrowError(env, kErrBpfAttach, "cannot pin the link of " + name + " at " + pin, errno);
    return env.Undefined();
  }
  bpf_link* link = bpf_link__open(pin.c_str());
  if (link == nullptr) {
    int err = errno;
    unlink(pin.c_str());
    ThrowError(env, kErrBpfAttach, "cannot reopen the link of " + name + " from " + pin, err);
    return env.Undefined();
  }
  return BpfLink::Wrap(env, link);
}

Napi::Value BpfObject::Close(const Napi::CallbackInfo& info) {
  Release();
  Addon::Untrack(this);
  return info.Env().Undefined();
}

void InitBpfObject(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = BpfObject::Define(env);
  Addon::Of(env)->bpf_object_ctor = Napi::Persistent(ctor);
  exports.Set("BpfObject", ctor);
}

}  // namespace ferry
