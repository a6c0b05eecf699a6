# Helpers for tests and examples (nng cmake/NNGHelpers.cmake).

# tr_add_test(<name> [SOURCES <files...>] LABELS <labels...> [TIMEOUT <s>])
#
# Builds the executable <name> from SOURCES (default: <name>.c beside the
# calling CMakeLists.txt) and registers it with CTest. Tests link the static
# library so that unit tests can reach internal (hidden) symbols, and they see
# the project root (for "mailbox/mpsc.h" and the like) and tests/support (for
# "tr_test.h"). TIMEOUT defaults to 300 seconds. Each test's environment holds
# TR_SANITIZER and TR_TEST_TIMEOUT_MULTIPLIER, which tr_test.h reads.
# Warning, sanitizer and coverage flags need nothing here: the top-level
# CMakeLists.txt sets them for every target in the tree.
function(tr_add_test name)
    cmake_parse_arguments(PARSE_ARGV 1 ARG "" "TIMEOUT" "SOURCES;LABELS")
    if(ARG_UNPARSED_ARGUMENTS)
        message(FATAL_ERROR "tr_add_test(${name}): unknown arguments: ${ARG_UNPARSED_ARGUMENTS}")
    endif()
    if(NOT ARG_SOURCES)
        set(ARG_SOURCES "${CMAKE_CURRENT_SOURCE_DIR}/${name}.c")
    endif()
    if(NOT ARG_TIMEOUT)
        set(ARG_TIMEOUT 300)
    endif()
    if(TARGET ${name})
        message(FATAL_ERROR "tr_add_test(${name}): a target of that name already "
            "exists; test file names must be unique across unit/, integration/ and stress/.")
    endif()

    if(NOT TARGET PkgConfig::CMOCKA)
        find_package(PkgConfig REQUIRED)
        pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET GLOBAL cmocka)
    endif()

    add_executable(${name} ${ARG_SOURCES})
    target_include_directories(${name} PRIVATE
        "${troupe_SOURCE_DIR}" "${troupe_SOURCE_DIR}/tests/support")
    target_link_libraries(${name} PRIVATE
        troupe_internal troupe::static PkgConfig::CMOCKA Threads::Threads)
    if(TARGET tr_test_support)
        target_link_libraries(${name} PRIVATE tr_test_support)
    endif()

    add_test(NAME ${name} COMMAND ${name})
    if(TR_SANITIZER STREQUAL "address")
        set(multiplier 3)
    elseif(TR_SANITIZER STREQUAL "thread")
        set(multiplier 5)
    elseif(TR_SANITIZER STREQUAL "undefined")
        set(multiplier 2)
    else()
        set(multiplier 1)
    endif()
    set_tests_properties(${name} PROPERTIES
        TIMEOUT ${ARG_TIMEOUT}
        LABELS "${ARG_LABELS}"
        ENVIRONMENT "TR_TEST_TIMEOUT_MULTIPLIER=${multiplier};TR_SANITIZER=${TR_SANITIZER}")
endfunction()

# tr_add_example(<dir>)
#
# Adds examples/<name>/ when it has a CMakeLists.txt. An example is written as
# an outside user would write it (find_package(troupe CONFIG REQUIRED)); the
# top-level CMakeLists.txt makes that find_package resolve to the in-tree
# targets.
function(tr_add_example dir)
    if(NOT IS_ABSOLUTE "${dir}")
        set(dir "${CMAKE_CURRENT_SOURCE_DIR}/${dir}")
    endif()
    if(EXISTS "${dir}/CMakeLists.txt")
        add_subdirectory("${dir}")
    endif()
endfunction()

# tr_add_example_test(<target> [ARGS args...] [PASS regex])
#
# Runs an example's program as a test (label "example") when the target
# exists; PASS, when given, must match its output as well.
function(tr_add_example_test target)
    cmake_parse_arguments(ARG "" "PASS" "ARGS" ${ARGN})
    if(NOT TARGET ${target})
        return()
    endif()
    add_test(NAME example_${target} COMMAND ${target} ${ARG_ARGS})
    set_tests_properties(example_${target} PROPERTIES LABELS example TIMEOUT 120)
    if(ARG_PASS)
        set_tests_properties(example_${target} PROPERTIES
            PASS_REGULAR_EXPRESSION "${ARG_PASS}")
    endif()
endfunction()
