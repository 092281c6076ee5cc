# ctest driver for a libFuzzer target: cmake -DFUZZER=... (-DSEEDS=<program writing seeds into
# its argument> | -DSEED_DIR=<directory of seed files>) -DWORK_DIR=...
# -DUNAVAILABLE=<reason or empty> -DMAX_TOTAL_TIME=<s> [-DMAX_LEN=<bytes>] [-DRSS_LIMIT_MB=<MiB>]
# -P run_fuzzer.cmake. Prints the executions of the run (libFuzzer's stat::number_of_executed_units).
if(NOT UNAVAILABLE STREQUAL "")
  message(FATAL_ERROR "the fuzzer was not built: ${UNAVAILABLE}")
endif()
if(NOT EXISTS "${FUZZER}")
  message(FATAL_ERROR "the fuzzer binary ${FUZZER} does not exist; build the project first")
endif()
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}/corpus" "${WORK_DIR}/artifacts")
if(DEFINED SEED_DIR)
  file(GLOB seed_files "${SEED_DIR}/*")
  file(COPY ${seed_files} DESTINATION "${WORK_DIR}/corpus")
else()
  execute_process(COMMAND "${SEEDS}" "${WORK_DIR}/corpus" RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "writing the seed corpus failed (${rc})")
  endif()
endif()
if(NOT DEFINED MAX_LEN)
  set(MAX_LEN 8192)
endif()
if(NOT DEFINED RSS_LIMIT_MB)
  set(RSS_LIMIT_MB 2048)
endif()
file(GLOB seeds "${WORK_DIR}/corpus/*")
list(LENGTH seeds num_seeds)
if(num_seeds LESS 5)
  message(FATAL_ERROR "the seed corpus has only ${num_seeds} files")
endif()
execute_process(
  COMMAND "${FUZZER}" "${WORK_DIR}/corpus" -max_total_time=${MAX_TOTAL_TIME} -runs=5000000
          -max_len=${MAX_LEN} -timeout=10 -rss_limit_mb=${RSS_LIMIT_MB} -print_final_stats=1
          "-artifact_prefix=${WORK_DIR}/artifacts/"
  RESULT_VARIABLE rc ERROR_VARIABLE log OUTPUT_VARIABLE out)
file(WRITE "${WORK_DIR}/fuzzer.log" "${out}${log}")
if(NOT rc EQUAL 0)
  message("${log}")
  message(FATAL_ERROR "the fuzzer failed (exit ${rc}); crashing inputs are in ${WORK_DIR}/artifacts, "
                      "its log in ${WORK_DIR}/fuzzer.log")
endif()
string(REGEX MATCH "stat::number_of_executed_units: *([0-9]+)" units "${log}")
string(REGEX MATCH "stat::peak_rss_mb: *([0-9]+)" rss "${log}")
string(REGEX REPLACE ".*: *" "" units "${units}")
string(REGEX REPLACE ".*: *" "" rss "${rss}")
message(STATUS "fuzzer ran clean over ${num_seeds} seeds: ${units} executions in ${MAX_TOTAL_TIME} s, "
               "peak RSS ${rss} MiB")
