// The CPU test program's main (doctest). Each TEST_CASE of tests/*.cpp is one ctest entry.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
