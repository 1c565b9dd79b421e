// SPDX-License-Identifier: Apache-2.0
#include "errors.h"

#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include "addon.h"

namespace ferry {

namespace {

// Enough for the verifier's verdict and the instructions leading to it.
constexpr size_t kLogTail = 16 * 1024;

thread_local bool log_on = false;
thread_local std::string log_buf;

int PrintToBuffer(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (!log_on || level == LIBBPF_DEBUG) return 0;
  char line[1024];
  int n = vsnprintf(line, sizeof(line), fmt, args);
  if (n > 0) log_buf.append(line, std::min(static_cast<size_t>(n), sizeof(line) - 1));
  if (log_buf.size() > 4 * kLogTail) log_buf.erase(0, log_buf.size() - kLogTail);
  return n;
}

Napi::Value SetErrorClass(const Napi::CallbackInfo& info) {
  Addon* addon = Addon::Of(info.Env());
  addon->error_class = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

}  // namespace

std::string ErrnoName(int err) {
  const char* name = strerrorname_np(err);
  return name != nullptr ? name : "E?";
}

void ThrowError(Napi::Env env, const char* code, const std::string& message, int err) {
  Addon* addon = Addon::Of(env);
  std::string text = message;
  if (err > 0) text += ": " + std::string(strerror(err));
  if (addon == nullptr || addon->error_class.IsEmpty()) {
    Napi::Error e = Napi::Error::New(env, text);
    e.Set("code", Napi::String::New(env, code));
    e.ThrowAsJavaScriptException();
    return;
  }
  Napi::Object opts = Napi::Object::New(env);
  if (err > 0) opts.Set("errno", Napi::String::New(env, ErrnoName(err)));
  Napi::Value e = addon->error_class.New({Napi::String::New(env, code), Napi::String::New(env, text), opts});
  if (!e.IsEmpty()) Napi::Error(env, e).ThrowAsJavaScriptException();
}

void LibbpfLog::Install() { libbpf_set_print(PrintToBuffer); }

void LibbpfLog::Start() {
  log_on = true;
  log_buf.clear();
}

std::string LibbpfLog::Take() {
  log_on = false;
  std::string out;
  out.swap(log_buf);
  if (out.size() > kLogTail) out = "..." + out.substr(out.size() - kLogTail);
  return out;
}

void InitErrors(Napi::Env env, Napi::Object exports) {
  exports.Set("setErrorClass", Napi::Function::New(env, SetErrorClass, "setErrorClass"));
}

}  // namespace ferry
