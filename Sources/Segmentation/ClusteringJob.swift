import Distributed
import Foundation

/// `pcs-mpi cluster` over the ranks: class c is clustered on rank c mod size (`Communicator.share`) by
/// `ClassClustering`, and the assignments are gathered, so every rank ends with every class's result and the
/// result is the same for any rank count. Collective.
public struct ClusteringJob {
    public let clustering: ClassClustering
    public let world: Communicator

    public init(_ clustering: ClassClustering, world: Communicator) {
        self.clustering = clustering
        self.world = world
    }

    /// Every class's cluster assignments, in member order, on every rank.
    /// - Parameter names: class names, for the error when a class has fewer images than k.
    /// - Parameter progress: called on the rank that clustered class c with (c, seconds it took).
    public func run(_ features: ClassFeatures, labels: [[Float]], names: [String],
                    progress: ((Int, Double) -> Void)? = nil) throws -> [[Int]] {
        let classes = names.count
        let members = ClassClustering.members(labels, classes: classes)
        try clustering.checkMembers(members, names: names, features: features)
        var mine: [Int: [Int]] = [:]
        for c in world.share(classes) {
            let start = Date()
            mine[c] = clustering.cluster(class: c, members: members[c], features: features)
            progress?(c, Date().timeIntervalSince(start))
        }
        let all = try world.allGather(mine)
        return (0..<classes).map { c in all.compactMap { $0[c] }.first ?? [] }
    }
}
