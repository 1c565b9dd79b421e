// SPDX-License-Identifier: Apache-2.0
// Typed errors: the addon throws instances of the FerryError class that
// src/native/binding.ts hands over once at load, with a stable code from
// src/errors.ts and the errno name of the failed call.
#ifndef FERRY_NATIVE_ERRORS_H
#define FERRY_NATIVE_ERRORS_H

#include <napi.h>
#include <string>

namespace ferry {

// Codes used by native code; each exists in src/errors.ts.
constexpr const char* kErrNative = "FERRY_ERR_NATIVE";
constexpr const char* kErrInvalidArg = "FERRY_ERR_INVALID_ARG";
constexpr const char* kErrBpfLoad = "FERRY_ERR_BPF_LOAD";
constexpr const char* kErrBpfAttach = "FERRY_ERR_BPF_ATTACH";
constexpr const char* kErrBpfMap = "FERRY_ERR_BPF_MAP";
constexpr const char* kErrBpffs = "FERRY_ERR_BPFFS";
constexpr const char* kErrNetns = "FERRY_ERR_NETNS";
constexpr const char* kErrListen = "FERRY_ERR_LISTEN";

// Throws a FerryError (pending JS exception). `err` is a positive errno or 0.
void ThrowError(Napi::Env env, const char* code, const std::string& message, int err = 0);

// "EPERM"-style name of an errno, "E?" when unknown.
std::string ErrnoName(int err);

// Collects libbpf's log lines on this thread between Start() and Take(), so a
// verifier rejection's log ends up in the error message.
class LibbpfLog {
 public:
  static void Install();
  static void Start();
  static std::string Take();  // stops collecting, returns the tail of the log
};

}  // namespace ferry

#endif
