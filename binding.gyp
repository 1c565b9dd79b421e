{
  "targets": [
    {
      "target_name": "ferry_native",
      "sources": [
        "native/addon.cc",
        "native/errors.cc",
        "native/bpf_object.cc",
        "native/bpf_link.cc",
        "native/bpf_map.cc",
        "native/netns.cc",
        "native/bpffs.cc",
        "native/listen.cc",
        "native/unix_socket.cc",
        "native/fd_passing.cc",
        "native/fd_watch.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_DISABLE_CPP_EXCEPTIONS", "NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags": ["-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags_cc": ["-fvisibility=hidden", "-std=c++17", "-fno-exceptions"],
      "libraries": ["-lbpf", "-lelf", "-lz"]
    }
  ]
}
