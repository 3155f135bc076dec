# node-gyp build of the same addon and CPU kernels as CMakeLists.txt, without CUDA or LibTorch,
# for users without CMake (npm run build:gyp → build/Release/sdvp.node). Needs libhwy-dev.
{
  "targets": [
    {
      "target_name": "sdvp",
      "sources": [
        "native/addon/addon.cc",
        "native/addon/errors.cc",
        "native/addon/capabilities_binding.cc",
        "native/addon/distill_loss_binding.cc",
        "native/addon/bench_probe_binding.cc",
        "native/addon/torch_binding.cc",
        "native/kernels/cpu/distill_loss_cpu.cc",
        "native/kernels/cpu/parallel_for.cc",
        "native/kernels/cpu/memory_floor.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "native",
        "native/kernels"
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED", "SDVP_BUILD_GYP=1"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++14", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-O3", "-fexceptions", "-fno-math-errno"],
      "libraries": ["-lhwy", "-lpthread"]
    }
  ]
}
