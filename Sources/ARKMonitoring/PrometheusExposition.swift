// Prometheus text expositions of several processes merged into one.

import ARKCore

/// Merges Prometheus text expositions from several ARK processes into one: every sample
/// gets a `process` label naming where it came from, each family is written once with its
/// `# HELP` (from `MetricName.help` when the source had none) and `# TYPE`, and a family
/// whose type disagrees with the one already seen is left out rather than corrupting the
/// output. Input is what swift-prometheus writes (a TYPE line before each family's samples).
public struct PrometheusExposition {
    struct Family {
        var type: String
        var help: String?
        var labelled: [String] = []
    }

    private var families: [String: Family] = [:]
    private var order: [String] = []
    /// Families dropped because two sources disagreed on their type.
    public private(set) var conflicts: [String] = []

    public init() {}

    /// Adds one process's exposition; `process` and `track` become each sample's labels.
    public mutating func add(_ text: String, process: String, track: Track = .baseline) {
        var current: String?
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix("# TYPE ") {
                let parts = line.dropFirst(7).split(separator: " ", maxSplits: 1)
                guard parts.count == 2 else { current = nil; continue }
                let name = String(parts[0]), type = String(parts[1])
                if let existing = families[name] {
                    if existing.type != type {
                        conflicts.append("\(name): \(type) in \(process), \(existing.type) elsewhere")
                        current = nil
                        continue
                    }
                } else {
                    families[name] = Family(type: type)
                    order.append(name)
                }
                current = name
            } else if line.hasPrefix("# HELP ") {
                let parts = line.dropFirst(7).split(separator: " ", maxSplits: 1)
                if parts.count == 2, families[String(parts[0])] != nil, families[String(parts[0])]?.help == nil {
                    families[String(parts[0])]?.help = String(parts[1])
                }
            } else if line.hasPrefix("#") {
                continue
            } else if let name = current {
                let withTrack = Self.addingLabel(line, name: "track", value: track.rawValue)
                families[name]?.labelled.append(Self.addingLabel(withTrack[...], name: "process", value: process))
            }
        }
    }

    /// The merged exposition, families sorted by name.
    public func text() -> String {
        var out = ""
        out.reserveCapacity(order.count * 256)
        for name in order.sorted() {
            guard let f = families[name] else { continue }
            let help = f.help ?? MetricName.help[name] ?? "ARK metric \(name)."
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(f.type)\n"
            for s in f.labelled { out += s; out += "\n" }
        }
        return out
    }

    /// `name{a="1"} 2` → `name{process="p",a="1"} 2`; `name 2` → `name{process="p"} 2`.
    static func addingLabel(_ sample: Substring, name: String, value: String) -> String {
        let label = "\(name)=\"\(escapeLabelValue(value))\""
        if let brace = sample.firstIndex(of: "{") {
            let after = sample.index(after: brace)
            let empty = after < sample.endIndex && sample[after] == "}"
            return String(sample[..<after]) + label + (empty ? "" : ",") + String(sample[after...])
        }
        guard let space = sample.firstIndex(of: " ") else { return String(sample) }
        return String(sample[..<space]) + "{" + label + "}" + String(sample[space...])
    }

    static func escapeLabelValue(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }
}
