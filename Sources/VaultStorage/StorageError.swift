/// A failure of the storage engine.
///
/// Messages name files by their segment number and byte offset only; the
/// engine never sees what its records mean.
package struct StorageError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong: a closed set, read only within this package (the
    /// public API's open-ended set is `PatientVaultError.Code`). In a
    /// message or log line a code reads as its case name.
    package enum Code: Sendable {
        /// Another process (or another open in this one) holds the store.
        case locked
        /// Bytes on disk are not what the engine wrote: a bad checksum that
        /// is not a torn tail, a gap in sequence numbers, a missing segment.
        case corrupted
        /// The file system is full; nothing of the failed call was written.
        case diskFull
        /// Any other system call failure.
        case io
        /// An earlier `fdatasync` failed: the engine no longer acknowledges
        /// writes until it is reopened (and recovered).
        case durabilityLost
        /// The engine was closed.
        case closed
        /// A key slot was never written (or lost in a crash before it was
        /// acknowledged).
        case keySlotEmpty
        /// A key slot was destroyed on purpose (erasure).
        case keySlotDestroyed
        /// A record, group or key value is larger than the engine accepts.
        case tooLarge
        /// A location that does not designate a record of this store.
        case invalidLocation
        /// Files of an unknown format version.
        case unsupportedFormat
        /// The server that keeps the records (an engine over the network)
        /// could not be reached, or refused the connection.
        case unavailable
        /// No record authenticates under the store's key: the key is not
        /// this store's (an engine that authenticates every record).
        case wrongKey
    }

    /// The kind of failure.
    package var code: Code
    /// A short explanation, free of record content.
    package var message: String
    /// The segment number concerned, if any.
    package var segment: UInt32?
    /// The byte offset concerned, if any.
    package var offset: UInt64?
    /// The `errno` of a failed system call, if any.
    package var errno: Int32?

    package init(_ code: Code, _ message: String, segment: UInt32? = nil, offset: UInt64? = nil, errno: Int32? = nil) {
        self.code = code
        self.message = message
        self.segment = segment
        self.offset = offset
        self.errno = errno
    }

    package var description: String {
        var s = "StorageError.\(code): \(message)"
        if let segment { s += " (segment \(segment)" + (offset.map { ", offset \($0)" } ?? "") + ")" }
        if let errno { s += " [errno \(errno)]" }
        return s
    }
}
