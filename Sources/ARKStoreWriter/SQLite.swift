// A thin layer on SQLite's C API: connections, statements and errors.

import GRDBSQLite

/// An error SQLite returned: its result code and message.
public struct SQLiteError: Error, Sendable, CustomStringConvertible {
    /// The extended result code.
    public let code: Int32
    public let message: String

    /// The primary result code (`SQLITE_BUSY`, `SQLITE_FULL`, ...).
    public var primaryCode: Int32 { code & 0xFF }

    public var description: String { "SQLite error \(code): \(message)" }
}

/// One connection to an SQLite file, on SQLite's C API. The outcome writer's path runs on it
/// rather than GRDB: GRDB imports Foundation, which costs every agent process 6.7 MB of
/// resident memory it otherwise never needs (docs/performance.md). Not thread-safe: its owner
/// serialises access.
final class SQLiteConnection {
    let handle: OpaquePointer
    let path: String

    init(path: String, flags: Int32 = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX) throws(SQLiteError) {
        var db: OpaquePointer?
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
            sqlite3_close_v2(db)
            throw SQLiteError(code: rc, message: message)
        }
        sqlite3_extended_result_codes(db, 1)
        handle = db
        self.path = path
    }

    deinit {
        // close_v2: the connection closes once its last prepared statement is finalized.
        sqlite3_close_v2(handle)
    }

    func error(_ rc: Int32) -> SQLiteError {
        SQLiteError(code: sqlite3_extended_errcode(handle) == 0 ? rc : sqlite3_extended_errcode(handle), message: String(cString: sqlite3_errmsg(handle)))
    }

    /// Runs one or more statements that return no rows.
    func execute(_ sql: String) throws(SQLiteError) {
        let rc = sqlite3_exec(handle, sql, nil, nil, nil)
        guard rc == SQLITE_OK else { throw error(rc) }
    }

    /// A prepared statement, kept for reuse (`SQLITE_PREPARE_PERSISTENT`).
    func prepare(_ sql: String) throws(SQLiteError) -> SQLiteStatement {
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw error(rc) }
        return SQLiteStatement(stmt, connection: self)
    }

    /// Rows changed by the last INSERT, UPDATE or DELETE.
    var changes: Int { Int(sqlite3_changes(handle)) }

    /// The first column of the first row of `sql`, as text (for pragmas).
    func text(_ sql: String) throws(SQLiteError) -> String? {
        try prepare(sql).firstRow { $0.text(0) }
    }

    /// Runs `body` in a transaction that takes the write lock at once (BEGIN IMMEDIATE),
    /// committed when it returns and rolled back when it throws.
    func inImmediateTransaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }
}

/// A prepared statement. Parameters are bound in order through `bind`; columns read by index.
final class SQLiteStatement {
    let handle: OpaquePointer
    unowned let connection: SQLiteConnection
    private var index: Int32 = 1
    static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    init(_ handle: OpaquePointer, connection: SQLiteConnection) {
        self.handle = handle
        self.connection = connection
    }

    deinit { sqlite3_finalize(handle) }

    /// Ready to run again: reset, parameters cleared.
    func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
        index = 1
    }

    /// Steps once: true when a row is ready, false when the statement is done.
    func step() throws(SQLiteError) -> Bool {
        let rc = sqlite3_step(handle)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw connection.error(rc)
        }
    }

    /// Runs a statement that returns no rows.
    func run() throws(SQLiteError) {
        while try step() {}
    }

    /// Reads the first row with `read` (nil when there is none), then resets, so the
    /// statement holds no read snapshot once this returns.
    func firstRow<T>(_ read: (SQLiteStatement) -> T) throws(SQLiteError) -> T? {
        defer { sqlite3_reset(handle) }
        return try step() ? read(self) : nil
    }

    // MARK: binding, in parameter order

    func bind(_ value: String?) {
        defer { index += 1 }
        guard var value else { sqlite3_bind_null(handle, index); return }
        value.withUTF8 { bindText($0, Self.transient) }
    }

    /// UTF-8 text bound in place (SQLITE_STATIC): `utf8` must stay alive until the statement
    /// has run. Saves copying a 1 KB audit record per pass.
    func bindInPlace(_ utf8: UnsafeBufferPointer<UInt8>) {
        defer { index += 1 }
        bindText(utf8, nil)
    }

    private func bindText(_ utf8: UnsafeBufferPointer<UInt8>, _ destructor: sqlite3_destructor_type?) {
        // A zero-length buffer may have no address, and SQLite binds NULL for a null pointer.
        guard let base = utf8.baseAddress, !utf8.isEmpty else {
            sqlite3_bind_text(handle, index, "", 0, Self.transient)
            return
        }
        base.withMemoryRebound(to: CChar.self, capacity: utf8.count) {
            _ = sqlite3_bind_text(handle, index, $0, Int32(utf8.count), destructor)
        }
    }

    func bind(blob: [UInt8]) {
        defer { index += 1 }
        blob.withUnsafeBytes { raw in
            _ = sqlite3_bind_blob(handle, index, raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32(raw.count), Self.transient)
        }
    }

    func bind(_ value: Double?) {
        defer { index += 1 }
        if let value { sqlite3_bind_double(handle, index, value) } else { sqlite3_bind_null(handle, index) }
    }

    func bind(_ value: Int64?) {
        defer { index += 1 }
        if let value { sqlite3_bind_int64(handle, index, value) } else { sqlite3_bind_null(handle, index) }
    }

    func bind(_ value: Int) { bind(Int64(value)) }

    // MARK: columns of the current row

    func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }

    func double(_ column: Int32) -> Double { sqlite3_column_double(handle, column) }

    func isNull(_ column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }

    /// The text's bytes, without a String in between (a 1 KB record hashed as it is stored).
    func textBytes(_ column: Int32) -> [UInt8] {
        let n = Int(sqlite3_column_bytes(handle, column))
        guard n > 0, let p = sqlite3_column_text(handle, column) else { return [] }
        return Array(UnsafeBufferPointer(start: p, count: n))
    }

    func text(_ column: Int32) -> String {
        guard let p = sqlite3_column_text(handle, column) else { return "" }
        return String(cString: p)
    }

    func blob(_ column: Int32) -> [UInt8] {
        let n = Int(sqlite3_column_bytes(handle, column))
        guard n > 0, let p = sqlite3_column_blob(handle, column) else { return [] }
        return Array(UnsafeRawBufferPointer(start: p, count: n))
    }
}
