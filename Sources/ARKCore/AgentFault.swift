// The faults a rehearsal may inject into an agent (ARK_FAULT).


/// A fault for rehearsing the watchdog: `ARK_FAULT=kenny:latency=6000ms` makes every batch
/// of that stage take 6 s longer, `kenny:errors=0.5` fails half its batches (every other
/// one, so the same entries never fail twice in a row), `joey:size=0.15` makes Joey size
/// every position at 15 % of equity (a sizing bug HRM must deny), `kenny:crash` makes the
/// process exit on its first batch, leaving it unacknowledged, and `hrm:evaluation=150ms`
/// makes each of HRM's rule evaluations take 150 ms longer (inside the timed evaluation, as a
/// starved CPU would); `joey:crash_on=POISON` kills the process (SIGABRT, as a trap would)
/// whenever it handles an entry whose payload contains `POISON`, and `joey:fail_on=POISON`
/// makes handling such an entry throw (a poison entry, for rehearsing its isolation);
/// settings combine with a comma.
/// Refused when ARK_ENV is production (ARKConfig checks).
public struct AgentFault: Sendable, Equatable {
    public var stage: Stage
    public var latencyMs: Int = 0
    public var errorRate: Double = 0
    /// Joey only: the position size it proposes for every signal, overriding the producer's.
    public var positionSizePct: Double?
    public var crash = false
    /// Handling an entry whose payload contains these bytes kills the process.
    public var crashOn: [UInt8]?
    /// Handling an entry whose payload contains these bytes throws.
    public var failOn: [UInt8]?
    /// HRM only: added to every rule evaluation.
    public var evaluationStallMs = 0

    public struct ParseError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Parses `stage:key=value[,key=value]`.
    public init(parsing text: String) throws(ParseError) {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2, let stage = Stage(name: parts[0]) else {
            throw ParseError(description: "'\(text)' does not start with a stage name and a colon, e.g. kenny:latency=6000ms")
        }
        self.stage = stage
        for setting in parts[1].split(separator: ",") {
            let kv = setting.split(separator: "=", maxSplits: 1).map { $0.trimmed() }
            switch (kv.first, kv.count == 2 ? kv[1] : nil) {
            case ("latency", let v?):
                guard let ms = Self.milliseconds(v) else {
                    throw ParseError(description: "latency '\(v)' is not a whole number of milliseconds, e.g. latency=6000ms")
                }
                latencyMs = ms
            case ("errors", let v?):
                guard let r = Double(v), r >= 0, r <= 1 else {
                    throw ParseError(description: "errors '\(v)' is not a fraction in 0...1, e.g. errors=0.5")
                }
                errorRate = r
            case ("size", let v?):
                guard stage == .joey else { throw ParseError(description: "size applies to joey only, e.g. joey:size=0.15") }
                guard let r = Double(v), r > 0, r <= 10 else {
                    throw ParseError(description: "size '\(v)' is not a fraction of equity in (0, 10], e.g. size=0.15")
                }
                positionSizePct = r
            case ("evaluation", let v?):
                guard stage == .hrm else { throw ParseError(description: "evaluation applies to hrm only, e.g. hrm:evaluation=150ms") }
                guard let ms = Self.milliseconds(v) else {
                    throw ParseError(description: "evaluation '\(v)' is not a whole number of milliseconds, e.g. evaluation=150ms")
                }
                evaluationStallMs = ms
            case ("crash", nil):
                crash = true
            case ("crash_on", let v?) where !v.isEmpty:
                crashOn = Array(v.utf8)
            case ("fail_on", let v?) where !v.isEmpty:
                failOn = Array(v.utf8)
            default:
                throw ParseError(description: "'\(setting)' is not latency=<ms>ms, errors=<fraction>, size=<fraction>, evaluation=<ms>ms, crash, crash_on=<text> or fail_on=<text>")
            }
        }
    }

    /// `150ms` or `150`, up to an hour.
    private static func milliseconds(_ text: String) -> Int? {
        guard let ms = Int(text.hasSuffix("ms") ? String(text.dropLast(2)) : text), (0...3_600_000).contains(ms) else { return nil }
        return ms
    }
}
