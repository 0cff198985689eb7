/// Every operation of the log engine that changes a file, in one place:
/// the seam where a test makes one fail (as SQLite's test VFS and
/// LevelDB's `Env` do) instead of checks spread through the engine.
///
/// ``PosixLogFiles`` does them; ``FaultInjection`` does them too, failing
/// those it was told to. Reads are not here: a failed read is reported to
/// its caller and changes nothing.
package protocol LogFiles: Sendable {
    /// Told of every change to the files (power-loss tests); nil in
    /// production.
    var observer: (any FileObserver)? { get }

    /// Writes `bytes` at `offset` of `file`, outside the commit path's
    /// frames (`site` says which write it is).
    func write(_ bytes: [UInt8], at offset: UInt64, of file: PosixFile, site: FaultInjection.Site) throws

    /// The commit path's gathered write of frames.
    func writeFrames(_ buffers: [[UInt8]], at offset: UInt64, of file: PosixFile) throws

    /// Extends `file` with zeros up to `length` (preallocation; no sync).
    /// - Throws: ``StorageError/Code/diskFull`` when the space is not there.
    func extend(_ file: PosixFile, upTo length: UInt64) throws

    /// Sets `file`'s length (a cut of what recovery does not keep).
    func truncate(_ file: PosixFile, to length: UInt64) throws

    /// Replaces a range of `file` with zeros for good, deallocating what
    /// it can (compaction; ``PosixFile/discard(offset:length:)``).
    func discard(_ file: PosixFile, offset: UInt64, length: UInt64) throws

    /// `fdatasync` of `file`: at `site`, or on the commit path for nil.
    func sync(_ file: PosixFile, site: FaultInjection.Site?) throws

    /// Whether every group that needs space beyond the audit reserve is
    /// refused at once, whatever its size (a full disk, simulated).
    var refusesGroupsBeyondReserve: Bool { get }
}

/// The production ``LogFiles``: the system calls, nothing else.
package struct PosixLogFiles: LogFiles {
    package init() {}
    package var observer: (any FileObserver)? { nil }
    package func write(_ bytes: [UInt8], at offset: UInt64, of file: PosixFile, site: FaultInjection.Site) throws {
        try file.write(bytes, at: offset)
    }
    package func writeFrames(_ buffers: [[UInt8]], at offset: UInt64, of file: PosixFile) throws {
        try file.write(gathering: buffers, at: offset)
    }
    package func extend(_ file: PosixFile, upTo length: UInt64) throws { try file.fillWithZeros(upTo: length) }
    package func truncate(_ file: PosixFile, to length: UInt64) throws { try file.truncate(to: length) }
    package func discard(_ file: PosixFile, offset: UInt64, length: UInt64) throws { try file.discard(offset: offset, length: length) }
    package func sync(_ file: PosixFile, site: FaultInjection.Site?) throws { try file.syncData() }
    package var refusesGroupsBeyondReserve: Bool { false }
}

extension FaultInjection: LogFiles {
    package func write(_ bytes: [UInt8], at offset: UInt64, of file: PosixFile, site: Site) throws {
        // A checkpoint is a new file: its write is where its space is taken.
        if site == .checkpointWrite { try checkAllocation(file.name) }
        guard failingSite == site else { return try file.write(bytes, at: offset) }
        try file.write(Array(bytes.prefix(bytes.count / 2)), at: offset)
        throw PosixFile.error("write", name: file.name, code: 5 /* EIO */)
    }

    package func writeFrames(_ buffers: [[UInt8]], at offset: UInt64, of file: PosixFile) throws {
        guard let fault = writeFault else { return try file.write(gathering: buffers, at: offset) }
        if fault == .short {
            let bytes = buffers.flatMap { $0 }
            try file.write(Array(bytes.prefix(bytes.count / 2)), at: offset)
        }
        throw PosixFile.error("pwritev", name: file.name, code: 5 /* EIO */)
    }

    package func extend(_ file: PosixFile, upTo length: UInt64) throws {
        try checkAllocation(file.name)
        try file.fillWithZeros(upTo: length)
    }

    package func truncate(_ file: PosixFile, to length: UInt64) throws { try file.truncate(to: length) }

    package func discard(_ file: PosixFile, offset: UInt64, length: UInt64) throws {
        if failingSite == .compactionWrite { throw PosixFile.error("fallocate", name: file.name, code: 5 /* EIO */) }
        try file.discard(offset: offset, length: length)
    }

    package func sync(_ file: PosixFile, site: Site?) throws {
        if let site, failingSite == site { throw PosixFile.syncError("fdatasync", name: file.name, code: 5 /* EIO */) }
        try checkSync(file.name)
        try file.syncData()
    }

    package var refusesGroupsBeyondReserve: Bool { diskFull }
}
