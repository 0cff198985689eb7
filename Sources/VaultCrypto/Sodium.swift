import CSodium

/// libsodium's one-time initialisation, done once per process.
///
/// `sodium_init()` is thread-safe and idempotent; a global `let` runs it
/// exactly once, lazily, and keeps its result. No mutable global state.
private let sodiumInitResult: Int32 = sodium_init()

/// Entry point of the crypto layer.
package enum Sodium {
    /// Initialises libsodium if it is not yet, throwing instead of crashing.
    ///
    /// Every type of this module calls it before touching libsodium, so a
    /// caller rarely needs to; it is cheap after the first call.
    /// - Throws: ``CryptoError/Code/initialisationFailed`` if libsodium cannot
    ///   initialise (for instance, no entropy source).
    @inline(__always)
    package static func initialize() throws(CryptoError) {
        // 0: initialised now, 1: already initialised, -1: failure.
        if sodiumInitResult < 0 {
            throw CryptoError(.initialisationFailed, "libsodium failed to initialise")
        }
    }
}
