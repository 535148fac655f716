import Formats

extension FuzzTarget {
    /// `torch.save` files: the zip directory, the pickle machine, storages and tensor rebuilding.
    static let pth = FuzzTarget(name: "pth", fileExtension: "pth") { _, path in
        var firstError: Error?
        do { _ = try PthReader.read(path) } catch { firstError = error }
        do { _ = try PthReader.stateDict(path) } catch { firstError = firstError ?? error }
        if let firstError { throw firstError }
    }

    /// MXNet `.params` (NDArray lists, v1–v3 and legacy headers).
    static let mxnet = FuzzTarget(name: "mxnet", fileExtension: "params") { _, path in
        _ = try MXNetParams.stateDict(path)
    }
}
