/// Character-level syntax rules shared by the decoders (label keys, port names, DNS names), written
/// as byte loops rather than regular expressions because they run for every label of every object.

enum LabelSyntax {
    @inline(__always) static func isAlnum(_ c: UInt8) -> Bool {
        (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122)
    }
    @inline(__always) static func isLowerAlnum(_ c: UInt8) -> Bool {
        (c >= 48 && c <= 57) || (c >= 97 && c <= 122)
    }

    /// RFC 1123 label: lowercase alphanumerics and '-', starting and ending alphanumeric, ≤ 63.
    static func isDNSLabel(_ s: String) -> Bool {
        let u = Array(s.utf8)
        guard !u.isEmpty, u.count <= 63, isLowerAlnum(u.first!), isLowerAlnum(u.last!) else { return false }
        return u.allSatisfy { isLowerAlnum($0) || $0 == 45 }
    }

    /// RFC 1123 subdomain: dot-separated labels, ≤ 253.
    static func isDNSSubdomain(_ s: String) -> Bool {
        guard !s.isEmpty, s.utf8.count <= 253 else { return false }
        return s.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { isDNSLabel(String($0)) }
    }

    /// Label name or value: ≤ 63 of [A-Za-z0-9._-], starting and ending alphanumeric.
    static func isQualifiedNamePart(_ s: Substring, allowEmpty: Bool) -> Bool {
        let u = Array(s.utf8)
        if u.isEmpty { return allowEmpty }
        guard u.count <= 63, isAlnum(u.first!), isAlnum(u.last!) else { return false }
        return u.allSatisfy { isAlnum($0) || $0 == 45 || $0 == 46 || $0 == 95 }
    }

    /// Checks a label key as used in Kubernetes and Cilium selectors: an optional Cilium source
    /// (`k8s:`, `reserved:`, `any:`, …), an optional DNS-subdomain prefix and `/`, and a name.
    /// Keys of the `cidr:` and `fqdn:` sources carry addresses and patterns and are not checked.
    /// Returns nil when valid, otherwise the reason.
    static func keyProblem(_ key: String) -> String? {
        var rest = Substring(key)
        if let colon = rest.firstIndex(of: ":") {
            let source = rest[..<colon]
            guard !source.isEmpty, source.utf8.allSatisfy({ isLowerAlnum($0) || $0 == 45 }) else {
                return "invalid label source \"\(source)\""
            }
            if source == "cidr" || source == "fqdn" { return nil }
            rest = rest[rest.index(after: colon)...]
        }
        if rest.isEmpty { return "label key is empty" }
        var name = rest
        if let slash = rest.lastIndex(of: "/") {
            let prefix = rest[..<slash]
            name = rest[rest.index(after: slash)...]
            if prefix.isEmpty || prefix.utf8.count > 253
                || !prefix.split(separator: ".", omittingEmptySubsequences: false).allSatisfy({ p in
                    let u = Array(p.utf8)
                    return !u.isEmpty && u.count <= 63 && isAlnum(u.first!) && isAlnum(u.last!)
                        && u.allSatisfy { isAlnum($0) || $0 == 45 }
                }) {
                return "prefix \"\(prefix)\" must be a DNS subdomain"
            }
        }
        if name.utf8.count > 63 { return "name part must be at most 63 characters" }
        if !isQualifiedNamePart(name, allowEmpty: false) {
            return "name part must consist of letters, digits, '-', '_' or '.', and start and end with a letter or digit"
        }
        return nil
    }

    static func valueProblem(_ value: String) -> String? {
        if value.utf8.count > 63 { return "label values must be at most 63 characters" }
        if !isQualifiedNamePart(Substring(value), allowEmpty: true) {
            return "label values must consist of letters, digits, '-', '_' or '.', and start and end with a letter or digit"
        }
        return nil
    }
}

enum PortSyntax {
    /// IANA service name (RFC 6335) as Kubernetes and Cilium check it: ≤ 15 characters of letters,
    /// digits and '-', at least one letter, no leading, trailing or doubled '-'.
    /// `lowercaseOnly` is Kubernetes' rule for its own port names; Cilium also accepts upper case.
    static func isServiceName(_ s: String, lowercaseOnly: Bool = false) -> Bool {
        let u = Array(s.utf8)
        guard !u.isEmpty, u.count <= 15, u.first != 45, u.last != 45 else { return false }
        var hasLetter = false
        var prevDash = false
        for c in u {
            let lower = c >= 97 && c <= 122, upper = c >= 65 && c <= 90, digit = c >= 48 && c <= 57
            if c == 45 {
                if prevDash { return false }
                prevDash = true
                continue
            }
            prevDash = false
            if lower || (upper && !lowercaseOnly) { hasLetter = true } else if !digit { return false }
        }
        return hasLetter
    }
}

enum FQDNSyntax {
    /// Cilium's CRD patterns: matchName `^([-a-zA-Z0-9_]+[.]?)+$`, matchPattern `^([-a-zA-Z0-9_*]+[.]?)+$`:
    /// non-empty dot-separated parts, a trailing dot allowed.
    static func problem(_ s: String, pattern: Bool) -> String? {
        let allowed = pattern ? "letters, digits, '-', '_', '.' and '*'" : "letters, digits, '-', '_' and '.'"
        if s.isEmpty { return "must not be empty" }
        if s.utf8.count > 255 { return "must be at most 255 characters" }
        for c in s.utf8 {
            let ok = LabelSyntax.isAlnum(c) || c == 45 || c == 95 || c == 46 || (pattern && c == 42)
            if !ok { return "invalid character \"\(Character(Unicode.Scalar(c)))\": only \(allowed) are allowed" }
        }
        var parts = s.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count > 1 && parts.last == "" { parts.removeLast() }
        if parts.contains(where: { $0.isEmpty }) { return "empty label (leading or doubled '.')" }
        return nil
    }
}

/// Lookup tables for names Cilium accepts in place of numbers.
enum NameTables {
    static let kafkaAPIKeys: [String] = [
        "produce", "fetch", "offsets", "metadata", "leaderandisr", "stopreplica", "updatemetadata",
        "controlledshutdown", "offsetcommit", "offsetfetch", "findcoordinator", "joingroup", "heartbeat",
        "leavegroup", "syncgroup", "describegroups", "listgroups", "saslhandshake", "apiversions",
        "createtopics", "deletetopics", "deleterecords", "initproducerid", "offsetforleaderepoch",
        "addpartitionstotxn", "addoffsetstotxn", "endtxn", "writetxnmarkers", "txnoffsetcommit",
        "describeacls", "createacls", "deleteacls", "describeconfigs", "alterconfigs",
    ]
    static let kafkaRoles = ["produce", "consume"]

    static let icmpV4: [(String, UInt8)] = [
        ("EchoReply", 0), ("DestinationUnreachable", 3), ("Redirect", 5), ("Echo", 8), ("EchoRequest", 8),
        ("RouterAdvertisement", 9), ("RouterSelection", 10), ("TimeExceeded", 11), ("ParameterProblem", 12),
        ("Timestamp", 13), ("TimestampReply", 14), ("Photuris", 40), ("ExtendedEchoRequest", 42),
        ("ExtendedEchoReply", 43),
    ]
    static let icmpV6: [(String, UInt8)] = [
        ("DestinationUnreachable", 1), ("PacketTooBig", 2), ("TimeExceeded", 3), ("ParameterProblem", 4),
        ("EchoRequest", 128), ("EchoReply", 129), ("MulticastListenerQuery", 130), ("MulticastListenerReport", 131),
        ("MulticastListenerDone", 132), ("RouterSolicitation", 133), ("RouterAdvertisement", 134),
        ("NeighborSolicitation", 135), ("NeighborAdvertisement", 136), ("RedirectMessage", 137),
        ("RouterRenumbering", 138), ("ICMPNodeInformationQuery", 139), ("ICMPNodeInformationResponse", 140),
        ("InverseNeighborDiscoverySolicitation", 141), ("InverseNeighborDiscoveryAdvertisement", 142),
        ("HomeAgentAddressDiscoveryRequest", 144), ("HomeAgentAddressDiscoveryReply", 145),
        ("MobilePrefixSolicitation", 146), ("MobilePrefixAdvertisement", 147),
        ("DuplicateAddressRequestCodeSuffix", 157), ("DuplicateAddressConfirmationCodeSuffix", 158),
        ("ExtendedEchoRequest", 160), ("ExtendedEchoReply", 161),
    ]
}
