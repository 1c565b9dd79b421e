// SPDX-License-Identifier: Apache-2.0
// FdWatch: calls a JavaScript function whenever an fd is readable (or its peer hung
// up), from libuv's loop (uv_poll). It is how the handoff's unix sockets, which Node
// cannot wrap (SOCK_SEQPACKET, SCM_RIGHTS, SO_PEERCRED), are served without blocking
// the loop. Level-triggered: the callback must read until the fd would block, or it is
// called again on the next turn of the loop. The watch keeps the loop alive, and itself
// from being collected, until close(); close it before closing the fd.
#include <napi.h>
#include <uv.h>

#include <memory>

#include "addon.h"
#include "errors.h"

namespace ferry {

namespace {

class FdWatch : public Napi::ObjectWrap<FdWatch>, public Handle {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FdWatch", {InstanceMethod<&FdWatch::Close>("close")});
  }

  // new FdWatch(fd, callback)
  explicit FdWatch(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FdWatch>(info) {
    Napi::Env env = info.Env();
    if (info.Length() != 2 || !info[0].IsNumber() || !info[1].IsFunction()) {
      ThrowError(env, kErrInvalidArg, "FdWatch(fd, callback)");
      return;
    }
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
      ThrowError(env, kErrNative, "no event loop for FdWatch");
      return;
    }
    auto poll = std::make_unique<uv_poll_t>();
    int err = uv_poll_init(loop, poll.get(), info[0].As<Napi::Number>().Int32Value());
    if (err == 0) {
      poll->data = this;
      err = uv_poll_start(poll.get(), UV_READABLE | UV_DISCONNECT, OnPoll);
      if (err != 0) {
        uv_close(reinterpret_cast<uv_handle_t*>(poll.release()), FreePoll);
      }
    }
    if (err != 0) {
      ThrowError(env, kErrNative, std::string("cannot watch an fd: ") + uv_strerror(err));
      return;
    }
    poll_ = poll.release();
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
    context_ = std::make_unique<Napi::AsyncContext>(env, "FerryFdWatch");
    // Held while it watches: a watch nobody closed keeps calling back (and keeps the
    // loop alive), it is never collected from under a pending callback.
    Ref();
    referenced_ = true;
    Addon::Of(env)->Track(this);
  }

  ~FdWatch() override {
    Release();
    Addon::Untrack(this);
  }

  // Stops watching; libuv frees the poll handle on its next turn.
  void Release() override {
    if (poll_ == nullptr) return;
    uv_poll_stop(poll_);
    poll_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), FreePoll);
    poll_ = nullptr;
  }

 private:
  static void FreePoll(uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); }

  static void OnPoll(uv_poll_t* h, int status, int events) {
    auto* self = static_cast<FdWatch*>(h->data);
    if (self == nullptr || self->callback_.IsEmpty()) return;
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    // A poll error (status < 0) is the fd's to report: the callback's read sees it.
    self->callback_.MakeCallback(self->Value(), {}, *self->context_);
    if (env.IsExceptionPending()) {
      Napi::Error err = env.GetAndClearPendingException();
      napi_fatal_exception(env, err.Value());
    }
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Release();
    callback_.Reset();
    if (referenced_) Unref();
    referenced_ = false;
    return info.Env().Undefined();
  }

  uv_poll_t* poll_ = nullptr;
  bool referenced_ = false;
  Napi::FunctionReference callback_;
  std::unique_ptr<Napi::AsyncContext> context_;
};

}  // namespace

void InitFdWatch(Napi::Env env, Napi::Object exports) {
  exports.Set("FdWatch", FdWatch::Define(env));
}

}  // namespace ferry
