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
        // The key goes from guarded memory into this one buffer, wiped
        // when its last holder lets it go (the thread that writes it to
        // the program, or this call): no `Data` or base64 string of it is
        // ever made.
        let input = WipedBytes(Array("context \(Data(context).base64EncodedString())\nkey ".utf8))
        input.bytes.reserveCapacity(input.bytes.count + 45)
        key.withUnsafeBytes { appendBase64($0, to: &input.bytes) }
        input.bytes.append(0x0A)
        let wrapped = try await run("wrap", input: input)
        guard (1...1024).contains(wrapped.count) else {
            throw PatientVaultError(.io, "the key command's wrap printed \(wrapped.count) bytes; 1 to 1,024 expected")
        }
        return wrapped
    }

    func unwrap(_ wrapped: [UInt8], context: [UInt8]) async throws -> MasterKey {
        let input = WipedBytes(Array("context \(Data(context).base64EncodedString())\nwrapped \(Data(wrapped).base64EncodedString())\n".utf8))
        var key = try await run("unwrap", input: input)
        defer { wipe(&key) }
        guard key.count == 32 else {
            throw PatientVaultError(.io, "the key command's unwrap printed \(key.count) bytes; a 32-byte key expected")
        }
        return try MasterKey(bytes: key)
    }

    /// Runs the program with `verb`, `input` on its standard input; its
    /// answer, decoded from base64.
    private func run(_ verb: String, input: WipedBytes) async throws -> [UInt8] {
        // The answer's one buffer, taken over (not copied) from the thread
        // that read it, and wiped here.
        var (status, line) = try await withCheckedThrowingContinuation {
            (continuation: CheckedContinuation<(Int32, [UInt8]), any Error>) in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try runBlocking(verb, input: input) })
            }
        }
        defer { wipe(&line) }
        switch status {
        case 0: break
        case 1: throw PatientVaultError(.wrongMasterKey, "the key command refused to \(verb) (another key, or an altered header)")
        default: throw PatientVaultError(.io, "the key command failed to \(verb) (exit status \(status))")
        }
        while let last = line.last, last == 0x0A || last == 0x0D { line.removeLast() }
        // Decoded in place of any copy: the unwrapped key is in `line`,
        // then in the result alone (wiped by the caller).
        guard let decoded = decodeBase64(line) else {
            throw PatientVaultError(.io, "the key command's \(verb) did not print one line of base64")
        }
        return decoded
    }

    private func runBlocking(_ verb: String, input box: WipedBytes) throws -> (Int32, [UInt8]) {
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
        // Straight from and into buffers of our own (`write`/`read` on the
        // pipes, no `Data` in between): the key crosses them.
        let writer = stdin.fileHandleForWriting.fileDescriptor
        var sent = 0
        while sent < box.bytes.count {
            let n = box.bytes.withUnsafeBytes { Glibc.write(writer, $0.baseAddress! + sent, $0.count - sent) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            sent += n
        }
        try? stdin.fileHandleForWriting.close()
        // At most the longest answer; more is not an answer.
        var answer = [UInt8](repeating: 0, count: Self.largestAnswer + 1)
        var received = 0
        let reader = stdout.fileHandleForReading.fileDescriptor
        while received < answer.count {
            let n = answer.withUnsafeMutableBytes { Glibc.read(reader, $0.baseAddress! + received, $0.count - received) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            received += n
        }
        try? stdout.fileHandleForReading.close()
        process.waitUntilExit()
        guard received <= Self.largestAnswer else {
            wipe(&answer)
            throw PatientVaultError(.io, "the key command's \(verb) printed more than one answer")
        }
        answer.removeLast(answer.count - received)
        let status = process.terminationReason == .exit ? process.terminationStatus : 128 + process.terminationStatus
        return (status, answer)
    }
}

/// Bytes that may hold key material, zeroed in place when the last
/// reference to them goes (whichever thread lets go last).
private final class WipedBytes: @unchecked Sendable {
    // @unchecked: written by the call that made it, before it is shared;
    // read only after (the writing thread), then wiped in `deinit`.
    var bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    deinit { wipe(&bytes) }
}

/// Zeros a buffer that held key material before it is freed.
private func wipe(_ bytes: inout [UInt8]) {
    bytes.withUnsafeMutableBytes { _ = $0.initializeMemory(as: UInt8.self, repeating: 0) }
}

private let base64Alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

/// Appends standard base64 (RFC 4648, padded) of `bytes` to `out`.
func appendBase64(_ bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) {
    var i = 0
    while i < bytes.count {
        let n = min(3, bytes.count - i)
        let b0 = UInt32(bytes[i]), b1 = n > 1 ? UInt32(bytes[i + 1]) : 0, b2 = n > 2 ? UInt32(bytes[i + 2]) : 0
        let v = b0 << 16 | b1 << 8 | b2
        out.append(base64Alphabet[Int(v >> 18 & 63)])
        out.append(base64Alphabet[Int(v >> 12 & 63)])
        out.append(n > 1 ? base64Alphabet[Int(v >> 6 & 63)] : UInt8(ascii: "="))
        out.append(n > 2 ? base64Alphabet[Int(v & 63)] : UInt8(ascii: "="))
        i += 3
    }
}

/// Decodes standard, padded base64 written as ``appendBase64(_:to:)``
/// writes it (the unused bits of the last group zero); nil for anything else.
func decodeBase64(_ text: [UInt8]) -> [UInt8]? {
    guard text.count % 4 == 0 else { return nil }
    func value(_ c: UInt8) -> UInt32? {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): UInt32(c - UInt8(ascii: "A"))
        case UInt8(ascii: "a")...UInt8(ascii: "z"): UInt32(c - UInt8(ascii: "a")) + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(c - UInt8(ascii: "0")) + 52
        case UInt8(ascii: "+"): 62
        case UInt8(ascii: "/"): 63
        default: nil
        }
    }
    var out: [UInt8] = []
    out.reserveCapacity(text.count / 4 * 3)
    var i = 0
    while i < text.count {
        let last = i + 4 == text.count
        let pad = last ? (text[i + 3] == UInt8(ascii: "=") ? (text[i + 2] == UInt8(ascii: "=") ? 2 : 1) : 0) : 0
        var v: UInt32 = 0
        for k in 0..<4 {
            if k >= 4 - pad { v <<= 6; continue }
            guard let d = value(text[i + k]) else { wipe(&out); return nil }
            v = v << 6 | d
        }
        // Canonical only: the bits the padding leaves unused are zero.
        if pad == 1 && v & 0xFF != 0 || pad == 2 && v & 0xFFFF != 0 { wipe(&out); return nil }
        out.append(UInt8(v >> 16 & 0xFF))
        if pad < 2 { out.append(UInt8(v >> 8 & 0xFF)) }
        if pad < 1 { out.append(UInt8(v & 0xFF)) }
        i += 4
    }
    return out
}
