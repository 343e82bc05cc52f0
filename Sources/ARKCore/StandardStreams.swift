// Whole, unbuffered writes to standard output and error without Foundation.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes `text` to file descriptor 1 or 2 whole, unbuffered (Foundation's `FileHandle` is
/// not in FoundationEssentials, all the agents load).
public func writeStandard(_ stream: StandardStream, _ text: String) {
    var bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeMutableBytes { write(stream.rawValue, $0.baseAddress! + offset, $0.count - offset) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return }
        offset += n
    }
}

public enum StandardStream: Int32, Sendable {
    case output = 1
    case error = 2
}
