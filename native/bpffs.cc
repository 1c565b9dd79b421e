// SPDX-License-Identifier: Apache-2.0
// bpffs: pins need it; a fresh node may not have it mounted yet.
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <cerrno>

#include "addon.h"
#include "errors.h"

namespace ferry {

namespace {

// ensureBpffs(path): boolean — true if it was mounted now, false if already there
Napi::Value Ensure(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  struct statfs st;
  if (statfs(path.c_str(), &st) == 0 && st.f_type == BPF_FS_MAGIC) return Napi::Boolean::New(env, false);
  if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    ThrowError(env, kErrBpffs, "cannot create bpffs mount point " + path, errno);
    return env.Undefined();
  }
  if (mount("bpf", path.c_str(), "bpf", 0, "mode=0700") != 0) {
    ThrowError(env, kErrBpffs, "cannot mount bpffs at " + path, errno);
    return env.Undefined();
  }
  return Napi::Boolean::New(env, true);
}

}  // namespace

void InitBpffs(Napi::Env env, Napi::Object exports) {
  exports.Set("ensureBpffs", Napi::Function::New(env, Ensure, "ensureBpffs"));
}

}  // namespace ferry
