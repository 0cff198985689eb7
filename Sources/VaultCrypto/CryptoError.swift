/// A failure of the crypto layer. Messages never contain key bytes or
/// plaintext.
package struct CryptoError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong: a closed set, read only within this package (the
    /// public API's open-ended set is `PatientVaultError.Code`). In a
    /// message or log line a code reads as its case name.
    package enum Code: Sendable {
        /// libsodium could not initialise.
        case initialisationFailed
        /// Guarded memory could not be allocated.
        case allocationFailed
        /// A ciphertext, tag, signature or MAC did not verify: wrong key,
        /// wrong associated data, or tampered bytes.
        case authenticationFailed
        /// An input had the wrong size or shape (key, nonce, header, salt).
        case invalidInput
        /// A stream was used out of order: after its final message, or a
        /// final message is missing.
        case streamState
        /// Argon2id could not run with the requested limits (memory).
        case keyDerivationFailed
    }

    /// The kind of failure.
    package var code: Code
    /// A short, content-free explanation.
    package var message: String

    package init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    package var description: String { "CryptoError.\(code): \(message)" }
}
