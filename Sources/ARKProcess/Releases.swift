// Releases for canary rollouts and the `current` and `previous` links between them.

import ARKCore
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `path` with every symbolic link resolved; `path` itself when it does not exist.
func resolvingSymlinks(_ path: String) -> String {
    guard let resolved = realpath(path, nil) else { return path }
    defer { free(resolved) }
    return String(cString: resolved)
}

/// Whether `path` is a directory (following links).
func isDirectory(_ path: String) -> Bool {
    var s = stat()
    return stat(path, &s) == 0 && (s.st_mode & S_IFMT) == S_IFDIR
}


/// A release: a directory with the `ark` binary, its `graveyard/` and its `.env.production`.
/// Releases live under ARK_RELEASES_DIR, where `current` links to the one in service and
/// `previous` to the one before it.
public struct Release: Sendable, Equatable {
    public let path: String

    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
    }

    public var name: String { path.split(separator: "/").last.map(String.init) ?? path }
    public var binary: String { path + "/ark" }
    public var graveyardDir: String { path + "/graveyard" }
    public var envFile: String { path + "/.env.production" }

    /// Checks that `path` is a complete release; the error names what is missing and how to fix it.
    public init(validating path: String) throws(Invalid) {
        let fm = FileManager.default
        let resolved = resolvingSymlinks(path)
        guard isDirectory(resolved) else {
            throw Invalid(description: "release \(path) is not a directory. Fix: make one with ark, graveyard/ and .env.production in it")
        }
        self.path = resolved
        guard fm.isExecutableFile(atPath: binary) else {
            throw Invalid(description: "release \(path) has no executable ark. Fix: cp .build/release/ark \(path)/ark")
        }
        guard fm.fileExists(atPath: graveyardDir + "/ethics_rules.json") else {
            throw Invalid(description: "release \(path) has no graveyard/. Fix: cp -r graveyard \(path)/graveyard")
        }
        guard fm.fileExists(atPath: envFile) else {
            throw Invalid(description: "release \(path) has no .env.production. Fix: put the release's settings in \(envFile) (mode 600)")
        }
    }

    /// The release's settings, from its `.env.production`: `KEY=VALUE` lines, `export`
    /// allowed, `#` comments, values optionally in single or double quotes.
    public func environment() throws(Invalid) -> [String: String] {
        guard let bytes = try? readFileBytes(envFile), let text = String(validating: bytes, as: UTF8.self) else {
            throw Invalid(description: "cannot read \(envFile). Fix: make it readable by this user (mode 600)")
        }
        return try Self.parseEnv(text, file: envFile)
    }

    static func parseEnv(_ text: String, file: String) throws(Invalid) -> [String: String] {
        var env: [String: String] = [:]
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = String(raw).trimmed()
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("export ") { line = String(line.dropFirst(7)).trimmed() }
            guard let eq = line.firstIndex(of: "=") else {
                throw Invalid(description: "\(file):\(n + 1) is not KEY=VALUE. Fix: write it as KEY=VALUE or comment it out with #")
            }
            let key = String(line[..<eq]).trimmed()
            var value = String(line[line.index(after: eq)...]).trimmed()
            if value.count >= 2, let q = value.first, q == "\"" || q == "'", value.last == q {
                value = String(value.dropFirst().dropLast())
            }
            guard !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
                throw Invalid(description: "\(file):\(n + 1): '\(key)' is not a variable name")
            }
            env[key] = value
        }
        return env
    }
}

/// The `current` and `previous` links of a releases directory. Each link is replaced
/// atomically (a new link renamed over the old), so a reader never finds none.
public struct ReleaseLinks: Sendable {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    public var currentPath: String { directory + "/current" }
    public var previousPath: String { directory + "/previous" }

    public func current() -> String? { target(currentPath) }
    public func previous() -> String? { target(previousPath) }

    func target(_ link: String) -> String? {
        guard let t = try? FileManager.default.destinationOfSymbolicLink(atPath: link) else { return nil }
        let absolute = t.hasPrefix("/") ? t : directory + "/" + t
        return resolvingSymlinks(absolute)
    }

    /// Points `link` at `release`.
    public func set(_ link: String, to release: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let tmp = link + ".tmp-\(getpid())"
        try? FileManager.default.removeItem(atPath: tmp)
        try FileManager.default.createSymbolicLink(atPath: tmp, withDestinationPath: release)
        guard rename(tmp, link) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: tmp)
            throw Release.Invalid(description: "cannot replace \(link): \(reason)")
        }
    }

    /// `release` becomes current, and what was current becomes previous.
    public func promote(_ release: String) throws {
        if let old = current(), old != release { try set(previousPath, to: old) }
        try set(currentPath, to: release)
    }
}
