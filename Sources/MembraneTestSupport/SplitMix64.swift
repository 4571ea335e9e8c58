/// A small seedable PRNG (SplitMix64), so that property tests and benchmarks are reproducible from a
/// printed seed on every platform (the standard generator is neither seedable nor stable).
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in `0..<n`.
    public mutating func int(_ n: Int) -> Int { precondition(n > 0); return Int(next() % UInt64(n)) }
    /// Uniform in `range`.
    public mutating func int(_ range: Range<Int>) -> Int { range.lowerBound + int(range.count) }
    /// Uniform in [0, 1).
    public mutating func unit() -> Double { Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0) }
    public mutating func chance(_ p: Double) -> Bool { unit() < p }
    public mutating func pick<T>(_ xs: [T]) -> T { xs[int(xs.count)] }
}
