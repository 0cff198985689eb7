#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import VaultCrypto

/// The store's folder as the layer above sees it: created on demand, a
/// small header file of opaque bytes (written atomically), and whether a
/// log exists. The file names live here, below the domain layer.
package enum StoreFolder {
    /// The header file's name.
    package static let headerFileName = "store.header"

    /// Creates the folder (and missing parents, 0700) if needed. A folder
    /// that exists without a header (an earlier first open made it and
    /// was killed, or failed, before its parent's sync) is made durable
    /// in its parent too; one with a header was, by the open that wrote
    /// it (a parent the store's user may not read is then never opened).
    package static func prepare(_ directory: String) throws {
        try FileSystem.createDirectory(directory)
        if !FileSystem.exists(directory + "/" + headerFileName) { try FileSystem.syncParent(of: directory) }
    }

    /// The header's bytes (at most `maximumSize` + 1 of them, so a caller
    /// can tell an oversized file), or nil if there is no header.
    package static func readHeader(in directory: String, maximumSize: Int) throws -> [UInt8]? {
        let path = directory + "/" + headerFileName
        guard FileSystem.exists(path) else { return nil }
        let file = try PosixFile.open(path, flags: O_RDONLY, name: headerFileName)
        return try file.read(count: maximumSize + 1, at: 0)
    }

    /// Writes the header atomically: a temporary file, synced, renamed into
    /// place, the folder synced. A creation's temporary file left behind
    /// (a crash between its link into place and its removal) is a second
    /// name of the header this one replaces, which the old master key
    /// still opens: removed first. Only such a name (the same file as the
    /// header): a creation still running in another process has a file of
    /// its own, not yet linked.
    package static func writeHeader(_ bytes: [UInt8], in directory: String) throws {
        let path = directory + "/" + headerFileName
        if let header = fileIdentity(path) {
            for name in try FileSystem.list(directory) where name.hasPrefix(headerFileName + ".new.") {
                if fileIdentity(directory + "/" + name) == header { try FileSystem.remove(directory + "/" + name) }
            }
        }
        let temporary = path + ".tmp"
        let file = try PosixFile.open(temporary, flags: O_WRONLY | O_CREAT | O_TRUNC, name: headerFileName)
        try file.write(bytes, at: 0)
        try file.sync()
        try FileSystem.rename(temporary, path)
        do {
            try FileSystem.syncDirectory(directory)
        } catch let error as StorageError {
            // The new header is in place, but not durably: after a power
            // loss the folder may hold either one.
            throw StorageError(
                .durabilityLost, "store.header was replaced but its folder did not sync: either header may be the one after a power loss",
                errno: error.errno)
        }
    }

    /// Writes the header of a new store unless one exists (another opener
    /// created the store meanwhile): a temporary file, synced, linked into
    /// place only if the name is free (atomic), the folder synced. Returns
    /// false, writing nothing, if a header was there first.
    package static func createHeader(_ bytes: [UInt8], in directory: String) throws -> Bool {
        let path = directory + "/" + headerFileName
        // A name of its own: two creators never touch each other's file.
        let temporary = path + ".new." + (try SecureRandom.bytes(8)).map { String($0, radix: 16) }.joined()
        let file = try PosixFile.open(temporary, flags: O_WRONLY | O_CREAT | O_EXCL, name: headerFileName)
        try file.write(bytes, at: 0)
        try file.sync()
        let created = try FileSystem.linkIfAbsent(temporary, path)
        try FileSystem.remove(temporary)
        try FileSystem.syncDirectory(directory)
        return created
    }

    /// The device and inode of the file at `path`; nil if there is none.
    private static func fileIdentity(_ path: String) -> [UInt64]? {
        var s = stat()
        guard stat(path, &s) == 0 else { return nil }
        return [UInt64(s.st_dev), UInt64(s.st_ino)]
    }

    /// Writes a small file durably: a new file, synced, the folder synced.
    package static func writeDurably(_ bytes: [UInt8], named name: String, in directory: String) throws {
        let file = try PosixFile.open(directory + "/" + name, flags: O_WRONLY | O_CREAT | O_TRUNC, name: name)
        try file.write(bytes, at: 0)
        try file.sync()
        try FileSystem.syncDirectory(directory)
    }

    /// Syncs every file of a folder, then the folder (a copy made by other
    /// means, made durable).
    package static func syncEverything(in directory: String) throws {
        for name in try FileSystem.list(directory) {
            let file = try PosixFile.open(directory + "/" + name, flags: O_RDONLY, name: name)
            try file.sync()
        }
        try FileSystem.syncDirectory(directory)
    }

    /// Whether the folder holds a log engine's files (segments or the key
    /// file): then a missing header is damage, not a new store.
    package static func holdsLog(_ directory: String) throws -> Bool {
        try FileSystem.list(directory).contains {
            LogFormat.segmentNumber(fromFileName: $0) != nil || $0 == LogFormat.keyFileName
        }
    }
}

/// Makes a store's storage engine from the options every engine takes:
/// ``LogEngine`` in the store's folder by default; tests (and another
/// backend) inject their own through the store's configuration.
package typealias StorageEngineFactory = @Sendable (_ options: StorageOptions) throws -> any StorageEngine
