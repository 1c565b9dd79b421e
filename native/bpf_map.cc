// SPDX-License-Identifier: Apache-2.0
// Map operations on fds and Buffers. Keys and values are opaque bytes here; their
// layout lives in src/capture/map-layout.ts. A SOCKMAP takes a socket fd as its
// value on update and returns the socket cookie on lookup.
#include <bpf/bpf.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "addon.h"
#include "errors.h"
#include "util.h"

namespace ferry {

namespace {

int FdArg(const Napi::Value& v) { return v.As<Napi::Number>().Int32Value(); }

Napi::Buffer<uint8_t> Bytes(const Napi::Value& v) { return v.As<Napi::Buffer<uint8_t>>(); }

// mapOpenPinned(path): number
Napi::Value OpenPinned(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) {
    ThrowError(env, kErrBpfMap, "cannot open pinned map " + path, -fd);
    return env.Undefined();
  }
  return Napi::Number::New(env, fd);
}

// mapInfo(fd): { id, type, keySize, valueSize, maxEntries, name }
Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_map_info mi;
  memset(&mi, 0, sizeof(mi));
  uint32_t len = sizeof(mi);
  int rc = bpf_obj_get_info_by_fd(FdArg(info[0]), &mi, &len);
  if (rc != 0) {
    ThrowError(env, kErrBpfMap, "cannot read map info", -rc);
    return env.Undefined();
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("id", mi.id);
  out.Set("type", mi.type);
  out.Set("keySize", mi.key_size);
  out.Set("valueSize", mi.value_size);
  out.Set("maxEntries", mi.max_entries);
  out.Set("name", mi.name);
  return out;
}

// mapUpdate(fd, key, value, flags): void
Napi::Value Update(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto key = Bytes(info[1]);
  auto value = Bytes(info[2]);
  int rc = bpf_map_update_elem(FdArg(info[0]), key.Data(), value.Data(), info[3].As<Napi::Number>().Int64Value());
  if (rc != 0) ThrowError(env, kErrBpfMap, "map update failed", -rc);
  return env.Undefined();
}

// mapLookup(fd, key, valueSize): Buffer | null
Napi::Value Lookup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto key = Bytes(info[1]);
  auto value = Napi::Buffer<uint8_t>::New(env, info[2].As<Napi::Number>().Uint32Value());
  int rc = bpf_map_lookup_elem(FdArg(info[0]), key.Data(), value.Data());
  if (rc == -ENOENT) return env.Null();
  if (rc != 0) {
    ThrowError(env, kErrBpfMap, "map lookup failed", -rc);
    return env.Undefined();
  }
  return value;
}

// mapLookupAndDelete(fd, key, valueSize): Buffer | null — atomic
Napi::Value LookupAndDelete(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto key = Bytes(info[1]);
  auto value = Napi::Buffer<uint8_t>::New(env, info[2].As<Napi::Number>().Uint32Value());
  int rc = bpf_map_lookup_and_delete_elem(FdArg(info[0]), key.Data(), value.Data());
  if (rc == -ENOENT) return env.Null();
  if (rc != 0) {
    ThrowError(env, kErrBpfMap, "map lookup-and-delete failed", -rc);
    return env.Undefined();
  }
  return value;
}

// mapDelete(fd, key): boolean — false if the key was absent
Napi::Value Delete(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto key = Bytes(info[1]);
  int rc = bpf_map_delete_elem(FdArg(info[0]), key.Data());
  if (rc == -ENOENT) return Napi::Boolean::New(env, false);
  if (rc != 0) {
    ThrowError(env, kErrBpfMap, "map delete failed", -rc);
    return env.Undefined();
  }
  return Napi::Boolean::New(env, true);
}

// mapNextKey(fd, key | null, keySize): Buffer | null — null after the last key
Napi::Value NextKey(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const void* key = info[1].IsNull() ? nullptr : Bytes(info[1]).Data();
  auto next = Napi::Buffer<uint8_t>::New(env, info[2].As<Napi::Number>().Uint32Value());
  int rc = bpf_map_get_next_key(FdArg(info[0]), key, next.Data());
  if (rc == -ENOENT) return env.Null();
  if (rc != 0) {
    ThrowError(env, kErrBpfMap, "map get-next-key failed", -rc);
    return env.Undefined();
  }
  return next;
}

}  // namespace

void InitBpfMap(Napi::Env env, Napi::Object exports) {
  exports.Set("mapOpenPinned", Napi::Function::New(env, OpenPinned, "mapOpenPinned"));
  exports.Set("mapInfo", Napi::Function::New(env, Info, "mapInfo"));
  exports.Set("mapUpdate", Napi::Function::New(env, Update, "mapUpdate"));
  exports.Set("mapLookup", Napi::Function::New(env, Lookup, "mapLookup"));
  exports.Set("mapLookupAndDelete", Napi::Function::New(env, LookupAndDelete, "mapLookupAndDelete"));
  exports.Set("mapDelete", Napi::Function::New(env, Delete, "mapDelete"));
  exports.Set("mapNextKey", Napi::Function::New(env, NextKey, "mapNextKey"));
}

}  // namespace ferry
