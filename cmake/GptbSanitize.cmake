# GPTB_SANITIZE: build everything with Clang/GCC sanitizers. One of
#   address            AddressSanitizer (heap/stack/global overflows, use after free, leaks)
#   undefined          UndefinedBehaviorSanitizer (every check fatal: -fno-sanitize-recover)
#   address,undefined  both (the pair the sanitizer pass of scripts/test uses)
#   thread             ThreadSanitizer (data races, lock-order inversions)
# Only our code is instrumented: Debian's gRPC, protobuf and Abseil and the wheel's LibTorch and
# Gloo are not, so the pass builds with GPTB_WITH_TORCH=OFF and runs the tests that need none of
# them to be instrumented (scripts/test, "sanitizer pass"; tests/sanitizers/ holds the
# suppressions and says why each one is there).
set(GPTB_SANITIZE "" CACHE STRING "Sanitizers: address, undefined, address,undefined or thread")
if(GPTB_SANITIZE)
  string(REPLACE "," ";" gptb_sanitizers "${GPTB_SANITIZE}")
  list(SORT gptb_sanitizers)
  list(REMOVE_DUPLICATES gptb_sanitizers)
  foreach(s ${gptb_sanitizers})
    if(NOT s MATCHES "^(address|thread|undefined)$")
      message(FATAL_ERROR "GPTB_SANITIZE: unknown sanitizer '${s}' (valid: address, undefined, "
                          "address,undefined, thread)")
    endif()
  endforeach()
  if("thread" IN_LIST gptb_sanitizers AND NOT gptb_sanitizers STREQUAL "thread")
    message(FATAL_ERROR "GPTB_SANITIZE: thread cannot be combined with '${GPTB_SANITIZE}' "
                        "(ThreadSanitizer excludes the other runtimes); use it alone")
  endif()
  string(REPLACE ";" "," gptb_sanitize_flag "${gptb_sanitizers}")
  # -g1: line tables, enough for symbolized reports and much cheaper to compile than -g.
  add_compile_options(-fsanitize=${gptb_sanitize_flag} -fno-omit-frame-pointer -g1)
  add_link_options(-fsanitize=${gptb_sanitize_flag})
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # GCC's flow analysis sees the sanitizers' instrumentation and then warns
    # -Wmaybe-uninitialized inside libstdc++ (<regex>'s _StateT, std::function) where nothing is
    # uninitialized (GCC bug 105562 and relatives); builds without GPTB_SANITIZE keep the warning.
    add_compile_options(-Wno-maybe-uninitialized)
  endif()
  if("undefined" IN_LIST gptb_sanitizers)
    # A finding fails the test instead of printing a line and carrying on.
    add_compile_options(-fno-sanitize-recover=undefined)
  endif()
  message(STATUS "gptbuilder: sanitizers ${gptb_sanitize_flag}")
endif()
