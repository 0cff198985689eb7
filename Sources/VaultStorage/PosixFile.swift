#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import CPosix
import VaultSync

/// A thin owner of one file descriptor: every failing system call becomes a
/// thrown ``StorageError``; the descriptor is closed in `deinit`.
///
/// `pread`/`pwrite` at explicit offsets never move a shared file position,
/// so one descriptor serves concurrent readers and the single writer.
package final class PosixFile: @unchecked Sendable {
    // @unchecked Sendable: `fd` is immutable; the positional calls used on it
    // are thread-safe in the kernel. Only `close()`/`deinit` end it, once.
    package let fd: Int32
    /// The file's name within the store, for error messages only.
    package let name: String
    /// The file's path, for the observer only.
    private let path: String
    /// Told of every change that succeeded (tests' power-loss simulation).
    private let observer: (any FileObserver)?
    /// The first failed sync of this descriptor, if one failed. Syncs are
    /// serialised under this lock, and a failure is kept: Linux reports a
    /// writeback error to one `fdatasync` only, so a second thread's sync
    /// (the committer's, while a compaction or a backup syncs the same
    /// file) could otherwise return 0 for pages that never reached the
    /// disk, and a group would be acknowledged.
    private let syncFailure = Locked<StorageError?>(nil)

    private init(fd: Int32, name: String, path: String, observer: (any FileObserver)?) {
        self.fd = fd
        self.name = name
        self.path = path
        self.observer = observer
    }

    deinit { _ = Glibc.close(fd) }

    /// Opens `path` with `flags` (O_CLOEXEC is added). `observer`, in tests
    /// only, is told of the file's creation or truncation and of every
    /// later change that succeeds.
    package static func open(
        _ path: String, flags: Int32, mode: mode_t = 0o600, name: String, observer: (any FileObserver)? = nil
    ) throws -> PosixFile {
        let existed = observer != nil && FileSystem.exists(path)
        let fd = Glibc.open(path, flags | O_CLOEXEC, mode)
        guard fd >= 0 else { throw PosixFile.error("open", name: name) }
        if let observer, flags & O_CREAT != 0 || flags & O_TRUNC != 0 {
            observer.opened(path, created: !existed, truncated: flags & O_TRUNC != 0)
        }
        return PosixFile(fd: fd, name: name, path: path, observer: observer)
    }

    /// A `StorageError` for the current `errno`; ENOSPC and EDQUOT become
    /// ``StorageError/Code/diskFull``.
    package static func error(_ operation: String, name: String, code: Int32 = Glibc.errno) -> StorageError {
        if code == ENOSPC || code == EDQUOT {
            return StorageError(.diskFull, "\(operation) of \(name): no space left", errno: code)
        }
        return StorageError(.io, "\(operation) of \(name) failed", errno: code)
    }

    /// The file's size in bytes.
    package func size() throws -> UInt64 {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw PosixFile.error("fstat", name: name) }
        return UInt64(st.st_size)
    }

    /// Reads exactly `buffer.count` bytes at `offset`, or fewer at end of file.
    /// - Returns: the number of bytes read.
    package func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
        try positional("read", count: buffer.count, stopsAtZero: true) { done in
            pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
        }
    }

    /// Repeats `call` (one `pread` or `pwrite` of what is left, given the
    /// bytes done so far) until `count` bytes are done, retrying on EINTR.
    /// A call that transfers nothing ends the loop when `stopsAtZero` (end
    /// of file, for a read).
    /// - Returns: the number of bytes done.
    private func positional(_ operation: String, count: Int, stopsAtZero: Bool, _ call: (Int) -> Int) throws -> Int {
        var done = 0
        while done < count {
            let n = call(done)
            if n < 0 {
                if errno == EINTR { continue }
                throw PosixFile.error(operation, name: name)
            }
            if n == 0 && stopsAtZero { break }
            done += n
        }
        return done
    }

    /// Reads up to `count` bytes at `offset` into a new array (shorter at end of file).
    package func read(count: Int, at offset: UInt64) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        let n = try out.withUnsafeMutableBytes { try read(into: $0, at: offset) }
        if n < count { out.removeSubrange(n...) }
        return out
    }

    /// Writes all of `bytes` at `offset`.
    package func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws {
        _ = try positional("write", count: bytes.count, stopsAtZero: false) { done in
            pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done))
        }
        observer?.wrote(path, at: offset, bytes)
    }

    /// Writes all of `bytes` at `offset`.
    package func write(_ bytes: [UInt8], at offset: UInt64) throws {
        try bytes.withUnsafeBytes { try write($0, at: offset) }
    }

    /// Writes the buffers one after another from `offset`, in as few
    /// `pwritev` calls as the kernel allows.
    package func write(gathering buffers: [[UInt8]], at offset: UInt64) throws {
        var index = 0
        var position = offset
        while index < buffers.count {
            let end = min(buffers.count, index + 512)
            var total = 0
            for i in index..<end { total += buffers[i].count }
            let written: Int = try withIOVectors(buffers, index..<end) { iov in
                while true {
                    let n = pwritev(fd, iov.baseAddress, Int32(iov.count), off_t(position))
                    if n >= 0 { return n }
                    if errno != EINTR { throw PosixFile.error("write", name: name) }
                }
            }
            if written < total {
                // A short write: finish the rest buffer by buffer.
                var start = position
                var skip = written
                for i in index..<end {
                    let count = buffers[i].count
                    if skip < count {
                        try buffers[i].withUnsafeBytes { raw in
                            try write(UnsafeRawBufferPointer(rebasing: raw[skip...]), at: start + UInt64(skip))
                        }
                    }
                    skip = max(0, skip - count)
                    start += UInt64(count)
                }
            }
            if let observer {
                var at = position
                for i in index..<end {
                    buffers[i].withUnsafeBytes { observer.wrote(path, at: at, $0) }
                    at += UInt64(buffers[i].count)
                }
            }
            position += UInt64(total)
            index = end
        }
    }

    private func withIOVectors<R>(
        _ buffers: [[UInt8]], _ range: Range<Int>, _ body: (UnsafeBufferPointer<iovec>) throws -> R
    ) throws -> R {
        var iovs: [iovec] = []
        iovs.reserveCapacity(range.count)
        // The arrays stay alive (held by `buffers`) for the whole call, and
        // are not mutated, so their storage addresses stay valid.
        for i in range {
            buffers[i].withUnsafeBytes { raw in
                iovs.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: raw.baseAddress), iov_len: raw.count))
            }
        }
        return try withExtendedLifetime(buffers) {
            try iovs.withUnsafeBufferPointer { try body($0) }
        }
    }

    /// Starts writing back a range of the page cache without waiting:
    /// `posix_fadvise(POSIX_FADV_DONTNEED)` makes Linux begin writeback of
    /// the range's dirty pages (and drop them from the cache once clean).
    /// A hint, not a durability guarantee: failures are ignored, the later
    /// `fdatasync` reports any.
    package func startWriteback(offset: UInt64, length: UInt64) {
        _ = posix_fadvise(fd, off_t(offset), off_t(length), POSIX_FADV_DONTNEED)
    }

    /// Starts the writeback of the range's dirty pages and, with `wait`,
    /// waits for it (`sync_file_range`): a long copy paced by the device,
    /// so that the writes it queues stay small beside others' syncs. Not a
    /// durability guarantee: ``syncData()`` or ``sync()`` still follows.
    /// - Throws: ``StorageError/Code/io`` (a writeback error, reported
    ///   again by the later sync).
    package func writeBack(offset: UInt64, length: UInt64, wait: Bool) throws {
        while cposix_write_back(fd, Int64(offset), Int64(length), wait ? 1 : 0) != 0 {
            if errno == EINTR { continue }
            throw PosixFile.error("sync_file_range", name: name)
        }
    }

    /// Allocates blocks for `length` bytes from `offset`, past the end of
    /// the file, without changing its size (`fallocate` with
    /// `FALLOC_FL_KEEP_SIZE`): a later write there cannot fail for lack of
    /// space. Returns false where the file system cannot (`EOPNOTSUPP`).
    /// - Throws: ``StorageError/Code/diskFull`` (`ENOSPC`), or `io`.
    package func allocateBeyondEnd(offset: UInt64, length: UInt64) throws -> Bool {
        while cposix_allocate_beyond_end(fd, Int64(offset), Int64(length)) != 0 {
            if errno == EINTR { continue }
            if errno == EOPNOTSUPP || errno == ENOSYS { return false }
            throw PosixFile.error("fallocate", name: name)
        }
        return true
    }

    /// Makes written data durable (`fdatasync`).
    /// - Throws: ``StorageError/Code/durabilityLost`` whatever the `errno`
    ///   (`ENOSPC` included): Linux reports a writeback error once per open
    ///   file description, so data written before a failed sync may never
    ///   reach the disk even if the next sync succeeds. The engine latches
    ///   every such error and stops acknowledging writes.
    package func syncData() throws {
        try syncing("fdatasync") { fdatasync($0) }
    }

    /// Makes data and metadata durable (`fsync`), for directories too.
    /// - Throws: ``StorageError/Code/durabilityLost``, as ``syncData()``.
    package func sync() throws {
        try syncing("fsync") { fsync($0) }
    }

    /// Runs one sync call, serialised with this descriptor's other syncs;
    /// once one has failed, every later one throws its error.
    private func syncing(_ operation: String, _ call: (Int32) -> Int32) throws {
        try syncFailure.withLock { (failure: inout StorageError?) throws(StorageError) in
            if let failure { throw failure }
            while call(fd) != 0 {
                if errno == EINTR { continue }
                let error = PosixFile.syncError(operation, name: name)
                failure = error
                throw error
            }
        }
        observer?.synced(path)
    }

    /// The error of a failed `fdatasync` or `fsync`: always
    /// ``StorageError/Code/durabilityLost`` (never `diskFull`, which would
    /// invite a retry of a sync whose error the kernel has already cleared).
    package static func syncError(_ operation: String, name: String, code: Int32 = Glibc.errno) -> StorageError {
        StorageError(.durabilityLost, "\(operation) of \(name) failed", errno: code)
    }

    /// Reserves space up to `length` bytes so that later writes inside it
    /// cannot fail for lack of space: zeros are written from the file's end.
    /// The caller syncs them (through the engine, which latches a failed
    /// sync). Real blocks, not `posix_fallocate`'s unwritten extents:
    /// a later overwrite then changes no file-system metadata, so its
    /// `fdatasync` flushes data alone, without a journal commit (about half
    /// the latency of a durable 4 KiB deposit on ext4).
    package func fillWithZeros(upTo length: UInt64) throws {
        let current = try size()
        guard length > current else { return }
        let zeros = [UInt8](repeating: 0, count: Int(min(length - current, 1 << 20)))
        var offset = current
        try zeros.withUnsafeBytes { raw in
            while offset < length {
                let n = Int(min(UInt64(raw.count), length - offset))
                try write(UnsafeRawBufferPointer(rebasing: raw[0..<n]), at: offset)
                offset += UInt64(n)
            }
        }
    }

    /// Replaces bytes `offset..<offset + length` with zeros for good: the
    /// whole file-system blocks inside the range are deallocated
    /// (`fallocate` with `FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE`, so
    /// their old contents are gone from the file and their space is
    /// returned), the rest is overwritten with zeros; where the file system
    /// cannot punch holes (or cannot on a full disk), the whole range is
    /// overwritten. Not synced.
    package func discard(offset: UInt64, length: UInt64) throws {
        guard length > 0 else { return }
        let block: UInt64 = 4096
        let end = offset + length
        let holeStart = (offset + block - 1) / block * block
        let holeEnd = end / block * block
        var zeroRanges: [(UInt64, UInt64)] = []
        if holeEnd > holeStart {
            if cposix_punch_hole(fd, Int64(holeStart), Int64(holeEnd - holeStart)) == 0 {
                zeroRanges = [(offset, holeStart), (holeEnd, end)]
                if let observer {
                    // Told as zeros written: what a reader of the file sees.
                    try forEachZeroBlock(from: holeStart, to: holeEnd) { observer.wrote(path, at: $0, $1) }
                }
            } else if errno == EOPNOTSUPP || errno == ENOSYS || errno == ENOSPC {
                // No hole punching here, or none on a full disk (ext4 may
                // need a block to split an extent): the blocks are there,
                // zeros overwrite them in place.
                zeroRanges = [(offset, end)]
            } else {
                throw PosixFile.error("fallocate", name: name)
            }
        } else {
            zeroRanges = [(offset, end)]
        }
        for (from, to) in zeroRanges where to > from {
            try forEachZeroBlock(from: from, to: to) { at, zeros in try write(zeros, at: at) }
        }
    }

    private func forEachZeroBlock(from: UInt64, to: UInt64, _ body: (UInt64, UnsafeRawBufferPointer) throws -> Void) throws {
        let zeros = [UInt8](repeating: 0, count: Int(min(to - from, 1 << 20)))
        try zeros.withUnsafeBytes { raw in
            var at = from
            while at < to {
                let n = Int(min(UInt64(raw.count), to - at))
                try body(at, UnsafeRawBufferPointer(rebasing: raw[0..<n]))
                at += UInt64(n)
            }
        }
    }

    /// Cuts the file at `length` bytes.
    package func truncate(to length: UInt64) throws {
        guard ftruncate(fd, off_t(length)) == 0 else { throw PosixFile.error("ftruncate", name: name) }
        observer?.truncated(path, to: length)
    }

    /// Releases a `flock` taken by ``tryLockExclusive()``.
    package func unlock() {
        _ = flock(fd, LOCK_UN)
    }

    /// Takes an exclusive, non-blocking `flock` on the file.
    /// - Returns: false if another open file description holds it.
    package func tryLockExclusive() throws -> Bool {
        if flock(fd, LOCK_EX | LOCK_NB) == 0 { return true }
        if errno == EWOULDBLOCK { return false }
        throw PosixFile.error("flock", name: name)
    }
}

/// What names a file whatever its path: its device and inode.
package struct FileIdentity: Hashable, Sendable {
    package var device: UInt64
    package var inode: UInt64
}

/// File-system helpers that are not about one open file.
package enum FileSystem {
    /// Creates `path` as a directory if it does not exist.
    /// Creates the store's directory with mode 0700. One that exists with
    /// any group or world permission is tightened to 0700: the store's
    /// files are only ever its owner's.
    /// Missing parent folders are created too (0700); a failure names the
    /// folder that could not be created and its `errno`.
    /// A folder it creates is made durable in its parent (the parent is
    /// synced), so that a store, a backup or a restore reported complete
    /// does not lose its folder's name to a power loss.
    package static func createDirectory(_ path: String) throws {
        if mkdir(path, 0o700) == 0 { return try syncParent(of: path) }
        if errno == ENOENT {
            // Create the parents, from the nearest existing one down.
            let parent = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
            if !parent.isEmpty && parent != path {
                try createParent(parent)
                if mkdir(path, 0o700) == 0 { return try syncParent(of: path) }
            }
        }
        guard errno == EEXIST else {
            let code = errno
            throw StorageError(.io, "mkdir of \(path) failed", errno: code)
        }
        var info = stat()
        guard stat(path, &info) == 0 else { throw PosixFile.error("stat", name: "store directory") }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            throw StorageError(.io, "the store's path exists and is not a directory")
        }
        if info.st_mode & 0o077 != 0 {
            guard chmod(path, 0o700) == 0 else { throw PosixFile.error("chmod", name: "store directory") }
        }
    }

    /// Creates `path` and its missing parents (0700), leaving existing ones
    /// as they are.
    private static func createParent(_ path: String) throws {
        var info = stat()
        if stat(path, &info) == 0 { return }
        let parent = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
        if !parent.isEmpty && parent != path { try createParent(parent) }
        if mkdir(path, 0o700) == 0 { return try syncParent(of: path) }
        guard errno == EEXIST else {
            let code = errno
            throw StorageError(.io, "mkdir of \(path) failed", errno: code)
        }
    }

    /// Syncs the folder that holds `path`: its new entry is then durable.
    package static func syncParent(of path: String) throws {
        var trimmed = Substring(path)
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        let parent: String
        if let slash = trimmed.lastIndex(of: "/") {
            parent = slash == trimmed.startIndex ? "/" : String(trimmed[..<slash])
        } else {
            parent = "."
        }
        try syncDirectory(parent)
    }

    /// `path` made absolute (against the working directory), with the
    /// symbolic links, `.` and `..` of its existing part resolved as the
    /// kernel resolves them (`realpath(3)` one component at a time), and
    /// its missing tail taken as written (`.` and `..` removed). Two
    /// spellings of one existing folder (`store/.`, `store/`, `a/../store`,
    /// a symbolic link to it) give the same result.
    package static func resolvedPath(_ path: String) -> String {
        var absolute = path
        if !absolute.hasPrefix("/") {
            let cwd = getcwd(nil, 0)
            defer { free(cwd) }
            absolute = (cwd.map { String(cString: $0) } ?? "") + "/" + path
        }
        // `current` is always a real path, or a missing one: the parent of
        // a real path is its `..` (the kernel's own), and below a missing
        // folder nothing can be a link.
        var current = ""
        for component in absolute.split(separator: "/", omittingEmptySubsequences: true) {
            switch component {
            case ".": continue
            case "..":
                if let slash = current.lastIndex(of: "/") { current = String(current[..<slash]) }
            default:
                let next = current + "/" + component
                if let real = realpath(next, nil) {
                    current = String(cString: real)
                    free(real)
                    if current == "/" { current = "" }
                } else {
                    current = next
                }
            }
        }
        return current.isEmpty ? "/" : current
    }

    /// Whether the folders `a` and `b` overlap: the same folder, or one
    /// inside the other. Compared by their resolved paths
    /// (``resolvedPath(_:)``) and, for what exists, by device and inode, so
    /// that a second mount of a folder is found too. Cost: a `realpath` and
    /// a `stat` per component of each path.
    package static func overlap(_ a: String, _ b: String) -> Bool {
        let (ra, rb) = (resolvedPath(a), resolvedPath(b))
        func isWithin(_ inner: String, _ outer: String) -> Bool {
            inner == outer || outer == "/" || inner.hasPrefix(outer + "/")
        }
        if isWithin(ra, rb) || isWithin(rb, ra) { return true }
        // The folder itself and every folder above it, by identity.
        func chain(_ path: String) -> [FileIdentity] {
            var ids: [FileIdentity] = []
            var p = path
            while true {
                if let id = identity(p) { ids.append(id) }
                guard p != "/", let slash = p.lastIndex(of: "/") else { break }
                p = slash == p.startIndex ? "/" : String(p[..<slash])
            }
            return ids
        }
        if let ia = identity(ra), chain(rb).contains(ia) { return true }
        if let ib = identity(rb), chain(ra).contains(ib) { return true }
        return false
    }

    /// A file's device and inode (`stat(2)`, links followed); nil if it
    /// does not exist.
    package static func identity(_ path: String) -> FileIdentity? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return FileIdentity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    }

    /// Whether `path` exists.
    package static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    /// The names in directory `path`.
    package static func list(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else { throw PosixFile.error("opendir", name: "store directory") }
        defer { closedir(dir) }
        var names: [String] = []
        while true {
            // NULL is the end, or an error: only `errno` tells them apart
            // (a list cut short would hide segments from recovery).
            errno = 0
            guard let entry = readdir(dir) else {
                if errno != 0 { throw PosixFile.error("readdir", name: "store directory") }
                return names
            }
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
    }

    /// Makes the directory's entries (new files, renames) durable.
    package static func syncDirectory(_ path: String, observer: (any FileObserver)? = nil) throws {
        let dir = try PosixFile.open(path, flags: O_RDONLY | O_DIRECTORY, name: "store directory", observer: observer)
        try dir.sync()
    }

    /// Atomically replaces `to` with `from`.
    package static func rename(_ from: String, _ to: String, observer: (any FileObserver)? = nil) throws {
        guard Glibc.rename(from, to) == 0 else { throw PosixFile.error("rename", name: "checkpoint") }
        observer?.renamed(from, to)
    }

    /// Gives `from`'s file the name `to` too, unless `to` exists: false
    /// then (`link(2)`, atomic: of two callers, one wins).
    package static func linkIfAbsent(_ from: String, _ to: String) throws -> Bool {
        if Glibc.link(from, to) == 0 { return true }
        if errno == EEXIST { return false }
        throw PosixFile.error("link", name: "header")
    }

    /// Removes a file; a missing file is not an error.
    package static func remove(_ path: String, observer: (any FileObserver)? = nil) throws {
        if unlink(path) != 0 && errno != ENOENT { throw PosixFile.error("unlink", name: "segment") }
        observer?.removed(path)
    }
}
