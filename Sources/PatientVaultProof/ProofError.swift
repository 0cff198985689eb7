/// Why a checkpoint, a proof or a key was refused. Messages name what was
/// wrong, never key bytes.
public struct ProofError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong.
    public enum Code: String, Hashable, Sendable {
        /// The text is not in the format (a signed note, a `tlog-checkpoint`,
        /// a `tlog-proof@v1`, a verifier key), or exceeds a bound.
        case malformed
        /// No signature by the log's key, or one that does not verify.
        case badSignature
        /// The checkpoint's origin is not the expected one.
        case wrongOrigin
        /// Fewer valid witness cosignatures than the policy's quorum.
        case quorumNotMet
        /// An inclusion proof that does not lead from the leaf to the root.
        case notIncluded
        /// A consistency proof that does not show the older tree to be a
        /// prefix of the newer one (or an older tree larger than the newer).
        case notConsistent
    }

    /// What went wrong.
    public let code: Code
    /// A short explanation.
    public let message: String

    /// A refusal with its code and explanation.
    public init(_ code: Code, _ message: String) { (self.code, self.message) = (code, message) }

    /// `ProofError.<code>: <message>`.
    public var description: String { "ProofError.\(code.rawValue): \(message)" }
}
