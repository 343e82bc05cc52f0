// A serial executor on a dedicated thread, for actors that block.

import ARKCore

/// A serial executor backed by one dedicated OS thread. Actors that hold a blocking hiredis
/// connection run on it, so a blocking read never stalls Swift's cooperative thread pool.
public final class ThreadExecutor: SerialExecutor, @unchecked Sendable {
    private let condition = ConditionLock()
    private var jobs: [UnownedJob] = []
    private var stopped = false

    public init(name: String) {
        startThread(name: name, stackSize: 1 << 20) { [unowned self] in self.loop() }
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        condition.lock()
        jobs.append(unowned)
        condition.signal()
        condition.unlock()
    }

    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    /// Lets the thread finish once its queue is empty. Only for executors whose actors are done.
    public func shutdown() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    private func loop() {
        var batch: [UnownedJob] = []
        while true {
            condition.lock()
            while jobs.isEmpty && !stopped { condition.wait() }
            if jobs.isEmpty && stopped {
                condition.unlock()
                return
            }
            swap(&batch, &jobs)
            condition.unlock()
            for job in batch { job.runSynchronously(on: asUnownedSerialExecutor()) }
            batch.removeAll(keepingCapacity: true)
        }
    }
}
