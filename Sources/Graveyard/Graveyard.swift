// The Graveyard: the immutable rule file, pinned by hash and loaded once.

import ARKCore

/// The immutable ethics rules. The rule file's SHA-256 is compiled in here, so a rule change
/// is a code change; a file on disk that no longer matches makes HRM deny everything.
public enum Graveyard {
    /// SHA-256 of `graveyard/ethics_rules.json`. Keep equal to `graveyard/ethics_rules.json.sha256`.
    public static let pinnedSHA256 = "2382f728fdcaffd5e9ce07a32c091f8efbf56ae42a3b93ad4c0a5787f28e2b01"
    public static let ruleFileName = "ethics_rules.json"

    public enum Integrity: Sendable, Equatable {
        /// The file matches the pinned hash; the rules are loaded.
        case intact(RuleSet)
        /// The file's hash is not the pinned one.
        case drifted(actual: String, pinned: String)
        /// The file cannot be read or parsed.
        case unreadable(String)

        /// The rules, when the file is intact.
        public var ruleSet: RuleSet? {
            if case .intact(let r) = self { return r }
            return nil
        }

        public var isIntact: Bool {
            if case .intact = self { return true }
            return false
        }

        /// The ids of the portfolio rules (limits of the book, not of a proposal).
        public var portfolioRuleIDs: Set<String> {
            guard case .intact(let rules) = self else { return [] }
            return Set(rules.specs.filter { $0.category == "portfolio" }.map(\.id))
        }

        public var problem: String? {
            switch self {
            case .intact: nil
            case .drifted(let actual, let pinned):
                "rule file hash \(actual) does not match the pinned \(pinned): the Graveyard was modified"
            case .unreadable(let why): "rule file unreadable: \(why)"
            }
        }
    }

    /// Reads and hashes the rule file in `directory` and loads it only if it is the pinned one.
    public static func check(directory: String, pinned: String = pinnedSHA256) -> Integrity {
        let path = directory.isEmpty || directory.hasSuffix("/") ? directory + ruleFileName : directory + "/" + ruleFileName
        let bytes: [UInt8]
        do {
            bytes = try readFileBytes(path)
        } catch {
            return .unreadable("\(error) (set ARK_GRAVEYARD_DIR to the graveyard/ directory)")
        }
        let hash = SHA256.hexDigest(bytes)
        guard hash == pinned else { return .drifted(actual: hash, pinned: pinned) }
        do {
            return .intact(try RuleSet(json: bytes, hash: hash))
        } catch {
            return .unreadable("\(path): \(error)")
        }
    }

    /// The decision when the rules cannot be trusted: deny, naming why.
    public static func failClosed(_ reason: String, policyHash: String) -> Decision {
        Decision(
            approved: false,
            violations: [Violation(rule: "graveyard_integrity", severity: .critical, message: "fail closed: \(reason)")],
            warnings: [], rulesChecked: 0, complianceScore: 0, policyHash: policyHash, evalNs: 0)
    }
}

/// A rule as written in the rule file.
public struct RuleSpec: Sendable, Equatable {
    public var id: String
    public var category: String
    public var severity: String
    public var effect: String
    public var check: String
    public var field: String
    public var limit: Double?
    public var values: [String]?
    public var message: String
    /// `trades`: the rule judges buys and sells only.
    public var appliesTo: String?
    /// `price_band`: how many consistent quotes outside the band move it.
    public var confirmations: Int?
}

/// The rule file: `{"name", "version", "rules": [RuleSpec]}`; other keys (`notice`) are
/// ignored. Read with ARK's JSON reader rather than `JSONDecoder`, so HRM never maps
/// Foundation's JSON code.
struct RuleFile {
    var name: String
    var version: Int
    var rules: [RuleSpec]

    init(json: [UInt8]) throws {
        do {
            self = try json.withUnsafeBufferPointer { buf in
                var r = JSONReader(buf)
                var name: String?, version: Int?, rules: [RuleSpec]?
                try r.beginObject()
                var first = true
                while let k = try r.nextKey(first: first) {
                    first = false
                    if r.matches(k, "name") {
                        guard try r.peekKind() == .string else { throw RuleSetError(description: "'name' must be a string") }
                        name = try r.readString()
                    } else if r.matches(k, "version") {
                        guard try r.peekKind() == .number, let v = try r.readNumber().integer else {
                            throw RuleSetError(description: "'version' must be an integer")
                        }
                        version = Int(v)
                    } else if r.matches(k, "rules") {
                        guard try r.peekKind() == .array else { throw RuleSetError(description: "'rules' must be an array of rules") }
                        var specs: [RuleSpec] = []
                        try r.beginArray()
                        while try r.nextElement(first: specs.isEmpty) {
                            guard try r.peekKind() == .object else { throw RuleSetError(description: "rules[\(specs.count)] must be an object") }
                            specs.append(try Self.spec(&r, index: specs.count))
                        }
                        rules = specs
                    } else { try r.skipValue() }
                }
                try r.end()
                guard let name else { throw RuleSetError(description: "missing key 'name'") }
                guard let version else { throw RuleSetError(description: "missing key 'version'") }
                guard let rules else { throw RuleSetError(description: "missing key 'rules'") }
                return RuleFile(name: name, version: version, rules: rules)
            }
        } catch let e as JSONParseError {
            throw RuleSetError(description: "not JSON: \(e)")
        }
    }

    private init(name: String, version: Int, rules: [RuleSpec]) {
        self.name = name
        self.version = version
        self.rules = rules
    }

    private static func spec(_ r: inout JSONReader, index: Int) throws -> RuleSpec {
        var strings: [String: String] = [:]
        var limit: Double?, values: [String]?, confirmations: Int?
        try r.beginObject()
        var first = true
        while let k = try r.nextKey(first: first) {
            first = false
            let key = try r.string(k)
            switch key {
            case "id", "category", "severity", "effect", "check", "field", "message", "applies_to":
                guard try r.peekKind() == .string else { throw RuleSetError(description: "rules[\(index)]: '\(key)' must be a string") }
                strings[key] = try r.readString()
            case "limit":
                if !r.readNullIfPresent() {
                    guard try r.peekKind() == .number else { throw RuleSetError(description: "rules[\(index)]: 'limit' must be a number") }
                    limit = try r.readNumber().value
                }
            case "confirmations":
                guard try r.peekKind() == .number, let n = try r.readNumber().integer else {
                    throw RuleSetError(description: "rules[\(index)]: 'confirmations' must be an integer")
                }
                confirmations = Int(n)
            case "values":
                if !r.readNullIfPresent() {
                    guard try r.peekKind() == .array else { throw RuleSetError(description: "rules[\(index)]: 'values' must be an array of strings") }
                    var list: [String] = []
                    try r.beginArray()
                    while try r.nextElement(first: list.isEmpty) {
                        guard try r.peekKind() == .string else { throw RuleSetError(description: "rules[\(index)]: 'values' must be an array of strings") }
                        list.append(try r.readString())
                    }
                    values = list
                }
            default:
                try r.skipValue()
            }
        }
        func required(_ key: String) throws -> String {
            guard let v = strings[key] else { throw RuleSetError(description: "rules[\(index)]: missing key '\(key)'") }
            return v
        }
        return RuleSpec(id: try required("id"), category: try required("category"), severity: try required("severity"),
                        effect: try required("effect"), check: try required("check"), field: try required("field"),
                        limit: limit, values: values, message: try required("message"), appliesTo: strings["applies_to"],
                        confirmations: confirmations)
    }
}

public struct RuleSetError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// The rule file's integrity as a stage judges by it: checked at start, then re-hashed
/// whenever `checkSeconds` (ARK_GRAVEYARD_CHECK_SECONDS) has passed, so drift is found within
/// one interval. HRM and Kenny each keep one.
public struct GraveyardWatch: Sendable {
    public let directory: String
    let intervalNs: Int64
    public private(set) var integrity: Graveyard.Integrity
    private var lastCheckNs: Int64

    public init(directory: String, checkSeconds: Double) {
        self.directory = directory
        intervalNs = Int64(checkSeconds * 1e9)
        integrity = Graveyard.check(directory: directory)
        lastCheckNs = monotonicNanoseconds()
    }

    /// Re-hashes the file when the interval has passed; returns whether it did.
    public mutating func refreshIfDue() -> Bool {
        let now = monotonicNanoseconds()
        guard now - lastCheckNs >= intervalNs else { return false }
        lastCheckNs = now
        integrity = Graveyard.check(directory: directory)
        return true
    }
}
