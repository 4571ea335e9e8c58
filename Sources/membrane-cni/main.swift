import CNI
import Foundation

// membrane-cni: a CNI 1.x plugin (ADD, DEL, CHECK, VERSION, STATUS, GC) that asks the Membrane agent for
// endpoints in the runtime's network namespaces. Install it in /opt/cni/bin; see the README.
let stdin = FileHandle.standardInput.readDataToEndOfFile()
let outcome = CNIPlugin(environment: ProcessInfo.processInfo.environment, stdin: stdin).run()
FileHandle.standardOutput.write(outcome.stdout)
exit(outcome.status)
