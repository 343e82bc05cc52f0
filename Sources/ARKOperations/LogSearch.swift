// `ark logs --trace`: one trace's lines from every process's log, in time order.

import ARKState
import Foundation

/// `ark logs --trace`: one trace's lines from every process's log, in time order.
public enum LogSearch {
    public struct Line: Sendable, Equatable {
        public var ts: String
        public var file: String
        public var text: String
    }

    /// Lines of `*.log` and `*.log.1` (the newest rotation, not yet compressed) in
    /// `directory` whose `trace_id` is `traceID` (JSON lines) or that mention it (anything
    /// else), sorted by time.
    public static func lines(forTrace traceID: String, in directory: String) throws -> [Line] {
        let files = try FileManager.default.contentsOfDirectory(atPath: directory)
            .filter { $0.hasSuffix(".log") || $0.hasSuffix(".log.1") }.sorted()
        var out: [Line] = []
        for file in files {
            guard let data = FileManager.default.contents(atPath: directory + "/" + file) else { continue }
            for raw in String(decoding: data, as: UTF8.self).split(separator: "\n") where raw.contains(traceID) {
                let text = String(raw)
                if let object = JSONDocument.object(text) {
                    guard object["trace_id"] as? String == traceID || (object["msg"] as? String)?.contains(traceID) == true else { continue }
                    out.append(Line(ts: object["ts"] as? String ?? "", file: file, text: render(object)))
                } else {
                    out.append(Line(ts: String(text.prefix(while: { $0 != " " })), file: file, text: text))
                }
            }
        }
        return out.sorted { ($0.ts, $0.file) < ($1.ts, $1.file) }
    }

    /// `level msg key=value …` of a JSON line, without the fields shown elsewhere.
    static func render(_ o: [String: Any]) -> String {
        var parts = ["\(o["level"] ?? "")", "\(o["instance"] ?? o["logger"] ?? "")", "\(o["msg"] ?? "")"]
        for key in o.keys.sorted() where !["ts", "level", "logger", "msg", "instance", "agent", "trace_id"].contains(key) {
            parts.append("\(key)=\(o[key]!)")
        }
        return parts.joined(separator: " ")
    }
}
