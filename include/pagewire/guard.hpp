// Truncation safety: turn the SIGBUS of a mapped page that lost its file
// backing (the file was truncated, or the disk failed) into an error value.
//
// Which accesses are guarded: only the functions in this header and the
// Mapping::read / Mapping::write methods built on them.
// Raw pointers (Mapping::data(), bytes(), records()) are NOT guarded: touching
// a page past end of file through them raises SIGBUS as the kernel defines.
// System calls given a mapped pointer (write(2), send(2)) never raise SIGBUS;
// they fail with EFAULT or transfer short, which pagewire reports as errors.
//
// How: a SIGBUS handler is installed once, process-wide, the first time a
// guard is used. It acts only when the faulting address lies inside the range
// the current thread declared as guarded; every other SIGBUS (another thread,
// another address, a raise() or kill()) goes to the handler that was installed
// before pagewire's, or to the default action (core dump) if there was none.
// Thread-safe; each thread has its own guarded range; guards nest.
#pragma once

#include <cstddef>
#include <pagewire/config.hpp>
#include <string>
#include <type_traits>

namespace pagewire {

// Status of a guarded access. error is 0 on success, EFAULT when a page of the
// guarded range raised SIGBUS (not backed by the file: past end of file or an
// I/O error); Mapping::read/write add ERANGE (request outside the view) and
// EACCES (write to a read-only view).
struct [[nodiscard]] AccessResult {
    int error = 0;
    std::size_t fault_offset = 0;  // for EFAULT: offset of the failing byte from the range start

    bool ok() const noexcept { return error == 0; }
    explicit operator bool() const noexcept { return ok(); }
    // One line describing the failure ("" when ok()).
    std::string message() const;
};

// Copies n bytes from src to dst (memcpy semantics, no overlap) and reports a
// SIGBUS raised by either range as EFAULT instead of killing the process.
// When it fails, dst holds an unspecified prefix of the data.
AccessResult guarded_copy(void* dst, const void* src, std::size_t n) noexcept;

// Runs fn(arg) with SIGBUS on [base, base+length) turned into EFAULT. If a
// fault happens fn is abandoned midway (siglongjmp): fn must not own anything
// that needs a destructor or a lock released; plain loops over raw memory only.
AccessResult guarded_run(const void* base, std::size_t length, void (*fn)(void*),
                         void* arg) noexcept;

// The same for a callable; the same restrictions on what it may own apply.
template <class F>
AccessResult guarded(const void* base, std::size_t length, F&& f) noexcept {
    return guarded_run(
        base, length, [](void* p) { (*static_cast<std::remove_reference_t<F>*>(p))(); },
        static_cast<void*>(&f));
}

}  // namespace pagewire
