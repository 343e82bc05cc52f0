import Foundation

/// A network namespace with a veth pair to the host, made with `ip netns` (needs root): a
/// "host" of its own for processes started in it, which reach the real host at `hostAddress`
/// and nothing else. Removed on `remove()`.
public final class NetworkNamespace: @unchecked Sendable {
    public let name: String
    public let hostAddress: String
    public let address: String
    let hostLink: String

    /// `subnet`: the third octet of 10.77.<subnet>.0/24.
    public init(subnet: Int) throws {
        let tag = String(UInt32.random(in: 0..<0xFFFF), radix: 16)
        name = "ark-\(subnet)-\(tag)"
        hostLink = "ark\(subnet)h\(tag)"
        let nsLink = "ark\(subnet)n\(tag)"
        hostAddress = "10.77.\(subnet).1"
        address = "10.77.\(subnet).2"
        let steps: [[String]] = [
            ["netns", "add", name],
            ["link", "add", hostLink, "type", "veth", "peer", "name", nsLink],
            ["link", "set", nsLink, "netns", name],
            ["addr", "add", hostAddress + "/24", "dev", hostLink],
            ["link", "set", hostLink, "up"],
            ["netns", "exec", name, "ip", "addr", "add", address + "/24", "dev", nsLink],
            ["netns", "exec", name, "ip", "link", "set", nsLink, "up"],
            ["netns", "exec", name, "ip", "link", "set", "lo", "up"],
            ["netns", "exec", name, "ip", "route", "add", "default", "via", hostAddress],
        ]
        for step in steps {
            let r = try runCommand(Self.ip, step, timeout: 20)
            guard r.code == 0 else {
                remove()
                throw TestSetupError("ip \(step.joined(separator: " ")) failed (\(r.code)): \(r.output)")
            }
        }
    }

    static var ip: String { FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") ? "/usr/sbin/ip" : "/sbin/ip" }

    /// Whether this machine lets us make namespaces and veth pairs (root with CAP_NET_ADMIN,
    /// iproute2, util-linux's unshare): tried once, for real.
    public static let available: Bool = {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: ip), FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare") else { return false }
        guard let probe = try? NetworkNamespace(subnet: 70) else { return false }
        probe.remove()
        return true
    }()

    /// The command line that runs `executable` in this namespace with its own host name.
    public func wrap(_ executable: String, _ arguments: [String], hostname: String) -> (String, [String]) {
        (Self.ip, ["netns", "exec", name, "/usr/bin/unshare", "--uts", "/bin/sh", "-c", "hostname \(hostname) && exec \"$0\" \"$@\"", executable] + arguments)
    }

    public func remove() {
        _ = try? runCommand(Self.ip, ["link", "del", hostLink], timeout: 20)
        _ = try? runCommand(Self.ip, ["netns", "del", name], timeout: 20)
    }
}
