import Foundation
import Testing
@testable import VaultStorage

/// The folder syncs that make new entries durable (`FileSystem`).
@Suite struct FileSystemTests {
    /// `syncParent(of:)` syncs the folder that holds the path, not the path
    /// itself: a path that does not exist yet (a store's folder about to be
    /// made, a file about to be renamed in) is synced through its parent,
    /// trailing slashes or not; a missing parent is a typed error, never
    /// silence.
    @Test func theParentIsSyncedNotThePath() throws {
        let dir = TemporaryDirectory()
        try FileSystem.createDirectory(dir.path)
        // The child does not exist: only its parent can have been opened.
        try FileSystem.syncParent(of: dir.path + "/not-made-yet")
        try FileSystem.syncParent(of: dir.path + "/not-made-yet///")
        // A parent that does not exist is refused, whatever the child.
        #expect(throws: StorageError.self) {
            try FileSystem.syncParent(of: dir.path + "/missing-\(UUID().uuidString)/child")
        }
        // A name without a slash: the working directory; directly under
        // the root: the root.
        try FileSystem.syncParent(of: "pv-relative-\(UUID().uuidString)")
        try FileSystem.syncParent(of: "/pv-\(UUID().uuidString)")
    }

    /// `createDirectory` makes missing parents too, each only its owner's
    /// (0700), and a folder that exists is left as it is (no error).
    @Test func nestedFoldersAreMadeOwnerOnly() throws {
        let dir = TemporaryDirectory()
        let nested = dir.path + "/a/b/c"
        try FileSystem.createDirectory(nested)
        for path in [dir.path + "/a", dir.path + "/a/b", nested] {
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            #expect(attributes[.type] as? FileAttributeType == .typeDirectory, "\(path)")
            #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o700, "\(path)")
        }
        try FileSystem.createDirectory(nested)
    }
}
