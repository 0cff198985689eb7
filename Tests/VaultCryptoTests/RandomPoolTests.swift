#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import VaultCrypto

/// The pool small random draws come from (``RandomPool``): draws differ,
/// leave no copy behind, and a forked child never repeats its parent's.
@Suite(.serialized) struct RandomPoolTests {
    @Test func smallDrawsDifferAndLeaveNoCopyInThePool() throws {
        let pool = try #require(RandomPool.shared, "MADV_WIPEONFORK is available on every kernel this runs on (4.14+)")
        var seen = Set<[UInt8]>()
        // More than one refill's worth.
        for _ in 0..<(3 * RandomPool.capacity / 24) {
            let nonce = try SecureRandom.bytes(24)
            #expect(seen.insert(nonce).inserted)
            #expect(pool.inspect().handedOutAreZero)
        }
        #expect(seen.allSatisfy { $0 != [UInt8](repeating: 0, count: 24) })
    }

    @Test func aDrawLargerThanThePoolServesGoesToTheKernel() throws {
        let pool = try #require(RandomPool.shared)
        _ = try SecureRandom.bytes(8)
        let before = pool.inspect().remaining
        let large = try SecureRandom.bytes(RandomPool.largestDraw + 1)
        #expect(pool.inspect().remaining == before)
        #expect(large != [UInt8](repeating: 0, count: large.count))
        _ = try SecureRandom.bytes(RandomPool.largestDraw)
        #expect(pool.inspect().remaining == before - RandomPool.largestDraw)
    }

    /// Without `MADV_WIPEONFORK` the child's copy of the pool is the
    /// parent's: both would hand out the same next bytes (one nonce used
    /// twice under one key).
    @Test func aForkedChildNeverDrawsWhatItsParentDraws() throws {
        // The pool holds bytes at the fork.
        _ = try SecureRandom.bytes(16)
        var fds: [Int32] = [0, 0]
        try #require(pipe(&fds) == 0)
        defer { close(fds[0]) }
        let child = fork()
        try #require(child >= 0)
        if child == 0 {
            // The child: no allocation, no lock another thread may hold.
            var drawn = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
            withUnsafeMutableBytes(of: &drawn) { SecureRandom.fillInitialized($0) }
            let written = withUnsafeBytes(of: &drawn) { write(fds[1], $0.baseAddress, 32) }
            _exit(written == 32 ? 0 : 1)
        }
        close(fds[1])
        let parent = try SecureRandom.bytes(32)
        var fromChild = [UInt8](repeating: 0, count: 32)
        var got = 0
        while got < 32 {
            let n = fromChild.withUnsafeMutableBytes { read(fds[0], $0.baseAddress! + got, 32 - got) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            got += n
        }
        var status: Int32 = 0
        while waitpid(child, &status, 0) < 0 && errno == EINTR {}
        #expect(got == 32)
        #expect(fromChild != parent)
        #expect(fromChild != [UInt8](repeating: 0, count: 32))
    }
}
