import ARKProcess
import ARKTestSupport
import Foundation
import Testing

/// One line of a play's code block: the command as an operator types it, and what its
/// `# expect:` note promises (an exit status, texts the output contains, patterns it matches).
struct RunbookLine: CustomStringConvertible {
    var command: String
    var exit: Int32?
    var texts: [String] = []
    var patterns: [String] = []
    var description: String { command }

    /// Parses `command   # expect: exit 1; "text"; 'text'; /regex/`.
    init(_ line: String) throws {
        guard let mark = line.range(of: "# expect:") else {
            throw TestSetupError("a runbook command without an `# expect:` note: \(line)")
        }
        command = line[..<mark.lowerBound].trimmingCharacters(in: .whitespaces)
        for token in line[mark.upperBound...].components(separatedBy: "; ").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            if token.hasPrefix("exit "), let code = Int32(token.dropFirst(5)) {
                exit = code
            } else if token.count >= 2, let q = token.first, q == "\"" || q == "'", token.last == q {
                texts.append(String(token.dropFirst().dropLast()))
            } else if token.count >= 2, token.first == "/", token.last == "/" {
                patterns.append(String(token.dropFirst().dropLast()))
            } else {
                throw TestSetupError("cannot read '\(token)' in the expectation of: \(line)")
            }
        }
    }

    /// nil when `result` is what the note promises, otherwise what differs.
    func mismatch(_ result: CommandResult) -> String? {
        var problems: [String] = []
        if let exit, result.code != exit { problems.append("exit \(result.code), not \(exit)") }
        for t in texts where !result.output.contains(t) { problems.append("no '\(t)'") }
        for p in patterns {
            let regex = try? NSRegularExpression(pattern: p, options: [.anchorsMatchLines])
            let range = NSRange(result.output.startIndex..., in: result.output)
            if regex?.firstMatch(in: result.output, range: range) == nil { problems.append("no match for /\(p)/") }
        }
        return problems.isEmpty ? nil : problems.joined(separator: ", ")
    }
}

/// A play of RUNBOOK.md: its title (an alert's name or a failure's) and its code blocks.
struct RunbookPlay {
    var title: String
    var confirm: [RunbookLine] = []
    var fix: [RunbookLine] = []
    var verify: [RunbookLine] = []

    static func parse(_ text: String) throws -> [RunbookPlay] {
        var plays: [RunbookPlay] = []
        var section = ""
        var inCode = false
        for raw in text.components(separatedBy: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("```") {
                inCode.toggle()
                continue
            }
            if inCode {
                guard !plays.isEmpty, !line.isEmpty else { continue }
                switch section {
                case "Confirm": plays[plays.count - 1].confirm.append(try RunbookLine(line))
                case "Fix": plays[plays.count - 1].fix.append(try RunbookLine(line))
                case "Verify": plays[plays.count - 1].verify.append(try RunbookLine(line))
                default: break
                }
            } else if line.hasPrefix("## ") {
                let title = String(line.dropFirst(3))
                section = ""
                if title != "Before any play: set up the shell" { plays.append(RunbookPlay(title: title)) }
            } else if line.hasPrefix("**"), let end = line.dropFirst(2).firstIndex(of: ".") {
                section = String(line[line.index(line.startIndex, offsetBy: 2)..<end])
            }
        }
        return plays
    }
}

/// RUNBOOK.md rehearsed: ARK runs as `start_production.sh --local` leaves it (debug build,
/// private Redis, the store and the backups on small tmpfs disks so they can really fill),
/// each play's failure is caused for real, and the play's own commands, run as written
/// through `deployment/ark_env.sh --local`, must print what the runbook says: the confirm
/// lines while the failure lasts, the fix lines once, the verify lines after.
extension EndToEnd { @Suite struct RunbookRehearsalTests {
    static let failurePlays: Set<String> = ["Redis down", "State store locked", "Canary rolled back"]

    @Test func theRunbookHasAPlayForEveryAlertAndEveryNamedFailure() throws {
        let plays = try RunbookPlay.parse(String(contentsOfFile: Repo.root + "/RUNBOOK.md", encoding: .utf8))
        let rules = try String(contentsOfFile: Repo.root + "/monitoring/ark_slo_alerts.yml", encoding: .utf8)
        let alerts = rules.components(separatedBy: "\n").compactMap { line -> String? in
                let t = line.trimmingCharacters(in: .whitespaces)
                return t.hasPrefix("- alert: ") ? String(t.dropFirst(9)) : nil
            }
        #expect(alerts.count >= 12)
        let titles = Set(plays.map(\.title))
        for alert in alerts { #expect(titles.contains(alert), "no play for alert \(alert)") }
        for failure in Self.failurePlays { #expect(titles.contains(failure), "no play for \(failure)") }
        for play in plays {
            #expect(!play.confirm.isEmpty && !play.verify.isEmpty, "\(play.title) lacks confirm or verify commands")
            #expect(Rehearsal.causes[play.title] != nil, "no rehearsal causes \(play.title)")
        }
        // Every alert links its play.
        for alert in alerts { #expect(rules.contains("runbook_url: \"RUNBOOK.md#\(alert.lowercased())\""), "\(alert) has no runbook_url") }
    }

    @Test(.enabled(if: getuid() == 0, "mounts tmpfs disks to fill: needs root"))
    func everyPlayConfirmsFixesAndVerifiesItsFailure() throws {
        let plays = try RunbookPlay.parse(String(contentsOfFile: Repo.root + "/RUNBOOK.md", encoding: .utf8))
        let r = try Rehearsal()
        defer { r.tearDown() }
        try r.start()
        for play in plays {
            guard let cause = Rehearsal.causes[play.title] else { continue }
            let started = Date()
            let context = try cause(r)
            r.check(play.title, "confirm", play.confirm, poll: 90)
            try context.beforeFix?()
            r.check(play.title, "fix", play.fix, poll: 0)
            try context.afterFix?()
            r.check(play.title, "verify", play.verify, poll: 90)
            try context.finally?()
            print("runbook play \(play.title): rehearsed in \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
        }
        let audit = try r.shell("ark verify-audit")
        #expect(audit.code == 0 && audit.output.contains("Audit log intact"), "\(audit.output)")
    }
} }

/// What a cause leaves for the rest of its play: the operator's part the runbook states in
/// prose (ending a lock holder's session, removing what filled a disk), and checks.
struct RehearsalContext {
    var beforeFix: (() throws -> Void)?
    var afterFix: (() throws -> Void)?
    var finally: (() throws -> Void)?
}

/// ARK started by the start script in a temp dir, and the failures the plays cover.
final class Rehearsal: @unchecked Sendable {
    let dir: TempDir
    let env: [String: String]
    var state: String { dir.path + "/state" }
    var backups: String { dir.path + "/backups" }
    var run: String { dir.path + "/run" }

    init() throws {
        dir = try TempDir("ark-runbook")
        for d in ["state", "backups", "graveyard"] { try FileManager.default.createDirectory(atPath: dir.path + "/" + d, withIntermediateDirectories: true) }
        env = [
            "ARK_ENV": "local", "ARK_STATE_DB": dir.path + "/state/ark_state.db", "ARK_LOG_DIR": dir.path + "/logs",
            "ARK_BACKUP_DIR": dir.path + "/backups", "ARK_RUN_DIR": dir.path + "/run", "ARK_REDIS_DIR": dir.path + "/redis",
            "ARK_RELEASES_DIR": dir.path + "/releases", "ARK_GRAVEYARD_DIR": dir.path + "/graveyard",
            "METRICS_PORT": String(try freeTCPPort()), "API_PORT": String(try freeTCPPort()), "ARK_BUILD": "debug", "ARK_SKIP_BUILD": "1",
        ]
        // Small disks that can really fill: the store's and the backups'.
        for (mount, size) in [(state, "64m"), (backups, "32m")] {
            let r = try runCommand("/bin/mount", ["-t", "tmpfs", "-o", "size=\(size),mode=0700", "tmpfs", mount])
            guard r.code == 0 else { throw TestSetupError("mount tmpfs on \(mount): \(r.output)") }
        }
        for f in ["ethics_rules.json", "ethics_rules.json.sha256"] {
            try FileManager.default.copyItem(atPath: Repo.root + "/graveyard/" + f, toPath: dir.path + "/graveyard/" + f)
            chmod(dir.path + "/graveyard/" + f, 0o444)
        }
    }

    func start() throws {
        let r = try shell("ark_start --duration 2", timeout: 240)
        guard r.code == 0, r.output.contains("Synthetic validation PASSED") else { throw TestSetupError("start failed:\n\(r.output)") }
    }

    func tearDown() {
        _ = try? shell("ark_stop --timeout 5", timeout: 120)
        for mount in [state, backups] { _ = try? runCommand("/bin/umount", ["-l", mount]) }
        dir.remove()
    }

    /// A command in an operator's shell set up by `deployment/ark_env.sh --local`.
    func shell(_ command: String, timeout: Double = 120) throws -> CommandResult {
        try runCommand("/bin/bash", ["-c", "cd '\(Repo.root)' && . deployment/ark_env.sh --local && \(command)"], environment: env, timeout: timeout)
    }

    /// Runs `lines` until every one says what it promises, for up to `poll` seconds (the
    /// failure or the recovery takes a moment to show); with `poll` 0, once.
    func check(_ play: String, _ part: String, _ lines: [RunbookLine], poll: Double) {
        let deadline = Date().addingTimeInterval(poll)
        var failures: [String] = []
        repeat {
            failures = []
            for line in lines {
                guard let result = try? shell(line.command) else { failures.append("\(line): could not run"); continue }
                if let m = line.mismatch(result) { failures.append("`\(line)`: \(m)\n\(result.output.suffix(1500))") }
            }
            if failures.isEmpty { return }
            Thread.sleep(forTimeInterval: 1)
        } while Date() < deadline
        Issue.record("\(play), \(part):\n\(failures.joined(separator: "\n"))")
    }

    /// Fills the file system at `path` with a file named `filler`.
    func fill(_ path: String) throws {
        // Written until the disk refuses (dd then fails, as it should): exact even while
        // Aletheia writes beside it.
        let r = try runCommand("/bin/bash", ["-c", "dd if=/dev/zero of='\(path)/filler' bs=1M 2>/dev/null; df -B1 --output=avail '\(path)' | tail -n 1"])
        guard r.output.trimmingCharacters(in: .whitespacesAndNewlines) == "0" else { throw TestSetupError("fill \(path): \(r.output)") }
    }

    func deadLetters() throws -> Int {
        Int(try shell("sqlite3 \"$ARK_STATE_DB\" 'SELECT COUNT(*) FROM dead_letters'").output.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    /// Traffic while a failure lasts; whether it passes is the play's business, not this.
    func traffic(seconds: Int, rate: Int = 5) throws {
        _ = try shell("ark synthetic-loop --duration \(seconds) --rate \(rate) >/dev/null 2>&1 || true", timeout: Double(seconds) + 60)
    }

    /// An agent restarted with a fault, as the start script would have started it.
    func restartWithFault(_ name: String, _ stage: String, _ fault: String) throws {
        try restart(name, stage, with: "ARK_FAULT=\(fault)")
    }

    /// An agent restarted with `settings` (NAME=value ...) over the start script's.
    func restart(_ name: String, _ stage: String, with settings: String) throws {
        let r = try shell("""
            ark_stop \(name) && (\(settings) nohup ark agent \(stage) >>"$ARK_LOG_DIR/\(name).log" 2>&1 & echo $! >"$ARK_RUN_DIR/\(name).pid") && sleep 2
            """)
        guard r.code == 0 else { throw TestSetupError("restart \(stage) with \(settings): \(r.output)") }
    }

    func poison(_ count: Int) throws {
        _ = try shell("for i in $(seq \(count)); do redis-cli -s \"${REDIS_URL#unix://}\" XADD ark:joey '*' event 'not json {' >/dev/null; done")
    }

    typealias Cause = @Sendable (Rehearsal) throws -> RehearsalContext

    /// The failure each play covers, caused for real.
    static let causes: [String: Cause] = [
        "ARKStageDown": { r in
            // Down for good: its supervisor (systemd in production) killed first, so nothing
            // restarts it.
            _ = try r.shell("kill -9 $(cat \"$ARK_RUN_DIR/supervise/kenny.pid\") $(cat \"$ARK_RUN_DIR/kenny.pid\")")
            return RehearsalContext()
        },
        "ARKBackpressure": { r in
            // Kyle with a bound of 1,000 and a Joey that takes 4 s a batch (about 64 signals a
            // second, under the watchdog's 5 s): a burst of 1,500 in 5 s fills Joey's input
            // past the bound for some 15 s; few signals, so the small backup disk keeps room.
            try r.restart("kyle", "Kyle", with: "ARK_STREAM_MAXLEN=1000")
            try r.restartWithFault("joey", "Joey", "joey:latency=4000ms")
            _ = try r.shell("(nohup ark synthetic-loop --duration 5 --rate 300 >/dev/null 2>&1 &)")
            // Last of the plays, after every other start has left a backup on the small backup
            // disk: room for the fix's start (an operator would see ARKBackupStale otherwise).
            return RehearsalContext(beforeFix: {
                _ = try r.shell("ls -1 \"$ARK_BACKUP_DIR\"/ark_state_backup_*.db | sort | head -n -1 | xargs -r rm -f")
            }, finally: {
                _ = try r.shell("pkill -f 'synthetic-loop --duration 5 --rate 300' || true; ark_stop kyle && ark_start --no-synthetic", timeout: 120)
            })
        },
        "ARKAgentQuarantined": { r in
            // Frozen for 8 s: the watchdog quarantines it after 5 s of silence; then it
            // recovers, and stays quarantined until released (back-off 30 s).
            _ = try r.shell("P=$(cat \"$ARK_RUN_DIR/kenny.pid\"); kill -STOP $P; sleep 8; kill -CONT $P", timeout: 30)
            return RehearsalContext()
        },
        "ARKMetricsServerDown": { r in
            _ = try r.shell("kill -9 $(cat \"$ARK_RUN_DIR/metrics.pid\")")
            return RehearsalContext()
        },
        "ARKEthicsDrift": { r in
            _ = try r.shell("chmod 644 \"$ARK_GRAVEYARD_DIR/ethics_rules.json\" && echo ' ' >>\"$ARK_GRAVEYARD_DIR/ethics_rules.json\"")
            return RehearsalContext()
        },
        "ARKTradingHalted": { r in
            _ = try r.shell("ark trading halt --reason 'rehearsal: kill switch'")
            return RehearsalContext()
        },
        "ARKBookUnreadable": { r in
            // A hand edit no release writes, then traffic for Kenny to find it.
            _ = try r.shell("redis-cli -s \"${REDIS_URL#unix://}\" HSET ark:portfolio book '{\"equity\":\"lots\"}'")
            try r.traffic(seconds: 2)
            return RehearsalContext()
        },
        "ARKBookNotReconciled": { r in
            // Trades, then a readable book that the audit does not explain: 1,000 more realised.
            try r.traffic(seconds: 2)
            _ = try r.shell("S=\"${REDIS_URL#unix://}\"; B=$(redis-cli -s \"$S\" HGET ark:portfolio book) && redis-cli -s \"$S\" HSET ark:portfolio book \"$(echo \"$B\" | jq -c '.equity += 1000')\"")
            return RehearsalContext()
        },
        "Redis down": { r in
            // Redis removes its socket as it exits.
            _ = try r.shell("kill $(cat \"$ARK_RUN_DIR/redis.pid\"); while [ -S \"${REDIS_URL#unix://}\" ]; do sleep 0.1; done", timeout: 30)
            return RehearsalContext()
        },
        "ARKBackupStale": { r in
            try r.fill(r.backups)
            return RehearsalContext(beforeFix: { try FileManager.default.removeItem(atPath: r.backups + "/filler") })
        },
        "Canary rolled back": { r in
            // A release whose Kenny crashes on its first batch, rolled out under traffic.
            let rollout = try r.shell("""
                R="$ARK_RELEASES_DIR/crashing" && mkdir -p "$R/graveyard" && cp "$(command -v ark)" "$R/ark" && \
                install -m 444 "$ARK_GRAVEYARD_DIR"/ethics_rules.json* "$R/graveyard/" && printf 'ARK_ENV=local\\nARK_FAULT=kenny:crash\\n' >"$R/.env.production" && \
                (ark synthetic-loop --duration 40 --rate 10 >/dev/null 2>&1 &) && sleep 1 && \
                ark canary start --release "$R" --run-dir "$ARK_RUN_DIR" --percent 50 --step-seconds 20 --check-seconds 1 --min-samples 5 --verify-seconds 3
                """, timeout: 180)
            #expect(rollout.code == 3, "\(rollout.output)")
            return RehearsalContext(finally: { _ = try r.shell("pkill -f 'synthetic-loop --duration 40' || true") })
        },
        "State store locked": { r in
            let before = try r.deadLetters()
            // An sqlite3 session holding a write transaction open, as an operator's would.
            let fifo = r.dir.path + "/sqlite-input"
            let holder = try ChildProcess("/bin/bash", ["-c", "mkfifo '\(fifo)' && exec 3<>'\(fifo)' && exec sqlite3 -cmd 'BEGIN IMMEDIATE;' \"$ARK_STATE_DB\" <&3"],
                                          environment: ProcessInfo.processInfo.environment.merging(r.env) { $1 }, logPath: r.dir.path + "/holder.log")
            Thread.sleep(forTimeInterval: 1)
            try r.traffic(seconds: 3, rate: 10)
            return RehearsalContext(beforeFix: { holder.kill9() }, finally: {
                // Nothing sent while the store was locked was dead-lettered: all recorded.
                let after = try r.deadLetters()
                #expect(after == before, "entries were dead-lettered while the store could not be written")
            })
        },
        "ARKStateDiskLow": { r in
            let before = try r.deadLetters()
            try r.fill(r.state)
            // Enough passes to outgrow the room the WAL already has (a few MB): Aletheia
            // records into it until its checkpoint, and then its batches, find the disk full.
            try r.traffic(seconds: 4, rate: 50)
            return RehearsalContext(beforeFix: { try FileManager.default.removeItem(atPath: r.state + "/filler") }, finally: {
                let after = try r.deadLetters()
                #expect(after == before, "entries were dead-lettered while the store could not be written")
            })
        },
        "ARKSignalsOverdueInFlight": { r in
            _ = try r.shell("ark_stop joey")
            try r.traffic(seconds: 2)
            return RehearsalContext()
        },
        "ARKLatencyP95High": { r in
            try r.restartWithFault("kenny", "Kenny", "kenny:latency=700ms")
            try r.traffic(seconds: 8)
            return RehearsalContext()
        },
        "ARKHRMEvaluationSlow": { r in
            try r.restartWithFault("hrm", "HRM", "hrm:evaluation=150ms")
            try r.traffic(seconds: 8)
            return RehearsalContext()
        },
        "ARKAvailabilityLow": { r in
            try r.poison(50)
            return RehearsalContext()
        },
        "ARKErrorBudgetFastBurn": { r in
            try r.poison(50)
            return RehearsalContext()
        },
        "ARKErrorBudgetSlowBurn": { r in
            try r.poison(50)
            return RehearsalContext()
        },
    ]
}
