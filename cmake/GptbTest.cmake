# gptb_test(<name> SOURCES <files...> DEPS <targets...> [LABELS <labels...>] [TIMEOUT <s>])
# A GoogleTest binary whose tests ctest discovers one by one (output on failure). GPTB_PYTHON is
# the project environment's interpreter (torch, megatron-core, transformers) for the references.
function(gptb_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_compile_options(${name} PRIVATE ${GPTB_WARNINGS})
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gmock GTest::gtest_main)
  target_compile_definitions(${name} PRIVATE
    GPTB_SOURCE_DIR="${CMAKE_SOURCE_DIR}" GPTB_BINARY_DIR="${CMAKE_BINARY_DIR}"
    GPTB_PYTHON="${GPTB_PYTHON}")
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  gtest_discover_tests(${name} DISCOVERY_MODE PRE_TEST
                       PROPERTIES TIMEOUT ${ARG_TIMEOUT} LABELS "${ARG_LABELS}")
endfunction()
