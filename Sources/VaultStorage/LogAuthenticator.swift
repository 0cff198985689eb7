/// Authenticates what recovery trusts without reading payloads: every frame
/// header (stream, position, LSN, pointer to the stream's previous record)
/// and the index checkpoint carry a 16-byte MAC computed by the layer above,
/// under a key derived from its master key.
///
/// The engine never holds the key: it hands the bytes to authenticate to
/// this value and stores or compares the tag. Without an authenticator
/// (the engine's own tests) the tags are zeros and are not checked; a store
/// opened with one refuses every frame and checkpoint whose tag does not
/// match, so a header or checkpoint edited by someone without the key (who
/// can recompute every CRC) is `corrupted`, never trusted.
package protocol LogAuthenticator: Sendable {
    /// The 16-byte tag of `message`.
    func tag(_ message: UnsafeRawBufferPointer) -> [UInt8]
}

extension LogAuthenticator {
    /// Whether `stored` is the tag of `message`, compared in constant time.
    func verify(_ message: UnsafeRawBufferPointer, stored: UnsafeRawBufferPointer) -> Bool {
        let expected = tag(message)
        guard stored.count == expected.count else { return false }
        var difference: UInt8 = 0
        for i in 0..<expected.count { difference |= expected[i] ^ stored[i] }
        return difference == 0
    }
}
