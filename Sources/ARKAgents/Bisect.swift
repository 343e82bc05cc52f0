// The halving that finds which items of a failing batch fail.

/// Finds the items of a batch that make `attempt` fail by halving: the whole batch first,
/// then each half of a failed part, down to single items. Every part that succeeds is done;
/// returns the single items that failed with their errors. An error `isFatal` claims (a
/// failure of the environment, which says nothing about the items) is thrown at once. One bad
/// item in 256 costs about 16 attempts.
func bisect<T>(_ items: ArraySlice<T>, isFatal: (any Error) -> Bool,
               _ attempt: (ArraySlice<T>) throws -> Void) throws -> [(item: T, error: any Error)] {
    var failing: [(item: T, error: any Error)] = []
    func visit(_ part: ArraySlice<T>) throws {
        guard !part.isEmpty else { return }
        do {
            try attempt(part)
        } catch {
            if isFatal(error) { throw error }
            guard part.count > 1 else {
                failing.append((part[part.startIndex], error))
                return
            }
            let middle = part.startIndex + part.count / 2
            try visit(part[..<middle])
            try visit(part[middle...])
        }
    }
    try visit(items)
    return failing
}
