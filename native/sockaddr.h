// SPDX-License-Identifier: Apache-2.0
// A socket address from a family and the address's text, for the files that bind.
#ifndef FERRY_NATIVE_SOCKADDR_H
#define FERRY_NATIVE_SOCKADDR_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "errors.h"

namespace ferry {

// Fills @ss/@len for AF_INET or AF_INET6; false if @address is not of that family.
inline bool ParseAddress(int family, const std::string& address, uint16_t port, sockaddr_storage* ss, socklen_t* len) {
  memset(ss, 0, sizeof(*ss));
  if (family == AF_INET) {
    auto* sin = reinterpret_cast<sockaddr_in*>(ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    *len = sizeof(*sin);
    return inet_pton(AF_INET, address.c_str(), &sin->sin_addr) == 1;
  }
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(ss);
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(port);
  *len = sizeof(*sin6);
  return inet_pton(AF_INET6, address.c_str(), &sin6->sin6_addr) == 1;
}

// ParseAddress, throwing FERRY_ERR_INVALID_ARG into @env when @address is not of @family.
inline bool ParseAddressOrThrow(Napi::Env env, int family, const std::string& address, uint16_t port, sockaddr_storage* ss, socklen_t* len) {
  if (ParseAddress(family, address, port, ss, len)) return true;
  ThrowError(env, kErrInvalidArg, "not an IPv" + std::to_string(family == AF_INET ? 4 : 6) + " address: " + address);
  return false;
}

}  // namespace ferry

#endif
