# gptb_proto_library(<target> PROTOS <files...> [GRPC] [DEPS <targets...>])
# Generates C++ (and, with GRPC, gRPC service stubs) for .proto files under proto/ and builds
# them into a static library. Import paths: proto/ and the system protobuf includes.
function(gptb_proto_library target)
  cmake_parse_arguments(ARG "GRPC" "" "PROTOS;DEPS" ${ARGN})
  add_library(${target} STATIC)
  target_sources(${target} PRIVATE ${ARG_PROTOS})
  target_link_libraries(${target} PUBLIC protobuf::libprotobuf ${ARG_DEPS})
  target_include_directories(${target} PUBLIC ${CMAKE_CURRENT_BINARY_DIR})
  set(import_dirs ${CMAKE_SOURCE_DIR}/proto ${Protobuf_INCLUDE_DIRS})
  protobuf_generate(TARGET ${target} LANGUAGE cpp
                    IMPORT_DIRS ${import_dirs}
                    PROTOC_OUT_DIR ${CMAKE_CURRENT_BINARY_DIR})
  if(ARG_GRPC)
    target_link_libraries(${target} PUBLIC gRPC::grpc++)
    protobuf_generate(TARGET ${target} LANGUAGE grpc
                      GENERATE_EXTENSIONS .grpc.pb.h .grpc.pb.cc
                      PLUGIN "protoc-gen-grpc=\$<TARGET_FILE:gRPC::grpc_cpp_plugin>"
                      IMPORT_DIRS ${import_dirs}
                      PROTOC_OUT_DIR ${CMAKE_CURRENT_BINARY_DIR})
  endif()
endfunction()
