import ARKCore
import Foundation

/// The immutable ethics rules. The rule file's SHA-256 is compiled in here, so a rule change
/// is a code change; a file on disk that no longer matches makes HRM deny everything.
public enum Graveyard {
    /// SHA-256 of `graveyard/ethics_rules.json`. Keep equal to `graveyard/ethics_rules.json.sha256`.
    public static let pinnedSHA256 = "d95bf4b9111e1f13695bf479e254eedccb798a9ab7ef6124581c0435ca1aabed"
    public static let ruleFileName = "ethics_rules.json"

    public enum Integrity: Sendable, Equatable {
        /// The file matches the pinned hash; the rules are loaded.
        case intact(RuleSet)
        /// The file's hash is not the pinned one.
        case drifted(actual: String, pinned: String)
        /// The file cannot be read or parsed.
        case unreadable(String)

        public var isIntact: Bool {
            if case .intact = self { return true }
            return false
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
        let path = (directory as NSString).appendingPathComponent(ruleFileName)
        guard let data = FileManager.default.contents(atPath: path) else {
            return .unreadable("cannot read \(path) (set ARK_GRAVEYARD_DIR to the graveyard/ directory)")
        }
        let bytes = [UInt8](data)
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
public struct RuleSpec: Codable, Sendable, Equatable {
    public var id: String
    public var category: String
    public var severity: String
    public var effect: String
    public var check: String
    public var field: String
    public var limit: Double?
    public var values: [String]?
    public var message: String
}

struct RuleFile: Codable {
    var name: String
    var version: Int
    var rules: [RuleSpec]
}

public struct RuleSetError: Error, Sendable, CustomStringConvertible {
    public var description: String
}
