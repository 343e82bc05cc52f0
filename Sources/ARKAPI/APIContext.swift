// The per-request state the API's middlewares share.

import Hummingbird
import NIOCore
import Synchronization

/// Per-request state the middlewares share: the correlation id, and the client the
/// token names (set by the access check, read by the request log, hence a shared box).
public struct APIContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public var requestID = ""
    let client = ClientBox()
    /// The peer: requests without a valid token are rate limited by it.
    public let remoteAddress: SocketAddress?

    public init(source: Source) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}

final class ClientBox: Sendable {
    private let value = Mutex<String?>(nil)
    var subject: String? {
        get { value.withLock { $0 } }
        set { value.withLock { $0 = newValue } }
    }
}
