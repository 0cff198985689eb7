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
    /// The tag of `message` written into `output` (16 bytes); by default a
    /// copy of ``tag(_:)``, which an implementation avoids on the hot path.
    func tag(_ message: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer)
}

extension LogAuthenticator {
    package func tag(_ message: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) {
        let t = tag(message)
        precondition(t.count == output.count, "a log tag is 16 bytes")
        for i in 0..<t.count { output[i] = t[i] }
    }

    /// Whether `stored` is the tag of `message`, compared in constant time.
    func verify(_ message: UnsafeRawBufferPointer, stored: UnsafeRawBufferPointer) -> Bool {
        guard stored.count == LogFormat.macSize else { return false }
        return withUnsafeTemporaryAllocation(byteCount: LogFormat.macSize, alignment: 8) { expected in
            tag(message, into: expected)
            var difference: UInt8 = 0
            for i in 0..<LogFormat.macSize { difference |= expected[i] ^ stored[i] }
            return difference == 0
        }
    }
}
