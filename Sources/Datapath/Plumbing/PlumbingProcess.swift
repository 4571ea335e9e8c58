import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Outcome of one child process.
struct PlumbingRunOutcome: Sendable {
    var status: Int32
    var stdout: String
    var stderr: String
    var timedOut: Bool
}

/// Thread-safe growable byte buffer filled by the pipe readers.
final class PlumbingLockedBuffer: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()

    func append(_ chunk: Data) {
        lock.lock(); data.append(chunk); lock.unlock()
    }

    var string: String {
        lock.lock(); defer { lock.unlock() }
        return String(decoding: data, as: UTF8.self)
    }
}

/// Small helper that runs external tools (`ip`, `sysctl`, ...) without a shell.
enum PlumbingRunner {
    /// Status reported when a command was killed because it exceeded its timeout (as coreutils `timeout`).
    static let timeoutStatus: Int32 = 124

    /// How long to keep reading a pipe after the child exited (a grandchild may still hold it open).
    static let drainGrace: Double = 2

    /// Finds `tool` in the usual system directories, then on `PATH`.
    static func locate(_ tool: String) -> String? {
        if tool.contains("/") {
            return FileManager.default.isExecutableFile(atPath: tool) ? tool : nil
        }
        var dirs = ["/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin", "/usr/local/bin"]
        if let path = ProcessInfo.processInfo.environment["PATH"] {
            dirs += path.split(separator: ":").map(String.init)
        }
        for dir in dirs where !dir.isEmpty {
            let candidate = dir + "/" + tool
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Renders a command line for error messages (arguments with spaces are quoted).
    static func commandLine(_ argv: [String]) -> String {
        argv.map { arg in
            if arg.isEmpty { return "''" }
            if arg.contains(where: { " \t\n'\"\\$`;&|<>()*?".contains($0) }) {
                return "'" + arg.replacingOccurrences(of: "'", with: "'\\''") + "'"
            }
            return arg
        }.joined(separator: " ")
    }

    /// Runs `tool args...`; never throws for a non-zero exit (see `check`).
    /// Throws `PlumbingError.command` with status -1 when the tool cannot be found or started.
    static func run(_ tool: String, _ args: [String], timeout: Double? = nil, stdin: String? = nil) throws -> PlumbingRunOutcome {
        guard let executable = locate(tool) else {
            throw PlumbingError.command(commandLine([tool] + args), status: -1, stderr: "\(tool): not found")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = args
        let outPipe = Pipe()
        let errPipe = Pipe()
        process.standardOutput = outPipe
        process.standardError = errPipe
        let inPipe: Pipe? = stdin == nil ? nil : Pipe()
        if let inPipe {
            process.standardInput = inPipe
        } else {
            process.standardInput = FileHandle.nullDevice
        }

        let exited = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in exited.signal() }

        do {
            try process.run()
        } catch {
            throw PlumbingError.command(commandLine([executable] + args), status: -1, stderr: "\(error)")
        }

        let outBuffer = PlumbingLockedBuffer()
        let errBuffer = PlumbingLockedBuffer()
        let readers = DispatchGroup()
        startReader(outPipe.fileHandleForReading, into: outBuffer, group: readers)
        startReader(errPipe.fileHandleForReading, into: errBuffer, group: readers)
        if let inPipe, let stdin {
            startWriter(inPipe.fileHandleForWriting, Data(stdin.utf8))
        }

        var timedOut = false
        if let timeout, timeout > 0 {
            if exited.wait(timeout: .now() + timeout) == .timedOut {
                timedOut = true
                kill(process.processIdentifier, SIGKILL)
                exited.wait()
            }
        } else {
            exited.wait()
        }
        process.waitUntilExit()
        // A background grandchild may keep the pipes open; do not hang on it forever.
        _ = readers.wait(timeout: .now() + drainGrace)

        var stderrText = errBuffer.string
        let status: Int32
        if timedOut {
            status = timeoutStatus
            stderrText += (stderrText.isEmpty || stderrText.hasSuffix("\n") ? "" : "\n")
                + "membrane: killed after timeout of \(timeout ?? 0)s\n"
        } else if process.terminationReason == .uncaughtSignal {
            status = 128 + process.terminationStatus
        } else {
            status = process.terminationStatus
        }
        return PlumbingRunOutcome(status: status, stdout: outBuffer.string, stderr: stderrText, timedOut: timedOut)
    }

    /// Runs the command and throws `PlumbingError.command` (with the full command line) on a non-zero exit.
    @discardableResult
    static func check(_ tool: String, _ args: [String], timeout: Double? = 30) throws -> String {
        let outcome = try run(tool, args, timeout: timeout)
        guard outcome.status == 0 else {
            let full = commandLine([locate(tool) ?? tool] + args)
            throw PlumbingError.command(full, status: outcome.status,
                                        stderr: outcome.stderr.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return outcome.stdout
    }

    private static func startReader(_ handle: FileHandle, into buffer: PlumbingLockedBuffer, group: DispatchGroup) {
        group.enter()
        let thread = Thread {
            defer { group.leave() }
            while true {
                guard let chunk = try? handle.read(upToCount: 65536), !chunk.isEmpty else { break }
                buffer.append(chunk)
            }
            try? handle.close()
        }
        thread.start()
    }

    private static func startWriter(_ handle: FileHandle, _ data: Data) {
        let thread = Thread {
            // Block SIGPIPE on this thread only: a child that exits without reading its stdin then yields
            // EPIPE here instead of killing the whole process (and children keep default dispositions).
            var set = sigset_t()
            sigemptyset(&set)
            sigaddset(&set, SIGPIPE)
            pthread_sigmask(SIG_BLOCK, &set, nil)
            let fd = handle.fileDescriptor
            data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
                guard var pointer = raw.baseAddress else { return }
                var remaining = raw.count
                while remaining > 0 {
                    let written = write(fd, pointer, remaining)
                    if written < 0 {
                        if errno == EINTR { continue }
                        return
                    }
                    remaining -= written
                    pointer = pointer.advanced(by: written)
                }
            }
            try? handle.close()
        }
        thread.start()
    }
}
