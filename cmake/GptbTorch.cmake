# LibTorch from the project's Python environment: the pinned torch wheel (scripts/bootstrap
# makes the environment) ships LibTorch's headers, CMake config and libraries. GPTB_PYTHON is
# that environment's interpreter; the wheel is found through torch.utils.cmake_prefix_path.
#
# Defines `gptb_torch`, the one target project code links for LibTorch, and GPTB_TORCH_VERSION.
# - CPU build (the default): LibTorch's CPU library and c10 only. The wheel is CUDA-enabled, but
#   nothing here needs the CUDA toolkit; libtorch_cpu finds the CUDA runtime it lists (cudart,
#   cupti; never called without a device) in the wheel's nvidia packages through its own RPATH.
# - GPTB_WITH_CUDA=ON: the wheel's own CMake config (`find_package(Torch)`, which needs the CUDA
#   toolkit) and every CUDA library it names, plus NCCL's headers for ProcessGroupNCCL.
set(GPTB_PYTHON "${CMAKE_SOURCE_DIR}/.venv/bin/python" CACHE FILEPATH
    "Python of the environment holding the torch wheel (scripts/bootstrap --python prints it)")
if(NOT EXISTS "${GPTB_PYTHON}")
  message(FATAL_ERROR "GPTB_PYTHON=${GPTB_PYTHON} does not exist: run scripts/bootstrap (it "
                      "makes the Python environment with the torch wheel) or pass "
                      "-DGPTB_PYTHON=<python with torch installed>")
endif()
execute_process(
  COMMAND "${GPTB_PYTHON}" -c
          "import torch, torch.utils; print(torch.__version__); print(torch.utils.cmake_prefix_path)"
  OUTPUT_VARIABLE _gptb_torch_out ERROR_VARIABLE _gptb_torch_err RESULT_VARIABLE _gptb_torch_rc
  OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT _gptb_torch_rc EQUAL 0)
  message(FATAL_ERROR "${GPTB_PYTHON} cannot import torch: ${_gptb_torch_err}")
endif()
string(REPLACE "\n" ";" _gptb_torch_out "${_gptb_torch_out}")
list(GET _gptb_torch_out 0 GPTB_TORCH_VERSION)
list(GET _gptb_torch_out 1 GPTB_TORCH_CMAKE_PREFIX)
get_filename_component(GPTB_TORCH_ROOT "${GPTB_TORCH_CMAKE_PREFIX}/../.." ABSOLUTE)
if(GPTB_TORCH_VERSION VERSION_LESS 2.0)
  message(FATAL_ERROR "LibTorch ${GPTB_TORCH_VERSION} is too old: the project builds on 2.x")
endif()
message(STATUS "LibTorch ${GPTB_TORCH_VERSION} from ${GPTB_TORCH_ROOT}")

add_library(gptb_torch INTERFACE)
if(GPTB_WITH_CUDA)
  list(APPEND CMAKE_PREFIX_PATH "${GPTB_TORCH_CMAKE_PREFIX}")
  # The project compiles no CUDA code; naming the architectures keeps the wheel's config from
  # probing for a GPU (a machine that builds need not have one).
  if(NOT DEFINED TORCH_CUDA_ARCH_LIST AND NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
    set(TORCH_CUDA_ARCH_LIST "8.0;9.0")
  endif()
  find_package(Torch REQUIRED)
  # The wheel's CUDA libraries (nvidia-* packages next to torch): libtorch_cuda was built against
  # them, e.g. NCCL 2.30 from nvidia-nccl-cu13, newer than the toolkit's (ncclCommGrow and others
  # are missing there). Link and run against these, not the toolkit's copies: the CUDA runtime
  # and NVRTC the wheel's config takes from the toolkit are pointed at the wheel's, and the
  # linker resolves libtorch_cuda's own dependencies in the wheel's folders first.
  get_filename_component(_gptb_nvidia "${GPTB_TORCH_ROOT}/../nvidia" ABSOLUTE)
  file(GLOB _gptb_nvidia_lib_dirs LIST_DIRECTORIES true "${_gptb_nvidia}/*/lib")
  if(NOT _gptb_nvidia_lib_dirs)
    message(FATAL_ERROR "GPTB_WITH_CUDA=ON: no CUDA libraries next to the torch wheel "
                        "(${_gptb_nvidia}/*/lib); install the wheel with its nvidia-* packages")
  endif()
  foreach(_gptb_pair IN ITEMS "CUDA::cudart|cu13/lib/libcudart.so.13"
                              "CUDA::nvrtc|cu13/lib/libnvrtc.so.13")
    string(REPLACE "|" ";" _gptb_pair "${_gptb_pair}")
    list(GET _gptb_pair 0 _gptb_target)
    list(GET _gptb_pair 1 _gptb_file)
    if(TARGET ${_gptb_target} AND EXISTS "${_gptb_nvidia}/${_gptb_file}")
      set_target_properties(${_gptb_target} PROPERTIES
                            IMPORTED_LOCATION "${_gptb_nvidia}/${_gptb_file}")
    endif()
  endforeach()
  string(REPLACE ";" ":" _gptb_rpath_link "${_gptb_nvidia_lib_dirs}")
  target_link_options(gptb_torch INTERFACE "LINKER:-rpath-link,${_gptb_rpath_link}")
  # NCCL's header from the same NCCL as the library the wheel loads.
  find_path(GPTB_NCCL_INCLUDE_DIR nccl.h
            HINTS "${_gptb_nvidia}/nccl/include" ${CUDAToolkit_INCLUDE_DIRS}
                  /usr/local/cuda/include
            NO_DEFAULT_PATH)
  if(NOT GPTB_NCCL_INCLUDE_DIR)
    message(FATAL_ERROR "GPTB_WITH_CUDA=ON needs nccl.h (nvidia-nccl-cu13 next to the torch wheel, "
                        "or the CUDA toolkit's NCCL)")
  endif()
  target_include_directories(gptb_torch SYSTEM INTERFACE "${GPTB_NCCL_INCLUDE_DIR}")
  target_link_libraries(gptb_torch INTERFACE ${TORCH_LIBRARIES})
else()
  set(_gptb_torch_libs "${GPTB_TORCH_ROOT}/lib/libtorch_cpu.so" "${GPTB_TORCH_ROOT}/lib/libc10.so")
  foreach(lib IN LISTS _gptb_torch_libs)
    if(NOT EXISTS "${lib}")
      message(FATAL_ERROR "${lib} is missing from the torch wheel at ${GPTB_TORCH_ROOT}")
    endif()
  endforeach()
  target_include_directories(gptb_torch SYSTEM INTERFACE
    "${GPTB_TORCH_ROOT}/include" "${GPTB_TORCH_ROOT}/include/torch/csrc/api/include")
  target_link_libraries(gptb_torch INTERFACE ${_gptb_torch_libs} Threads::Threads)
  # The wheel's headers require C++20 (the project builds as C++20 throughout).
  target_compile_features(gptb_torch INTERFACE cxx_std_20)
endif()
# Binaries find the wheel's libraries at run time through their RPATH (CMake's build RPATH for
# the libraries named above); the images copy the same folder.
set(GPTB_TORCH_LIBRARY_DIR "${GPTB_TORCH_ROOT}/lib")
