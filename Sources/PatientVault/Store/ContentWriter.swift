import Foundation
import VaultCrypto
import VaultStorage

/// Encrypts content as a secret stream while it arrives, cutting it into
/// chunks of `chunkSize` bytes. Small content stays inline in its version
/// record; larger content goes to chunk records outside the vault's stream,
/// written ahead (buffered) and made durable by the version record's sync.
///
/// Memory stays bounded by about two chunks whatever the content's size:
/// it waits for the previous chunk's write before queuing the next.
final class ContentWriter {
    private let engine: any StorageEngine
    private let vault: StreamID
    private let document: DocumentID
    private let version: UInt32
    private let keySlot: KeySlot
    private let chunkSize: Int
    private let inlineLimit: Int
    /// The most chunks whose references fit in a version record.
    private let maximumChunks: UInt64
    private let pusher: SecretStreamPusher
    private let hasher: BLAKE2b.Hasher

    private var buffer: [UInt8] = []
    private var chunkIndex: UInt64 = 0
    private var chunks: [RecordReference] = []
    private var inFlight: AppendTicket?
    private(set) var size: Int64 = 0

    init(
        engine: any StorageEngine, vault: StreamID, document: DocumentID, version: UInt32, keySlot: KeySlot,
        contentKey: SymmetricKey, chunkSize: Int, inlineLimit: Int
    ) throws {
        self.engine = engine
        self.vault = vault
        self.document = document
        self.version = version
        self.keySlot = keySlot
        self.chunkSize = chunkSize
        self.inlineLimit = inlineLimit
        // Each chunk costs a reference in the version record, which also
        // holds up to 16 KiB of metadata.
        maximumChunks = UInt64(
            (chunkSize + Limits.recordOverhead - Limits.versionMetadata - 1024) / RecordReference.byteCount)
        pusher = try SecretStreamPusher(key: contentKey)
        hasher = try BLAKE2b.Hasher(outputByteCount: 32)
        buffer.reserveCapacity(min(chunkSize, 1 << 16))
    }

    /// Adds bytes; full chunks are encrypted and queued.
    func append(_ bytes: some Sequence<UInt8>) async throws {
        buffer.append(contentsOf: bytes)
        while buffer.count > chunkSize {
            let chunk = Array(buffer[0..<chunkSize])
            buffer.removeFirst(chunkSize)
            try await emit(chunk, isFinal: false)
        }
    }

    /// Ends the stream. Returns the descriptor, the inline ciphertext (empty
    /// if the content went to chunk records) and the content hash.
    func finish() async throws -> (ContentDescriptor, inline: [UInt8], hash: [UInt8]) {
        let last = buffer
        buffer = []
        var inline: [UInt8] = []
        if chunkIndex == 0 && last.count <= inlineLimit {
            try hasher.update(last)
            var out: [UInt8] = []
            try seal(last, isFinal: true, appendingTo: &out)
            inline = out
            chunkIndex = 1
        } else {
            try await emit(last, isFinal: true)
        }
        // (The final chunk was padded with zeros to its size class, inside
        // the stream: see `RecordPadding.contentPadding`.)
        if let t = inFlight {
            chunks += try await t.wait()
            inFlight = nil
        }
        let descriptor = ContentDescriptor(
            streamHeader: pusher.header, chunkCount: Int(chunkIndex), chunks: chunks)
        return (descriptor, inline, try hasher.finalize())
    }

    /// Encrypts `plaintext` as the next chunk of the stream, appending the
    /// ciphertext to `out`.
    /// The final chunk is padded with zeros to its size class, so that the
    /// ciphertext does not give the content's exact size (the reader strips
    /// the padding using the size sealed in the metadata).
    private func seal(_ plaintext: [UInt8], isFinal: Bool, appendingTo out: inout [UInt8]) throws {
        size += Int64(plaintext.count)
        let header = RecordCodec.chunkHeader(document: document, version: version, keySlot: keySlot, index: chunkIndex)
        var padded = plaintext
        if isFinal {
            padded.appendZeros(RecordPadding.contentPadding(last: plaintext.count, chunkSize: chunkSize))
        }
        out.reserveCapacity(out.count + padded.count + SecretStream.chunkOverhead)
        try padded.withUnsafeBytes { p in
            try header.withAssociatedData(vault: vault) { ad in
                try pusher.push(p, authenticating: ad, isFinal: isFinal, appendingTo: &out)
            }
        }
    }

    private func emit(_ plaintext: [UInt8], isFinal: Bool) async throws {
        try Task.checkCancellation()
        guard chunkIndex < maximumChunks else {
            throw BadInputInPreparation(error: PatientVaultError(
                .invalidArgument, "the content is larger than the maximum of \(maximumChunks * UInt64(chunkSize)) bytes",
                documentID: document))
        }
        try hasher.update(plaintext)
        // The record: the chunk's header, then the ciphertext, built in place.
        var payload = RecordCodec.chunkHeader(document: document, version: version, keySlot: keySlot, index: chunkIndex).encoded(mask: nil)
        try seal(plaintext, isFinal: isFinal, appendingTo: &payload)
        if let t = inFlight {
            chunks += try await t.wait()
        }
        inFlight = try engine.append([EngineRecord(stream: nil, payload: payload)], keySlotWrites: [], durability: .buffered)
        chunkIndex += 1
    }
}
