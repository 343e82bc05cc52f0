// `ark witness`: init, run, check, show and reset.

import ARKCore
import ARKProcess
import ARKWitness
import ArgumentParser
import Foundation

struct WitnessCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "witness",
        abstract: "Witness the audit log from another host: cosign each head proved consistent with the last, alarm on a rollback, a fork or a foreign key.",
        discussion: """
            Run it on a host the ARK host's users cannot write, with its own storage (--state)
            and key; give ARK its public key (ARK_WITNESS_KEYS). docs/audit.md, "Witnesses", has the setup.
            Examples:
              ark witness init --state /var/lib/ark-witness --log-key audit_ed25519.pem.pub
              ark witness run --state /var/lib/ark-witness --api http://ark-host:8000 --token-file /etc/ark-witness/token
              ark witness check --state /var/lib/ark-witness --api http://ark-host:8000 --token-file /etc/ark-witness/token
              ark witness show --state /var/lib/ark-witness
              ark witness reset --state /var/lib/ark-witness
            """,
        subcommands: [Init.self, Run.self, Check.self, Show.self, Reset.self])

    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make the witness's storage: its key (mode 600) and the pinned log key; print its public key for ARK_WITNESS_KEYS.")

        @Option(help: "The witness's storage directory.")
        var state: String

        @Option(help: "The audit log's public key (PEM) to pin: a copy taken from the operators, not from the ARK host at the time of an attack.")
        var logKey: String

        func run() throws {
            let pem: [UInt8]
            do { pem = try readFileBytes(logKey) } catch { throw fail("cannot read \(logKey): \(error)", code: 78) }
            let key: Ed25519.PublicKey
            do { key = try WitnessStore(directory: state).initialize(logKeyPEM: pem) } catch { throw fail(error.description, code: 78) }
            print(String(decoding: key.pem, as: UTF8.self), terminator: "")
            print("witness key id \(key.keyID); copy the PEM above to the ARK host and list it in ARK_WITNESS_KEYS")
        }
    }

    struct Endpoint: ParsableArguments {
        @Option(help: "The witness's storage directory (ark witness init).")
        var state: String

        @Option(help: "The ARK API's base URL, e.g. http://ark-host:8000.")
        var api: String

        @Option(help: "A file with the bearer token for the API (ark token --subject witness); re-read every round.")
        var tokenFile: String

        func witness(interval: Double) throws -> Witness {
            do {
                return try Witness(settings: WitnessSettings(apiURL: api, tokenFile: tokenFile, interval: .milliseconds(Int64(interval * 1000)), store: WitnessStore(directory: state)))
            } catch {
                throw fail(error.description, code: 78)
            }
        }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check and cosign the log's head every --interval seconds; serve /healthz (503 while alarmed) and /metrics.")

        @OptionGroup var endpoint: Endpoint

        @Option(help: "Seconds between rounds.")
        var interval: Double = 2

        @Option(help: "Where /healthz and /metrics listen (host:port).")
        var listen: String = "127.0.0.1:9474"

        @Option(help: "Log level.")
        var logLevel: String = "info"

        func run() async throws {
            ProcessBootstrap.bootstrapLogging(level: logLevel)
            guard interval >= 0.1 && interval <= 3600 else { throw fail("--interval is 0.1 to 3600 seconds", code: 64) }
            guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (1...65535).contains(port) else {
                throw fail("--listen is host:port, not '\(listen)'", code: 64)
            }
            let witness = try endpoint.witness(interval: interval)
            try await ProcessBootstrap.run([WitnessService(witness: witness, host: String(listen[..<colon]), port: port)], publishingMetricsTo: nil)
        }
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One round: exit 0 when the head is cosigned (or unchanged), 2 on an alarm, 1 when the log cannot be asked.")

        @OptionGroup var endpoint: Endpoint

        func run() async throws {
            switch await (try endpoint.witness(interval: 1)).round() {
            case .cosigned(let size): print("cosigned the head of \(size) leaves: it extends every head this witness cosigned ✓")
            case .unchanged(let size): print("the head of \(size) leaves is the one cosigned last ✓")
            case .unreachable(let why): throw fail("the log could not be checked: \(why)", code: 1)
            case .alarmed(let alarm): throw fail("ALARM (\(alarm.kind.rawValue)): \(alarm.message)", code: 2)
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The witness's key, pinned log key, newest cosigned head and alarm; exit 2 while alarmed.")

        @Option(help: "The witness's storage directory.")
        var state: String

        func run() throws {
            let store = WitnessStore(directory: state)
            do {
                print("witness key id \(try store.key().publicKey.keyID), pinned log key id \(try store.logKey().keyID)")
            } catch {
                throw fail(error.description, code: 78)
            }
            let all = store.cosigned()
            if let held = all.last {
                print("\(all.count) head(s) cosigned; newest: size \(held.checkpoint.size), root \(SHA256.hex(held.checkpoint.root)), log time_ns \(held.checkpoint.timeNs)")
            } else {
                print("no head cosigned yet")
            }
            if let alarm = store.alarm() { throw fail("ALARM (\(alarm.kind.rawValue)) since time_ns \(alarm.atNs): \(alarm.message)", code: 2) }
        }
    }

    struct Reset: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Accept the log as it is now (after a restore done on purpose): clear the alarm; the heads cosigned so far are kept aside, and the next head is trusted anew.")

        @Option(help: "The witness's storage directory.")
        var state: String

        func run() throws {
            do { try WitnessStore(directory: state).reset(nowNs: wallClockNanoseconds()) } catch { throw fail(error.description, code: 1) }
            print("alarm cleared; the next round trusts the log's head as a first one")
        }
    }
}
