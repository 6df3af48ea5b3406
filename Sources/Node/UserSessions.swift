/// The sessions of one user on one loop, for deliveries addressed to the user.
///
/// Almost every user has one connection per loop, so one session is held inline and a set is
/// made only for a second: a `Set` of one costs an idle connection about 100 bytes.
/// Loop-bound: a value inside its ``ConnectionRegistry``.
enum UserSessions {
    case one(SessionRef)
    case many(Set<SessionRef>)

    var isEmpty: Bool {
        if case .many(let set) = self { return set.isEmpty }
        return false
    }

    /// Adds `ref`; false when it was there already.
    mutating func insert(_ ref: SessionRef) -> Bool {
        switch self {
        case .one(let only):
            guard only != ref else { return false }
            self = .many([only, ref])
        case .many(var set):
            self = .many([])  // so that the insert does not copy the set
            defer { self = .many(set) }
            return set.insert(ref).inserted
        }
        return true
    }

    /// Removes `ref`; false when it was not there. Leaves the group empty after the last one.
    mutating func remove(_ ref: SessionRef) -> Bool {
        switch self {
        case .one(let only):
            guard only == ref else { return false }
            self = .many([])
        case .many(var set):
            self = .many([])
            guard set.remove(ref) != nil else {
                self = .many(set)
                return false
            }
            self = set.count == 1 ? .one(set.first!) : .many(set)
        }
        return true
    }

    func forEach(_ body: (SessionRef) -> Void) {
        switch self {
        case .one(let only): body(only)
        case .many(let set): set.forEach(body)
        }
    }
}
