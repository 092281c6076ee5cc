# ctest driver for a libFuzzer target: cmake -DFUZZER=... -DSEEDS=... -DWORK_DIR=...
# -DUNAVAILABLE=<reason or empty> -DMAX_TOTAL_TIME=<s> -P run_fuzzer.cmake
if(NOT UNAVAILABLE STREQUAL "")
  message(FATAL_ERROR "the fuzzer was not built: ${UNAVAILABLE}")
endif()
if(NOT EXISTS "${FUZZER}")
  message(FATAL_ERROR "the fuzzer binary ${FUZZER} does not exist; build the project first")
endif()
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}/corpus" "${WORK_DIR}/artifacts")
execute_process(COMMAND "${SEEDS}" "${WORK_DIR}/corpus" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "writing the seed corpus failed (${rc})")
endif()
file(GLOB seeds "${WORK_DIR}/corpus/*")
list(LENGTH seeds num_seeds)
if(num_seeds LESS 5)
  message(FATAL_ERROR "the seed corpus has only ${num_seeds} files")
endif()
execute_process(
  COMMAND "${FUZZER}" "${WORK_DIR}/corpus" -max_total_time=${MAX_TOTAL_TIME} -runs=5000000
          -max_len=8192 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
          "-artifact_prefix=${WORK_DIR}/artifacts/"
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the fuzzer failed (exit ${rc}); crashing inputs are in ${WORK_DIR}/artifacts")
endif()
message(STATUS "fuzzer ran clean over ${num_seeds} seeds")
