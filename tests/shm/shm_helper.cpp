// A small program the shm tests exec as a separate process, so every
// cross-process claim is checked between unrelated processes (fork + exec),
// not threads. Usage: shm_helper [--as-nobody] COMMAND ARGS...
// Prints results on stdout; errors as "error: <what>" with exit 1.
#include <grp.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <pagewire/error.hpp>
#include <pagewire/event.hpp>
#include <pagewire/robust_mutex.hpp>
#include <pagewire/segment.hpp>
#include <pagewire/semaphore.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace pagewire;

namespace {

Backend parse_backend(const std::string& s) {
    if (s == "posix") return Backend::Posix;
    if (s == "sysv") return Backend::SystemV;
    if (s == "file") return Backend::File;
    if (s == "memfd") return Backend::Memfd;
    throw std::runtime_error("unknown backend " + s);
}

// The layout the sync tests put in a segment's data area.
struct SyncArea {
    alignas(64) std::byte mutex[sizeof(RobustMutex)];
    alignas(64) std::byte semaphore[sizeof(Semaphore)];
    alignas(64) std::byte event[sizeof(Event)];
    alignas(64) std::byte reply[sizeof(Event)];
    alignas(64) std::uint64_t counter;  // guarded by mutex or semaphore
    std::uint64_t consistent;           // 1 when the data under the mutex is consistent
    std::uint64_t generation;           // bumped by each repair
};

SyncArea& area_of(Segment& s) {
    if (s.size() < sizeof(SyncArea)) throw std::runtime_error("segment too small for SyncArea");
    return *reinterpret_cast<SyncArea*>(s.data());
}

int run(const std::vector<std::string>& a) {
    const std::string& cmd = a.at(0);
    if (cmd == "write") {  // write BACKEND NAME OFFSET TEXT
        Segment s = Segment::open(parse_backend(a.at(1)), a.at(2));
        std::size_t offset = std::stoul(a.at(3));
        const std::string& text = a.at(4);
        if (offset + text.size() > s.size()) throw std::runtime_error("write past the segment");
        std::memcpy(s.data() + offset, text.data(), text.size());
        std::cout << "wrote " << text.size() << "\n";
        return 0;
    }
    if (cmd == "read") {  // read BACKEND NAME OFFSET LENGTH [raw]
        SegmentOptions o;
        o.read_only = true;
        o.raw = a.size() > 5 && a[5] == "raw";
        Segment s = Segment::open(parse_backend(a.at(1)), a.at(2), o);
        std::size_t offset = std::stoul(a.at(3)), length = std::stoul(a.at(4));
        if (offset + length > s.size()) throw std::runtime_error("read past the segment");
        std::cout << std::string(reinterpret_cast<const char*>(s.data()) + offset, length);
        return 0;
    }
    if (cmd == "size") {  // size BACKEND NAME
        Segment s =
            Segment::open(parse_backend(a.at(1)), a.at(2), SegmentOptions{.read_only = true});
        std::cout << s.size() << "\n";
        return 0;
    }
    if (cmd == "create") {  // create BACKEND NAME SIZE : creates and exits (the segment stays)
        Segment s = Segment::create(parse_backend(a.at(1)), a.at(2), std::stoul(a.at(3)));
        std::cout << s.name() << "\n";
        return 0;
    }
    if (cmd == "hold") {  // hold BACKEND NAME : keeps it open/attached until stdin closes
        Segment s = Segment::open(parse_backend(a.at(1)), a.at(2));
        std::cout << "holding" << std::endl;
        char c;
        while (std::cin.get(c)) {
        }
        return 0;
    }
    if (cmd == "receive") {  // receive FD : a segment over SCM_RIGHTS on inherited socket FD
        int sock = std::stoi(a.at(1));
        Segment s = Segment::receive(sock);
        std::cout << "seals=" << s.seals() << " size=" << s.size()
                  << " text=" << std::string(reinterpret_cast<const char*>(s.data()), 5) << "\n";
        // Shrinking a memfd sealed with kSealShrink must fail: no SIGBUS is possible.
        if (::ftruncate(s.fd(), 0) != 0)
            std::cout << "shrink: " << std::strerror(errno) << "\n";
        else
            std::cout << "shrink: ok\n";
        std::memcpy(s.data(), "REPLY", 5);
        return 0;
    }
    if (cmd ==
        "lock-and-die") {  // lock-and-die BACKEND NAME : lock, break the data, wait to be killed
        Segment s = Segment::open(parse_backend(a.at(1)), a.at(2));
        SyncArea& area = area_of(s);
        RobustMutex& m = RobustMutex::attach_at(area.mutex);
        RobustMutex::Status st = m.lock();
        if (st == RobustMutex::Status::OwnerDied) {
            area.consistent = 1;
            ++area.generation;
            m.mark_consistent();
        } else if (st != RobustMutex::Status::Acquired) {
            std::cout << "lock: " << status_name(st) << std::endl;
            return 1;
        }
        area.consistent = 0;  // mid-update when killed
        std::cout << "locked " << status_name(st) << std::endl;
        for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
    }
    if (cmd == "lock") {  // lock BACKEND NAME TIMEOUT_MS : lock, repair if needed, unlock
        Segment s = Segment::open(parse_backend(a.at(1)), a.at(2));
        SyncArea& area = area_of(s);
        RobustMutex& m = RobustMutex::attach_at(area.mutex);
        RobustMutex::Status st = m.lock_for(std::chrono::milliseconds(std::stol(a.at(3))));
        std::cout << status_name(st);
        if (st == RobustMutex::Status::OwnerDied) {
            std::cout << " was-consistent=" << area.consistent;
            area.consistent = 1;
            ++area.generation;
            m.mark_consistent();
        }
        if (st == RobustMutex::Status::Acquired || st == RobustMutex::Status::OwnerDied) m.unlock();
        std::cout << "\n";
        return 0;
    }
    if (cmd == "mutex-count") {  // mutex-count BACKEND NAME N : N increments under the mutex
        Segment s = Segment::open(parse_backend(a.at(1)), a.at(2));
        SyncArea& area = area_of(s);
        RobustMutex& m = RobustMutex::attach_at(area.mutex);
        long n = std::stol(a.at(3));
        for (long i = 0; i < n; ++i) {
            if (m.lock() != RobustMutex::Status::Acquired) return 3;
            volatile std::uint64_t* c = &area.counter;
            std::uint64_t v = *c;  // a non-atomic read-modify-write: only the mutex keeps it exact
            *c = v + 1;
            m.unlock();
        }
        return 0;
    }
    if (cmd == "sem-count") {  // sem-count BACKEND NAME N : N increments under a binary semaphore
        Segment s = Segment::open(parse_backend(a.at(1)), a.at(2));
        SyncArea& area = area_of(s);
        Semaphore& sem = Semaphore::attach_at(area.semaphore);
        long n = std::stol(a.at(3));
        for (long i = 0; i < n; ++i) {
            if (sem.wait() != SemaphoreStatus::Acquired) return 3;
            volatile std::uint64_t* c = &area.counter;
            std::uint64_t v = *c;
            *c = v + 1;
            sem.post();
        }
        return 0;
    }
    if (cmd == "named-sem-post") {  // named-sem-post NAME N
        NamedSemaphore sem = NamedSemaphore::open(a.at(1));
        for (long i = 0, n = std::stol(a.at(2)); i < n; ++i) sem.post();
        return 0;
    }
    if (cmd == "named-sem-wait") {  // named-sem-wait NAME N TIMEOUT_MS : prints how many it got
        NamedSemaphore sem = NamedSemaphore::open(a.at(1));
        long got = 0;
        for (long i = 0, n = std::stol(a.at(2)); i < n; ++i) {
            if (sem.wait_for(std::chrono::milliseconds(std::stol(a.at(3)))) ==
                SemaphoreStatus::Acquired)
                ++got;
        }
        std::cout << got << "\n";
        return 0;
    }
    if (cmd == "event-wait") {  // event-wait BACKEND NAME TIMEOUT_MS : waits on event, sets reply
        Segment s = Segment::open(parse_backend(a.at(1)), a.at(2));
        SyncArea& area = area_of(s);
        Event& e = Event::attach_at(area.event);
        Event& reply = Event::attach_at(area.reply);
        std::cout << "waiting" << std::endl;
        Event::Status st = e.wait_for(std::chrono::milliseconds(std::stol(a.at(3))));
        std::cout << (st == Event::Status::Signaled ? "signaled" : "timed out") << std::endl;
        reply.set();
        return 0;
    }
    if (cmd == "ping-pong") {  // ping-pong BACKEND NAME ROUNDS : answers each event with reply
        Segment s = Segment::open(parse_backend(a.at(1)), a.at(2));
        SyncArea& area = area_of(s);
        Event& e = Event::attach_at(area.event);
        Event& reply = Event::attach_at(area.reply);
        for (long i = 0, n = std::stol(a.at(3)); i < n; ++i) {
            if (e.wait_for(std::chrono::seconds(20)) != Event::Status::Signaled) return 4;
            ++area.counter;
            reply.set();
        }
        return 0;
    }
    throw std::runtime_error("unknown command " + cmd);
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    if (!args.empty() && args[0] == "--as-nobody") {
        args.erase(args.begin());
        // Drop root for good: groups, then gid, then uid (65534 is Debian's nobody).
        if (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0) {
            std::perror("error: drop privileges");
            return 1;
        }
    }
    if (args.empty()) {
        std::cerr << "usage: shm_helper [--as-nobody] COMMAND ARGS...\n";
        return 2;
    }
    try {
        return run(args);
    } catch (const pagewire::Error& e) {
        std::cout << "error: " << e.what() << " [errno " << e.error_number() << "]" << std::endl;
        return 1;
    } catch (const std::exception& e) {
        std::cout << "error: " << e.what() << std::endl;
        return 1;
    }
}
