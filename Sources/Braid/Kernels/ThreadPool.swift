import Foundation
import Synchronization

/// A fixed set of worker threads that run one parallel job at a time with the caller as
/// thread 0. Workers spin between jobs (a decode step issues ~150 small jobs, too many for a
/// wake-up each) and fall asleep on a condition variable after a few milliseconds idle.
/// @unchecked Sendable: one submitter at a time; job hand-off goes through PoolState's atomics and lock.
public final class ThreadPool: @unchecked Sendable {
    public let threadCount: Int
    private let state: PoolState

    public init(threads: Int) {
        threadCount = max(1, threads)
        state = PoolState()
        for index in 1..<threadCount {
            state.finished.enter()
            let s = state
            let t = Thread {
                s.workerLoop(index)
                s.finished.leave()
            }
            t.stackSize = 1 << 20
            t.start()
        }
    }

    deinit {
        state.stop()
    }

    /// Runs `body(threadIndex)` on every thread (0 is the caller) and returns when all are done.
    public func run(_ body: (Int) -> Void) {
        if threadCount == 1 {
            body(0)
            return
        }
        withoutActuallyEscaping(body) { body in
            state.dispatch(body, workers: threadCount - 1)
        }
    }

    /// Runs `body` over `0..<count` in chunks of `grain` that threads claim as they go, so a
    /// thread the OS delays (shared, noisy machines) does not hold the others up.
    public func parallelFor(_ count: Int, grain: Int, _ body: (Range<Int>) -> Void) {
        let chunks = (count + grain - 1) / grain
        if threadCount == 1 || chunks == 1 {
            body(0..<count)
            return
        }
        let s = state
        s.nextChunk.store(0, ordering: .relaxed)
        run { _ in
            while true {
                let k = s.nextChunk.add(1, ordering: .relaxed).oldValue
                if k >= chunks { break }
                body(k * grain..<min(count, (k + 1) * grain))
            }
        }
    }

    /// Splits `0..<count` into one contiguous range per thread.
    @inline(__always)
    public static func slice(_ count: Int, _ thread: Int, _ threads: Int) -> Range<Int> {
        (count * thread / threads)..<(count * (thread + 1) / threads)
    }
}

/// What the workers share with the pool; owned by the workers too, so it outlives the pool's
/// deinit while they shut down.
/// @unchecked Sendable: shared by the pool and its workers; every field is an atomic or guarded by its lock.
private final class PoolState: @unchecked Sendable {
    let generation = Atomic<Int>(0)
    let remaining = Atomic<Int>(0)
    let sleepers = Atomic<Int>(0)
    let stopping = Atomic<Bool>(false)
    let nextChunk = Atomic<Int>(0)
    let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    let wake = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    let finished = DispatchGroup()
    var job: ((Int) -> Void)?

    /// Spin iterations before a worker sleeps (an atomic load, later a sched_yield, each).
    static let spinLimit = 200_000

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(wake, nil)
    }

    deinit {
        pthread_cond_destroy(wake)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        wake.deallocate()
    }

    func dispatch(_ body: @escaping (Int) -> Void, workers: Int) {
        job = body
        remaining.store(workers, ordering: .sequentiallyConsistent)
        generation.add(1, ordering: .sequentiallyConsistent)
        wakeSleepers()
        body(0)
        var spins = 0
        while remaining.load(ordering: .acquiring) > 0 {
            spins += 1
            // A worker that is not running (the machine is busy) gets the core back.
            if spins > 2_000 { sched_yield() }
        }
        job = nil
    }

    func stop() {
        stopping.store(true, ordering: .sequentiallyConsistent)
        generation.add(1, ordering: .sequentiallyConsistent)
        pthread_mutex_lock(mutex)
        pthread_cond_broadcast(wake)
        pthread_mutex_unlock(mutex)
        finished.wait()
    }

    private func wakeSleepers() {
        if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
            pthread_mutex_lock(mutex)
            pthread_cond_broadcast(wake)
            pthread_mutex_unlock(mutex)
        }
    }

    func workerLoop(_ index: Int) {
        var seen = 0
        while true {
            var spins = 0
            var current = generation.load(ordering: .acquiring)
            while current == seen {
                spins += 1
                if spins > 2_000 { sched_yield() }
                if spins >= Self.spinLimit {
                    // Sleep; the seq-cst pair (sleepers, generation) means either this thread
                    // sees the new generation or the dispatcher sees a sleeper to wake.
                    pthread_mutex_lock(mutex)
                    sleepers.add(1, ordering: .sequentiallyConsistent)
                    if generation.load(ordering: .sequentiallyConsistent) == seen {
                        pthread_cond_wait(wake, mutex)
                    }
                    sleepers.subtract(1, ordering: .sequentiallyConsistent)
                    pthread_mutex_unlock(mutex)
                    spins = 0
                }
                current = generation.load(ordering: .acquiring)
            }
            seen = current
            if stopping.load(ordering: .sequentiallyConsistent) { return }
            job?(index)
            remaining.subtract(1, ordering: .releasing)
        }
    }
}
