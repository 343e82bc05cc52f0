// Text helpers ARK needs without Foundation.

extension StringProtocol {
    /// The text without leading and trailing whitespace, line breaks included (Unicode's
    /// definition, as Python's `strip()`). Foundation's `trimmingCharacters(in:)` is not in
    /// FoundationEssentials, all the agents load.
    public func trimmed() -> String {
        guard let first = firstIndex(where: { !$0.isWhitespace }), let last = lastIndex(where: { !$0.isWhitespace }) else { return "" }
        return String(self[first...last])
    }
}
