/// A list that holds up to one element inline, without a heap allocation.
///
/// Most policy map slots (one peer identity in one direction) hold a single claim and a single key; with
/// tens of thousands of slots per endpoint, an array each would cost an allocation apiece.
enum SmallList<Element: Hashable & Sendable>: Sendable, Sequence {
    case empty
    case one(Element)
    case many([Element])

    init(_ e: Element) { self = .one(e) }

    var isEmpty: Bool {
        switch self { case .empty: true; case .one: false; case .many(let a): a.isEmpty }
    }

    var count: Int {
        switch self { case .empty: 0; case .one: 1; case .many(let a): a.count }
    }

    func contains(_ e: Element) -> Bool {
        switch self { case .empty: false; case .one(let x): x == e; case .many(let a): a.contains(e) }
    }

    mutating func append(_ e: Element) {
        switch self {
        case .empty: self = .one(e)
        case .one(let x): self = .many([x, e])
        case .many(var a):
            self = .empty  // release the array so the append below does not copy it
            a.append(e)
            self = .many(a)
        }
    }

    /// Appends unless present; returns whether it appended.
    mutating func insert(_ e: Element) -> Bool {
        if contains(e) { return false }
        append(e)
        return true
    }

    mutating func removeAll(where predicate: (Element) -> Bool) {
        switch self {
        case .empty: return
        case .one(let x): if predicate(x) { self = .empty }
        case .many(var a):
            self = .empty
            a.removeAll(where: predicate)
            self = a.count == 1 ? .one(a[0]) : (a.isEmpty ? .empty : .many(a))
        }
    }

    func makeIterator() -> AnyIterator<Element> {
        switch self {
        case .empty: return AnyIterator { nil }
        case .one(let x):
            var done = false
            return AnyIterator { if done { return nil }; done = true; return x }
        case .many(let a):
            var it = a.makeIterator()
            return AnyIterator { it.next() }
        }
    }

    /// Calls `body` on each element without building an iterator (the hot path).
    @inline(__always) func forEach(_ body: (Element) throws -> Void) rethrows {
        switch self {
        case .empty: return
        case .one(let x): try body(x)
        case .many(let a): for x in a { try body(x) }
        }
    }
}
