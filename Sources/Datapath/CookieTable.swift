import Foundation
import Policy

/// Interns the set of policies behind a policy-map entry as the entry's 32-bit cookie, so that a datapath
/// event (which carries the cookie of the entry that decided) can be attributed to every policy that
/// contributed, not just one. Sets are never forgotten: an event in flight may still name an old one.
///
/// Thread-safe: the agent interns while programming maps; the flow pipeline reads on its own thread.
public final class CookieTable: @unchecked Sendable {
    private let lock = NSLock()
    private var sets: [[OriginID]] = [[]]
    private var index: [[OriginID]: UInt32] = [[]: 0]

    public init() {}

    /// The cookie for this set of origins (0 = none).
    public func cookie(for origins: [OriginID]) -> UInt32 {
        lock.withLock {
            if let c = index[origins] { return c }
            let c = UInt32(sets.count)
            sets.append(origins)
            index[origins] = c
            return c
        }
    }

    /// A consistent copy (copy-on-write: O(1) until the next intern), for resolving a batch of events.
    public var snapshot: [[OriginID]] { lock.withLock { sets } }
}
