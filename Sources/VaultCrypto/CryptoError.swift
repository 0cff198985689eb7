/// A failure of the crypto layer. Messages never contain key bytes or
/// plaintext.
package struct CryptoError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, as an open-ended set of codes.
    package struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        package var description: String { name }

        /// libsodium could not initialise.
        package static let initialisationFailed = Code("initialisationFailed")
        /// Guarded memory could not be allocated.
        package static let allocationFailed = Code("allocationFailed")
        /// A ciphertext, tag, signature or MAC did not verify: wrong key,
        /// wrong associated data, or tampered bytes.
        package static let authenticationFailed = Code("authenticationFailed")
        /// An input had the wrong size or shape (key, nonce, header, salt).
        package static let invalidInput = Code("invalidInput")
        /// A stream was used out of order: after its final message, or a
        /// final message is missing.
        package static let streamState = Code("streamState")
        /// Argon2id could not run with the requested limits (memory).
        package static let keyDerivationFailed = Code("keyDerivationFailed")
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
