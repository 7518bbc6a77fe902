// Compiler requirements of pagewire's public headers; every header includes it first.
#pragma once

// pagewire's interface is C++20 (std::span among others):
// an older -std gets this one line instead of pages of errors from inside the headers.
#if __cplusplus < 202002L
#error "pagewire needs C++20: compile with -std=c++20 (or gnu++20) or later"
// #error lets the compiler go on; a missing include is fatal in g++ and clang, so the
// compilation stops here, before the headers' C++20 code adds errors of its own.
#include <pagewire/stop: C++20 needed>
#endif
