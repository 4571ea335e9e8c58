import ArgumentParser
import Cluster
import Policy
import PolicyAPI

/// Loads manifests and builds the cluster model. Invalid policies are reported on stderr and left out,
/// so that one bad policy does not hide what the others do.
func loadCluster(_ options: ManifestOptions, settings: EngineSettings = EngineSettings(), quiet: Bool = false) throws -> ClusterModel {
    try options.validateFiles()
    let set = ManifestDecoder.load(paths: options.files)
    if !quiet {
        for e in set.errors { printError("error: \(e)") }
        if !set.errors.isEmpty { printError("warning: \(set.errors.count) error(s); the resources in error are ignored") }
    }
    return ClusterModel(manifests: set, settings: settings)
}

func labelsText(_ labels: [String]) -> [String] { labels.isEmpty ? [""] : labels }
