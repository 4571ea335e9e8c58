import GRPCCore

/// A failed RPC, with the gRPC status code, so callers (the CLI) need not import GRPCCore.
/// `description` uses the Go client's wording, which is what hubble users are used to.
public struct HubbleClientError: Error, Equatable, CustomStringConvertible {
    public enum Code: Int, Sendable {
        case ok = 0, cancelled, unknown, invalidArgument, deadlineExceeded, notFound, alreadyExists,
             permissionDenied, resourceExhausted, failedPrecondition, aborted, outOfRange,
             unimplemented, internalError, unavailable, dataLoss, unauthenticated

        /// The canonical (Go-style) name, e.g. "InvalidArgument".
        public var name: String {
            switch self {
            case .ok: "OK"
            case .cancelled: "Canceled"
            case .unknown: "Unknown"
            case .invalidArgument: "InvalidArgument"
            case .deadlineExceeded: "DeadlineExceeded"
            case .notFound: "NotFound"
            case .alreadyExists: "AlreadyExists"
            case .permissionDenied: "PermissionDenied"
            case .resourceExhausted: "ResourceExhausted"
            case .failedPrecondition: "FailedPrecondition"
            case .aborted: "Aborted"
            case .outOfRange: "OutOfRange"
            case .unimplemented: "Unimplemented"
            case .internalError: "Internal"
            case .unavailable: "Unavailable"
            case .dataLoss: "DataLoss"
            case .unauthenticated: "Unauthenticated"
            }
        }
    }

    public var code: Code
    public var message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    init(_ error: RPCError) {
        self.init(code: Code(rawValue: error.code.rawValue) ?? .unknown, message: error.message)
    }

    public var description: String { "rpc error: code = \(code.name) desc = \(message)" }
}
