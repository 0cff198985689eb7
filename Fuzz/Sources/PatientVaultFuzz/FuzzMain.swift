import CLibFuzzer
import Foundation

/// libFuzzer's entry point: one input, whose first byte picks the decoder
/// (``FuzzTarget``). A trap, an error that is not one of the decoders'
/// typed errors, or a value that does not survive re-encoding is reported
/// as a crash, with the input written out by libFuzzer.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    do {
        _ = try FuzzHarness.run(input)
    } catch let failure as FuzzHarness.RoundTripFailure {
        fatalError("round trip: \(failure)")
    } catch {
        guard FuzzHarness.isTyped(error) else { fatalError("untyped error \(type(of: error)): \(error)") }
    }
    return 0
}

/// SwiftPM gives every executable a `main` of its own, in place of
/// libFuzzer's: it hands the arguments to libFuzzer's driver, or with
/// `PV_FUZZ_WRITE_SEEDS=<folder>` writes the seed corpus there instead, or
/// with `PV_FUZZ_CHECK_CORPUS=<folder>` checks the committed corpus
/// (``CorpusCheck``).
@main
enum FuzzMain {
    static func main() {
        if let folder = ProcessInfo.processInfo.environment["PV_FUZZ_WRITE_SEEDS"] {
            do {
                let count = try Seeds.write(to: folder)
                print("wrote \(count) seeds to \(folder)")
                exit(0)
            } catch {
                print("seeds: \(error)")
                exit(1)
            }
        }
        if let folder = ProcessInfo.processInfo.environment["PV_FUZZ_CHECK_CORPUS"] {
            let failures = CorpusCheck.run(folder)
            for failure in failures { print("corpus: \(failure)") }
            exit(failures.isEmpty ? 0 : 1)
        }
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzOneInput(data, size) })
    }
}

/// The committed corpus decodes as its names say (`Scripts/fuzz.sh` runs
/// this before fuzzing; the dispatch exists once, here): each file is
/// `<selector>-<target>-<kind>-<n>`, its first byte picks `<target>`; a
/// `valid` seed decodes to a value that survives re-encoding, an `invalid`
/// one is rejected (nil or a typed error), a `crash` input the fuzzer once
/// found gives either, never a trap; every target has valid and invalid
/// seeds.
enum CorpusCheck {
    static func run(_ folder: String) -> [String] {
        var failures: [String] = []
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
        } catch {
            return ["cannot list \(folder): \(error)"]
        }
        var seen: [String: Set<String>] = [:]
        for name in names {
            guard let data = FileManager.default.contents(atPath: folder + "/" + name), !data.isEmpty else {
                failures.append("\(name): empty or unreadable")
                continue
            }
            let input = [UInt8](data)
            let parts = name.split(separator: "-").map(String.init)
            guard parts.count == 4 else {
                failures.append("\(name): not <selector>-<target>-<kind>-<n>")
                continue
            }
            let target = FuzzTarget.allCases[Int(input[0]) % FuzzTarget.allCases.count]
            if parts[1] != "\(target)" { failures.append("\(name): the selector picks \(target)") }
            seen[parts[1], default: []].insert(parts[2])
            let outcome: String
            do {
                outcome = try FuzzHarness.run(input) ? "accepted" : "rejected"
            } catch let failure as FuzzHarness.RoundTripFailure {
                outcome = "failed: \(failure)"
            } catch {
                outcome = FuzzHarness.isTyped(error) ? "rejected" : "failed: untyped error \(type(of: error))"
            }
            switch (parts[2], outcome) {
            case ("valid", "accepted"), ("invalid", "rejected"), ("crash", "accepted"), ("crash", "rejected"): break
            default: failures.append("\(name): \(outcome)")
            }
        }
        for target in FuzzTarget.allCases where seen["\(target)"]?.isSuperset(of: ["valid", "invalid"]) != true {
            failures.append("\(target) lacks a valid or an invalid seed")
        }
        return failures
    }
}
