#if canImport(Glibc)
import Glibc
#endif
import Foundation
import PatientVault

/// A ``KeyProvider`` that is a program of the operator's: the client of
/// their KMS or HSM, which wraps and unwraps the store's root key and never
/// hands out its own key (`--key-command <program> --key-id <id>`).
///
/// The protocol (Documentation/vaultctl.md, "Key providers"): vaultctl runs
/// `<program> wrap` or `<program> unwrap` with `PATIENTVAULT_KEY_ID` in its
/// environment, writes two lines to its standard input,
///
///     context <base64>
///     key <base64>          (wrap: the 32-byte root key)
///     wrapped <base64>      (unwrap: what wrap printed)
///
/// and reads one line of base64 from its standard output: the wrapped
/// bytes (1 to 1,024) or the 32-byte root key. Exit status 0 is success, 1
/// a refusal (the bytes or the context do not authenticate: the store then
/// answers `wrongMasterKey`), anything else an outage (`io`). The
/// program's standard error is the operator's, passed through.
struct CommandKeyProvider: KeyProvider {
    let keyID: String
    let program: String

    /// The longest answer read from the program: 1,024 wrapped bytes in
    /// base64 and a line end.
    private static let largestAnswer = 4 * ((1024 + 2) / 3) + 2

    func wrap(_ key: MasterKey, context: [UInt8]) async throws -> [UInt8] {
        var input = Array("context \(Data(context).base64EncodedString())\nkey ".utf8)
        key.withUnsafeBytes { input.append(contentsOf: Data($0).base64EncodedData()) }
        input.append(0x0A)
        defer { wipe(&input) }
        let wrapped = try await run("wrap", input: input)
        guard (1...1024).contains(wrapped.count) else {
            throw PatientVaultError(.io, "the key command's wrap printed \(wrapped.count) bytes; 1 to 1,024 expected")
        }
        return wrapped
    }

    func unwrap(_ wrapped: [UInt8], context: [UInt8]) async throws -> MasterKey {
        let input = Array("context \(Data(context).base64EncodedString())\nwrapped \(Data(wrapped).base64EncodedString())\n".utf8)
        var key = try await run("unwrap", input: input)
        defer { wipe(&key) }
        guard key.count == 32 else {
            throw PatientVaultError(.io, "the key command's unwrap printed \(key.count) bytes; a 32-byte key expected")
        }
        return try MasterKey(bytes: key)
    }

    /// Runs the program with `verb`, `input` on its standard input; its
    /// answer, decoded from base64.
    private func run(_ verb: String, input: [UInt8]) async throws -> [UInt8] {
        let (status, answer) = try await withCheckedThrowingContinuation {
            (continuation: CheckedContinuation<(Int32, [UInt8]), any Error>) in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try runBlocking(verb, input: input) })
            }
        }
        var line = answer
        defer { wipe(&line) }
        switch status {
        case 0: break
        case 1: throw PatientVaultError(.wrongMasterKey, "the key command refused to \(verb) (another key, or an altered header)")
        default: throw PatientVaultError(.io, "the key command failed to \(verb) (exit status \(status))")
        }
        while let last = line.last, last == 0x0A || last == 0x0D { line.removeLast() }
        guard var decoded = Data(base64Encoded: Data(line)).map({ [UInt8]($0) }) else {
            throw PatientVaultError(.io, "the key command's \(verb) did not print one line of base64")
        }
        defer { wipe(&decoded) }
        return decoded
    }

    private func runBlocking(_ verb: String, input: [UInt8]) throws -> (Int32, [UInt8]) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = [verb]
        var environment = ProcessInfo.processInfo.environment
        environment["PATIENTVAULT_KEY_ID"] = keyID
        process.environment = environment
        let stdin = Pipe()
        let stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        do {
            try process.run()
        } catch {
            throw PatientVaultError(.io, "cannot run the key command \(program)")
        }
        // A program that exits without reading its input must not stop
        // this one with SIGPIPE: the write's error is ignored, the exit
        // status says what happened.
        signal(SIGPIPE, SIG_IGN)
        try? stdin.fileHandleForWriting.write(contentsOf: input)
        try? stdin.fileHandleForWriting.close()
        // At most the longest answer; more is not an answer.
        var answer: [UInt8] = []
        while answer.count <= Self.largestAnswer,
              let chunk = try? stdout.fileHandleForReading.read(upToCount: Self.largestAnswer + 1 - answer.count), !chunk.isEmpty {
            answer.append(contentsOf: chunk)
        }
        try? stdout.fileHandleForReading.close()
        process.waitUntilExit()
        guard answer.count <= Self.largestAnswer else {
            wipe(&answer)
            throw PatientVaultError(.io, "the key command's \(verb) printed more than one answer")
        }
        let status = process.terminationReason == .exit ? process.terminationStatus : 128 + process.terminationStatus
        return (status, answer)
    }
}

/// Zeros a buffer that held key material before it is freed.
private func wipe(_ bytes: inout [UInt8]) {
    bytes.withUnsafeMutableBytes { _ = $0.initializeMemory(as: UInt8.self, repeating: 0) }
}
