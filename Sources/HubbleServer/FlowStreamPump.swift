import GRPCCore
import HubbleAPI

/// Copies a backend's GetFlows sequence to the RPC until the first of: the sequence ends
/// (RPC ends OK), it throws (the error goes to the caller), the client cancels, or the server
/// begins graceful shutdown (both end the RPC quietly).
///
/// gRPC reports client cancellation through `ServerContext.RPCCancellationHandle`, not by
/// cancelling the handler task, so the pump races the copy against that handle and then
/// cancels the copy. Cancelling the task that iterates an `AsyncThrowingStream` is what
/// makes the backend's `onTermination` run, which releases its follow subscription.
enum FlowStreamPump {
    static func run(
        _ flows: AsyncThrowingStream<[[UInt8]], any Error>,
        into writer: RPCWriter<[UInt8]>,
        cancellation: ServerContext.RPCCancellationHandle,
        shutdown: ShutdownSignal
    ) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for try await batch in flows {
                    try await writer.write(contentsOf: batch)
                }
            }
            group.addTask {
                // Throws CancellationError only when this task is cancelled, i.e. we are done anyway.
                try? await cancellation.cancelled
            }
            group.addTask {
                await shutdown.wait()
            }
            defer { group.cancelAll() }
            try await group.next()
        }
    }
}
