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
/// `PV_FUZZ_WRITE_SEEDS=<folder>` writes the seed corpus there instead.
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
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzOneInput(data, size) })
    }
}
