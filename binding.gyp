{
  "targets": [
    {
      "target_name": "beamedge",
      "sources": [
        "native/src/addon.cc",
        "native/src/cbf_locate.cc",
        "native/src/byte_offset.cc",
        "native/src/geometry.cc",
        "native/src/integrator.cc",
        "native/src/bbox_map.cc",
        "native/src/pixel_map.cc",
        "native/src/jungfrau.cc",
        "native/src/jungfrau_integrate.cc",
        "native/src/sd_notify.cc",
        "native/src/lz4_codecs.cc",
        "native/src/cbf_decode.cc",
        "native/src/pedestal.cc",
        "native/src/dispersion.cc",
        "native/src/peakfinder8.cc",
        "native/src/fxs.cc",
        "native/src/preview.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++1y", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-O3", "-ffp-contract=off", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "xcode_settings": { "GCC_ENABLE_CPP_EXCEPTIONS": "YES", "CLANG_CXX_LANGUAGE_STANDARD": "c++17" }
    }
  ]
}
