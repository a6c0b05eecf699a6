# Every TR_* build option, one line of help each (nng cmake/NNGOptions.cmake).
# Included from the top-level CMakeLists.txt after project().

# True when troupe is the project being built, not a subdirectory of another.
if(CMAKE_SOURCE_DIR STREQUAL PROJECT_SOURCE_DIR)
    set(TR_IS_TOP_LEVEL ON)
else()
    set(TR_IS_TOP_LEVEL OFF)
endif()

# Only choose a build type for our own top-level, single-config builds.
if(TR_IS_TOP_LEVEL AND NOT CMAKE_BUILD_TYPE AND NOT CMAKE_CONFIGURATION_TYPES)
    set(CMAKE_BUILD_TYPE RelWithDebInfo CACHE STRING
        "Build type: Debug, Release, RelWithDebInfo or MinSizeRel." FORCE)
endif()

option(TR_BUILD_TESTS "Build the cmocka tests under tests/ (needs cmocka)." ${TR_IS_TOP_LEVEL})
option(TR_BUILD_EXAMPLES "Build every examples/<name>/ that has a CMakeLists.txt." ON)
option(TR_BUILD_BENCH "Build troupe-bench from bench/ when bench/CMakeLists.txt exists." ON)
option(TR_WERROR "Treat compiler warnings as errors." OFF)
option(TR_LTO "Link-time optimization in Release builds, where the compiler supports it." ON)
option(TR_COVERAGE "Compile and link everything with --coverage (gcov)." OFF)
option(TR_BUILD_DRAFT_API "Expose the unstable draft API (defines TR_BUILD_DRAFT_API)." OFF)

set(TR_SANITIZER "none" CACHE STRING
    "Sanitizer for everything: none, address (ASan+UBSan), thread or undefined.")
set_property(CACHE TR_SANITIZER PROPERTY STRINGS none address thread undefined)
if(NOT TR_SANITIZER MATCHES "^(none|address|thread|undefined)$")
    message(FATAL_ERROR "TR_SANITIZER='${TR_SANITIZER}': use none, address, thread or undefined.")
endif()

# Like mimalloc's MI_DEBUG: assertions follow the build type unless chosen.
if(CMAKE_BUILD_TYPE STREQUAL "Debug")
    set(tr_debug_default 2)
else()
    set(tr_debug_default 0)
endif()
set(TR_DEBUG "${tr_debug_default}" CACHE STRING
    "Assertion level: 0 none, 1 API misuse, 2 +internal invariants, 3 +expensive walks.")
set_property(CACHE TR_DEBUG PROPERTY STRINGS 0 1 2 3)
if(NOT TR_DEBUG MATCHES "^[0-3]$")
    message(FATAL_ERROR "TR_DEBUG='${TR_DEBUG}': use 0, 1, 2 or 3.")
endif()
