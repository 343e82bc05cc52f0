// Whether a process has exited, zombies included.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Whether process `pid` has exited: there is no such process, or it is a zombie (exited,
/// only not yet collected by its parent, which in a container may be a PID 1 that never
/// collects). `kill(pid, 0)` alone calls a zombie alive.
public func processHasExited(_ pid: pid_t) -> Bool {
    if kill(pid, 0) != 0 { return errno == ESRCH }
    guard let stat = (try? readFileBytes("/proc/\(pid)/stat")).map({ String(decoding: $0, as: UTF8.self) }),
          let nameEnd = stat.lastIndex(of: ")") else { return false }
    return stat[stat.index(after: nameEnd)...].trimmed().hasPrefix("Z")
}
