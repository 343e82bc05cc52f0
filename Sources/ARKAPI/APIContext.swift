import Hummingbird
import Synchronization

/// Per-request state the middlewares share: the correlation id, and the client the
/// token names (set by the access check, read by the request log, hence a shared box).
public struct APIContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var requestID = ""
    let client = ClientBox()

    public init(source: Source) {
        coreContext = .init(source: source)
    }
}

final class ClientBox: Sendable {
    private let value = Mutex<String?>(nil)
    var subject: String? {
        get { value.withLock { $0 } }
        set { value.withLock { $0 = newValue } }
    }
}
