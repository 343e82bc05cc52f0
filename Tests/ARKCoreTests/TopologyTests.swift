import ARKCore
import Testing

/// The pipeline's topology and the event key table, each said once.
@Suite struct TopologyTests {
    @Test func eachStageSendsToTheNextAndKyleSendsRejectionsToAletheia() {
        #expect(Stage.allCases.map { $0.next() } == [.joey, .hrm, .kenny, .aletheia, nil])
        #expect(Stage.kyle.next(rejected: true) == .aletheia)
        #expect(Stage.allCases.map(\.downstream) == [[.joey, .aletheia], [.hrm], [.kenny], [.aletheia], []])
    }

    @Test func theHopsAnEventCarriesToAletheia() {
        #expect(Stage.expectedHops(rejected: false) == [.kyle, .joey, .hrm, .kenny])
        #expect(Stage.expectedHops(rejected: true) == [.kyle])
    }

    @Test func producerKeysAreWhatKyleAcceptsAndTheRestAreTheStagesOwn() {
        #expect(EventKey.producerKeys.map(\.text) == [
            "trace_id", "id", "symbol", "price", "volume", "ts", "source", "t0_ns", "action",
            "position_size_pct", "leverage", "stop_loss", "risk_reward_ratio", "intent", "injected_violation", "account",
        ])
        // Every key's name is what the canonical encoder writes for it.
        var e = Event(traceID: "t", id: "i", symbol: "S", price: 1, volume: 1, ts: 1, source: "s", t0Ns: 1, action: "buy", positionSizePct: 0.01,
                      leverage: 1, stopLoss: 0.9, riskRewardRatio: 2, intent: "x", injectedViolation: "v")
        e.account = "acct"
        e.track = .canary
        let json = String(decoding: EventCodec.encode(e), as: UTF8.self)
        for key in EventKey.allCases where ![.decision, .execution, .rejection].contains(key) {
            #expect(json.contains("\"\(key.text)\":"), "\(key.text) in \(json)")
        }
    }
}

/// Instance names are built and read in one place, shard suffix included.
@Suite struct InstanceNameTests {
    @Test func namesRoundTripWithTheirShard() {
        for shard in [Shard.untagged, .tagged(0), .tagged(12)] {
            for host in ["h", "ip-10-0-0-1", "a-b-c-d"] {
                let name = InstanceName(stage: .kenny, host: host, pid: 4242, shard: shard)
                #expect(InstanceName(parsing: name.description) == name, "\(name)")
                #expect(Shard(instance: name.description) == shard)
            }
        }
        #expect(InstanceName(stage: .hrm, host: "box", pid: 7, shard: .tagged(2)).description == "HRM-box-7@s2")
        #expect(Shard.tagged(3).instanceName(stage: .kyle, host: "x", pid: 1) == "Kyle-x-1@s3")
    }

    @Test func namesNotBuiltByArkAreNotRead() {
        for name in ["", "Kyle", "Kyle-1", "Kyle--1", "kyle-h-1", "Kyle-h-0", "Kyle-h-+5", "Kyle-h-05", "Kyle-h-x", "Kyle-h-1@", "Kyle-h-1@s", "Kyle-h-1@t2",
                     "Kyle-h-1@s-1", "Kyle-h-1@s+1", "Kyle-h-1@s2x", "canary-controller", "Nobody-h-1"] {
            #expect(InstanceName(parsing: name) == nil, "\(name)")
        }
    }
}
